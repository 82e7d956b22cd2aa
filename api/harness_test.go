package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/internal/testlog"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
)

// testLogger writes through t.Log, so logs show only when a test fails.
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t, slog.LevelInfo) }

// testServer is a real single-node registry: a bootstrapped Raft node with
// bolt files in the test's temp dir, the API over it, and a real HTTP server
// on a loopback port chosen by the kernel.
type testServer struct {
	node   *raft.Node
	api    *api.Server
	url    string // http://127.0.0.1:port
	addr   string // 127.0.0.1:port
	client *http.Client

	// hook, when set, sees every request before the API does (from the
	// server's request goroutine).
	hook atomic.Pointer[func(*http.Request)]
}

// newTestServer starts a registry and waits until it is ready and has
// recorded itself in the catalog, so that no background write lands in the
// middle of a test. Everything is shut down by t.Cleanup.
func newTestServer(t *testing.T, tune ...func(*api.Config)) *testServer {
	t.Helper()
	logger := testLogger(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ts := &testServer{addr: ln.Addr().String()}
	ts.url = "http://" + ts.addr

	cfg := raft.DefaultConfig()
	cfg.ID = "t1"
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ts.addr
	cfg.Bootstrap = true
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	cfg.ElectionTimeout = 100 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.ApplyTimeout = 5 * time.Second
	cfg.Logger = logger
	node, err := raft.Open(cfg, store.New())
	if err != nil {
		ln.Close()
		t.Fatalf("raft.Open: %v", err)
	}
	ts.node = node

	acfg := api.DefaultConfig()
	acfg.Logger = logger
	for _, f := range tune {
		f(&acfg)
	}
	srv, err := api.New(acfg, node)
	if err != nil {
		ln.Close()
		node.Shutdown()
		t.Fatalf("api.New: %v", err)
	}
	ts.api = srv
	handler := srv.Handler()
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h := ts.hook.Load(); h != nil {
				(*h)(r)
			}
			handler.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	transport := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
	ts.client = &http.Client{Transport: transport, Timeout: 30 * time.Second}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.StopWaiting()
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("http shutdown: %v", err)
			hs.Close()
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("http serve: %v", err)
		}
		transport.CloseIdleConnections()
		if err := node.Shutdown(); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})

	eventually(t, "node ready", 10*time.Second, node.Ready)
	eventually(t, "node recorded in the catalog", 10*time.Second, func() bool {
		_, servers := node.Store().Servers()
		return slices.ContainsFunc(servers, func(s store.Server) bool { return s.ID == "t1" && s.HTTPAddr == ts.addr })
	})
	return ts
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setHook installs a request hook for the rest of the test.
func (ts *testServer) setHook(t *testing.T, h func(*http.Request)) {
	ts.hook.Store(&h)
	t.Cleanup(func() { ts.hook.Store(nil) })
}

// response is a fully read HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s", r.status, r.body)
}

// send runs req and reads the whole answer.
func (ts *testServer) send(t testing.TB, req *http.Request) response {
	t.Helper()
	res, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (ts *testServer) do(t testing.TB, method, path, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.url+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return ts.send(t, req)
}

func (ts *testServer) get(t testing.TB, path string) response {
	t.Helper()
	return ts.do(t, http.MethodGet, path, "")
}

func (ts *testServer) put(t testing.TB, path, body string) response {
	t.Helper()
	return ts.do(t, http.MethodPut, path, body)
}

// mustOK fails the test unless r is a 200.
func mustOK(t testing.TB, what string, r response) response {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: got %s, want 200", what, r)
	}
	return r
}

// index parses X-Switchyard-Index, which every read and write must carry.
func index(t testing.TB, r response) uint64 {
	t.Helper()
	v := r.header.Get("X-Switchyard-Index")
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("X-Switchyard-Index %q is not a positive integer (answer %s)", v, r)
	}
	return n
}

// decode unmarshals the answer's body into v.
func decode(t testing.TB, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}

// wantError checks an error answer: the status, a JSON content type, and a
// body of exactly {"error": non-empty, "code": code}.
func wantError(t testing.TB, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("error body %q is not a JSON object: %v", r.body, err)
	}
	if len(m) != 2 {
		t.Errorf("error body %s: want exactly the keys error and code", r.body)
	}
	msg, _ := m["error"].(string)
	if strings.TrimSpace(msg) == "" {
		t.Errorf("error body %s: error message is missing or empty", r.body)
	}
	if got, _ := m["code"].(string); got != code {
		t.Errorf("error body %s: code %q, want %q", r.body, got, code)
	}
}

// catalogState renders everything the API shows about the catalog (every
// namespace, service and instance list, with their X-Switchyard-Index), so a
// test can check that a refused request changed nothing.
func (ts *testServer) catalogState(t testing.TB) string {
	t.Helper()
	var sb strings.Builder
	r := mustOK(t, "list namespaces", ts.get(t, "/v1/namespaces"))
	fmt.Fprintf(&sb, "namespaces @%d %s\n", index(t, r), r.body)
	var nss wire.NamespacesResponse
	decode(t, r, &nss)
	for _, ns := range nss.Namespaces {
		r := mustOK(t, "get namespace", ts.get(t, "/v1/namespaces/"+ns.Name))
		fmt.Fprintf(&sb, "namespace %s @%d %s\n", ns.Name, index(t, r), r.body)
		r = mustOK(t, "list services", ts.get(t, "/v1/namespaces/"+ns.Name+"/services"))
		fmt.Fprintf(&sb, "services of %s @%d %s\n", ns.Name, index(t, r), r.body)
		var svcs wire.ServicesResponse
		decode(t, r, &svcs)
		for _, svc := range svcs.Services {
			p := "/v1/namespaces/" + ns.Name + "/services/" + svc.Name
			r := mustOK(t, "get service", ts.get(t, p))
			fmt.Fprintf(&sb, "service %s/%s @%d %s\n", ns.Name, svc.Name, index(t, r), r.body)
			r = mustOK(t, "list instances", ts.get(t, p+"/instances"))
			fmt.Fprintf(&sb, "instances of %s/%s @%d %s\n", ns.Name, svc.Name, index(t, r), r.body)
		}
	}
	return sb.String()
}

// serviceIndex returns the X-Switchyard-Index of a service's instance list.
func (ts *testServer) serviceIndex(t testing.TB, ns, svc string) uint64 {
	t.Helper()
	return index(t, mustOK(t, "list instances", ts.get(t, "/v1/namespaces/"+ns+"/services/"+svc+"/instances")))
}

// instances returns a service's instance list.
func (ts *testServer) instances(t testing.TB, ns, svc string) (uint64, wire.InstancesResponse) {
	t.Helper()
	r := mustOK(t, "list instances", ts.get(t, "/v1/namespaces/"+ns+"/services/"+svc+"/instances"))
	var out wire.InstancesResponse
	decode(t, r, &out)
	return index(t, r), out
}

// register registers an instance through the API and fails the test if it
// is refused.
func (ts *testServer) register(t testing.TB, ns, svc, id, body string) response {
	t.Helper()
	return mustOK(t, "register "+id, ts.put(t, "/v1/namespaces/"+ns+"/services/"+svc+"/instances/"+id, body))
}
