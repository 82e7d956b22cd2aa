package server

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
)

// A lookup through a fallback chain waits on the views of every namespace
// it read. 1,000 such blocking queries that time out leave no goroutine
// behind.
func TestTimedOutFallbackWatchesLeaveNoGoroutine(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	for _, step := range []struct {
		path string
		body map[string]any
	}{
		{"/v1/namespaces/b", map[string]any{"fallback": "default"}},
		{"/v1/namespaces/a", map[string]any{"fallback": "b"}},
		{"/v1/namespaces/default/services/web/instances/w1", map[string]any{"address": "10.0.0.1", "port": 80}},
	} {
		if err := c.do(s, http.MethodPut, step.path, step.body, nil); err != nil {
			t.Fatalf("PUT %s: %v", step.path, err)
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer hc.CloseIdleConnections()
	base := "http://" + s.HTTPAddr() + "/v1/namespaces/a/services/web/instances?healthy=true"
	get := func(url string) (string, error) {
		resp, err := hc.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: %d", url, resp.StatusCode)
		}
		return resp.Header.Get("X-Switchyard-Index"), nil
	}
	idx, err := get(base)
	if err != nil {
		t.Fatal(err)
	}
	blocking := base + "&index=" + idx + "&wait=50ms"
	if _, err := get(blocking); err != nil {
		t.Fatal(err)
	}
	hc.CloseIdleConnections()
	settle := func(limit int) int {
		var n int
		deadline := time.Now().Add(5 * time.Second)
		for {
			n = runtime.NumGoroutine()
			if n <= limit || time.Now().After(deadline) {
				return n
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	baseline := runtime.NumGoroutine()

	const queries, workers = 1000, 16
	jobs := make(chan struct{})
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if _, err := get(blocking); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	deadline := time.After(60 * time.Second)
	for i := range queries {
		select {
		case jobs <- struct{}{}:
		case err := <-errs:
			t.Fatal(err)
		case <-deadline:
			t.Fatalf("only %d blocking queries in 60 s", i)
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	hc.CloseIdleConnections()
	const margin = 20
	if n := settle(baseline + margin); n > baseline+margin {
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines after %d timed-out fallback watches, %d before (margin %d); some stacks:\n%s", n, queries, baseline, margin, buf)
	}
}
