package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/internal/testlog"
)

// testConfig returns a server config for loopback with fast timings: Raft
// elections in about half a second, gossip probes every 200 ms.
func testConfig(t *testing.T, id string) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.DataDir = filepath.Join(t.TempDir(), id)
	cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr, cfg.DNS.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.XDS.Addr = "127.0.0.1:0"
	cfg.Raft.HeartbeatTimeout = 400 * time.Millisecond
	cfg.Raft.ElectionTimeout = 400 * time.Millisecond
	cfg.Raft.LeaderLeaseTimeout = 300 * time.Millisecond
	cfg.Gossip = gossip.LocalConfig()
	cfg.FlushInterval = 100 * time.Millisecond
	cfg.JudgeInterval = 200 * time.Millisecond
	cfg.ReconcileInterval = 200 * time.Millisecond
	cfg.ServerStabilization = 300 * time.Millisecond
	cfg.Logger = testlog.New(t, slog.LevelInfo)
	cfg.ACL.Enabled = false // the access-control tests turn it on
	// The tests' instances listen on loopback and are probed every 100 ms;
	// the check-policy tests put the defaults back.
	cfg.CheckPolicy.AllowLoopback = true
	cfg.CheckPolicy.MinInterval = 10 * time.Millisecond
	return cfg
}

// cluster is a set of servers started in this process.
type cluster struct {
	t  *testing.T
	hc *http.Client
	// servers is written by the test goroutine only, under mu; other
	// goroutines (heartbeating fleets) read it through live().
	mu      sync.Mutex
	servers []*Server
}

func (c *cluster) add(s *Server) {
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.mu.Unlock()
}

// startCluster starts n servers that find each other by gossip and
// bootstrap together (bootstrap-expect n), and waits for a leader with
// every server a voter.
func startCluster(t *testing.T, n int, tune ...func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, hc: &http.Client{Timeout: 10 * time.Second}}
	for i := range n {
		cfg := testConfig(t, fmt.Sprintf("s%d", i+1))
		cfg.BootstrapExpect = n
		if i > 0 {
			cfg.Join = []string{c.servers[0].Pool().Addr()}
		}
		for _, f := range tune {
			f(&cfg)
		}
		s, err := Start(cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.NodeID, err)
		}
		s.cfg.GossipAddr = s.Pool().Addr() // so that a restart binds the same port
		t.Cleanup(func() { _ = s.Kill() })
		c.add(s)
	}
	c.waitVoters(n, 15*time.Second)
	return c
}

func (c *cluster) waitVoters(n int, d time.Duration) {
	c.t.Helper()
	eventually(c.t, d, fmt.Sprintf("%d voters and a leader", n), func() error {
		for _, s := range c.live() {
			if !s.Ready() {
				return fmt.Errorf("%s not ready", s.cfg.NodeID)
			}
			ms, err := s.Node().Members()
			if err != nil {
				return err
			}
			voters, leaders := 0, 0
			for _, m := range ms {
				if m.Role != "nonvoter" {
					voters++
				}
				if m.Role == "leader" {
					leaders++
				}
			}
			if voters != n || leaders != 1 {
				return fmt.Errorf("%s sees %d voters, %d leaders", s.cfg.NodeID, voters, leaders)
			}
		}
		return nil
	})
}

// live returns the servers not stopped by the test.
func (c *cluster) live() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Server
	for _, s := range c.servers {
		if s.ctx.Err() == nil {
			out = append(out, s)
		}
	}
	return out
}

func (c *cluster) leader() *Server {
	for _, s := range c.live() {
		if s.Node().IsLeader() {
			return s
		}
	}
	return nil
}

// do sends a request to server s and decodes a 2xx JSON answer into out.
func (c *cluster) do(s *Server, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, "http://"+s.HTTPAddr()+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &httpError{status: resp.StatusCode, body: string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func (c *cluster) instances(s *Server, ns, svc string) (wire.InstancesResponse, error) {
	var out wire.InstancesResponse
	err := c.do(s, http.MethodGet, "/v1/namespaces/"+ns+"/services/"+svc+"/instances", nil, &out)
	return out, err
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the value of an unlabelled metric in s's /metrics.
func (c *cluster) metric(t *testing.T, s *Server, name string) string {
	t.Helper()
	resp, err := c.hc.Get("http://" + s.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("no metric %s in /metrics", name)
	return ""
}

// restart starts server i again from its data directory, on its Raft and
// gossip addresses, after the test stopped it.
func (c *cluster) restart(i int) *Server {
	c.t.Helper()
	old := c.servers[i]
	cfg := old.cfg
	cfg.RaftAddr = old.Node().RaftAddr()
	cfg.GossipAddr = old.Pool().Addr()
	cfg.BootstrapExpect = 0
	cfg.Join = nil
	for j, s := range c.servers {
		if j != i {
			cfg.Join = append(cfg.Join, s.cfg.GossipAddr)
		}
	}
	s, err := Start(cfg)
	if err != nil {
		c.t.Fatalf("restart %s: %v", cfg.NodeID, err)
	}
	c.t.Cleanup(func() { _ = s.Kill() })
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return s
}
