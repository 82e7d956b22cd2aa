package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	mdns "github.com/miekg/dns"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
)

// aclCluster is one server with access control on and a known bootstrap
// secret.
type aclCluster struct {
	*cluster
	s     *Server
	admin string
}

func startACL(t *testing.T) *aclCluster {
	t.Helper()
	admin := api.NewSecret()
	c := startCluster(t, 1, func(cfg *Config) {
		cfg.ACL = ACLConfig{Enabled: true, BootstrapSecret: admin}
	})
	s := c.servers[0]
	eventually(t, 10*time.Second, "bootstrap admin token", func() error {
		if !s.Node().Store().ACLBootstrapped() {
			return fmt.Errorf("not bootstrapped")
		}
		return nil
	})
	return &aclCluster{cluster: c, s: s, admin: admin}
}

// header says how a request carries its token: every form the API reads.
type header int

const (
	viaSwitchyard header = iota
	viaBearer
	viaConsul
)

// call sends a request with a token (secret "": none) and returns the
// status and body.
func (a *aclCluster) call(t *testing.T, secret string, via header, method, path string, body any) (int, string) {
	t.Helper()
	code, b, err := a.send(secret, via, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, b
}

// send is call for any goroutine: it returns its error.
func (a *aclCluster) send(secret string, via header, method, path string, body any) (int, string, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, "", err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, "http://"+a.s.HTTPAddr()+path, rd)
	if err != nil {
		return 0, "", err
	}
	if secret != "" {
		switch via {
		case viaSwitchyard:
			req.Header.Set("X-Switchyard-Token", secret)
		case viaBearer:
			req.Header.Set("Authorization", "Bearer "+secret)
		case viaConsul:
			req.Header.Set("X-Consul-Token", secret)
		}
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// must sends a request as admin and fails the test unless it gets 2xx.
func (a *aclCluster) must(t *testing.T, method, path string, body any) string {
	t.Helper()
	code, b := a.call(t, a.admin, viaSwitchyard, method, path, body)
	if code/100 != 2 {
		t.Fatalf("admin %s %s = %d %s", method, path, code, b)
	}
	return b
}

func (a *aclCluster) token(t *testing.T, rules ...string) wire.Token {
	t.Helper()
	var tok wire.Token
	b := a.must(t, http.MethodPost, "/v1/acl/tokens", wire.TokenRequest{Rules: rules})
	if err := json.Unmarshal([]byte(b), &tok); err != nil || tok.Secret == "" || tok.AccessorID == "" {
		t.Fatalf("create token %v: %s (%v)", rules, b, err)
	}
	return tok
}

// need is what a route asks of a token, in the table below.
type need int

const (
	needOpen    need = iota // anyone
	needAny                 // any valid token
	needRead                // read on team-a/web (or something in team-a, for lists)
	needWrite               // write on team-a/web
	needNSAdmin             // admin on team-a or its service
	needCluster             // admin:*
	needReadAll             // read:* (metrics)
	needSome                // read on anything (the namespaces list, filtered)
)

// Every endpoint, Switchyard's and Consul's, against no token, a read
// token, a token with every power in another namespace, a write token and
// the bootstrap admin token: each gets 401, 403 or its 2xx as its rules
// say. A route the table misses fails the test.
func TestAccessControlEveryEndpoint(t *testing.T) {
	a := startACL(t)
	ttl := map[string]any{"TTL": "30s"}
	consulReg := func(id string) map[string]any {
		return map[string]any{"Name": "web", "ID": id, "Address": "127.0.0.1", "Port": 8080, "Check": ttl}
	}
	a.must(t, http.MethodPut, "/v1/namespaces/team-a", map[string]any{})
	a.must(t, http.MethodPut, "/v1/namespaces/team-b", map[string]any{})
	a.must(t, http.MethodPut, "/v1/namespaces/team-a/services/web/instances/w1", wire.RegisterRequest{Address: "127.0.0.1", Port: 8080})
	a.must(t, http.MethodPut, "/v1/namespaces/team-b/services/db/instances/d1", wire.RegisterRequest{Address: "127.0.0.1", Port: 5432})

	tokens := []struct {
		name   string
		secret string
		via    header
		// allowed: the needs this token meets.
		allowed []need
	}{
		{name: "none", allowed: []need{needOpen}},
		{name: "read", secret: a.token(t, "read:team-a").Secret, via: viaConsul, allowed: []need{needOpen, needAny, needRead, needSome}},
		{name: "other-namespace", secret: a.token(t, "admin:team-b").Secret, allowed: []need{needOpen, needAny, needSome}},
		{name: "write", secret: a.token(t, "write:team-a/web").Secret, via: viaBearer, allowed: []need{needOpen, needAny, needRead, needWrite, needSome}},
		{name: "admin", secret: a.admin, allowed: []need{needOpen, needAny, needRead, needWrite, needNSAdmin, needCluster, needReadAll, needSome}},
	}

	n := 0
	rows := []struct {
		route string // METHOD /template, as gin knows it
		need  need
		ok    int // the status when allowed
		path  func() string
		body  func() any
		prep  func() // run as admin before each allowed attempt
	}{
		{route: "GET /v1/health", need: needOpen, ok: 200},
		{route: "GET /v1/openapi.yaml", need: needOpen, ok: 200},
		{route: "GET /v1/cluster/leader", need: needOpen, ok: 200},
		{route: "GET /v1/cluster/members", need: needOpen, ok: 200},
		{route: "GET /metrics", need: needReadAll, ok: 200},
		{route: "POST /v1/cluster/join", need: needCluster, ok: 400, body: func() any { return map[string]any{"id": "Bad Id"} }},
		{route: "DELETE /v1/cluster/self-preservation", need: needCluster, ok: 200},
		{route: "GET /v1/snapshot", need: needCluster, ok: 200},
		{route: "PUT /v1/snapshot", need: needCluster, ok: 400, body: func() any { return []byte("not a backup") }},
		{route: "GET /v1/operator/keyring", need: needCluster, ok: 409}, // gossip is not encrypted here
		{route: "PUT /v1/operator/keyring", need: needCluster, ok: 409, body: func() any {
			return wire.KeyringRequest{Op: "install", Key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
		}},
		{route: "GET /", need: needOpen, ok: 200}, // the redirect to /ui/, followed
		{route: "GET /ui", need: needOpen, ok: 200},
		{route: "GET /ui/*file", need: needOpen, ok: 200, path: func() string { return "/ui/app.js" }},
		{route: "GET /v1/cluster/rtt", need: needAny, ok: 200},
		{route: "GET /v1/topology", need: needSome, ok: 200},
		{route: "GET /v1/drills", need: needReadAll, ok: 200},
		{route: "GET /v1/drills/:name", need: needReadAll, ok: 404, path: func() string { return "/v1/drills/cut-datacenter-20261126T000000Z" }},
		{route: "GET /v1/drills/:name/timeline", need: needReadAll, ok: 404, path: func() string { return "/v1/drills/cut-datacenter-20261126T000000Z/timeline" }},
		{route: "GET /v1/namespaces/:ns/services/:svc/heartbeats", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/heartbeats" }},
		{route: "GET /v1/namespaces/:ns/services/:svc/history", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/history" }},
		{route: "GET /v1/namespaces/:ns/services/:svc/instances/:id/history", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/instances/w1/history" }},
		{route: "GET /v1/acl/self", need: needAny, ok: 200},
		{route: "GET /v1/acl/tokens", need: needCluster, ok: 200},
		{route: "POST /v1/acl/tokens", need: needCluster, ok: 201, body: func() any { return wire.TokenRequest{Rules: []string{"read:default"}} }},
		{route: "GET /v1/acl/tokens/:accessor", need: needCluster, ok: 200, path: func() string { return "/v1/acl/tokens/anonymous" }},
		{route: "PUT /v1/acl/tokens/:accessor", need: needCluster, ok: 200, path: func() string { return "/v1/acl/tokens/anonymous" },
			body: func() any { return map[string]any{"description": "requests without a token"} }},
		{route: "DELETE /v1/acl/tokens/:accessor", need: needCluster, ok: 200, path: func() string {
			return "/v1/acl/tokens/" + a.token(t, "read:default").AccessorID
		}},
		{route: "GET /v1/namespaces", need: needSome, ok: 200},
		{route: "GET /v1/namespaces/:ns", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a" }},
		{route: "PUT /v1/namespaces/:ns", need: needNSAdmin, ok: 200, path: func() string { return "/v1/namespaces/team-a" }, body: func() any { return map[string]any{} }},
		{route: "DELETE /v1/namespaces/:ns", need: needNSAdmin, ok: 200, path: func() string { return "/v1/namespaces/team-a" },
			// team-a must exist with nothing in it, and come back after.
			prep: func() {}},
		{route: "GET /v1/namespaces/:ns/services", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a/services" }},
		{route: "GET /v1/namespaces/:ns/services/:svc", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web" }},
		{route: "PUT /v1/namespaces/:ns/services/:svc", need: needNSAdmin, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web" }, body: func() any { return map[string]any{} }},
		{route: "DELETE /v1/namespaces/:ns/services/:svc", need: needNSAdmin, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web-old" },
			prep: func() {
				a.must(t, http.MethodPut, "/v1/namespaces/team-a/services/web-old/instances/o1", wire.RegisterRequest{Address: "127.0.0.1", Port: 8083})
			}},
		{route: "GET /v1/namespaces/:ns/services/:svc/instances", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/instances" }},
		{route: "GET /v1/namespaces/:ns/services/:svc/instances/:id", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/instances/w1" }},
		{route: "GET /v1/namespaces/:ns/services/:svc/pick", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/pick" }},
		{route: "PUT /v1/namespaces/:ns/services/:svc/instances/:id", need: needWrite, ok: 200, path: func() string {
			n++
			return fmt.Sprintf("/v1/namespaces/team-a/services/web/instances/n%d", n)
		}, body: func() any { return wire.RegisterRequest{Address: "127.0.0.1", Port: 8081} }},
		{route: "DELETE /v1/namespaces/:ns/services/:svc/instances/:id", need: needWrite, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/instances/gone" },
			prep: func() {
				a.must(t, http.MethodPut, "/v1/namespaces/team-a/services/web/instances/gone", wire.RegisterRequest{Address: "127.0.0.1", Port: 8082})
			}},
		{route: "PATCH /v1/namespaces/:ns/services/:svc/instances/:id", need: needWrite, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/instances/w1" },
			body: func() any { return map[string]any{"weight": 50} }},
		{route: "PUT /v1/namespaces/:ns/services/:svc/instances/:id/heartbeat", need: needWrite, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/instances/w1/heartbeat" }},
		{route: "GET /v1/namespaces/:ns/services/:svc/instances/:id/check", need: needRead, ok: 200, path: func() string { return "/v1/namespaces/team-a/services/web/instances/w1/check" }},

		// Consul's endpoints.
		{route: "GET /v1/status/leader", need: needOpen, ok: 200},
		{route: "GET /v1/status/peers", need: needOpen, ok: 200},
		{route: "GET /v1/agent/self", need: needAny, ok: 200},
		{route: "GET /v1/catalog/datacenters", need: needAny, ok: 200},
		{route: "GET /v1/agent/services", need: needRead, ok: 200, path: func() string { return "/v1/agent/services?ns=team-a" }},
		{route: "PUT /v1/agent/service/register", need: needWrite, ok: 200, path: func() string { return "/v1/agent/service/register?ns=team-a" },
			body: func() any { return consulReg("c-reg") }},
		{route: "PUT /v1/agent/service/deregister/:id", need: needWrite, ok: 200, path: func() string { return "/v1/agent/service/deregister/c1?ns=team-a" },
			prep: func() { a.must(t, http.MethodPut, "/v1/agent/service/register?ns=team-a", consulReg("c1")) }},
		{route: "PUT /v1/agent/service/maintenance/:id", need: needWrite, ok: 200, path: func() string { return "/v1/agent/service/maintenance/c2?ns=team-a&enable=false" },
			prep: func() { a.must(t, http.MethodPut, "/v1/agent/service/register?ns=team-a", consulReg("c2")) }},
		{route: "PUT /v1/agent/check/pass/*check", need: needWrite, ok: 200, path: func() string { return "/v1/agent/check/pass/service:c2?ns=team-a" }},
		{route: "PUT /v1/agent/check/warn/*check", need: needWrite, ok: 200, path: func() string { return "/v1/agent/check/warn/service:c2?ns=team-a" }},
		{route: "PUT /v1/agent/check/fail/*check", need: needWrite, ok: 200, path: func() string { return "/v1/agent/check/fail/service:c2?ns=team-a" }},
		{route: "PUT /v1/agent/check/update/*check", need: needWrite, ok: 200, path: func() string { return "/v1/agent/check/update/service:c2?ns=team-a" },
			body: func() any { return map[string]any{"Status": "passing"} }},
		{route: "GET /v1/catalog/services", need: needRead, ok: 200, path: func() string { return "/v1/catalog/services?ns=team-a" }},
		{route: "GET /v1/catalog/service/:svc", need: needRead, ok: 200, path: func() string { return "/v1/catalog/service/web?ns=team-a" }},
		{route: "GET /v1/catalog/nodes", need: needRead, ok: 200, path: func() string { return "/v1/catalog/nodes?ns=team-a" }},
		{route: "GET /v1/catalog/node/:node", need: needRead, ok: 200, path: func() string { return "/v1/catalog/node/s1?ns=team-a" }},
		{route: "GET /v1/health/service/:svc", need: needRead, ok: 200, path: func() string { return "/v1/health/service/web?ns=team-a" }},
		{route: "GET /v1/health/checks/:svc", need: needRead, ok: 200, path: func() string { return "/v1/health/checks/web?ns=team-a" }},
		{route: "GET /v1/health/state/:state", need: needRead, ok: 200, path: func() string { return "/v1/health/state/any?ns=team-a" }},
	}

	// The table covers every route the server serves.
	covered := map[string]bool{}
	for _, r := range rows {
		covered[r.route] = true
	}
	for _, ri := range a.s.api.Handler().(*gin.Engine).Routes() {
		if !covered[ri.Method+" "+ri.Path] {
			t.Errorf("route %s %s is not in the access-control table", ri.Method, ri.Path)
		}
	}

	// Deleting team-a must find it empty; the rows that need team-a's
	// contents run before, and the deletion's prep empties it.
	var last []int
	for i, r := range rows {
		if r.route == "DELETE /v1/namespaces/:ns" {
			last = append(last, i)
		}
	}
	for _, i := range last {
		r := rows[i]
		rows = append(slices.Delete(rows, i, i+1), r)
	}
	rows[len(rows)-1].prep = func() {
		for _, p := range []string{"/v1/namespaces/team-a/services/web", "/v1/namespaces/team-a/services/web-old"} {
			code, _ := a.call(t, a.admin, viaSwitchyard, http.MethodDelete, p, nil)
			if code != 200 && code != 404 {
				t.Fatalf("emptying team-a: %d", code)
			}
		}
		a.call(t, a.admin, viaSwitchyard, http.MethodPut, "/v1/namespaces/team-a", map[string]any{})
	}

	for _, r := range rows {
		method, tmpl, _ := strings.Cut(r.route, " ")
		for _, tok := range tokens {
			allowed := slices.Contains(tok.allowed, r.need)
			path := tmpl
			if r.path != nil {
				path = r.path()
			}
			if allowed && r.prep != nil {
				r.prep()
			}
			var body any
			if r.body != nil {
				body = r.body()
			}
			code, b := a.call(t, tok.secret, tok.via, method, path, body)
			want := r.ok
			switch {
			case allowed:
			case tok.secret == "":
				want = http.StatusUnauthorized
			default:
				want = http.StatusForbidden
			}
			if code != want {
				t.Errorf("%s as %s: %d %s, want %d", r.route, tok.name, code, strings.TrimSpace(b), want)
			}
			if !allowed && !strings.Contains(b, "token") {
				t.Errorf("%s as %s: the refusal does not say what to do: %s", r.route, tok.name, b)
			}
		}
	}
}

// Lists show only what the token may read; an unknown or revoked token is
// refused with 401; a namespace's fallback needs read on the fallback.
func TestAccessControlFiltersAndRevokes(t *testing.T) {
	a := startACL(t)
	for _, ns := range []string{"team-a", "team-b"} {
		a.must(t, http.MethodPut, "/v1/namespaces/"+ns, map[string]any{})
	}
	for _, svc := range []string{"web", "api", "billing"} {
		a.must(t, http.MethodPut, "/v1/namespaces/team-a/services/"+svc+"/instances/i1", wire.RegisterRequest{Address: "127.0.0.1", Port: 80})
	}
	tok := a.token(t, "read:team-a/web", "read:team-a/api")

	code, b := a.call(t, tok.Secret, viaSwitchyard, http.MethodGet, "/v1/namespaces", nil)
	if code != 200 || !strings.Contains(b, `"team-a"`) || strings.Contains(b, `"team-b"`) || strings.Contains(b, `"default"`) {
		t.Errorf("namespaces as read:team-a/…: %d %s", code, b)
	}
	code, b = a.call(t, tok.Secret, viaSwitchyard, http.MethodGet, "/v1/namespaces/team-a/services", nil)
	if code != 200 || !strings.Contains(b, `"web"`) || !strings.Contains(b, `"api"`) || strings.Contains(b, "billing") {
		t.Errorf("services as read:team-a/web,api: %d %s", code, b)
	}
	code, b = a.call(t, tok.Secret, viaConsul, http.MethodGet, "/v1/catalog/services?ns=team-a", nil)
	if code != 200 || !strings.Contains(b, `"web"`) || strings.Contains(b, "billing") {
		t.Errorf("Consul catalog/services as read:team-a/web,api: %d %s", code, b)
	}
	if code, b := a.call(t, tok.Secret, viaSwitchyard, http.MethodGet, "/v1/namespaces/team-a/services/billing/instances", nil); code != 403 ||
		!strings.Contains(b, "read:team-a/billing") {
		t.Errorf("billing as read:team-a/web,api: %d %s, want 403 naming the rule needed", code, b)
	}

	// Unknown and revoked tokens.
	if code, b := a.call(t, api.NewSecret(), viaSwitchyard, http.MethodGet, "/v1/namespaces/team-a/services/web/instances", nil); code != 401 || !strings.Contains(b, "not known") {
		t.Errorf("unknown token: %d %s", code, b)
	}
	a.must(t, http.MethodDelete, "/v1/acl/tokens/"+tok.AccessorID, nil)
	if code, _ := a.call(t, tok.Secret, viaSwitchyard, http.MethodGet, "/v1/namespaces/team-a/services/web/instances", nil); code != 401 {
		t.Errorf("revoked token: %d, want 401", code)
	}

	// Rotation: the old secret stops, the new one works.
	w := a.token(t, "write:team-a")
	var rot wire.Token
	if err := json.Unmarshal([]byte(a.must(t, http.MethodPut, "/v1/acl/tokens/"+w.AccessorID, wire.TokenRequest{RotateSecret: true})), &rot); err != nil || rot.Secret == "" || rot.Secret == w.Secret {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	if code, _ := a.call(t, w.Secret, viaSwitchyard, http.MethodPut, "/v1/namespaces/team-a/services/web/instances/i1/heartbeat", nil); code != 401 {
		t.Errorf("old secret after rotation: %d, want 401", code)
	}
	if code, b := a.call(t, rot.Secret, viaSwitchyard, http.MethodPut, "/v1/namespaces/team-a/services/web/instances/i1/heartbeat", nil); code != 200 {
		t.Errorf("new secret after rotation: %d %s", code, b)
	}

	// The last admin:* token can be neither revoked nor demoted.
	var self wire.Token
	if err := json.Unmarshal([]byte(a.must(t, http.MethodGet, "/v1/acl/self", nil)), &self); err != nil {
		t.Fatal(err)
	}
	if code, b := a.call(t, a.admin, viaSwitchyard, http.MethodDelete, "/v1/acl/tokens/"+self.AccessorID, nil); code != 409 || !strings.Contains(b, "last") {
		t.Errorf("revoking the last admin: %d %s, want 409", code, b)
	}

	// A namespace admin may not point its namespace at one it cannot read.
	nsAdmin := a.token(t, "admin:team-a")
	if code, b := a.call(t, nsAdmin.Secret, viaSwitchyard, http.MethodPut, "/v1/namespaces/team-a", map[string]any{"fallback": "team-b"}); code != 403 {
		t.Errorf("fallback to an unreadable namespace: %d %s, want 403", code, b)
	}
	both := a.token(t, "admin:team-a", "read:team-b")
	if code, b := a.call(t, both.Secret, viaSwitchyard, http.MethodPut, "/v1/namespaces/team-a", map[string]any{"fallback": "team-b"}); code != 200 {
		t.Errorf("fallback to a readable namespace: %d %s", code, b)
	}
}

// DNS answers only what the anonymous token may read.
func TestAccessControlDNSAnonymous(t *testing.T) {
	a := startACL(t)
	a.must(t, http.MethodPut, "/v1/namespaces/team-a", map[string]any{})
	a.must(t, http.MethodPut, "/v1/namespaces/team-a/services/web/instances/w1", wire.RegisterRequest{Address: "10.1.2.3", Port: 80, Ephemeral: new(bool)})
	ips, rc, err := dnsA(a.s.DNSAddr(), "web.team-a.svc.switchyard.")
	if err != nil || rc != mdns.RcodeRefused || len(ips) != 0 {
		t.Fatalf("DNS before anonymous may read: %v rcode %s %v, want REFUSED", ips, mdns.RcodeToString[rc], err)
	}
	a.must(t, http.MethodPut, "/v1/acl/tokens/anonymous", wire.TokenRequest{Rules: []string{"read:team-a/web"}})
	eventually(t, 5*time.Second, "DNS answer once anonymous may read", func() error {
		ips, rc, err := dnsA(a.s.DNSAddr(), "web.team-a.svc.switchyard.")
		if err != nil || rc != mdns.RcodeSuccess || !slices.Equal(ips, []string{"10.1.2.3"}) {
			return fmt.Errorf("%v rcode %s %v", ips, mdns.RcodeToString[rc], err)
		}
		return nil
	})
	// Other services stay refused; so does HTTP without a token for them,
	// while web is readable without one.
	if _, rc, _ := dnsA(a.s.DNSAddr(), "other.team-a.svc.switchyard."); rc != mdns.RcodeRefused {
		t.Errorf("DNS for a service anonymous may not read: rcode %s, want REFUSED", mdns.RcodeToString[rc])
	}
	if code, _ := a.call(t, "", viaSwitchyard, http.MethodGet, "/v1/namespaces/team-a/services/web/instances", nil); code != 200 {
		t.Errorf("HTTP read anonymous may do: %d", code)
	}
	if code, _ := a.call(t, "", viaSwitchyard, http.MethodPut, "/v1/namespaces/team-a/services/web/instances/w1/heartbeat", nil); code != 401 {
		t.Errorf("HTTP write anonymous may not do: %d, want 401", code)
	}
	// Anonymous may never write, and its rules can be taken away again.
	if code, _ := a.call(t, a.admin, viaSwitchyard, http.MethodPut, "/v1/acl/tokens/anonymous", wire.TokenRequest{Rules: []string{"write:team-a"}}); code != 400 {
		t.Errorf("anonymous with a write rule: %d, want 400", code)
	}
	a.must(t, http.MethodPut, "/v1/acl/tokens/anonymous", wire.TokenRequest{Rules: []string{}})
	if _, rc, _ := dnsA(a.s.DNSAddr(), "web.team-a.svc.switchyard."); rc != mdns.RcodeRefused {
		t.Errorf("DNS after anonymous lost its rules: rcode %s, want REFUSED", mdns.RcodeToString[rc])
	}
}

// The bootstrap secret is never written to disk: only its hash.
func TestBootstrapSecretNotStored(t *testing.T) {
	a := startACL(t)
	a.must(t, http.MethodPut, "/v1/namespaces/default/services/web/instances/w1", wire.RegisterRequest{Address: "127.0.0.1", Port: 80})
	if err := a.s.Node().Snapshot(); err != nil {
		t.Fatal(err)
	}
	found := false
	err := filepath.Walk(a.s.cfg.DataDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(a.admin)) {
			t.Errorf("%s holds the bootstrap secret", p)
		}
		if bytes.Contains(b, []byte(api.HashSecret(a.admin))) {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Errorf("no file of the data directory holds the secret's hash: the test looks in the wrong place")
	}
}

// A token created through the leader works at once on every follower: a
// follower that does not know a token yet catches up before calling it
// unknown.
func TestNewTokenWorksAtOnceOnFollowers(t *testing.T) {
	admin := api.NewSecret()
	c := startCluster(t, 3, func(cfg *Config) { cfg.ACL = ACLConfig{Enabled: true, BootstrapSecret: admin} })
	eventually(t, 10*time.Second, "bootstrap on every server", func() error {
		for _, s := range c.servers {
			if !s.Node().Store().ACLBootstrapped() {
				return fmt.Errorf("%s not bootstrapped", s.cfg.NodeID)
			}
		}
		return nil
	})
	leader := c.leader()
	var followers []*Server
	for _, s := range c.servers {
		if s != leader {
			followers = append(followers, s)
		}
	}
	for i := range 20 {
		a := &aclCluster{cluster: c, s: leader, admin: admin}
		tok := a.token(t, "read:default")
		f := &aclCluster{cluster: c, s: followers[i%2], admin: admin}
		if code, b := f.call(t, tok.Secret, viaSwitchyard, http.MethodGet, "/v1/acl/self", nil); code != 200 {
			t.Fatalf("token %d on follower %s right after its creation: %d %s", i, f.s.cfg.NodeID, code, b)
		}
	}
	// Token errors keep their status through a follower's forwarding.
	f := &aclCluster{cluster: c, s: followers[0], admin: admin}
	if code, b := f.call(t, admin, viaSwitchyard, http.MethodDelete, "/v1/acl/tokens/00000000000000000000000000000001", nil); code != 404 || !strings.Contains(b, "token_not_found") {
		t.Errorf("revoking an unknown token through a follower: %d %s, want 404", code, b)
	}
	var self wire.Token
	if err := json.Unmarshal([]byte(f.must(t, http.MethodGet, "/v1/acl/self", nil)), &self); err != nil {
		t.Fatal(err)
	}
	if code, b := f.call(t, admin, viaSwitchyard, http.MethodDelete, "/v1/acl/tokens/"+self.AccessorID, nil); code != 409 || !strings.Contains(b, "last_admin") {
		t.Errorf("revoking the last admin through a follower: %d %s, want 409", code, b)
	}
}

// A blocking query that started with a token gets no answer once the token
// is revoked during its wait: native and Consul reads alike.
func TestBlockingQueryEndsWhenItsTokenIsRevoked(t *testing.T) {
	a := startACL(t)
	a.must(t, http.MethodPut, "/v1/namespaces/default/services/web/instances/w1", wire.RegisterRequest{Address: "127.0.0.1", Port: 80})
	tok := a.token(t, "read:default")
	code, b := a.call(t, tok.Secret, viaSwitchyard, http.MethodGet, "/v1/namespaces/default/services/web/instances", nil)
	var first wire.InstancesResponse
	if code != 200 || json.Unmarshal([]byte(b), &first) != nil || first.Index == 0 {
		t.Fatalf("read with the token: %d %s", code, b)
	}
	idx := first.Index
	type answer struct {
		code int
		body string
		err  error
	}
	results := make(chan answer, 2)
	for _, p := range []struct {
		path string
		via  header
	}{
		{fmt.Sprintf("/v1/namespaces/default/services/web/instances?index=%d&wait=20s", idx), viaSwitchyard},
		{"/v1/health/service/web?index=1000000&wait=20s", viaConsul},
	} {
		go func() {
			code, b, err := a.send(tok.Secret, p.via, http.MethodGet, p.path, nil)
			results <- answer{code, b, err}
		}()
	}
	eventually(t, 5*time.Second, "both reads waiting", func() error {
		_, m := a.call(t, a.admin, viaSwitchyard, http.MethodGet, "/metrics", nil)
		if !strings.Contains(m, "\nswitchyard_http_blocking_queries 2\n") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	a.must(t, http.MethodDelete, "/v1/acl/tokens/"+tok.AccessorID, nil)
	a.must(t, http.MethodPut, "/v1/namespaces/default/services/web/instances/w2", wire.RegisterRequest{Address: "127.0.0.1", Port: 81})
	for range 2 {
		select {
		case r := <-results:
			if r.err != nil || r.code != http.StatusUnauthorized || strings.Contains(r.body, "w2") {
				t.Errorf("blocking read after its token was revoked: %d %s %v, want 401 and no data", r.code, r.body, r.err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("a blocking read did not return after the change")
		}
	}
	// A Consul read of a namespace the caller may not read says 401/403,
	// whether or not the namespace exists.
	for _, ns := range []string{"default", "no-such-ns"} {
		if code, _ := a.call(t, "", viaConsul, http.MethodGet, "/v1/catalog/services?ns="+ns, nil); code != http.StatusUnauthorized {
			t.Errorf("anonymous Consul read of namespace %s: %d, want 401", ns, code)
		}
	}
}
