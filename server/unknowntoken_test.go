package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
)

// forwardedReads reads the leader's count of read-index requests other
// servers forwarded to it.
func forwardedReads(t *testing.T, a *aclCluster) int {
	t.Helper()
	code, b := a.call(t, a.admin, viaSwitchyard, http.MethodGet, "/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, line := range strings.Split(b, "\n") {
		if v, ok := strings.CutPrefix(line, `switchyard_raft_forwarded_requests_total{op="read_index"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	return 0 // no read forwarded yet
}

// A flood of random unknown tokens sent to a follower costs the leader no
// consistent read on routes anyone may call (the token is answered as
// anonymous), and a bounded number elsewhere (one catch-up per interval
// per server); a token made on the leader still works at once on the
// follower.
func TestUnknownTokensCostTheLeaderBoundedReads(t *testing.T) {
	admin := api.NewSecret()
	const interval = 200 * time.Millisecond
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.ACL = ACLConfig{Enabled: true, BootstrapSecret: admin}
		cfg.API.TokenCatchUpInterval = interval
	})
	eventually(t, 10*time.Second, "bootstrap on every server", func() error {
		for _, s := range c.servers {
			if !s.Node().Store().ACLBootstrapped() {
				return fmt.Errorf("%s not bootstrapped", s.cfg.NodeID)
			}
		}
		return nil
	})
	leader := &aclCluster{cluster: c, s: c.leader(), admin: admin}
	var follower *aclCluster
	for _, s := range c.servers {
		if s != leader.s {
			follower = &aclCluster{cluster: c, s: s, admin: admin}
			break
		}
	}
	leader.must(t, http.MethodPut, "/v1/namespaces/default/services/web/instances/w1", wire.RegisterRequest{Address: "127.0.0.1", Port: 80})
	leader.must(t, http.MethodPut, "/v1/acl/tokens/anonymous", map[string]any{"rules": []string{"read:default"}})
	eventually(t, 5*time.Second, "anonymous read on the follower", func() error {
		if code, b := follower.call(t, "", viaSwitchyard, http.MethodGet, "/v1/namespaces/default/services/web/instances", nil); code != 200 {
			return fmt.Errorf("%d %s", code, b)
		}
		return nil
	})

	// flood sends n requests to path on the follower, each with a new
	// random token, 16 at a time, and returns the statuses seen and how
	// long it took.
	flood := func(path string, n int) (map[int]int, time.Duration) {
		var mu sync.Mutex
		seen := map[int]int{}
		jobs := make(chan struct{})
		var wg sync.WaitGroup
		start := time.Now()
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					code, _, err := follower.send(api.NewSecret(), viaSwitchyard, http.MethodGet, path, nil)
					if err != nil {
						code = -1
					}
					mu.Lock()
					seen[code]++
					mu.Unlock()
				}
			}()
		}
		for range n {
			jobs <- struct{}{}
		}
		close(jobs)
		wg.Wait()
		return seen, time.Since(start)
	}
	const n = 300
	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"open route", "/v1/health", http.StatusOK},
		{"anonymous-readable route", "/v1/namespaces/default/services/web/instances", http.StatusOK},
	} {
		before := forwardedReads(t, leader)
		seen, _ := flood(tc.path, n)
		after := forwardedReads(t, leader)
		if seen[tc.status] != n {
			t.Errorf("%s: statuses %v, want %d × %d", tc.name, seen, n, tc.status)
		}
		if after != before {
			t.Errorf("%s: %d unknown tokens cost the leader %d consistent reads, want none", tc.name, n, after-before)
		}
	}
	// Where the anonymous token may not go, the catch-ups are bounded.
	before := forwardedReads(t, leader)
	seen, took := flood("/v1/acl/tokens", n)
	reads := forwardedReads(t, leader) - before
	if seen[http.StatusUnauthorized] != n {
		t.Errorf("admin route: statuses %v, want %d × 401", seen, n)
	}
	if bound := int(took/interval) + 2; reads > bound {
		t.Errorf("admin route: %d unknown tokens in %v cost the leader %d consistent reads, want at most %d (one per %v)", n, took, reads, bound, interval)
	}
	t.Logf("admin route: %d unknown tokens in %v cost %d consistent reads", n, took, reads)

	// A token made on the leader still works at once on the follower.
	for i := range 5 {
		tok := leader.token(t, "admin:*")
		if code, b := follower.call(t, tok.Secret, viaSwitchyard, http.MethodGet, "/v1/acl/tokens", nil); code != 200 {
			t.Fatalf("token %d on the follower right after its creation: %d %s", i, code, b)
		}
	}
	// An unknown token on a route anonymous may call is told so.
	code, _, err := follower.send(api.NewSecret(), viaSwitchyard, http.MethodGet, "/v1/acl/self", nil)
	if err != nil || code != http.StatusUnauthorized {
		t.Errorf("GET /v1/acl/self with an unknown token: %d %v, want 401", code, err)
	}
}
