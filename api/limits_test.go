package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
)

func TestRequestRateLimitPerClient(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) {
		c.Limits.RequestsPerSecond, c.Limits.Burst, c.Limits.LimitLoopback = 5, 5, true
	})
	var ok, limited int
	var last response
	for range 40 {
		r := ts.get(t, "/v1/namespaces")
		switch r.status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			last = r
		default:
			t.Fatalf("unexpected %s", r)
		}
	}
	// 40 requests within well under a second: the burst of 5 and perhaps a
	// token or two more pass.
	if ok < 5 || ok > 12 || limited == 0 {
		t.Fatalf("%d passed, %d limited", ok, limited)
	}
	if last.header.Get("Retry-After") != "1" || !strings.Contains(string(last.body), "more than 5 a second") || !strings.Contains(string(last.body), `"code":"rate_limited"`) {
		t.Fatalf("429 answer: %s %v", last, last.header)
	}
	// Loopback clients are not limited by default.
	free := newTestServer(t, func(c *api.Config) { c.Limits.RequestsPerSecond, c.Limits.Burst = 5, 5 })
	for range 40 {
		if r := free.get(t, "/v1/namespaces"); r.status != http.StatusOK {
			t.Fatalf("loopback limited by default: %s", r)
		}
	}
}

func TestBlockingQueriesPerClient(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) { c.Limits.BlockingPerClient, c.Limits.LimitLoopback = 2, true })
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":80,"ephemeral":false}`)
	idx := ts.serviceIndex(t, "default", "web")
	path := fmt.Sprintf("/v1/namespaces/default/services/web/instances?index=%d&wait=30s", idx)
	// Three at once from one client: whichever comes third is refused at
	// once; the other two are held until the service changes.
	type result struct {
		r    response
		took time.Duration
	}
	done := make(chan result, 3)
	for range 3 {
		go func() {
			start := time.Now()
			r := ts.get(t, path)
			done <- result{r, time.Since(start)}
		}()
	}
	refused := <-done
	if refused.r.status != http.StatusTooManyRequests || !strings.Contains(string(refused.r.body), "holds 2 blocking queries") ||
		refused.r.header.Get("Retry-After") != "1" {
		t.Fatalf("first answer of three: %s after %v", refused.r, refused.took)
	}
	select {
	case r := <-done:
		t.Fatalf("a held query answered before any change: %s", r.r)
	case <-time.After(200 * time.Millisecond):
	}
	ts.register(t, "default", "web", "web-2", `{"address":"10.0.0.2","port":80,"ephemeral":false}`)
	for range 2 {
		if r := <-done; r.r.status != http.StatusOK {
			t.Fatalf("held query: %s", r.r)
		}
	}
	// Released: the client may block again; plain reads never count.
	if r := ts.get(t, fmt.Sprintf("/v1/namespaces/default/services/web/instances?index=%d&wait=10ms", idx)); r.status != http.StatusOK {
		t.Fatalf("after release: %s", r)
	}
	if r := ts.get(t, "/v1/namespaces/default/services/web/instances"); r.status != http.StatusOK {
		t.Fatalf("plain read: %s", r)
	}
}

func TestMaxInstancesPerService(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) { c.Catalog.MaxInstancesPerService = 3 })
	body := `{"address":"10.0.0.1","port":80,"ephemeral":false}`
	for i := range 3 {
		if r := ts.register(t, "default", "web", fmt.Sprintf("web-%d", i), body); r.status != http.StatusOK {
			t.Fatalf("register %d: %s", i, r)
		}
	}
	r := ts.put(t, "/v1/namespaces/default/services/web/instances/web-3", body)
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), "has 3 instances") || !strings.Contains(string(r.body), "too_many_instances") {
		t.Fatalf("fourth instance: %s", r)
	}
	// Updating one that is there, and another service, still work.
	if r := ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.9","port":81,"ephemeral":false}`); r.status != http.StatusOK {
		t.Fatalf("update: %s", r)
	}
	if r := ts.register(t, "default", "db", "db-1", body); r.status != http.StatusOK {
		t.Fatalf("other service: %s", r)
	}
	if _, got := ts.instances(t, "default", "web"); len(got.Instances) != 3 {
		t.Fatalf("%d instances", len(got.Instances))
	}
}

// One client floods the listener with connections: those over the cap get
// 429 and are closed; the server's goroutines stay bounded; a slot frees
// when a connection closes.
func TestConnectionsPerClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })}
	go hs.Serve(api.LimitListener(ln, api.Limits{ConnectionsPerClient: 3, LimitLoopback: true}, false))
	defer hs.Close()
	base := runtime.NumGoroutine()
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for range 200 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(line, "HTTP/1.1 429") {
			t.Fatalf("connection over the cap: %q", line)
		}
	}
	if n := runtime.NumGoroutine(); n > base+20 {
		t.Fatalf("%d goroutines after the flood, %d before", n, base)
	}
	held[0].Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetDeadline(time.Now().Add(2 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(line, "HTTP/1.1 204") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a connection closed: %q", line)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range held[1:] {
		c.Close()
	}
}

// An instance whose metadata adds up to more than MaxMetadataBytes is
// refused with 400 and a message naming the limit; nothing is stored.
func TestMetadataSizeLimit(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) { c.Catalog.MaxMetadataBytes = 100 })
	meta := func(n int) string {
		return fmt.Sprintf(`{"address":"10.0.0.1","port":80,"ephemeral":false,"metadata":{"k":%q}}`, strings.Repeat("v", n))
	}
	if r := ts.register(t, "default", "web", "small", meta(99)); r.status != http.StatusOK {
		t.Fatalf("100 bytes of metadata: %s", r)
	}
	r := ts.put(t, "/v1/namespaces/default/services/web/instances/big", meta(100))
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "101 bytes") || !strings.Contains(string(r.body), "--max-metadata-bytes") {
		t.Fatalf("101 bytes of metadata: %s", r)
	}
	if _, got := ts.instances(t, "default", "web"); len(got.Instances) != 1 || got.Instances[0].ID != "small" {
		t.Fatalf("instances after the refusal: %+v", got.Instances)
	}
}
