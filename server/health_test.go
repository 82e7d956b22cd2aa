package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/store"
)

// instanceRef names an ephemeral instance of the test fleet.
type instanceRef struct{ svc, id string }

func (r instanceRef) path() string {
	return "/v1/namespaces/default/services/" + r.svc + "/instances/" + r.id
}

// fleet registers ephemeral instances and heartbeats each of them to a
// random live server, like a real SDK: on failure it tries another server.
type fleet struct {
	c         *cluster
	every     time.Duration
	sent      atomic.Int64
	failed    atomic.Int64
	mu        sync.Mutex
	stops     map[instanceRef]chan struct{}
	lastBeat  map[instanceRef]time.Time
	wg        sync.WaitGroup
	ctx       context.Context
	cancelAll context.CancelFunc
}

func newFleet(c *cluster, every time.Duration) *fleet {
	f := &fleet{c: c, every: every, stops: map[instanceRef]chan struct{}{}, lastBeat: map[instanceRef]time.Time{}}
	f.ctx, f.cancelAll = context.WithCancel(context.Background())
	c.t.Cleanup(f.close)
	return f
}

func (f *fleet) close() {
	f.cancelAll()
	f.wg.Wait()
}

// add registers an instance (with the given check TTL and deregister_after,
// 0 for the defaults) and starts its heartbeats.
func (f *fleet) add(t *testing.T, ref instanceRef, ttl, dereg time.Duration) {
	t.Helper()
	body := wire.RegisterRequest{Address: "10.1.0.1", Port: 8080,
		Check: store.Check{TTL: store.Duration(ttl), DeregisterAfter: store.Duration(dereg)}}
	live := f.c.live()
	if err := f.c.do(live[rand.IntN(len(live))], http.MethodPut, ref.path(), body, nil); err != nil {
		t.Fatalf("register %v: %v", ref, err)
	}
	stop := make(chan struct{})
	f.mu.Lock()
	f.stops[ref] = stop
	f.lastBeat[ref] = time.Now()
	f.mu.Unlock()
	f.wg.Add(1)
	go f.beat(ref, stop)
}

func (f *fleet) beat(ref instanceRef, stop chan struct{}) {
	defer f.wg.Done()
	// Start at a random point of the interval, as a real fleet would.
	wait := time.Duration(rand.Int64N(int64(f.every)))
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-stop:
			return
		case <-time.After(wait):
		}
		wait = f.every
		live := f.c.live()
		for _, i := range rand.Perm(len(live)) {
			f.sent.Add(1)
			if err := f.c.do(live[i], http.MethodPut, ref.path()+"/heartbeat", nil, nil); err == nil {
				f.mu.Lock()
				f.lastBeat[ref] = time.Now()
				f.mu.Unlock()
				break
			}
			f.failed.Add(1)
		}
	}
}

// resume restarts the heartbeats of a silenced instance.
func (f *fleet) resume(ref instanceRef) {
	stop := make(chan struct{})
	f.mu.Lock()
	f.stops[ref] = stop
	f.mu.Unlock()
	f.wg.Add(1)
	go f.beat(ref, stop)
}

// silence stops an instance's heartbeats and returns when it last beat.
func (f *fleet) silence(ref instanceRef) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.stops[ref])
	delete(f.stops, ref)
	return f.lastBeat[ref]
}

// healthOn returns, per instance, the health that server s reports.
func (c *cluster) healthOn(s *Server, svcs []string) (map[instanceRef]bool, error) {
	out := map[instanceRef]bool{}
	for _, svc := range svcs {
		r, err := c.instances(s, "default", svc)
		if err != nil {
			if he, ok := err.(*httpError); ok && he.status == http.StatusNotFound {
				continue
			}
			return nil, err
		}
		for _, in := range r.Instances {
			out[instanceRef{svc, in.ID}] = in.Healthy
		}
	}
	return out, nil
}

// 200 ephemeral instances heartbeat (every 5 s, the default) to random
// servers for 60 s: every instance stays healthy on every server
// throughout, and the Raft log does not grow with the heartbeats.
func TestHeartbeatsKeepInstancesHealthyWithoutRaft(t *testing.T) {
	c := startCluster(t, 3)
	f := newFleet(c, 5*time.Second)
	svcs := []string{"api", "web", "auth", "pay"}
	var refs []instanceRef
	for i := range 200 {
		ref := instanceRef{svcs[i%len(svcs)], fmt.Sprintf("i-%03d", i)}
		refs = append(refs, ref)
		f.add(t, ref, 0, 0) // default TTL 15 s, deregister after 60 s
	}
	// Let every server apply the registrations.
	eventually(t, 5*time.Second, "200 instances everywhere", func() error {
		for _, s := range c.servers {
			h, err := c.healthOn(s, svcs)
			if err != nil {
				return err
			}
			if len(h) != 200 {
				return fmt.Errorf("%s has %d", s.cfg.NodeID, len(h))
			}
		}
		return nil
	})
	startIndex := c.leader().Node().AppliedIndex()
	sentBefore := f.sent.Load()

	deadline := time.Now().Add(60 * time.Second)
	samples := 0
	for time.Now().Before(deadline) {
		for _, s := range c.servers {
			h, err := c.healthOn(s, svcs)
			if err != nil {
				t.Fatalf("lookup on %s: %v", s.cfg.NodeID, err)
			}
			for _, ref := range refs {
				if healthy, ok := h[ref]; !ok || !healthy {
					t.Fatalf("after %d samples, %v on %s: present=%v healthy=%v", samples, ref, s.cfg.NodeID, ok, healthy)
				}
			}
		}
		samples++
		time.Sleep(500 * time.Millisecond)
	}
	sent := f.sent.Load() - sentBefore
	grew := c.leader().Node().AppliedIndex() - startIndex
	t.Logf("%d heartbeats in 60 s (%d failed), %d health samples of 3 servers, Raft log grew by %d entries", sent, f.failed.Load(), samples, grew)
	if sent < 2000 {
		t.Fatalf("only %d heartbeats sent; the test did not exercise the servers", sent)
	}
	if grew > 5 {
		t.Fatalf("the Raft log grew by %d entries while only heartbeats arrived", grew)
	}
}

// Ten of a hundred instances stop heartbeating: they turn unhealthy on
// every server within TTL + 2 s and are removed after deregister_after, each
// removal one command written once; the others stay healthy. (Ten in a
// hundred is below the self-preservation threshold of 15%.)
func TestSilentInstancesTurnUnhealthyThenExpire(t *testing.T) {
	const ttl, dereg = 2 * time.Second, 5 * time.Second
	c := startCluster(t, 3)
	f := newFleet(c, 500*time.Millisecond)
	var refs []instanceRef
	for i := range 100 {
		ref := instanceRef{"web", fmt.Sprintf("w-%02d", i)}
		refs = append(refs, ref)
		f.add(t, ref, ttl, dereg)
	}
	time.Sleep(time.Second) // a few rounds of heartbeats
	leader := c.leader()
	startEntries := leader.Node().EntriesAppended()
	var lastBeat time.Time
	silent := map[instanceRef]bool{}
	for _, ref := range refs[:10] {
		silent[ref] = true
		if lb := f.silence(ref); lb.After(lastBeat) {
			lastBeat = lb
		}
	}

	// Unhealthy everywhere within TTL + 2 s of the last heartbeat.
	eventually(t, ttl+4*time.Second, "silent instances unhealthy on every server", func() error {
		for _, s := range c.servers {
			h, err := c.healthOn(s, []string{"web"})
			if err != nil {
				return err
			}
			for _, ref := range refs {
				if h[ref] == silent[ref] {
					return fmt.Errorf("%v on %s: healthy=%v", ref, s.cfg.NodeID, h[ref])
				}
			}
		}
		return nil
	})
	unhealthyAfter := time.Since(lastBeat)
	if unhealthyAfter > ttl+2*time.Second {
		t.Fatalf("unhealthy everywhere %v after the last heartbeat, more than TTL + 2 s", unhealthyAfter)
	}
	t.Logf("silent instances unhealthy on all servers %v after their last heartbeat (TTL %v)", unhealthyAfter.Round(time.Millisecond), ttl)

	eventually(t, dereg+3*time.Second, "silent instances removed everywhere", func() error {
		for _, s := range c.servers {
			h, err := c.healthOn(s, []string{"web"})
			if err != nil {
				return err
			}
			if len(h) != 90 {
				return fmt.Errorf("%s has %d instances", s.cfg.NodeID, len(h))
			}
			for ref, healthy := range h {
				if silent[ref] || !healthy {
					return fmt.Errorf("%v on %s healthy=%v", ref, s.cfg.NodeID, healthy)
				}
			}
		}
		return nil
	})
	removedAfter := time.Since(lastBeat)
	if removedAfter < dereg {
		t.Fatalf("removed %v after the last heartbeat, before deregister_after %v", removedAfter, dereg)
	}
	// The judge writes the removals one by one (ten entries) and one
	// set-health per round that found new silences: the heartbeats were
	// spread over 500 ms, so the TTLs ran out over at most four rounds of
	// 200 ms. Nobody else wrote.
	// Catalog entries, counted where they are appended: Raft's own
	// entries (barriers) are not the judge's.
	if c.leader() != leader {
		t.Fatalf("leadership moved during the test: entries cannot be counted")
	}
	grew := leader.Node().EntriesAppended() - startEntries
	t.Logf("removed %v after the last heartbeat; the leader appended %d catalog entries", removedAfter.Round(time.Millisecond), grew)
	if grew < 11 || grew > 14 {
		t.Fatalf("the leader appended %d catalog entries for 10 health changes and 10 removals", grew)
	}
	// The log holds each removal once: replaying it is what every server
	// did, and they all agree.
	for _, s := range c.servers {
		if got := s.Node().Store().Index(); got != c.leader().Node().Store().Index() {
			t.Errorf("%s at index %d, leader at %d", s.cfg.NodeID, got, c.leader().Node().Store().Index())
		}
	}
}

// The leader is killed while instances heartbeat to random servers: the
// heartbeats reach the survivors, the new leader judges from what gossip
// told it, and no instance turns unhealthy.
func TestKillLeaderInstancesStayHealthy(t *testing.T) {
	const ttl = 3 * time.Second
	c := startCluster(t, 3)
	f := newFleet(c, time.Second)
	var refs []instanceRef
	for i := range 30 {
		ref := instanceRef{"api", fmt.Sprintf("a-%02d", i)}
		refs = append(refs, ref)
		f.add(t, ref, ttl, 4*ttl)
	}
	time.Sleep(2 * time.Second)
	old := c.leader()
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * ttl)
	for time.Now().Before(deadline) {
		for _, s := range c.live() {
			h, err := c.healthOn(s, []string{"api"})
			if err != nil {
				continue // no leader for a moment is fine; wrong health is not
			}
			for _, ref := range refs {
				if healthy, ok := h[ref]; !ok || !healthy {
					t.Fatalf("%v on %s after the leader died: present=%v healthy=%v", ref, s.cfg.NodeID, ok, healthy)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if c.leader() == nil {
		t.Fatal("no new leader")
	}
}

// Protect threshold 0.5 with 7 of 10 instances silent (unhealthy): a
// healthy-only lookup on any server returns all ten enabled instances,
// each with its real health, and says it is protected. A disabled instance
// is never returned.
func TestProtectThreshold(t *testing.T) {
	const ttl = 2 * time.Second
	c := startCluster(t, 3)
	if err := c.do(c.servers[0], http.MethodPut, "/v1/namespaces/default/services/pay",
		map[string]any{"protect_threshold": 0.5}, nil); err != nil {
		t.Fatal(err)
	}
	f := newFleet(c, 500*time.Millisecond)
	var refs []instanceRef
	for i := range 10 {
		ref := instanceRef{"pay", fmt.Sprintf("p-%02d", i)}
		refs = append(refs, ref)
		f.add(t, ref, ttl, time.Hour)
	}
	disabled := wire.RegisterRequest{Address: "10.1.0.9", Port: 8080, Enabled: new(bool)}
	if err := c.do(c.servers[1], http.MethodPut, "/v1/namespaces/default/services/pay/instances/p-off", disabled, nil); err != nil {
		t.Fatal(err)
	}
	lookup := func(s *Server) (wire.InstancesResponse, http.Header, error) {
		var out wire.InstancesResponse
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.HTTPAddr()+"/v1/namespaces/default/services/pay/instances?healthy=true", nil)
		resp, err := c.hc.Do(req)
		if err != nil {
			return out, nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return out, nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		return out, resp.Header, json.NewDecoder(resp.Body).Decode(&out)
	}
	// All healthy: a plain answer without the disabled instance.
	eventually(t, 5*time.Second, "ten healthy, unprotected", func() error {
		for _, s := range c.servers {
			r, h, err := lookup(s)
			if err != nil {
				return err
			}
			if len(r.Instances) != 10 || r.Protected || h.Get("X-Switchyard-Protected") != "" {
				return fmt.Errorf("%s: %d instances, protected %v", s.cfg.NodeID, len(r.Instances), r.Protected)
			}
		}
		return nil
	})
	for _, ref := range refs[:7] {
		f.silence(ref)
	}
	eventually(t, ttl+4*time.Second, "protected answer on every server", func() error {
		for _, s := range c.servers {
			r, h, err := lookup(s)
			if err != nil {
				return err
			}
			unhealthy := 0
			for _, in := range r.Instances {
				if in.ID == "p-off" {
					return fmt.Errorf("%s returned the disabled instance", s.cfg.NodeID)
				}
				if !in.Healthy {
					unhealthy++
				}
			}
			if !r.Protected || h.Get("X-Switchyard-Protected") != "1" || len(r.Instances) != 10 || unhealthy != 7 {
				return fmt.Errorf("%s: protected=%v header=%q, %d instances, %d unhealthy",
					s.cfg.NodeID, r.Protected, h.Get("X-Switchyard-Protected"), len(r.Instances), unhealthy)
			}
		}
		return nil
	})
}

func (c *cluster) selfPreservation(s *Server) (store.SelfPreservation, error) {
	var h struct {
		SelfPreservation store.SelfPreservation `json:"self_preservation"`
	}
	err := c.do(s, http.MethodGet, "/v1/health", nil, &h)
	return h.SelfPreservation, err
}

// 40% of the instances fall silent at once: they turn unhealthy but none is
// removed; when their heartbeats return they are healthy again and the mode
// ends by itself. A second storm that does not recover is ended by an
// operator (through a follower), and then the silent ones are removed.
func TestSelfPreservation(t *testing.T) {
	const ttl, dereg = 2 * time.Second, 4 * time.Second
	c := startCluster(t, 3)
	f := newFleet(c, 500*time.Millisecond)
	var refs []instanceRef
	for i := range 50 {
		ref := instanceRef{"orders", fmt.Sprintf("o-%02d", i)}
		refs = append(refs, ref)
		f.add(t, ref, ttl, dereg)
	}
	time.Sleep(time.Second)
	storm := refs[:20]
	for _, ref := range storm {
		f.silence(ref)
	}
	eventually(t, ttl+4*time.Second, "self-preservation on every server", func() error {
		for _, s := range c.servers {
			sp, err := c.selfPreservation(s)
			if err != nil {
				return err
			}
			if !sp.Active {
				return fmt.Errorf("%s: %+v", s.cfg.NodeID, sp)
			}
		}
		return nil
	})
	for _, s := range c.servers {
		if m := c.metric(t, s, "switchyard_self_preservation_active"); m != "1" {
			t.Fatalf("%s: switchyard_self_preservation_active %q during self-preservation", s.cfg.NodeID, m)
		}
	}
	// Well past deregister_after: all fifty still there, the silent ones
	// unhealthy.
	time.Sleep(dereg + 2*time.Second)
	for _, s := range c.servers {
		h, err := c.healthOn(s, []string{"orders"})
		if err != nil {
			t.Fatal(err)
		}
		unhealthy := 0
		for _, ok := range h {
			if !ok {
				unhealthy++
			}
		}
		if len(h) != 50 || unhealthy != 20 {
			t.Fatalf("%s during self-preservation: %d instances, %d unhealthy; want 50 and 20", s.cfg.NodeID, len(h), unhealthy)
		}
	}
	for _, ref := range storm {
		f.resume(ref)
	}
	eventually(t, 5*time.Second, "all healthy and the mode ended", func() error {
		for _, s := range c.servers {
			h, err := c.healthOn(s, []string{"orders"})
			if err != nil {
				return err
			}
			for ref, ok := range h {
				if !ok {
					return fmt.Errorf("%v unhealthy on %s", ref, s.cfg.NodeID)
				}
			}
			sp, err := c.selfPreservation(s)
			if err != nil {
				return err
			}
			if sp.Active || sp.EndedBy != "heartbeats" || len(h) != 50 {
				return fmt.Errorf("%s: %d instances, mode %+v", s.cfg.NodeID, len(h), sp)
			}
		}
		return nil
	})

	if m := c.metric(t, c.servers[2], "switchyard_self_preservation_active"); m != "0" {
		t.Fatalf("switchyard_self_preservation_active %q after the mode ended", m)
	}
	// Second storm, for good: an operator ends the mode on a follower.
	for _, ref := range storm {
		f.silence(ref)
	}
	eventually(t, ttl+4*time.Second, "self-preservation again", func() error {
		sp, err := c.selfPreservation(c.servers[0])
		if err != nil || !sp.Active {
			return fmt.Errorf("%+v %v", sp, err)
		}
		return nil
	})
	var follower *Server
	for _, s := range c.servers {
		if !s.Node().IsLeader() {
			follower = s
		}
	}
	var ended store.SelfPreservation
	if err := c.do(follower, http.MethodDelete, "/v1/cluster/self-preservation", nil, &ended); err != nil {
		t.Fatal(err)
	}
	if ended.Active || ended.EndedBy != "operator" {
		t.Fatalf("after DELETE: %+v", ended)
	}
	eventually(t, dereg+4*time.Second, "silent instances removed after the operator ended the mode", func() error {
		for _, s := range c.servers {
			h, err := c.healthOn(s, []string{"orders"})
			if err != nil {
				return err
			}
			if len(h) != 30 {
				return fmt.Errorf("%s has %d instances", s.cfg.NodeID, len(h))
			}
		}
		return nil
	})
	if sp, _ := c.selfPreservation(c.servers[0]); sp.Active {
		t.Fatalf("the same storm restarted the mode: %+v", sp)
	}
}

// Every server restarts after an outage longer than the TTL: the new
// leader gives heartbeats a grace period before judging, so the restart
// does not mark the catalog unhealthy.
func TestRestartGivesHeartbeatsAGracePeriod(t *testing.T) {
	const ttl = 3 * time.Second
	c := startCluster(t, 3)
	f := newFleet(c, time.Second)
	for i := range 30 {
		f.add(t, instanceRef{"api", fmt.Sprintf("a-%02d", i)}, ttl, time.Hour)
	}
	time.Sleep(2 * time.Second)
	for _, s := range c.servers {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(ttl + time.Second) // silent, as far as any server could tell, for longer than the TTL
	for i := range c.servers {
		c.restart(i)
	}
	c.waitVoters(3, 15*time.Second)
	// For two TTLs after the restart no instance is ever unhealthy.
	deadline := time.Now().Add(2 * ttl)
	for time.Now().Before(deadline) {
		for _, s := range c.live() {
			h, err := c.healthOn(s, []string{"api"})
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != 30 {
				t.Fatalf("%s has %d instances after the restart", s.cfg.NodeID, len(h))
			}
			for ref, ok := range h {
				if !ok {
					t.Fatalf("%v unhealthy on %s after the restart", ref, s.cfg.NodeID)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A read server restarted from its data directory catches up through Raft
// (the leader holds it in the configuration and replicates to it at once)
// before its gossip pool finds the others: here its join addresses never
// answer, as happens while they are still starting. What it hears reaches
// the other servers only through that pool, so a heartbeat it took then
// would be lost: instances that list it first, as the drills' instances
// list their datacenter's read server, got a 200 for every heartbeat and
// still lapsed. It refuses them (503 not_ready) until its pool holds the
// leader, so the SDK takes them to another server and the instances never
// turn unhealthy; once it has joined, heartbeats sent only to it keep an
// instance healthy.
func TestHeartbeatsRefusedWhereTheJudgeCannotHearThem(t *testing.T) {
	const ttl = time.Second
	c := startCluster(t, 3)
	r := c.addServer(t, "r1", func(cfg *Config) { cfg.Role = store.RoleRead })
	eventually(t, 15*time.Second, "r1 a read server, caught up", func() error {
		if m, ok := c.members(t)["r1"]; !ok || m.Role != "nonvoter" || !r.Ready() {
			return fmt.Errorf("r1: %+v (in: %v), ready %v", m, ok, r.Ready())
		}
		return nil
	})

	// Restart r1 on its Raft address and data, on a gossip port nobody
	// knows, with no peers file and no join address that answers. Its old
	// gossip port stays taken, by listeners that never speak gossip, so
	// that neither the new r1 nor the others' reconnects land there.
	cfg := r.cfg
	oldGossip := r.Pool().Addr()
	cfg.RaftAddr, cfg.GossipAddr, cfg.Join = r.Node().RaftAddr(), "127.0.0.1:0", nil
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", oldGossip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	udp, err := net.ListenPacket("udp", oldGossip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	if err := os.Remove(peersPath(cfg.DataDir)); err != nil {
		t.Fatal(err)
	}
	r, err = Start(cfg)
	if err != nil {
		t.Fatalf("restart r1: %v", err)
	}
	t.Cleanup(func() { _ = r.Kill() })
	c.add(r)
	eventually(t, 15*time.Second, "r1 caught up again through Raft", func() error {
		if !r.Ready() {
			return errors.New("not ready")
		}
		return nil
	})
	if n := r.liveOthers(); n != 0 {
		t.Fatalf("r1's gossip pool holds %d other servers; the test needs it alone", n)
	}

	servers := []string{r.HTTPAddr()}
	for _, s := range c.servers[:3] {
		servers = append(servers, s.HTTPAddr())
	}
	sdk, err := client.New(client.Config{Servers: servers, Logger: r.logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdk.Close() })
	reg := client.Registration{Address: "10.0.0.1", Port: 80,
		Check: store.Check{TTL: store.Duration(ttl), DeregisterAfter: store.Duration(time.Minute)}}
	for _, id := range []string{"e1", "e2"} {
		if _, err := sdk.Register(context.Background(), "echo", id, reg); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	// Heartbeating every TTL/3 through the SDK, for four TTLs: healthy on
	// every server at every look, once every server holds them (a
	// follower's replica may lag a registration by a moment).
	healthy := func(d time.Duration, ids ...string) {
		t.Helper()
		eventually(t, 5*time.Second, fmt.Sprintf("%v on every server", ids), func() error {
			for _, s := range c.live() {
				h, err := c.healthOn(s, []string{"echo"})
				if err != nil {
					return err
				}
				for _, id := range ids {
					if _, present := h[instanceRef{"echo", id}]; !present {
						return fmt.Errorf("%s not on %s yet", id, s.cfg.NodeID)
					}
				}
			}
			return nil
		})
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			for _, s := range c.live() {
				h, err := c.healthOn(s, []string{"echo"})
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					if up, present := h[instanceRef{"echo", id}]; !present || !up {
						t.Fatalf("%s on %s: present=%v healthy=%v, while it heartbeats", id, s.cfg.NodeID, present, up)
					}
				}
			}
		}
	}
	healthy(4*ttl, "e1", "e2")

	// r1 said why it refused.
	beat := func(id string) error {
		return c.do(r, http.MethodPut, "/v1/namespaces/default/services/echo/instances/"+id+"/heartbeat", nil, nil)
	}
	var he *httpError
	if err := beat("e1"); !errors.As(err, &he) || he.status != http.StatusServiceUnavailable ||
		!strings.Contains(he.body, "not_ready") || !strings.Contains(he.body, "gossip pool") {
		t.Fatalf("a heartbeat to r1 outside the gossip pool: %v, want 503 not_ready naming the gossip pool", err)
	}

	// Joined, r1 takes heartbeats again, and they reach the judge: an
	// instance heartbeating to r1 alone stays healthy.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.Pool().Join(ctx, []string{c.servers[0].Pool().Addr()}); err != nil {
		t.Fatal(err)
	}
	if err := c.do(r, http.MethodPut, "/v1/namespaces/default/services/echo/instances/e3", reg, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "r1 takes heartbeats once joined", func() error { return beat("e3") })
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
			}
			if err := beat("e3"); err != nil {
				done <- err
				return
			}
		}
	}()
	healthy(4*ttl, "e1", "e2", "e3")
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("a heartbeat to r1 after it joined: %v", err)
	}
}
