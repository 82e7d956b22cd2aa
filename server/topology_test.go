package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

// GET /v1/topology counts the instances a token may read by locality, the
// unhealthy ones apart, and nothing the token may not read.
func TestTopologyCountsWhatTheTokenMayRead(t *testing.T) {
	a := startACL(t)
	a.must(t, http.MethodPut, "/v1/namespaces/secret", map[string]any{})
	eu := store.Locality{Region: "eu", Datacenter: "eu-1", Unit: "a"}
	us := store.Locality{Region: "us", Datacenter: "us-1", Unit: "b"}
	for _, r := range []struct {
		ns, svc, id string
		loc         store.Locality
	}{
		{"default", "web", "w1", eu}, {"default", "web", "w2", eu}, {"default", "api", "a1", us},
		{"default", "api", "a2", store.Locality{}}, {"secret", "vault", "v1", us},
	} {
		body := wire.RegisterRequest{Address: "10.0.0.1", Port: 80, Ephemeral: new(bool), Locality: r.loc}
		a.must(t, http.MethodPut, "/v1/namespaces/"+r.ns+"/services/"+r.svc+"/instances/"+r.id, body)
	}
	a.must(t, http.MethodPatch, "/v1/namespaces/default/services/web/instances/w2", map[string]any{"enabled": false})
	// An ephemeral instance that never heartbeats turns unhealthy.
	a.must(t, http.MethodPut, "/v1/namespaces/default/services/web/instances/w3",
		wire.RegisterRequest{Address: "10.0.0.3", Port: 80, Locality: eu, Check: store.Check{TTL: store.Duration(time.Second)}})

	get := func(secret string) map[string]wire.Count {
		t.Helper()
		code, body := a.call(t, secret, viaSwitchyard, http.MethodGet, "/v1/topology", nil)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/topology: %d %s", code, body)
		}
		var top wire.Topology
		if err := json.Unmarshal([]byte(body), &top); err != nil {
			t.Fatal(err)
		}
		if top.Index == 0 || !slices.IsSortedFunc(top.Localities, func(x, y wire.LocalityCount) int {
			return map[bool]int{true: -1, false: 1}[x.Path() < y.Path()]
		}) {
			t.Errorf("topology %+v: want an index and localities sorted", top)
		}
		out := map[string]wire.Count{}
		for _, l := range top.Localities {
			out[l.Path()] = l.Count
		}
		return out
	}
	eventually(t, 10*time.Second, "w3 counted unhealthy", func() error {
		if got := get(a.admin)[eu.Path()]; got != (wire.Count{Instances: 3, Healthy: 2}) {
			return fmt.Errorf("%s counts %+v", eu.Path(), got)
		}
		return nil
	})
	all := get(a.admin)
	want := map[string]wire.Count{eu.Path(): {Instances: 3, Healthy: 2}, us.Path(): {Instances: 2, Healthy: 2}, "": {Instances: 1, Healthy: 1}}
	for k, w := range want {
		if all[k] != w {
			t.Errorf("admin: %q counts %+v, want %+v (all: %v)", k, all[k], w, all)
		}
	}
	reader := a.token(t, "read:default")
	mine := get(reader.Secret)
	if mine[us.Path()] != (wire.Count{Instances: 1, Healthy: 1}) {
		t.Errorf("read:default sees %+v in %s, want only default's one instance (secret's vault is not its to count)", mine[us.Path()], us.Path())
	}
	if code, _ := a.call(t, "", viaSwitchyard, http.MethodGet, "/v1/topology", nil); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Errorf("GET /v1/topology without a token: %d, want 401 or 403", code)
	}
}
