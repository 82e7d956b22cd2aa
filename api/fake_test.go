package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
)

// fakeNode implements api.Node with function fields, for the states a real
// single node cannot easily be put in (not ready, no leader, failing).
// A nil field falls back to a harmless default.
type fakeNode struct {
	store          *store.Store
	applyFn        func(ctx context.Context, cmd *store.Command) (uint64, error)
	consistentFn   func(ctx context.Context) error
	readyFn        func() bool
	stalenessFn    func() (bool, time.Duration)
	leaderFn       func() (string, string)
	membersFn      func() ([]raft.Member, error)
	joinFn         func(ctx context.Context, id, raftAddr string) error
	storeCalls     atomic.Int64
	unexpectedCall func(what string)
}

var _ api.Node = (*fakeNode)(nil)

func (f *fakeNode) Store() *store.Store { f.storeCalls.Add(1); return f.store }

func (f *fakeNode) Apply(ctx context.Context, cmd *store.Command) (uint64, error) {
	if f.applyFn == nil {
		f.unexpectedCall("Apply")
		return 0, errors.New("fake: unexpected Apply")
	}
	return f.applyFn(ctx, cmd)
}

func (f *fakeNode) ConsistentRead(ctx context.Context) error {
	if f.consistentFn == nil {
		return nil
	}
	return f.consistentFn(ctx)
}

func (f *fakeNode) Restore(ctx context.Context, body []byte) error {
	return f.store.Restore(bytes.NewReader(body))
}

func (f *fakeNode) Ready() bool { return f.readyFn == nil || f.readyFn() }

func (f *fakeNode) Staleness() (bool, time.Duration) {
	if f.stalenessFn == nil {
		return true, 0
	}
	return f.stalenessFn()
}

func (f *fakeNode) Leader() (string, string) {
	if f.leaderFn == nil {
		return "f1", "127.0.0.1:1"
	}
	return f.leaderFn()
}

func (f *fakeNode) Members() ([]raft.Member, error) {
	if f.membersFn == nil {
		return nil, nil
	}
	return f.membersFn()
}

func (f *fakeNode) Join(ctx context.Context, id, raftAddr string) error {
	if f.joinFn == nil {
		f.unexpectedCall("Join")
		return errors.New("fake: unexpected Join")
	}
	return f.joinFn(ctx, id, raftAddr)
}

// newFake returns a fake whose store already holds default/web/web-1, so
// that an answer from the store would be a 200 with data.
func newFake(t *testing.T) *fakeNode {
	t.Helper()
	st := store.New()
	_, err := st.Apply(1, &store.Command{Type: store.CommandRegister, Namespace: "default", Service: "web", ID: "web-1",
		Instance: &store.Instance{Address: "10.0.0.1", Port: 8080, Weight: 100, Enabled: true, Ephemeral: true}})
	if err != nil {
		t.Fatalf("seed store: %v", err)
	}
	return &fakeNode{store: st, unexpectedCall: func(what string) { t.Errorf("unexpected call to %s", what) }}
}

// serveFake runs one request through an api.Server over node, in process:
// the fake has no network to test, so an httptest recorder is enough.
func serveFake(t *testing.T, node api.Node, method, path, body string) response {
	t.Helper()
	return serveWith(newFakeAPI(t, node), method, path, body)
}

// newFakeAPI builds the API over node. Building it subscribes the catalog's
// history to the store, so a test that counts the store's uses builds it
// first.
func newFakeAPI(t *testing.T, node api.Node) *api.Server {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Logger = testLogger(t)
	srv, err := api.New(cfg, node)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	return srv
}

func serveWith(srv *api.Server, method, path, body string) response {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func TestNotReadyAnswers503(t *testing.T) {
	f := newFake(t)
	f.readyFn = func() bool { return false }
	f.consistentFn = func(context.Context) error {
		t.Error("ConsistentRead called on a node that is not ready")
		return nil
	}

	paths := append([]string{
		"/v1/namespaces/default/services/web/instances?consistent=true",
		"/v1/namespaces/default/services/web/instances?index=1&wait=1s",
	}, reads...)
	srv := newFakeAPI(t, f)
	for _, p := range paths {
		t.Run("GET "+p, func(t *testing.T) {
			before := f.storeCalls.Load()
			r := serveWith(srv, http.MethodGet, p, "")
			wantError(t, r, http.StatusServiceUnavailable, "not_ready")
			if got := r.header.Get("Retry-After"); got == "" {
				t.Errorf("no Retry-After on a 503")
			}
			if f.storeCalls.Load() != before {
				t.Errorf("a read on a node that is not ready looked at its store")
			}
		})
	}
	t.Run("heartbeat", func(t *testing.T) {
		r := serveFake(t, f, http.MethodPut, "/v1/namespaces/default/services/web/instances/web-1/heartbeat", "")
		wantError(t, r, http.StatusServiceUnavailable, "not_ready")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("no Retry-After on a 503")
		}
	})
	t.Run("health", func(t *testing.T) {
		r := serveFake(t, f, http.MethodGet, "/v1/health", "")
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("health of a node that is not ready: %s", r)
		}
		var h wire.Health
		decode(t, r, &h)
		if !h.Live || h.Ready {
			t.Errorf("health %+v, want live and not ready", h)
		}
	})
	t.Run("contract", func(t *testing.T) {
		// The API's contract is no read of the catalog.
		if r := serveFake(t, f, http.MethodGet, "/v1/openapi.yaml", ""); r.status != http.StatusOK {
			t.Errorf("GET /v1/openapi.yaml on a node that is not ready: %s", r)
		}
	})
	// The same fake, ready, answers from its store: the 503s above came from
	// readiness, not from missing data.
	f.readyFn = nil
	f.consistentFn = nil
	r := mustOK(t, "ready read", serveFake(t, f, http.MethodGet, "/v1/namespaces/default/services/web/instances", ""))
	var list wire.InstancesResponse
	decode(t, r, &list)
	if len(list.Instances) != 1 {
		t.Errorf("ready fake answered %s", r.body)
	}
}

func TestNodeErrorsMapToStatus(t *testing.T) {
	cases := []struct {
		name         string
		setup        func(f *fakeNode)
		method, path string
		body         string
		status       int
		code         string
		retryAfter   bool
	}{
		{
			name:   "write without leader",
			setup:  func(f *fakeNode) { f.applyFn = failApply(fmt.Errorf("raft: %w", raft.ErrNoLeader)) },
			method: "PUT", path: web2, body: okBody, status: 503, code: "no_leader", retryAfter: true,
		},
		{
			name:   "write while shutting down",
			setup:  func(f *fakeNode) { f.applyFn = failApply(fmt.Errorf("raft: %w", raft.ErrShutdown)) },
			method: "DELETE", path: web1, status: 503, code: "shutting_down", retryAfter: true,
		},
		{
			name: "write timeout",
			setup: func(f *fakeNode) {
				f.applyFn = failApply(fmt.Errorf("raft: wait: %w", context.DeadlineExceeded))
			},
			method: "PUT", path: "/v1/namespaces/prod", body: `{}`, status: 503, code: "timeout", retryAfter: true,
		},
		{
			name:   "write with an unknown failure",
			setup:  func(f *fakeNode) { f.applyFn = failApply(errors.New("disk on fire")) },
			method: "PUT", path: "/v1/namespaces/default/services/web", body: `{}`, status: 500, code: "internal",
		},
		{
			name:   "consistent read without leader",
			setup:  func(f *fakeNode) { f.consistentFn = func(context.Context) error { return raft.ErrNoLeader } },
			method: "GET", path: webList + "?consistent=true", status: 503, code: "no_leader", retryAfter: true,
		},
		{
			name:   "no known leader",
			setup:  func(f *fakeNode) { f.leaderFn = func() (string, string) { return "", "" } },
			method: "GET", path: "/v1/cluster/leader", status: 503, code: "no_leader", retryAfter: true,
		},
		{
			name:   "members fails",
			setup:  func(f *fakeNode) { f.membersFn = func() ([]raft.Member, error) { return nil, errors.New("boom") } },
			method: "GET", path: "/v1/cluster/members", status: 500, code: "internal",
		},
		{
			name:   "handler panics",
			setup:  func(f *fakeNode) { f.membersFn = func() ([]raft.Member, error) { panic("bug") } },
			method: "GET", path: "/v1/cluster/members", status: 500, code: "internal",
		},
		{
			name: "join refused by the node",
			setup: func(f *fakeNode) {
				f.joinFn = func(context.Context, string, string) error { return fmt.Errorf("%w: address in use", store.ErrInvalid) }
			},
			method: "POST", path: "/v1/cluster/join", body: `{"id":"f2","raft_addr":"127.0.0.1:2"}`, status: 400, code: "invalid",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			c.setup(f)
			r := serveFake(t, f, c.method, c.path, c.body)
			wantError(t, r, c.status, c.code)
			if got := r.header.Get("Retry-After") != ""; got != c.retryAfter {
				t.Errorf("Retry-After present %v, want %v", got, c.retryAfter)
			}
		})
	}
}

func failApply(err error) func(context.Context, *store.Command) (uint64, error) {
	return func(context.Context, *store.Command) (uint64, error) { return 0, err }
}

func TestStalenessHeaders(t *testing.T) {
	f := newFake(t)
	f.stalenessFn = func() (bool, time.Duration) { return false, 1500 * time.Millisecond }
	r := mustOK(t, "read", serveFake(t, f, http.MethodGet, webList, ""))
	if got := r.header.Get("X-Switchyard-Known-Leader"); got != "false" {
		t.Errorf("X-Switchyard-Known-Leader %q, want false", got)
	}
	if got := r.header.Get("X-Switchyard-Last-Contact"); got != "1500" {
		t.Errorf("X-Switchyard-Last-Contact %q, want 1500 (milliseconds)", got)
	}
}

// TestWriteSendsCommand checks what the handlers hand to the node.
func TestWriteSendsCommand(t *testing.T) {
	f := newFake(t)
	var got *store.Command
	// Apply through the fake's store so the handler can read its result.
	f.applyFn = func(_ context.Context, cmd *store.Command) (uint64, error) {
		got = cmd
		idx := f.store.Index() + 1
		_, err := f.store.Apply(idx, cmd)
		return idx, err
	}
	mustOK(t, "register", serveFake(t, f, http.MethodPut, web2, `{"address":"10.0.0.2","port":9000,"weight":7}`))
	if got == nil || got.Type != store.CommandRegister || got.Namespace != "default" || got.Service != "web" ||
		got.ID != "web-2" || got.Instance == nil || got.Instance.Port != 9000 || got.Instance.Weight != 7 {
		t.Fatalf("register sent %+v", got)
	}
	if !got.Time.IsZero() {
		t.Errorf("the API stamped a time; the leader does that")
	}
	wantError(t, serveFake(t, f, http.MethodPut, "/v1/namespaces/nope/services/web/instances/web-1", okBody), 404, "namespace_not_found")
}
