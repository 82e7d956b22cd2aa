package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/api"
)

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ addr, key string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"127.0.0.1", "127.0.0.1"},
		{"2001:db8:1:2::a", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::a", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"fe80::2%eth1", "fe80::/64"},
		{"::1", "::/64"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if got := api.ClientKey(netip.MustParseAddr(tc.addr)); got != tc.key {
				t.Fatalf("ClientKey(%s) = %s, want %s", tc.addr, got, tc.key)
			}
		})
	}
}

// getFrom sends GET path with X-Forwarded-For set to xff ("": none).
func (ts *testServer) getFrom(t *testing.T, path, xff string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	return ts.send(t, req)
}

// spend sends up to 50 requests, each from the next address of from, and
// returns how many passed before the first 429.
func (ts *testServer) spend(t *testing.T, from func(i int) string) (passed int, refused response) {
	t.Helper()
	for i := range 50 {
		r := ts.getFrom(t, "/v1/namespaces", from(i))
		switch r.status {
		case http.StatusOK:
			passed++
		case http.StatusTooManyRequests:
			return passed, r
		default:
			t.Fatalf("unexpected %s", r)
		}
	}
	t.Fatalf("50 requests passed a limit of 3 a second")
	return
}

// Without a trusted proxy, X-Forwarded-For is the client's own word: a
// client that sends a new address with each request still runs out of its
// one budget.
func TestSpoofedForwardedForChangesNothing(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) {
		c.Limits.RequestsPerSecond, c.Limits.Burst, c.Limits.LimitLoopback = 0.5, 3, true
	})
	passed, refused := ts.spend(t, func(i int) string { return fmt.Sprintf("192.0.2.%d", i+1) })
	if passed > 4 || !strings.Contains(string(refused.body), "from 127.0.0.1") {
		t.Fatalf("%d passed with a new X-Forwarded-For each; refusal %s", passed, refused)
	}
}

// Behind a trusted proxy on loopback, each forwarded client has a budget of
// its own, one IPv6 /64 is one client, and loopback itself is no longer
// exempt (a local proxy would otherwise exempt everyone).
func TestTrustedProxyBudgets(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) {
		c.Limits.RequestsPerSecond, c.Limits.Burst = 0.5, 3
		c.Limits.BlockingPerClient = 1
		c.Limits.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	// One host with a /64 sends each request from a fresh address in it.
	passed, refused := ts.spend(t, func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) })
	if passed > 4 || !strings.Contains(string(refused.body), "from 2001:db8:1:2::/64") ||
		!strings.Contains(string(refused.body), `"code":"rate_limited"`) || refused.header.Get("Retry-After") != "1" {
		t.Fatalf("%d passed from fresh addresses of one /64; refusal %s", passed, refused)
	}
	// Another client behind the same proxy has its own budget; the proxy's
	// own hop (a trusted address right of the client) is skipped, and what
	// the client wrote left of its address is not believed.
	r := ts.getFrom(t, "/v1/namespaces", "2001:db8:1:2::99, 198.51.100.4, 127.0.0.1")
	if r.status != http.StatusOK {
		t.Fatalf("a second client behind the proxy: %s", r)
	}
	passed, refused = ts.spend(t, func(int) string { return "2001:db8:1:2::99, 198.51.100.4" })
	if passed > 3 || !strings.Contains(string(refused.body), "from 198.51.100.4") {
		t.Fatalf("second client: %d more passed; refusal %s", passed, refused)
	}
	// An IPv4-mapped IPv6 address is the IPv4 client.
	passed, refused = ts.spend(t, func(i int) string {
		if i%2 == 0 {
			return "::ffff:203.0.113.9"
		}
		return "203.0.113.9"
	})
	if passed > 4 || !strings.Contains(string(refused.body), "from 203.0.113.9") {
		t.Fatalf("IPv4 client in two spellings: %d passed; refusal %s", passed, refused)
	}
	// Loopback without X-Forwarded-For is a client like any other.
	passed, refused = ts.spend(t, func(int) string { return "" })
	if passed > 4 || !strings.Contains(string(refused.body), "from 127.0.0.1") {
		t.Fatalf("loopback with a trusted proxy configured: %d passed; refusal %s", passed, refused)
	}

	// Blocking queries: two addresses of one /64 hold one query between
	// them. The first parks (the server's gauge says when), then the
	// second, from the same /64, is refused; another /64 is not.
	reg := prometheus.NewRegistry()
	ts2 := newTestServer(t, func(c *api.Config) {
		c.Limits.BlockingPerClient = 1
		c.Limits.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Registerer = reg
	})
	ts2.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":80,"ephemeral":false}`)
	query := func(wait string) string {
		return fmt.Sprintf("/v1/namespaces/default/services/web/instances?index=%d&wait=%s", ts2.serviceIndex(t, "default", "web"), wait)
	}
	long, short := query("30s"), query("20ms")
	held := make(chan response, 1)
	go func() { held <- ts2.getFrom(t, long, "2001:db8:7:7::1") }()
	eventually(t, "the first query parked", 5*time.Second, func() bool { return blockingGauge(t, reg) == 1 })
	if r := ts2.getFrom(t, short, "2001:db8:7:7::2"); r.status != http.StatusTooManyRequests ||
		!strings.Contains(string(r.body), "2001:db8:7:7::/64 holds 1 blocking queries") {
		t.Fatalf("a second address of the /64: %s", r)
	}
	if r := ts2.getFrom(t, short, "2001:db8:7:8::1"); r.status != http.StatusOK {
		t.Fatalf("blocking query from another /64: %s", r)
	}
	ts2.register(t, "default", "web", "web-2", `{"address":"10.0.0.2","port":80,"ephemeral":false}`)
	if r := <-held; r.status != http.StatusOK {
		t.Fatalf("held query: %s", r)
	}
}

// blockingGauge reads switchyard_http_blocking_queries from reg.
func blockingGauge(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "switchyard_http_blocking_queries" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// The connection cap: with a trusted proxy configured, loopback clients are
// capped like any other; the trusted proxy itself is not.
func TestConnectionsPerClientTrustedProxy(t *testing.T) {
	serve := func(l api.Limits) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })}
		go hs.Serve(api.LimitListener(ln, l, false))
		t.Cleanup(func() { hs.Close() })
		return ln.Addr().String()
	}
	// dial opens n connections and reports the status line of the last.
	dial := func(addr string, n int) string {
		var line string
		for i := range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if i == n-1 {
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, _ = bufio.NewReader(c).ReadString('\n')
			}
		}
		return line
	}
	other := serve(api.Limits{ConnectionsPerClient: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if line := dial(other, 3); !strings.HasPrefix(line, "HTTP/1.1 429") {
		t.Fatalf("third loopback connection with a trusted proxy configured: %q", line)
	}
	proxy := serve(api.Limits{ConnectionsPerClient: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if line := dial(proxy, 3); !strings.HasPrefix(line, "HTTP/1.1 204") {
		t.Fatalf("third connection of the trusted proxy: %q", line)
	}
}
