package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/health"
	"github.com/switchyard-io/switchyard/store"
)

const (
	web1     = "/v1/namespaces/default/services/web/instances/web-1"
	web2     = "/v1/namespaces/default/services/web/instances/web-2"
	webList  = "/v1/namespaces/default/services/web/instances"
	okBody   = `{"address":"10.0.0.2","port":8080}`
	mib      = 1 << 20
	tooLarge = mib + 1
)

// badInputFixture gives the bad-input cases something to damage:
//
//	default/web/web-1   an instance
//	prod                a namespace with a description
//	staging → prod      a namespace falling back to prod
//	full/api/api-1      a namespace holding a service
func badInputFixture(t *testing.T, ts *testServer) {
	t.Helper()
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	mustOK(t, "put prod", ts.put(t, "/v1/namespaces/prod", `{"description":"production"}`))
	mustOK(t, "put staging", ts.put(t, "/v1/namespaces/staging", `{"fallback":"prod"}`))
	mustOK(t, "put full", ts.put(t, "/v1/namespaces/full", ``))
	ts.register(t, "full", "api", "api-1", `{"address":"api.example.com","port":443}`)
}

// paddedJSON returns a valid register body padded with spaces to exactly n
// bytes, generated as it is read.
func paddedJSON(n int) io.Reader {
	return io.MultiReader(strings.NewReader(okBody), io.LimitReader(spaces{}, int64(n-len(okBody))))
}

type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// sizedPut builds a PUT whose body is paddedJSON(n), sent with
// Content-Length n, or chunked when chunked is set.
func sizedPut(t *testing.T, url string, n int, chunked bool) *http.Request {
	t.Helper()
	req, err := http.NewRequest("PUT", url, paddedJSON(n))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.ContentLength = int64(n)
	if chunked {
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	return req
}

// countingReader counts how much of a body the client was asked to send.
type countingReader struct {
	n atomic.Int64
	r io.Reader
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestBadInput(t *testing.T) {
	ts := newTestServer(t)
	badInputFixture(t, ts)

	type tc struct {
		name   string
		method string
		path   string
		body   string
		// req, when set, builds the request instead of method/path/body.
		req    func(t *testing.T) *http.Request
		status int
		code   string
		// after runs extra checks once the request is answered.
		after func(t *testing.T)
	}
	absent := func(path string) func(t *testing.T) {
		return func(t *testing.T) {
			t.Helper()
			wantError(t, ts.get(t, path), http.StatusNotFound, "instance_not_found")
		}
	}
	web1Unchanged := func(t *testing.T) {
		t.Helper()
		r := mustOK(t, "get web-1", ts.get(t, web1))
		var in store.Instance
		decode(t, r, &in)
		if in.Address != "10.0.0.1" || in.Port != 8080 || in.Weight != 100 || !in.Enabled {
			t.Errorf("web-1 changed by a refused update: %s", r.body)
		}
	}
	cases := []tc{
		// Body shape.
		{name: "malformed JSON", method: "PUT", path: web2, body: `{"address": "10.0.0.2" "port": 80}`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "truncated JSON", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "truncated string", method: "PUT", path: web2, body: `{"address":"10.0.`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "array instead of object", method: "PUT", path: web2, body: `[` + okBody + `]`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "string instead of object", method: "PUT", path: web2, body: `"10.0.0.2:8080"`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "null instead of object", method: "PUT", path: web2, body: `null`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "null service settings", method: "PUT", path: "/v1/namespaces/default/services/newsvc", body: `null`, status: 400, code: "bad_request"},
		{name: "unknown field", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"prot":1}`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "client sets healthy", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"healthy":true}`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "port as string", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":"8080"}`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "port as float", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":80.5}`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "tags as string", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"tags":"a"}`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "object after the object", method: "PUT", path: web2, body: okBody + ` {}`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "garbage after the object", method: "PUT", path: web2, body: okBody + `x`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "brace after the object", method: "PUT", path: web2, body: okBody + `}`, status: 400, code: "bad_request", after: absent(web2)},
		{name: "empty body", method: "PUT", path: web2, body: ``, status: 400, code: "bad_request", after: absent(web2)},
		{name: "blank body", method: "PUT", path: web2, body: " \n\t ", status: 400, code: "bad_request", after: absent(web2)},
		{name: "bad duration in check", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"check":{"ttl":"soon"}}`, status: 400, code: "bad_request", after: absent(web2)},

		// Body size.
		{
			name: "body over 1 MiB with Content-Length", status: 413, code: "body_too_large", after: absent(web2),
			req: func(t *testing.T) *http.Request {
				return sizedPut(t, ts.url+web2, tooLarge, false)
			},
		},
		{
			name: "body over 1 MiB chunked", status: 413, code: "body_too_large", after: absent(web2),
			req: func(t *testing.T) *http.Request {
				// Just over the limit, so the server can drain the rest and
				// the client reliably reads the answer.
				req := sizedPut(t, ts.url+web2, mib+64<<10, true)
				var seen atomic.Bool
				ts.setHook(t, func(r *http.Request) {
					if r.Method != http.MethodPut {
						return
					}
					seen.Store(r.ContentLength == -1 && len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked")
				})
				t.Cleanup(func() {
					if !seen.Load() {
						t.Errorf("the server did not see a chunked body of unknown length")
					}
				})
				return req
			},
		},
		{
			name: "huge Content-Length refused before the body is sent", status: 413, code: "body_too_large", after: absent(web2),
			req: func(t *testing.T) *http.Request {
				req := sizedPut(t, ts.url+web2, 64*mib, false)
				body := &countingReader{r: req.Body}
				req.Body = io.NopCloser(body)
				req.Header.Set("Expect", "100-continue")
				t.Cleanup(func() {
					if n := body.n.Load(); n >= mib {
						t.Errorf("client was made to send %d bytes of a body refused by its Content-Length", n)
					}
				})
				return req
			},
		},
		{name: "service settings over 1 MiB", method: "PUT", path: "/v1/namespaces/default/services/web",
			body: `{"balancer":"round_robin"}` + strings.Repeat(" ", mib), status: 413, code: "body_too_large"},
		{name: "namespace settings over 1 MiB", method: "PUT", path: "/v1/namespaces/newns",
			body: `{"description":"x"}` + strings.Repeat(" ", mib), status: 413, code: "body_too_large"},

		// Values.
		{name: "port 0", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":0}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "port missing", method: "PUT", path: web2, body: `{"address":"10.0.0.2"}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "port 65536", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":65536}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "port -1", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":-1}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "port -1 on existing", method: "PUT", path: web1, body: `{"address":"10.0.0.1","port":-1}`, status: 400, code: "invalid", after: web1Unchanged},
		{name: "weight -1", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"weight":-1}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "weight 10001", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"weight":10001}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "weight 10001 on existing", method: "PUT", path: web1, body: `{"address":"10.0.0.1","port":8080,"weight":10001}`, status: 400, code: "invalid", after: web1Unchanged},
		{name: "address empty", method: "PUT", path: web2, body: `{"address":"","port":8080}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "address missing", method: "PUT", path: web2, body: `{"port":8080}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "address not a host", method: "PUT", path: web2, body: `{"address":"not a host!","port":8080}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "address 1.2.3", method: "PUT", path: web2, body: `{"address":"1.2.3","port":8080}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "address with underscore", method: "PUT", path: web2, body: `{"address":"a_b.example","port":8080}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "address with port", method: "PUT", path: web2, body: `{"address":"10.0.0.2:8080","port":8080}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "locality not a label", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"locality":{"region":"EU West"}}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "empty tag", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"tags":[""]}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "http check on ephemeral", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"check":{"type":"http","target":"http://10.0.0.2:8080/"}}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "ttl check on persistent", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"ephemeral":false,"check":{"type":"ttl"}}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "http check target not a URL", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"ephemeral":false,"check":{"type":"http","target":"10.0.0.2:8080/health"}}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "http check target ftp", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"ephemeral":false,"check":{"type":"http","target":"ftp://10.0.0.2/"}}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "tcp check target without port", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"ephemeral":false,"check":{"type":"tcp","target":"10.0.0.2"}}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "tcp check target port 0", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"ephemeral":false,"check":{"type":"tcp","target":"10.0.0.2:0"}}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "grpc check target without port", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"ephemeral":false,"check":{"type":"grpc","target":"10.0.0.2/orders"}}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "unknown check type", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"check":{"type":"ping"}}`, status: 400, code: "invalid", after: absent(web2)},
		{name: "check ttl over 24h", method: "PUT", path: web2, body: `{"address":"10.0.0.2","port":8080,"check":{"ttl":"25h"}}`, status: 400, code: "invalid", after: absent(web2)},

		// Not found.
		{name: "register in unknown namespace", method: "PUT", path: "/v1/namespaces/nope/services/web/instances/web-1", body: okBody, status: 404, code: "namespace_not_found"},
		{name: "deregister unknown instance", method: "DELETE", path: "/v1/namespaces/default/services/web/instances/ghost", status: 404, code: "instance_not_found"},
		{name: "deregister in unknown service", method: "DELETE", path: "/v1/namespaces/default/services/ghost/instances/web-1", status: 404, code: "service_not_found"},
		{name: "deregister in unknown namespace", method: "DELETE", path: "/v1/namespaces/nope/services/web/instances/web-1", status: 404, code: "namespace_not_found"},
		{name: "get unknown service", method: "GET", path: "/v1/namespaces/default/services/ghost", status: 404, code: "service_not_found"},
		{name: "list instances of unknown service", method: "GET", path: "/v1/namespaces/default/services/ghost/instances", status: 404, code: "service_not_found"},
		{name: "get unknown instance", method: "GET", path: "/v1/namespaces/default/services/web/instances/ghost", status: 404, code: "instance_not_found"},
		{name: "get unknown namespace", method: "GET", path: "/v1/namespaces/nope", status: 404, code: "namespace_not_found"},
		{name: "list services of unknown namespace", method: "GET", path: "/v1/namespaces/nope/services", status: 404, code: "namespace_not_found"},
		{name: "heartbeat unknown instance", method: "PUT", path: "/v1/namespaces/default/services/web/instances/ghost/heartbeat", status: 404, code: "instance_not_found"},
		{name: "heartbeat in unknown service", method: "PUT", path: "/v1/namespaces/default/services/ghost/instances/web-1/heartbeat", status: 404, code: "service_not_found"},
		{name: "delete unknown service", method: "DELETE", path: "/v1/namespaces/default/services/ghost", status: 404, code: "service_not_found"},
		{name: "delete unknown namespace", method: "DELETE", path: "/v1/namespaces/nope", status: 404, code: "namespace_not_found"},
		{name: "put service in unknown namespace", method: "PUT", path: "/v1/namespaces/nope/services/web", body: `{}`, status: 404, code: "namespace_not_found"},

		// Query parameters.
		{name: "index=abc", method: "GET", path: webList + "?index=abc", status: 400, code: "bad_request"},
		{name: "index=-1", method: "GET", path: webList + "?index=-1", status: 400, code: "bad_request"},
		{name: "wait=forever", method: "GET", path: webList + "?index=1&wait=forever", status: 400, code: "bad_request"},
		{name: "wait=-1s", method: "GET", path: webList + "?index=1&wait=-1s", status: 400, code: "bad_request"},
		{name: "healthy=maybe", method: "GET", path: webList + "?healthy=maybe", status: 400, code: "bad_request"},
		{name: "consistent=maybe", method: "GET", path: webList + "?consistent=maybe", status: 400, code: "bad_request"},
		{name: "index=abc on namespaces", method: "GET", path: "/v1/namespaces?index=abc", status: 400, code: "bad_request"},
		{name: "wait=forever on service", method: "GET", path: "/v1/namespaces/default/services/web?wait=forever", status: 400, code: "bad_request"},
		{name: "consistent=maybe on instance", method: "GET", path: web1 + "?consistent=maybe", status: 400, code: "bad_request"},
		{name: "delta=maybe", method: "GET", path: webList + "?delta=maybe", status: 400, code: "bad_request"},
		{name: "delta token of another format", method: "GET", path: webList + "?delta=d2.5.00000000000000000000000000000000", status: 400, code: "bad_request"},
		{name: "delta token with a short hash", method: "GET", path: webList + "?delta=d1.5.abc", status: 400, code: "bad_request"},
		{name: "delta token with uppercase hex", method: "GET", path: webList + "?delta=d1.5.0000000000000000000000000000000A", status: 400, code: "bad_request"},
		{name: "delta token with a negative base", method: "GET", path: webList + "?delta=d1.-5.00000000000000000000000000000000", status: 400, code: "bad_request"},
		{name: "delta token with a padded base", method: "GET", path: webList + "?delta=d1.05.00000000000000000000000000000000", status: 400, code: "bad_request"},
		{name: "delta= too long", method: "GET", path: webList + "?delta=d1.5." + strings.Repeat("0", 100), status: 400, code: "bad_request"},
		{name: "delta=maybe on a selection", method: "GET", path: webList + "?healthy=true&delta=maybe", status: 400, code: "bad_request"},

		// Namespaces.
		{name: "namespace falls back to itself", method: "PUT", path: "/v1/namespaces/prod", body: `{"fallback":"prod"}`, status: 400, code: "invalid"},
		{name: "new namespace falls back to itself", method: "PUT", path: "/v1/namespaces/newns", body: `{"fallback":"newns"}`, status: 400, code: "invalid"},
		{name: "namespace falls back to a missing one", method: "PUT", path: "/v1/namespaces/newns", body: `{"fallback":"missing"}`, status: 404, code: "namespace_not_found"},
		{name: "namespace fallback not a label", method: "PUT", path: "/v1/namespaces/newns", body: `{"fallback":"Prod"}`, status: 400, code: "invalid"},
		{name: "namespace fallback cycle", method: "PUT", path: "/v1/namespaces/prod", body: `{"fallback":"staging"}`, status: 400, code: "invalid"},
		{name: "namespace description too long", method: "PUT", path: "/v1/namespaces/prod", body: `{"description":"` + strings.Repeat("d", 1025) + `"}`, status: 400, code: "invalid"},
		{name: "namespace unknown field", method: "PUT", path: "/v1/namespaces/prod", body: `{"parent":"staging"}`, status: 400, code: "bad_request"},
		{name: "delete default namespace", method: "DELETE", path: "/v1/namespaces/default", status: 400, code: "invalid"},
		{name: "delete namespace with services", method: "DELETE", path: "/v1/namespaces/full", status: 409, code: "namespace_in_use"},
		{name: "delete namespace that is a fallback", method: "DELETE", path: "/v1/namespaces/prod", status: 409, code: "namespace_in_use"},

		// Service settings.
		{name: "protect_threshold 1.5", method: "PUT", path: "/v1/namespaces/default/services/web", body: `{"protect_threshold":1.5}`, status: 400, code: "invalid"},
		{name: "protect_threshold -0.5 on new service", method: "PUT", path: "/v1/namespaces/default/services/newsvc", body: `{"protect_threshold":-0.5}`, status: 400, code: "invalid"},
		{name: "balancer nope", method: "PUT", path: "/v1/namespaces/default/services/web", body: `{"balancer":"nope"}`, status: 400, code: "invalid"},
		{name: "balancer empty", method: "PUT", path: "/v1/namespaces/default/services/web", body: `{"balancer":""}`, status: 400, code: "invalid"},
		{name: "min_healthy_ratio -0.1", method: "PUT", path: "/v1/namespaces/default/services/web", body: `{"min_healthy_ratio":-0.1}`, status: 400, code: "invalid"},
		{name: "dns_ttl negative", method: "PUT", path: "/v1/namespaces/default/services/web", body: `{"dns_ttl":"-1s"}`, status: 400, code: "invalid"},
		{name: "dns_ttl over 24h", method: "PUT", path: "/v1/namespaces/default/services/web", body: `{"dns_ttl":90000}`, status: 400, code: "invalid"},
		{name: "dns_ttl not a duration", method: "PUT", path: "/v1/namespaces/default/services/web", body: `{"dns_ttl":"forever"}`, status: 400, code: "bad_request"},
		{name: "service settings unknown field", method: "PUT", path: "/v1/namespaces/default/services/web", body: `{"balancer":"round_robin","ttl":"5s"}`, status: 400, code: "bad_request"},
		{name: "service settings empty body", method: "PUT", path: "/v1/namespaces/default/services/web", body: ``, status: 400, code: "bad_request"},

		// Cluster.
		{name: "join with bad id", method: "POST", path: "/v1/cluster/join", body: `{"id":"Bad_Id","raft_addr":"127.0.0.1:1"}`, status: 400, code: "invalid"},
		{name: "join with bad address", method: "POST", path: "/v1/cluster/join", body: `{"id":"t2","raft_addr":"nowhere"}`, status: 400, code: "invalid"},
		{name: "join with unknown field", method: "POST", path: "/v1/cluster/join", body: `{"id":"t2","addr":"127.0.0.1:1"}`, status: 400, code: "bad_request"},

		// Routing.
		{name: "unknown route", method: "GET", path: "/v1/nope", status: 404, code: "not_found"},
		{name: "unknown route outside v1", method: "GET", path: "/metrics/nope", status: 404, code: "not_found"},
		{name: "path below an instance", method: "GET", path: web1 + "/extra", status: 404, code: "not_found"},
		{name: "trailing slash", method: "GET", path: webList + "/", status: 404, code: "not_found"},
		{name: "POST on instances", method: "POST", path: webList, body: okBody, status: 405, code: "method_not_allowed"},
		{name: "POST on an instance", method: "POST", path: web2, body: okBody, status: 405, code: "method_not_allowed", after: absent(web2)},
		{name: "PATCH on a namespace", method: "PATCH", path: "/v1/namespaces/prod", body: `{}`, status: 405, code: "method_not_allowed"},
		{name: "GET on heartbeat", method: "GET", path: web1 + "/heartbeat", status: 405, code: "method_not_allowed"},
	}

	// Names that are not DNS labels, in every position of the path.
	badNames := map[string]string{
		"uppercase":  "Web",
		"underscore": "web_1",
		"leading -":  "-web",
		"trailing -": "web-",
		"64 chars":   strings.Repeat("a", 64),
		"dot":        "a.b",
		"unicode":    "wéb",
		"escaped sp": "a%20b",
	}
	for what, bad := range badNames {
		for _, p := range []struct{ name, method, path, body string }{
			{"register ns", "PUT", "/v1/namespaces/" + bad + "/services/web/instances/i1", okBody},
			{"register svc", "PUT", "/v1/namespaces/default/services/" + bad + "/instances/i1", okBody},
			{"register id", "PUT", "/v1/namespaces/default/services/web/instances/" + bad, okBody},
			{"deregister id", "DELETE", "/v1/namespaces/default/services/web/instances/" + bad, ""},
			{"heartbeat id", "PUT", "/v1/namespaces/default/services/web/instances/" + bad + "/heartbeat", ""},
			{"get instance id", "GET", "/v1/namespaces/default/services/web/instances/" + bad, ""},
			{"list instances svc", "GET", "/v1/namespaces/default/services/" + bad + "/instances", ""},
			{"get service svc", "GET", "/v1/namespaces/default/services/" + bad, ""},
			{"put service svc", "PUT", "/v1/namespaces/default/services/" + bad, `{}`},
			{"delete service svc", "DELETE", "/v1/namespaces/default/services/" + bad, ""},
			{"get namespace ns", "GET", "/v1/namespaces/" + bad, ""},
			{"put namespace ns", "PUT", "/v1/namespaces/" + bad, `{}`},
			{"delete namespace ns", "DELETE", "/v1/namespaces/" + bad, ""},
			{"list services ns", "GET", "/v1/namespaces/" + bad + "/services", ""},
		} {
			cases = append(cases, tc{name: "name " + what + " in " + p.name, method: p.method, path: p.path, body: p.body, status: 400, code: "invalid"})
		}
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := ts.catalogState(t)
			var req *http.Request
			if c.req != nil {
				req = c.req(t)
			} else {
				var rd io.Reader
				if c.body != "" {
					rd = strings.NewReader(c.body)
				}
				var err error
				req, err = http.NewRequest(c.method, ts.url+c.path, rd)
				if err != nil {
					t.Fatalf("new request: %v", err)
				}
			}
			r := ts.send(t, req)
			wantError(t, r, c.status, c.code)
			if c.after != nil {
				c.after(t)
			}
			if after := ts.catalogState(t); after != before {
				t.Errorf("the refused request changed the catalog:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestBodyAtTheLimit checks the edge of the size limit: a body of exactly
// 1 MiB is read and accepted.
func TestBodyAtTheLimit(t *testing.T) {
	ts := newTestServer(t)
	mustOK(t, "register with a 1 MiB body", ts.send(t, sizedPut(t, ts.url+web2, mib, false)))
	mustOK(t, "register with a chunked 1 MiB body", ts.send(t, sizedPut(t, ts.url+web1, mib, true)))
	_, list := ts.instances(t, "default", "web")
	if len(list.Instances) != 2 {
		t.Fatalf("got %d instances, want 2", len(list.Instances))
	}
}

func TestHeartbeat(t *testing.T) {
	live := health.NewLiveness(nil)
	ts := newTestServer(t, func(c *api.Config) { c.Catalog.Liveness = live })
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	ts.register(t, "default", "web", "db-1", `{"address":"10.0.0.2","port":5432,"ephemeral":false,"check":{"type":"tcp","target":"10.0.0.2:5432"}}`)
	key := health.Key{Namespace: "default", Service: "web", ID: "web-1"}
	registered, ok := live.LastSeen(key)
	if !ok {
		t.Fatal("a registration was not recorded as a sign of life")
	}
	before := ts.catalogState(t)
	applied := ts.node.AppliedIndex()

	r := mustOK(t, "heartbeat", ts.put(t, web1+"/heartbeat", ""))
	var body struct {
		ID      string `json:"id"`
		Healthy bool   `json:"healthy"`
	}
	decode(t, r, &body)
	if body.ID != "web-1" || !body.Healthy {
		t.Errorf("heartbeat answer %s", r.body)
	}
	index(t, r)

	if seen, _ := live.LastSeen(key); !seen.After(registered) {
		t.Errorf("heartbeat not recorded: last seen %v, registered %v", seen, registered)
	}
	// Persistent instances are checked by the servers: a heartbeat is a
	// client's mistake, said plainly.
	r = ts.put(t, "/v1/namespaces/default/services/web/instances/db-1/heartbeat", "")
	wantError(t, r, 400, "bad_request")
	if !strings.Contains(string(r.body), "persistent") {
		t.Errorf("persistent heartbeat error does not say why: %s", r.body)
	}
	if _, ok := live.LastSeen(health.Key{Namespace: "default", Service: "web", ID: "db-1"}); ok {
		t.Error("persistent instance entered the liveness table")
	}

	// Heartbeats never touch the Raft log.
	if got := ts.node.AppliedIndex(); got != applied {
		t.Errorf("applied index moved from %d to %d on a heartbeat", applied, got)
	}
	if after := ts.catalogState(t); after != before {
		t.Errorf("heartbeat changed the catalog:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	wantError(t, ts.put(t, "/v1/namespaces/default/services/web/instances/web-2/heartbeat", ""), 404, "instance_not_found")
	mustOK(t, "deregister", ts.do(t, "DELETE", web1, ""))
	wantError(t, ts.put(t, web1+"/heartbeat", ""), 404, "instance_not_found")
}

// bookkeeping clears the fields the server stamps.
func bookkeeping(in store.Instance) store.Instance {
	in.RegisteredAt, in.UpdatedAt, in.CreateIndex, in.ModifyIndex = time.Time{}, time.Time{}, 0, 0
	return in
}

func TestRegisterRoundTrip(t *testing.T) {
	ts := newTestServer(t)
	cases := []struct {
		name string
		id   string
		body string
		want store.Instance
	}{
		{
			name: "ephemeral drained and disabled",
			id:   "web-1",
			body: `{
				"address": "10.1.2.3", "port": 8443, "weight": 0, "enabled": false, "ephemeral": true,
				"locality": {"region": "eu-west", "datacenter": "dc1", "unit": "u7"},
				"tags": ["canary", "v2", "canary"],
				"metadata": {"version": "2.1.0", "owner": "team-a", "empty": ""},
				"check": {"type": "ttl", "ttl": "15s", "deregister_after": "10m"}
			}`,
			want: store.Instance{
				ID: "web-1", Namespace: "default", Service: "web",
				Address: "10.1.2.3", Port: 8443, Weight: 0, Enabled: false, Ephemeral: true,
				Locality: store.Locality{Region: "eu-west", Datacenter: "dc1", Unit: "u7"},
				Tags:     []string{"canary", "v2", "canary"},
				Metadata: map[string]string{"version": "2.1.0", "owner": "team-a", "empty": ""},
				Check:    store.Check{Type: "ttl", TTL: store.Duration(15 * time.Second), DeregisterAfter: store.Duration(10 * time.Minute)},
				Healthy:  true,
			},
		},
		{
			name: "persistent with http check",
			id:   "web-2",
			body: `{
				"address": "web-2.dc1.example.com.", "port": 65535, "weight": 10000, "enabled": true, "ephemeral": false,
				"locality": {"region": "us-east"},
				"check": {"type": "http", "target": "http://web-2.dc1.example.com:8080/health", "interval": 5,
					"timeout": "1.5s", "failures_before_unhealthy": 3, "successes_before_healthy": 2}
			}`,
			want: store.Instance{
				ID: "web-2", Namespace: "default", Service: "web",
				Address: "web-2.dc1.example.com.", Port: 65535, Weight: 10000, Enabled: true, Ephemeral: false,
				Locality: store.Locality{Region: "us-east"},
				Check: store.Check{Type: "http", Target: "http://web-2.dc1.example.com:8080/health",
					Interval: store.Duration(5 * time.Second), Timeout: store.Duration(1500 * time.Millisecond),
					FailuresBeforeUnhealthy: 3, SuccessesBeforeHealthy: 2},
				Healthy: true,
			},
		},
		{
			name: "ipv6 address",
			id:   "web-3",
			body: `{"address": "2001:db8::1", "port": 1}`,
			want: store.Instance{
				ID: "web-3", Namespace: "default", Service: "web",
				Address: "2001:db8::1", Port: 1, Weight: 100, Enabled: true, Ephemeral: true,
				Check: store.Check{Type: "ttl"}, Healthy: true,
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := "/v1/namespaces/default/services/web/instances/" + c.id
			put := ts.register(t, "default", "web", c.id, c.body)
			putIdx := index(t, put)
			var stored store.Instance
			decode(t, put, &stored)
			if got := bookkeeping(stored); !reflect.DeepEqual(got, c.want) {
				t.Errorf("PUT answered\n%+v\nwant\n%+v", got, c.want)
			}
			if stored.CreateIndex != putIdx || stored.ModifyIndex != putIdx || stored.RegisteredAt.IsZero() {
				t.Errorf("bookkeeping: create %d modify %d registered %v, want index %d and a time",
					stored.CreateIndex, stored.ModifyIndex, stored.RegisteredAt, putIdx)
			}

			get := mustOK(t, "get instance", ts.get(t, path))
			if !bytes.Equal(get.body, put.body) {
				t.Errorf("GET differs from the PUT answer:\nGET %s\nPUT %s", get.body, put.body)
			}
			var got store.Instance
			decode(t, get, &got)
			if !reflect.DeepEqual(got, stored) {
				t.Errorf("GET %+v\nwant %+v", got, stored)
			}
			// Zero values that mean something must be on the wire.
			var raw map[string]json.RawMessage
			decode(t, get, &raw)
			for _, k := range []string{"weight", "enabled", "ephemeral", "healthy", "port", "address"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("field %q missing from %s", k, get.body)
				}
			}

			_, list := ts.instances(t, "default", "web")
			found := false
			for _, in := range list.Instances {
				if in.ID == c.id {
					found = true
					if !reflect.DeepEqual(*in.Instance, stored) {
						t.Errorf("instance list has %+v, want %+v", *in.Instance, stored)
					}
				}
			}
			if !found {
				t.Errorf("%s missing from the instance list", c.id)
			}
		})
	}

	// healthy=true hides the disabled instance but keeps the drained-but-
	// enabled ones (weight 0 still counts as healthy).
	r := mustOK(t, "healthy list", ts.get(t, webList+"?healthy=true"))
	var hl struct {
		Instances []store.Instance `json:"instances"`
	}
	decode(t, r, &hl)
	var ids []string
	for _, in := range hl.Instances {
		ids = append(ids, in.ID)
	}
	if strings.Join(ids, ",") != "web-2,web-3" {
		t.Errorf("healthy=true lists %v, want [web-2 web-3]", ids)
	}
}

func TestRegisterDefaults(t *testing.T) {
	ts := newTestServer(t)
	cases := []struct {
		name, id, body string
		wantEphemeral  bool
		wantCheck      string
	}{
		{name: "minimal", id: "a", body: `{"address":"10.0.0.1","port":80}`, wantEphemeral: true, wantCheck: "ttl"},
		{name: "null optionals", id: "b", body: `{"address":"10.0.0.1","port":80,"weight":null,"enabled":null,"ephemeral":null,"tags":null}`, wantEphemeral: true, wantCheck: "ttl"},
		{name: "persistent", id: "c", body: `{"address":"10.0.0.1","port":80,"ephemeral":false}`, wantEphemeral: false, wantCheck: "none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts.register(t, "default", "web", c.id, c.body)
			var in store.Instance
			decode(t, mustOK(t, "get", ts.get(t, "/v1/namespaces/default/services/web/instances/"+c.id)), &in)
			if in.Weight != store.DefaultWeight || !in.Enabled || in.Ephemeral != c.wantEphemeral ||
				in.Check.Type != c.wantCheck || !in.Healthy {
				t.Errorf("got weight %d enabled %v ephemeral %v check %q healthy %v; want 100 true %v %q true",
					in.Weight, in.Enabled, in.Ephemeral, in.Check.Type, in.Healthy, c.wantEphemeral, c.wantCheck)
			}
		})
	}

	// A service created by its first registration gets default settings.
	var svc store.Service
	decode(t, mustOK(t, "get service", ts.get(t, "/v1/namespaces/default/services/web")), &svc)
	if svc.ServiceSettings != store.DefaultServiceSettings() {
		t.Errorf("implicit service settings %+v, want %+v", svc.ServiceSettings, store.DefaultServiceSettings())
	}
}

func TestReRegisterIdenticalKeepsIndex(t *testing.T) {
	ts := newTestServer(t)
	body := `{"address":"10.0.0.1","port":8080,"tags":["a"],"metadata":{"k":"v"},"locality":{"region":"r1"}}`
	ts.register(t, "default", "web", "web-1", body)
	before := ts.catalogState(t)
	idx := ts.serviceIndex(t, "default", "web")
	var first store.Instance
	decode(t, ts.get(t, web1), &first)

	for i := range 3 {
		r := ts.register(t, "default", "web", "web-1", body)
		var again store.Instance
		decode(t, r, &again)
		if !reflect.DeepEqual(again, first) {
			t.Errorf("re-register %d answered %+v, want the stored %+v", i, again, first)
		}
	}
	if got := ts.serviceIndex(t, "default", "web"); got != idx {
		t.Errorf("identical re-registration moved the service index from %d to %d", idx, got)
	}
	if after := ts.catalogState(t); after != before {
		t.Errorf("identical re-registration changed the catalog:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A real change does move it, and keeps the creation bookkeeping.
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080,"weight":50}`)
	if got := ts.serviceIndex(t, "default", "web"); got <= idx {
		t.Errorf("a changed registration left the service index at %d (was %d)", got, idx)
	}
	var changed store.Instance
	decode(t, ts.get(t, web1), &changed)
	if changed.Weight != 50 || changed.Tags != nil || changed.CreateIndex != first.CreateIndex ||
		!changed.RegisteredAt.Equal(first.RegisteredAt) || changed.ModifyIndex <= first.ModifyIndex {
		t.Errorf("after update %+v; first %+v", changed, first)
	}
}
