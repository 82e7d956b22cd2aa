package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/store"
)

// TestStopWaitingEndsBlockingQueries: at shutdown a long poll answers at
// once with the unchanged state instead of holding the server for its wait.
func TestStopWaitingEndsBlockingQueries(t *testing.T) {
	st := store.New()
	if _, err := st.Apply(1, &store.Command{Type: store.CommandRegister, Namespace: "default", Service: "web", ID: "w1",
		Instance: &store.Instance{Address: "10.0.0.1", Port: 80, Weight: 1, Enabled: true, Ephemeral: true}}); err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.DefaultConfig(), &fakeNode{store: st, unexpectedCall: func(w string) { t.Errorf("unexpected %s", w) }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	type result struct {
		status int
		index  string
		took   time.Duration
	}
	done := make(chan result, 1)
	started := time.Now()
	go func() {
		resp, err := http.Get(hs.URL + "/v1/namespaces/default/services/web/instances?index=1&wait=10m")
		if err != nil {
			t.Error(err)
			done <- result{}
			return
		}
		resp.Body.Close()
		done <- result{resp.StatusCode, resp.Header.Get("X-Switchyard-Index"), time.Since(started)}
	}()
	select {
	case r := <-done:
		t.Fatalf("blocking query returned before StopWaiting: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	srv.StopWaiting()
	select {
	case r := <-done:
		if r.status != http.StatusOK || r.index != "1" {
			t.Fatalf("after StopWaiting: status %d index %q, want 200 and the unchanged index 1", r.status, r.index)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("blocking query still waiting 5s after StopWaiting")
	}
}
