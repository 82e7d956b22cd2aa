package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

// tenantClient is HashiCorp's client speaking for one token.
func tenantClient(t *testing.T, s *Server, secret string) *consul.Client {
	t.Helper()
	c, err := consul.NewClient(&consul.Config{Address: s.HTTPAddr(), Token: secret, HttpClient: &http.Client{Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// instanceOf reads one instance from the server's catalog (nil: absent).
func instanceOf(t *testing.T, s *Server, svc, id string) *store.Instance {
	t.Helper()
	sv, err := s.Node().Store().Service(store.DefaultNamespace, svc)
	if err != nil {
		return nil
	}
	return sv.Instance(id)
}

// Two tenants hold an instance with the same id in their own services. The
// writer of "b" acts on the id through Consul's agent endpoints, which name
// an instance by id alone: only its own instance is touched, "a"'s never,
// and an id that only "a" holds reads to "b" exactly as an unknown one.
func TestConsulAgentIDsStayInTheTokensScope(t *testing.T) {
	a := startACL(t)
	tokA := a.token(t, "write:default/a")
	tokB := a.token(t, "write:default/b")
	ka, kb := tenantClient(t, a.s, tokA.Secret), tenantClient(t, a.s, tokB.Secret)
	reg := func(k *consul.Client, svc, id string) error {
		return k.Agent().ServiceRegister(&consul.AgentServiceRegistration{ID: id, Name: svc, Address: "127.0.0.1", Port: 8080,
			Check: &consul.AgentServiceCheck{TTL: "1m", CheckID: svc + "-" + id + "-ttl"}})
	}
	// b's instance comes in through the native API, so that every case
	// below stands on its own.
	nativeB := func(id string) {
		t.Helper()
		a.must(t, http.MethodPut, "/v1/namespaces/default/services/b/instances/"+id, wire.RegisterRequest{Address: "127.0.0.1", Port: 9090,
			Check: store.Check{Type: store.CheckTTL, TTL: store.Duration(time.Minute)}})
	}
	ttlOK := func(svc, id string, healthy bool) func() error {
		return func() error {
			in := instanceOf(t, a.s, svc, id)
			if in == nil || in.Healthy != healthy {
				return fmt.Errorf("%s/%s: %+v, want healthy=%v", svc, id, in, healthy)
			}
			return nil
		}
	}

	t.Run("register the same id", func(t *testing.T) {
		if err := reg(ka, "a", "i-1"); err != nil {
			t.Fatal(err)
		}
		// Refused today with "already registered for service \"a\"": the
		// refusal names a service b may not read.
		if err := reg(kb, "b", "i-1"); err != nil {
			t.Fatalf("b registering its own i-1: %v", err)
		}
		if instanceOf(t, a.s, "a", "i-1") == nil || instanceOf(t, a.s, "b", "i-1") == nil {
			t.Fatal("the two i-1 do not both exist")
		}
	})

	t.Run("deregister", func(t *testing.T) {
		if err := reg(ka, "a", "i-2"); err != nil {
			t.Fatal(err)
		}
		nativeB("i-2")
		if err := kb.Agent().ServiceDeregister("i-2"); err != nil {
			t.Fatalf("b deregistering its i-2: %v", err)
		}
		if instanceOf(t, a.s, "b", "i-2") != nil {
			t.Error("b's i-2 is still there")
		}
		if instanceOf(t, a.s, "a", "i-2") == nil {
			t.Error("a's i-2 was deregistered by b")
		}
	})

	t.Run("TTL pass and fail", func(t *testing.T) {
		if err := reg(ka, "a", "i-3"); err != nil {
			t.Fatal(err)
		}
		nativeB("i-3")
		eventually(t, 5*time.Second, "both i-3 healthy", func() error {
			if err := ttlOK("a", "i-3", true)(); err != nil {
				return err
			}
			return ttlOK("b", "i-3", true)()
		})
		if err := ka.Agent().FailTTL("service:i-3", "down"); err != nil {
			t.Fatalf("a failing its i-3: %v", err)
		}
		eventually(t, 5*time.Second, "a's i-3 critical", ttlOK("a", "i-3", false))
		if err := kb.Agent().FailTTL("service:i-3", "down"); err != nil {
			t.Fatalf("b failing its i-3: %v", err)
		}
		eventually(t, 5*time.Second, "b's i-3 critical", ttlOK("b", "i-3", false))
		if err := kb.Agent().PassTTL("service:i-3", ""); err != nil {
			t.Fatalf("b passing its i-3: %v", err)
		}
		eventually(t, 5*time.Second, "b's i-3 passing again", ttlOK("b", "i-3", true))
		// b's pass was handled; had it reached a's instance, a's would be
		// passing too by now.
		if err := ttlOK("a", "i-3", false)(); err != nil {
			t.Errorf("b's pass reached a's instance: %v", err)
		}
	})

	t.Run("maintenance", func(t *testing.T) {
		if err := reg(ka, "a", "i-4"); err != nil {
			t.Fatal(err)
		}
		nativeB("i-4")
		if err := kb.Agent().EnableServiceMaintenance("i-4", "b's own"); err != nil {
			t.Fatalf("b putting its i-4 in maintenance: %v", err)
		}
		if in := instanceOf(t, a.s, "b", "i-4"); in == nil || in.Enabled {
			t.Errorf("b's i-4 not in maintenance: %+v", in)
		}
		if in := instanceOf(t, a.s, "a", "i-4"); in == nil || !in.Enabled {
			t.Errorf("a's i-4 put in maintenance by b: %+v", in)
		}
	})

	t.Run("an id only another tenant holds reads as unknown", func(t *testing.T) {
		if err := reg(ka, "a", "i-5"); err != nil {
			t.Fatal(err)
		}
		type probe struct{ method, path string }
		probes := func(id, checkID string) []probe {
			return []probe{
				{http.MethodPut, "/v1/agent/service/deregister/" + id},
				{http.MethodPut, "/v1/agent/service/maintenance/" + id + "?enable=true"},
				{http.MethodPut, "/v1/agent/check/pass/service:" + id},
				{http.MethodPut, "/v1/agent/check/fail/service:" + id},
				{http.MethodPut, "/v1/agent/check/pass/" + checkID},
			}
		}
		ask := func(id, checkID string) []string {
			var out []string
			for _, p := range probes(id, checkID) {
				code, body := a.call(t, tokB.Secret, viaConsul, p.method, p.path, nil)
				out = append(out, fmt.Sprintf("%s %s → %d %s", p.method, strings.ReplaceAll(p.path, id, "{id}"), code,
					strings.ReplaceAll(strings.TrimSpace(body), id, "{id}")))
			}
			return out
		}
		held := ask("i-5", "a-i-5-ttl")
		unknown := ask("i-6", "a-i-6-ttl")
		for i := range held {
			if held[i] != unknown[i] {
				t.Errorf("an id a holds:\n\t%s\nan unknown id:\n\t%s", held[i], unknown[i])
			}
			if strings.Contains(held[i], `"a"`) || !strings.Contains(held[i], " 404 ") {
				t.Errorf("an id a holds, asked by b: %s (want 404 naming no service)", held[i])
			}
		}
		if in := instanceOf(t, a.s, "a", "i-5"); in == nil || !in.Enabled || !in.Healthy {
			t.Errorf("a's i-5 changed by b's attempts: %+v", in)
		}
	})

	t.Run("an id two services hold in one scope is refused, not guessed", func(t *testing.T) {
		// The admin may write both a and b, which both hold i-1.
		code, body := a.call(t, a.admin, viaConsul, http.MethodPut, "/v1/agent/service/deregister/i-1", nil)
		if code != http.StatusConflict || !strings.Contains(body, "native API") {
			t.Errorf("admin deregistering i-1: %d %s, want 409 saying what to do", code, body)
		}
		if instanceOf(t, a.s, "a", "i-1") == nil || instanceOf(t, a.s, "b", "i-1") == nil {
			t.Error("an ambiguous deregistration removed an instance")
		}
	})
}
