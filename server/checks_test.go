package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/health/check"
	"github.com/switchyard-io/switchyard/store"
)

// registerChecked registers a persistent instance with a server-side check
// probing every 100 ms.
func (c *cluster) registerChecked(t *testing.T, id, typ, target string) {
	t.Helper()
	body := wire.RegisterRequest{Address: "127.0.0.1", Port: 8080, Ephemeral: new(bool),
		Check: store.Check{Type: typ, Target: target, Interval: store.Duration(100 * time.Millisecond),
			Timeout: store.Duration(100 * time.Millisecond), FailuresBeforeUnhealthy: 3, SuccessesBeforeHealthy: 2}}
	if err := c.do(c.servers[0], http.MethodPut, "/v1/namespaces/default/services/db/instances/"+id, body, nil); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// healthEverywhere waits until every live server reports want for id.
func (c *cluster) healthEverywhere(t *testing.T, d time.Duration, id string, want bool) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, d, fmt.Sprintf("%s healthy=%v everywhere", id, want), func() error {
		for _, s := range c.live() {
			h, err := c.healthOn(s, []string{"db"})
			if err != nil {
				return err
			}
			if got, ok := h[instanceRef{"db", id}]; !ok || got != want {
				return fmt.Errorf("%s: present=%v healthy=%v", s.cfg.NodeID, ok, got)
			}
		}
		return nil
	})
	return time.Since(start)
}

// runners counts, over the live servers, which ones run the check of id.
func (c *cluster) checkers(id string) []string {
	var out []string
	for _, s := range c.live() {
		if r := s.checks.runner.Load(); r != nil {
			if _, ok := r.Status(check.Key{Namespace: "default", Service: "db", ID: id}); ok {
				out = append(out, s.cfg.NodeID)
			}
		}
	}
	return out
}

func TestServerSideChecks(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) { cfg.CheckSyncInterval = 200 * time.Millisecond })

	// HTTP: healthy until the endpoint answers 500.
	var httpDown atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpDown.Load() {
			http.Error(w, "database unreachable", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer hs.Close()
	// Flapping HTTP: 200, 500, 200, 500 ... never enough in a row to move.
	var flips atomic.Int64
	flap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if flips.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer flap.Close()
	// TCP: healthy until the listener closes.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := tl.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	// gRPC: healthy until the health service says NOT_SERVING.
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hsrv := health.NewServer()
	healthpb.RegisterHealthServer(gs, hsrv)
	hsrv.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	go gs.Serve(gl)
	defer gs.Stop()

	c.registerChecked(t, "http-1", store.CheckHTTP, hs.URL+"/health")
	c.registerChecked(t, "flap-1", store.CheckHTTP, flap.URL)
	c.registerChecked(t, "tcp-1", store.CheckTCP, tl.Addr().String())
	c.registerChecked(t, "grpc-1", store.CheckGRPC, gl.Addr().String()+"/orders")

	// Each instance is checked by exactly one server.
	for _, id := range []string{"http-1", "flap-1", "tcp-1", "grpc-1"} {
		eventually(t, 3*time.Second, id+" checked by one server", func() error {
			if got := c.checkers(id); len(got) != 1 {
				return fmt.Errorf("checked by %v", got)
			}
			return nil
		})
	}
	// The check's output is visible through any server.
	eventually(t, 3*time.Second, "check status through a non-owner", func() error {
		var st wire.CheckStatus
		owner := c.checkers("http-1")[0]
		for _, s := range c.live() {
			if s.cfg.NodeID == owner {
				continue
			}
			if err := c.do(s, http.MethodGet, "/v1/namespaces/default/services/db/instances/http-1/check", nil, &st); err != nil {
				return err
			}
			if st.CheckedBy != owner || st.LastOK == nil || !*st.LastOK || st.Output == "" {
				return fmt.Errorf("status via %s: %+v", s.cfg.NodeID, st)
			}
		}
		return nil
	})
	leader := c.leader()
	startEntries := leader.Node().EntriesAppended()

	httpDown.Store(true)
	d := c.healthEverywhere(t, 5*time.Second, "http-1", false)
	t.Logf("HTTP 500: unhealthy everywhere after %v", d.Round(time.Millisecond))
	tl.Close()
	d = c.healthEverywhere(t, 5*time.Second, "tcp-1", false)
	t.Logf("TCP closed: unhealthy everywhere after %v", d.Round(time.Millisecond))
	hsrv.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
	d = c.healthEverywhere(t, 5*time.Second, "grpc-1", false)
	t.Logf("gRPC NOT_SERVING: unhealthy everywhere after %v", d.Round(time.Millisecond))

	var st wire.CheckStatus
	if err := c.do(c.servers[0], http.MethodGet, "/v1/namespaces/default/services/db/instances/http-1/check", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Healthy || st.LastOK == nil || *st.LastOK || st.ConsecutiveFailures < 3 {
		t.Fatalf("check status after the failure: %+v", st)
	}

	// Recovery needs two successes in a row.
	httpDown.Store(false)
	c.healthEverywhere(t, 5*time.Second, "http-1", true)

	// The flapping endpoint never moved, and each change above was one
	// entry: three down, one up.
	eventually(t, 5*time.Second, "20 probes of the flapping endpoint", func() error {
		if n := flips.Load(); n < 20 {
			return fmt.Errorf("probed %d times", n)
		}
		return nil
	})
	c.healthEverywhere(t, time.Second, "flap-1", true)
	if c.leader() != leader {
		t.Fatalf("leadership moved during the test: entries cannot be counted")
	}
	if grew := leader.Node().EntriesAppended() - startEntries; grew != 4 {
		t.Fatalf("the leader appended %d catalog entries for four health changes", grew)
	}
}

// The server that checks an instance dies: a live one takes the check over
// within 5 s, with the production gossip timings and ownership sync.
func TestChecksMoveWhenAServerDies(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.Gossip = gossip.DefaultConfig()
		cfg.CheckSyncInterval = DefaultConfig().CheckSyncInterval
	})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer hs.Close()
	for i := range 12 {
		c.registerChecked(t, fmt.Sprintf("svc-%02d", i), store.CheckHTTP, hs.URL)
	}
	owners := map[string]string{}
	eventually(t, 5*time.Second, "every check owned once", func() error {
		for i := range 12 {
			id := fmt.Sprintf("svc-%02d", i)
			got := c.checkers(id)
			if len(got) != 1 {
				return fmt.Errorf("%s checked by %v", id, got)
			}
			owners[id] = got[0]
		}
		return nil
	})
	// Kill a follower that owns checks (the leader would also work, but
	// then an election overlaps the hand-over).
	var victim *Server
	for _, s := range c.live() {
		for _, o := range owners {
			if o == s.cfg.NodeID && !s.Node().IsLeader() {
				victim = s
			}
		}
	}
	if victim == nil {
		t.Fatal("no follower owns a check")
	}
	killed := time.Now()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "checks of the dead server taken over", func() error {
		for id, o := range owners {
			got := c.checkers(id)
			if len(got) != 1 {
				return fmt.Errorf("%s checked by %v", id, got)
			}
			if o != victim.cfg.NodeID && got[0] != o {
				return fmt.Errorf("%s moved from live %s to %s", id, o, got[0])
			}
		}
		return nil
	})
	t.Logf("checks taken over %v after the kill", time.Since(killed).Round(time.Millisecond))
	for i := range 12 {
		c.healthEverywhere(t, time.Second, fmt.Sprintf("svc-%02d", i), true)
	}
}

// A stranger in the gossip pool (not a server of the cluster) owns no
// check: the servers run every check themselves, and never send a
// caller's check-status request (and its token) to the stranger.
func TestGossipStrangerOwnsNoChecks(t *testing.T) {
	c := startCluster(t, 3)
	var strangerHits atomic.Int64
	stranger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		strangerHits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(stranger.Close)
	gc := gossip.LocalConfig()
	gc.Name, gc.BindAddr = "stranger", "127.0.0.1:0"
	gc.Meta = gossip.Meta{HTTPAddr: strings.TrimPrefix(stranger.URL, "http://")}
	pool, err := gossip.Start(gc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Shutdown() })
	if _, err := pool.Join(context.Background(), []string{c.servers[0].Pool().Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the stranger alive in every server's pool", func() error {
		for _, s := range c.servers {
			found := false
			for _, m := range s.Pool().Members() {
				found = found || (m.Name == "stranger" && m.Status == gossip.StatusAlive)
			}
			if !found {
				return fmt.Errorf("%s does not see the stranger alive", s.cfg.NodeID)
			}
		}
		return nil
	})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(target.Close)
	// With four candidates, 40 instances leave the stranger none by chance
	// once in 100,000 runs.
	const n = 40
	for i := range n {
		c.registerChecked(t, fmt.Sprintf("db-%d", i), "http", target.URL)
	}
	for i := range n {
		id := fmt.Sprintf("db-%d", i)
		eventually(t, 5*time.Second, "one server checks "+id, func() error {
			if got := c.checkers(id); len(got) != 1 {
				return fmt.Errorf("checked by %v", got)
			}
			return nil
		})
		for _, s := range c.servers {
			var st wire.CheckStatus
			if err := c.do(s, http.MethodGet, "/v1/namespaces/default/services/db/instances/"+id+"/check", nil, &st); err != nil {
				t.Fatal(err)
			}
			if st.CheckedBy == "stranger" {
				t.Fatalf("%s says the stranger checks %s", s.cfg.NodeID, id)
			}
		}
	}
	if h := strangerHits.Load(); h != 0 {
		t.Errorf("the stranger's HTTP address got %d requests", h)
	}
}
