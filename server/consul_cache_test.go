package server

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// liveHeap is the heap in use after collecting everything collectable.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC() // the second also empties what sync.Pools kept
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A flood of distinct Consul queries, some with big answers (a service of
// 2,000 instances) and most carrying kilobytes of filter, leaves the
// server's remembered answers within --consul-cache-bytes, and the
// process's heap within that plus a margin. Before the bound was in bytes,
// each distinct query kept its key, up to 8,192 of them whatever their
// size.
func TestConsulAnswerCacheBoundedUnderFlood(t *testing.T) {
	const bound = 1 << 20
	c := startCluster(t, 1, func(cfg *Config) { cfg.ConsulCacheBytes = bound })
	s := c.servers[0]

	const instances = 2000
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < instances; i += 16 {
				if err := c.do(s, http.MethodPut, fmt.Sprintf("/v1/namespaces/default/services/big/instances/big-%d", i), map[string]any{
					"address": fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), "port": 8080, "ephemeral": false,
					"tags": []string{"v1", "blue"}, "metadata": map[string]string{"version": "1.2.3", "team": "payments"},
				}, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/small/instances/small-1",
		map[string]any{"address": "10.2.0.1", "port": 8080, "ephemeral": false}, nil); err != nil {
		t.Fatal(err)
	}

	hc := &http.Client{Timeout: time.Minute}
	get := func(path string, q url.Values) (int, int) {
		t.Helper()
		resp, err := hc.Get("http://" + s.HTTPAddr() + path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, int(n)
	}
	if code, n := get("/v1/health/service/big", nil); code != 200 || n < instances*400 {
		t.Fatalf("big service: %d, %d bytes", code, n)
	}

	// One question in several spellings, with junk parameters, is one
	// remembered answer.
	entries, _ := s.consul.CacheStats()
	for _, raw := range []string{
		"tag=v1&tag=blue&passing=1&dc=dc1&filter=" + url.QueryEscape(`Service.Meta.team == "payments" and Service.Port == "8080"`),
		"dc=dc1&passing=true&tag=blue&tag=v1&tag=blue&junk=" + strings.Repeat("j", 4000) + "&filter=" +
			url.QueryEscape("Service.Port   ==  `8080` and Service.Meta.team == \"payments\""),
		"passing&filter=" + url.QueryEscape(`Service.Port == "8080" and Service.Meta.team == "payments"`) + "&tag=v1&dc=dc1&tag=blue&index=0&stale&other=1",
	} {
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		if code, n := get("/v1/health/service/big", q); code != 200 || n < instances*400 {
			t.Fatalf("%s: %d, %d bytes", raw[:40], code, n)
		}
	}
	if after, _ := s.consul.CacheStats(); after != entries+1 {
		t.Errorf("three spellings of one query: %d new entries, want 1", after-entries)
	}

	before := liveHeap()
	// Bounded in count and in time; the test needs enough of them to
	// have meant tens of megabytes before the bound.
	const want, atLeast = 4000, 2500
	junk := strings.Repeat("x", 6000) // well within an 8 KiB request line
	deadline := time.Now().Add(90 * time.Second)
	sent := 0
	var peak int64 // the most the cache held at any point
	for ; sent < want && time.Now().Before(deadline); sent++ {
		path, q := "/v1/health/service/small", url.Values{}
		if sent%100 == 0 {
			// A distinct query with a 0.9 MB answer.
			path = "/v1/health/service/big"
			q.Set("filter", fmt.Sprintf(`Service.ID != "x-%d"`, sent))
		} else {
			q.Set("filter", fmt.Sprintf(`Service.Meta.k != "%d-%s"`, sent, junk))
			q.Set(fmt.Sprintf("junk%d", sent), junk[:500])
		}
		if code, _ := get(path, q); code != 200 {
			t.Fatalf("query %d: %d", sent, code)
		}
		if _, b := s.consul.CacheStats(); b > peak {
			peak = b
		}
	}
	if sent < atLeast {
		t.Fatalf("only %d queries in the time given, want at least %d", sent, atLeast)
	}
	n, b := s.consul.CacheStats()
	grown := int64(liveHeap()) - int64(before)
	t.Logf("%d queries: the cache holds %d answers in %d bytes; the heap grew by %d bytes", sent, n, b, grown)
	if peak > bound {
		t.Errorf("the cache held up to %d bytes, bound %d", peak, bound)
	}
	const margin = 8 << 20
	if grown > bound+margin {
		t.Errorf("the heap grew by %d bytes, more than the bound %d and a margin of %d", grown, bound, margin)
	}
}
