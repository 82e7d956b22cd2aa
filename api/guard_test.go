package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/api"
)

// A web page must not reach the API through a browser: under a Host that
// is not a name of the server (DNS rebinding) every request is refused
// with 421, and a state-changing request from another site, or a form, is
// refused with 403. The console (same origin, fetch, JSON), curl and the
// SDK (no Origin, no Sec-Fetch-Site) are served.
func TestBrowserGuard(t *testing.T) {
	// As registry dev configures it: its listen address, the loopback
	// names, and a name given with --allowed-hosts.
	ts := newTestServer(t, func(c *api.Config) {
		c.AllowedHosts = []string{"127.0.0.1", "localhost", "::1", "registry.test"}
	})
	port := ts.addr[strings.LastIndex(ts.addr, ":")+1:]
	const ns, evil = "/v1/namespaces/staging", "/v1/namespaces/evil"
	const body = `{"description": "pre-production", "fallback": "default"}`
	for _, tc := range []struct {
		name, method, path, host, body string
		header                         map[string]string
		status                         int
		code, says                     string
	}{
		{name: "rebound name", method: "GET", path: "/v1/namespaces", host: "evil.example:" + port,
			status: http.StatusMisdirectedRequest, code: "host_not_allowed", says: "--allowed-hosts"},
		{name: "rebound name without port", method: "GET", path: "/v1/namespaces", host: "evil.example",
			status: http.StatusMisdirectedRequest, code: "host_not_allowed", says: "DNS rebinding"},
		{name: "rebound write", method: "PUT", path: evil, host: "evil.example:" + port, body: body,
			status: http.StatusMisdirectedRequest, code: "host_not_allowed"},
		{name: "console page on a rebound name", method: "GET", path: "/ui/", host: "evil.example:" + port,
			status: http.StatusMisdirectedRequest, code: "host_not_allowed"},
		{name: "own address", method: "GET", path: "/v1/namespaces", host: "127.0.0.1:" + port, status: http.StatusOK},
		{name: "localhost", method: "GET", path: "/v1/namespaces", host: "LocalHost.:" + port, status: http.StatusOK},
		{name: "ipv6 loopback", method: "GET", path: "/v1/namespaces", host: "[::1]:" + port, status: http.StatusOK},
		{name: "allowed name", method: "GET", path: "/v1/namespaces", host: "registry.test", status: http.StatusOK},
		{name: "health under any name", method: "GET", path: "/v1/health", host: "10.9.8.7:" + port, status: http.StatusOK},

		{name: "cross-site origin", method: "PUT", path: evil, body: body,
			header: map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"},
			status: http.StatusForbidden, code: "cross_site", says: "another site"},
		{name: "cross-site text/plain form", method: "PUT", path: evil, body: body,
			header: map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
			status: http.StatusForbidden, code: "cross_site"},
		{name: "cross-site POST form", method: "POST", path: "/v1/acl/tokens", body: `{}`,
			header: map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"},
			status: http.StatusForbidden, code: "cross_site"},
		{name: "same-site is another site", method: "DELETE", path: ns + "/services/web/instances/w1",
			header: map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://a.registry.test"},
			status: http.StatusForbidden, code: "cross_site"},
		{name: "a form from the server's own origin", method: "PUT", path: evil, body: body,
			header: map[string]string{"Origin": "http://127.0.0.1:" + port, "Sec-Fetch-Site": "same-origin", "Content-Type": "multipart/form-data; boundary=x"},
			status: http.StatusForbidden, code: "cross_site", says: "application/json"},
		{name: "old browser from another origin", method: "PUT", path: evil, body: body,
			header: map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"},
			status: http.StatusForbidden, code: "cross_site"},

		{name: "the console's fetch", method: "PUT", path: ns, body: body,
			header: map[string]string{"Origin": "http://127.0.0.1:" + port, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Content-Type": "application/json"},
			status: http.StatusOK},
		{name: "the console in an old browser", method: "PUT", path: ns, body: body,
			header: map[string]string{"Origin": "http://127.0.0.1:" + port, "Content-Type": "application/json"},
			status: http.StatusOK},
		{name: "curl -d", method: "PUT", path: ns, body: body, host: "127.0.0.1:" + port,
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "curl/8.5.0"},
			status: http.StatusOK},
		{name: "cross-site read", method: "GET", path: "/v1/namespaces",
			header: map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
			status: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			r := ts.send(t, req)
			if tc.code != "" {
				wantError(t, r, tc.status, tc.code)
				if !strings.Contains(string(r.body), tc.says) {
					t.Fatalf("error does not say %q: %s", tc.says, r)
				}
				return
			}
			if r.status != tc.status {
				t.Fatalf("got %s, want %d", r, tc.status)
			}
		})
	}
	// Nothing refused was written; what was allowed was.
	if r := ts.get(t, evil); r.status != http.StatusNotFound {
		t.Fatalf("a refused write was applied: %s", r)
	}
	mustOK(t, "namespace written by the allowed requests", ts.get(t, ns))
}

// Without AllowedHosts (registry server without --allowed-hosts) any Host
// is served; the cross-site guard holds all the same.
func TestBrowserGuardAnyHost(t *testing.T) {
	ts := newTestServer(t)
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/v1/namespaces", nil)
	req.Host = "registry.example.com"
	if r := ts.send(t, req); r.status != http.StatusOK {
		t.Fatalf("any Host without AllowedHosts: %s", r)
	}
	req, _ = http.NewRequest(http.MethodPut, ts.url+"/v1/namespaces/staging", strings.NewReader(`{}`))
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Content-Type", "application/json")
	wantError(t, ts.send(t, req), http.StatusForbidden, "cross_site")
	if r := ts.get(t, "/v1/namespaces/staging"); r.status != http.StatusNotFound {
		t.Fatalf("the refused write was applied: %s", r)
	}
}
