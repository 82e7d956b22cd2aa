package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/docs"
)

// loadContract reads docs/openapi.yaml and checks it is a valid OpenAPI
// document.
func loadContract(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		t.Fatalf("docs/openapi.yaml is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("docs/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

var ginParam = regexp.MustCompile(`:([a-z]+)`)

// consoleRoutes are the web console's static files: pages, not an API.
var consoleRoutes = []string{"GET /", "GET /ui", "GET /ui/*file"}

// The contract describes every route of the native API, and nothing else:
// a route added without its description, or a description left after its
// route went, fails here.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadContract(t)
	ts := newTestServer(t, func(c *api.Config) {
		c.Metrics = http.NotFoundHandler()
		c.Console = http.NotFoundHandler()
	})
	var routes []string
	for _, r := range ts.api.Handler().(*gin.Engine).Routes() {
		k := r.Method + " " + r.Path
		if slices.Contains(consoleRoutes, k) {
			continue
		}
		routes = append(routes, r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}"))
	}
	var described []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			described = append(described, method+" "+path)
			if op.Summary == "" || op.Description == "" || op.OperationID == "" {
				t.Errorf("%s %s: needs an operationId, a summary and a description", method, path)
			}
			if len(op.Responses.Map()) == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
		}
	}
	slices.Sort(routes)
	slices.Sort(described)
	for _, r := range routes {
		if !slices.Contains(described, r) {
			t.Errorf("route %s is not described in docs/openapi.yaml", r)
		}
	}
	for _, d := range described {
		if !slices.Contains(routes, d) {
			t.Errorf("docs/openapi.yaml describes %s, which the API does not serve", d)
		}
	}
	// The file served is the contract itself.
	r := ts.get(t, "/v1/openapi.yaml")
	if r.status != http.StatusOK || !bytes.Equal(r.body, docs.OpenAPI) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/yaml") {
		t.Errorf("GET /v1/openapi.yaml: %d, %s, %d bytes", r.status, r.header.Get("Content-Type"), len(r.body))
	}
}

// contract validates requests and answers against the document.
type contract struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	ts     *testServer
	seen   map[string]bool // "METHOD /path/{template}" validated
}

func newContract(t *testing.T, ts *testServer) *contract {
	doc := loadContract(t)
	doc.Servers = openapi3.Servers{{URL: ts.url}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, doc: doc, router: router, ts: ts, seen: map[string]bool{}}
}

// call sends a request, checks its status, and validates the request and
// the answer (status, headers, body) against the contract. It returns the
// body.
func (c *contract) call(method, path string, body any, want int) []byte {
	c.t.Helper()
	return c.send(method, path, body, want, false)
}

// refused sends a request the server must refuse with status want, and
// which the contract must refuse too: what the server takes and what the
// document allows are the same. The answer is validated.
func (c *contract) refused(method, path string, body any, want int) []byte {
	c.t.Helper()
	return c.send(method, path, body, want, true)
}

func (c *contract) send(method, path string, body any, want int, invalid bool) []byte {
	c.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			c.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, c.ts.url+path, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s: not in the contract: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	switch err := openapi3filter.ValidateRequest(context.Background(), in); {
	case err != nil && !invalid:
		c.t.Errorf("%s %s: the request breaks the contract: %v", method, path, err)
	case err == nil && invalid:
		c.t.Errorf("%s %s %s: the contract allows a request the server refuses", method, path, body)
	}
	// ValidateRequest read the body: send it again.
	req.Body = io.NopCloser(bytes.NewReader(raw))
	resp, err := c.ts.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, got)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(got)), Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s → %d: the answer breaks the contract: %v\n%s", method, path, resp.StatusCode, err, clip(got))
	}
	c.seen[method+" "+route.Path] = true
	return got
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// The tour of the README and docs/api.md, against a real server: every
// request and every answer, errors included, holds to docs/openapi.yaml.
func TestOpenAPIContract(t *testing.T) {
	ts := newTestServer(t)
	c := newContract(t, ts)
	const web = "/v1/namespaces/staging/services/web"

	c.call("GET", "/v1/health", nil, 200)
	c.call("GET", "/v1/openapi.yaml", nil, 200)
	c.call("GET", "/v1/cluster/leader", nil, 200)
	c.call("GET", "/v1/cluster/members", nil, 200)
	c.call("GET", "/v1/cluster/rtt", nil, 200)
	c.call("GET", "/v1/topology", nil, 200)
	c.call("PUT", "/v1/namespaces/staging", map[string]any{"fallback": "default"}, 200)
	c.call("GET", "/v1/namespaces", nil, 200)
	c.call("GET", "/v1/namespaces/staging", nil, 200)

	c.call("PUT", web+"/instances/web-1", map[string]any{"address": "10.0.0.1", "port": 8080, "weight": 100,
		"locality": map[string]string{"region": "eu", "datacenter": "eu-1", "unit": "a"},
		"tags":     []string{"v2"}, "metadata": map[string]string{"version": "2.3.1"}}, 200)
	c.call("PUT", web+"/instances/web-2", map[string]any{"address": "10.0.0.2", "port": 8080, "ephemeral": false}, 200)
	c.call("GET", web+"/instances", nil, 200)
	c.call("GET", web+"/history", nil, 200)
	c.call("GET", web+"/instances/web-1/history", nil, 200)
	c.call("GET", web+"/instances?healthy=true&consistent=true", nil, 200)
	c.call("GET", web+"/instances?near=eu/eu-1/a", nil, 200)
	idx := ts.serviceIndex(t, "staging", "web")
	c.call("GET", fmt.Sprintf("%s/instances?index=%d&wait=100ms", web, idx), nil, 200)
	c.call("GET", web+"/instances?delta=true", nil, 200)
	c.call("GET", web+"/instances/web-1", nil, 200)
	c.call("GET", web+"/pick", nil, 200)
	c.call("PUT", web+"/instances/web-1/heartbeat", nil, 200)
	c.call("GET", web+"/instances/web-1/check", nil, 200)
	c.call("GET", web+"/heartbeats", nil, 200)
	c.call("PATCH", web+"/instances/web-2", map[string]any{"enabled": false}, 200)
	c.call("PUT", web, map[string]any{"protect_threshold": 0.5, "balancer": "round_robin", "dns_ttl": "10s"}, 200)
	c.call("GET", web, nil, 200)
	c.call("GET", "/v1/namespaces/staging/services", nil, 200)

	c.call("GET", "/v1/acl/self", nil, 200)
	var tok struct {
		AccessorID string `json:"accessor_id"`
	}
	if err := json.Unmarshal(c.call("POST", "/v1/acl/tokens", map[string]any{"rules": []string{"read:staging"}, "description": "callers"}, 201), &tok); err != nil || tok.AccessorID == "" {
		t.Fatalf("created token: %+v %v", tok, err)
	}
	c.call("GET", "/v1/acl/tokens", nil, 200)
	c.call("GET", "/v1/acl/tokens/"+tok.AccessorID, nil, 200)
	c.call("PUT", "/v1/acl/tokens/"+tok.AccessorID, map[string]any{"rules": []string{"read:staging/web"}}, 200)
	c.call("DELETE", "/v1/acl/tokens/"+tok.AccessorID, nil, 200)
	c.call("GET", "/v1/snapshot", nil, 200)
	c.call("GET", "/v1/drills", nil, 200)

	// Errors, in the shape the contract gives them.
	c.call("GET", "/v1/namespaces/staging/services/nothing", nil, 404)
	c.refused("PUT", web+"/instances/web-3", `{"address": "10.0.0.3", "port": 0}`, 400)
	c.refused("PUT", web+"/instances/web-3", `{"address": "10.0.0.3", "port": 80, "colour": "red"}`, 400)
	c.refused("GET", "/v1/namespaces/Staging/services", nil, 400)
	c.refused("GET", web+"/instances?near=eu/EU-1", nil, 400)

	c.call("DELETE", web+"/instances/web-1", nil, 200)
	c.call("DELETE", web+"/instances/web-2", nil, 200)
	c.call("DELETE", web, nil, 200)
	c.call("DELETE", "/v1/namespaces/staging", nil, 200)

	// Every operation the tour can reach was validated; the rest need a
	// cluster, access control or a fault (their own tests cover them).
	untoured := []string{
		"GET /metrics", "POST /v1/cluster/join", "DELETE /v1/cluster/self-preservation", "PUT /v1/snapshot",
		"GET /v1/drills/{name}", "GET /v1/drills/{name}/timeline", "GET /v1/operator/keyring", "PUT /v1/operator/keyring",
	}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			k := method + " " + path
			if !c.seen[k] && !slices.Contains(untoured, k) {
				t.Errorf("%s is in the contract but the tour never validated it", k)
			}
		}
	}
}
