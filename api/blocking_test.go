package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
)

// blockingResult is what a long-poll saw.
type blockingResult struct {
	r       response
	elapsed time.Duration
}

// startBlocking sends GET path from a goroutine and returns a channel with
// the answer. It returns once the server has received the request, so a
// change made after it lands while the request is waiting (or about to).
func (ts *testServer) startBlocking(t *testing.T, path string) <-chan blockingResult {
	t.Helper()
	arrived := make(chan struct{}, 1)
	ts.setHook(t, func(r *http.Request) {
		if r.URL.RequestURI() == path {
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
	})
	out := make(chan blockingResult, 1)
	start := time.Now()
	go func() {
		req, err := http.NewRequest(http.MethodGet, ts.url+path, nil)
		if err != nil {
			out <- blockingResult{r: response{status: -1, body: []byte(err.Error())}}
			return
		}
		res, err := ts.client.Do(req)
		if err != nil {
			out <- blockingResult{r: response{status: -1, body: []byte(err.Error())}, elapsed: time.Since(start)}
			return
		}
		defer res.Body.Close()
		var b []byte
		b, err = io.ReadAll(res.Body)
		if err != nil {
			b = []byte(err.Error())
		}
		out <- blockingResult{r: response{status: res.StatusCode, header: res.Header, body: b}, elapsed: time.Since(start)}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatalf("GET %s never reached the server", path)
	}
	return out
}

// await waits for a long-poll's answer, failing after limit.
func await(t *testing.T, ch <-chan blockingResult, limit time.Duration) blockingResult {
	t.Helper()
	select {
	case res := <-ch:
		if res.r.status == -1 {
			t.Fatalf("blocking GET failed: %s", res.r.body)
		}
		return res
	case <-time.After(limit):
		t.Fatalf("blocking GET still waiting after %v", limit)
	}
	panic("unreachable")
}

func instancesPath(svc string, idx uint64, wait string) string {
	return fmt.Sprintf("/v1/namespaces/default/services/%s/instances?index=%d&wait=%s", svc, idx, wait)
}

func TestBlockingWakesOnChange(t *testing.T) {
	ts := newTestServer(t)
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	idx := ts.serviceIndex(t, "default", "web")

	ch := ts.startBlocking(t, instancesPath("web", idx, "5s"))
	registered := make(chan error, 1)
	go func() {
		// From another goroutine, with its own request.
		req, _ := http.NewRequest(http.MethodPut, ts.url+"/v1/namespaces/default/services/web/instances/web-2",
			strings.NewReader(`{"address":"10.0.0.2","port":8080}`))
		res, err := ts.client.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				err = fmt.Errorf("register: status %d", res.StatusCode)
			}
		}
		registered <- err
	}()
	res := await(t, ch, 5*time.Second)
	if err := <-registered; err != nil {
		t.Fatal(err)
	}
	if res.elapsed >= time.Second {
		t.Errorf("watcher woke after %v, want well under 1s", res.elapsed)
	}
	mustOK(t, "blocking GET", res.r)
	if got := index(t, res.r); got <= idx {
		t.Errorf("index %d after the change, want > %d", got, idx)
	}
	var body wire.InstancesResponse
	decode(t, res.r, &body)
	if len(body.Instances) != 2 || body.Instances[1].ID != "web-2" {
		t.Errorf("answer after the change: %s", res.r.body)
	}
	if body.Index != index(t, res.r) {
		t.Errorf("body index %d, header index %d", body.Index, index(t, res.r))
	}
}

func TestBlockingDeregisterAndDelete(t *testing.T) {
	ts := newTestServer(t)
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	ts.register(t, "default", "web", "web-2", `{"address":"10.0.0.2","port":8080}`)

	t.Run("deregister wakes", func(t *testing.T) {
		idx := ts.serviceIndex(t, "default", "web")
		ch := ts.startBlocking(t, instancesPath("web", idx, "5s"))
		mustOK(t, "deregister", ts.do(t, "DELETE", web2, ""))
		res := await(t, ch, 5*time.Second)
		mustOK(t, "blocking GET", res.r)
		var body wire.InstancesResponse
		decode(t, res.r, &body)
		if index(t, res.r) <= idx || len(body.Instances) != 1 {
			t.Errorf("after deregister: %s", res.r.body)
		}
		if res.elapsed >= time.Second {
			t.Errorf("watcher woke after %v", res.elapsed)
		}
	})

	t.Run("service delete answers 404", func(t *testing.T) {
		idx := ts.serviceIndex(t, "default", "web")
		ch := ts.startBlocking(t, instancesPath("web", idx, "5s"))
		mustOK(t, "delete service", ts.do(t, "DELETE", "/v1/namespaces/default/services/web", ""))
		res := await(t, ch, 5*time.Second)
		wantError(t, res.r, http.StatusNotFound, "service_not_found")
		if res.elapsed >= time.Second {
			t.Errorf("watcher woke after %v", res.elapsed)
		}
	})
}

func TestBlockingTimesOutUnchanged(t *testing.T) {
	ts := newTestServer(t)
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	r := mustOK(t, "list", ts.get(t, webList))
	idx := index(t, r)

	start := time.Now()
	res := mustOK(t, "blocking GET", ts.get(t, instancesPath("web", idx, "300ms")))
	elapsed := time.Since(start)
	if elapsed < 250*time.Millisecond || elapsed >= 2*time.Second {
		t.Errorf("wait=300ms answered after %v, want 300ms", elapsed)
	}
	if got := index(t, res); got != idx {
		t.Errorf("index %d after a quiet wait, want %d", got, idx)
	}
	if string(res.body) != string(r.body) {
		t.Errorf("body changed without a write:\n%s\n%s", res.body, r.body)
	}
}

func TestBlockingIgnoresOtherServices(t *testing.T) {
	ts := newTestServer(t)
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	ts.register(t, "default", "api", "api-1", `{"address":"10.0.0.9","port":9090}`)
	before := mustOK(t, "list", ts.get(t, webList))
	idx := index(t, before)

	const wait = time.Second
	ch := ts.startBlocking(t, instancesPath("web", idx, wait.String()))
	start := time.Now()
	// Changes to another service, to a new service and to a namespace.
	ts.register(t, "default", "api", "api-2", `{"address":"10.0.0.10","port":9090}`)
	ts.register(t, "default", "other", "o-1", `{"address":"10.0.0.11","port":9090}`)
	mustOK(t, "put ns", ts.put(t, "/v1/namespaces/prod", `{}`))
	mustOK(t, "put api settings", ts.put(t, "/v1/namespaces/default/services/api", `{"balancer":"round_robin"}`))
	if d := time.Since(start); d > wait-200*time.Millisecond {
		t.Fatalf("the writes took %v: too slow to test within a %v wait", d, wait)
	}
	res := await(t, ch, 5*time.Second)
	if res.elapsed < wait-50*time.Millisecond {
		t.Errorf("watcher of web answered after %v, before its %v wait, on changes elsewhere", res.elapsed, wait)
	}
	mustOK(t, "blocking GET", res.r)
	if got := index(t, res.r); got != idx {
		t.Errorf("index %d, want the unchanged %d", got, idx)
	}
	if string(res.r.body) != string(before.body) {
		t.Errorf("web's answer changed:\n%s\n%s", res.r.body, before.body)
	}
}

func TestBlockingOtherReads(t *testing.T) {
	ts := newTestServer(t)
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	mustOK(t, "put prod", ts.put(t, "/v1/namespaces/prod", `{}`))

	cases := []struct {
		name   string
		path   string
		change func(t *testing.T)
	}{
		{name: "service settings", path: "/v1/namespaces/default/services/web", change: func(t *testing.T) {
			mustOK(t, "put service", ts.put(t, "/v1/namespaces/default/services/web", `{"protect_threshold":0.3}`))
		}},
		{name: "instance", path: web1, change: func(t *testing.T) {
			ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8081}`)
		}},
		{name: "namespace", path: "/v1/namespaces/prod", change: func(t *testing.T) {
			mustOK(t, "put prod", ts.put(t, "/v1/namespaces/prod", `{"description":"changed"}`))
		}},
		{name: "services of a namespace on a new service", path: "/v1/namespaces/prod/services", change: func(t *testing.T) {
			ts.register(t, "prod", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
		}},
		{name: "namespace list", path: "/v1/namespaces", change: func(t *testing.T) {
			mustOK(t, "put new", ts.put(t, "/v1/namespaces/new", ``))
		}},
		{name: "namespace list on a settings change", path: "/v1/namespaces", change: func(t *testing.T) {
			mustOK(t, "put prod", ts.put(t, "/v1/namespaces/prod", `{"description":"changed again"}`))
		}},
		// The service list shows instance counts, so instance writes move it.
		{name: "services of a namespace on an instance change", path: "/v1/namespaces/default/services", change: func(t *testing.T) {
			ts.register(t, "default", "web", "web-9", `{"address":"10.0.0.9","port":8080}`)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			idx := index(t, mustOK(t, "read", ts.get(t, c.path)))
			ch := ts.startBlocking(t, c.path+"?index="+strconv.FormatUint(idx, 10)+"&wait=5s")
			c.change(t)
			res := await(t, ch, 5*time.Second)
			mustOK(t, "blocking GET", res.r)
			if got := index(t, res.r); got <= idx {
				t.Errorf("index %d, want > %d", got, idx)
			}
			if res.elapsed >= time.Second {
				t.Errorf("woke after %v", res.elapsed)
			}
			// The answer is the one after the change, the same as a plain read.
			now := mustOK(t, "read", ts.get(t, c.path))
			if string(now.body) != string(res.r.body) || index(t, now) != index(t, res.r) {
				t.Errorf("blocking answer @%d %s\ndiffers from a read after it @%d %s",
					index(t, res.r), res.r.body, index(t, now), now.body)
			}
		})
	}
}

func TestBlockingWaitIsClamped(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) {
		c.DefaultWait = 100 * time.Millisecond
		c.MaxWait = 200 * time.Millisecond
	})
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	idx := ts.serviceIndex(t, "default", "web")

	cases := []struct {
		name     string
		wait     string
		min, max time.Duration
	}{
		{"wait over the max", "&wait=1h", 150 * time.Millisecond, time.Second},
		{"no wait takes the default", "", 50 * time.Millisecond, time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r := mustOK(t, "blocking GET", ts.get(t, "/v1/namespaces/default/services/web/instances?index="+strconv.FormatUint(idx, 10)+c.wait))
			elapsed := time.Since(start)
			if elapsed < c.min || elapsed >= c.max {
				t.Errorf("answered after %v, want between %v and %v", elapsed, c.min, c.max)
			}
			if got := index(t, r); got != idx {
				t.Errorf("index %d, want %d", got, idx)
			}
		})
	}
}

func TestStopWaitingEndsLongPolls(t *testing.T) {
	ts := newTestServer(t)
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	idx := ts.serviceIndex(t, "default", "web")

	ch := ts.startBlocking(t, instancesPath("web", idx, "1m"))
	ts.api.StopWaiting()
	res := await(t, ch, 5*time.Second)
	mustOK(t, "long poll at shutdown", res.r)
	if res.elapsed >= time.Second {
		t.Errorf("long poll answered %v after StopWaiting", res.elapsed)
	}
	if got := index(t, res.r); got != idx {
		t.Errorf("index %d, want the unchanged %d", got, idx)
	}

	// Later long polls answer at once too; writes still work.
	start := time.Now()
	mustOK(t, "long poll after StopWaiting", ts.get(t, instancesPath("web", idx, "1m")))
	if d := time.Since(start); d >= time.Second {
		t.Errorf("long poll after StopWaiting took %v", d)
	}
	ts.register(t, "default", "web", "web-2", `{"address":"10.0.0.2","port":8080}`)
}
