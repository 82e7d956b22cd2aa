package api

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
)

// guard refuses what a web page on another site could make a browser send
// to this server: a request under a Host that is not one of its names (DNS
// rebinding: the attacker's name resolves to 127.0.0.1, and the page then
// reads and writes the API as same-origin), a state-changing request from
// another site (CSRF), and a form posted by a browser. The console calls the
// API with fetch from its own origin and JSON bodies, and clients that are
// no browser (curl, the SDK) send neither Origin nor Sec-Fetch-Site: both
// pass.
func (s *Server) guard(c *gin.Context) {
	r := c.Request
	if s.hosts != nil && !s.hosts[hostName(r.Host)] && !(r.Method == http.MethodGet && r.URL.Path == "/v1/health") {
		s.fail(c, fmt.Errorf("%w: Host %q is not a name of this server, so a web page may have made its own name resolve here (DNS rebinding); "+
			"call it as %s, or add the name to --allowed-hosts", ErrHostNotAllowed, r.Host, s.hostList()))
		return
	}
	if err := s.crossSite(r); err != nil {
		s.fail(c, err)
		return
	}
	c.Next()
}

// crossSite refuses a state-changing request a browser sent from another
// site (Sec-Fetch-Site, or Origin against Host for browsers without it;
// see http.CrossOriginProtection), and any form a browser sent: a form
// needs no CORS preflight, and a text/plain one can carry JSON.
func (s *Server) crossSite(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if err := s.crossOrigin.Check(r); err != nil {
		return fmt.Errorf("%w: %s %s from another site (Origin %q, Sec-Fetch-Site %q): %w; "+
			"a web page may not change this server, call it from the console it serves or a client that is not a browser",
			ErrCrossSite, r.Method, r.URL.Path, r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site"), err)
	}
	if r.Header.Get("Origin") == "" && r.Header.Get("Sec-Fetch-Site") == "" {
		return nil // no browser
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(strings.ToLower(ct), ";")
		mt = strings.TrimSpace(mt)
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return fmt.Errorf("%w: %s %s with Content-Type %s from a browser: the API takes JSON (Content-Type: application/json), and a form from any page could carry it",
			ErrCrossSite, r.Method, r.URL.Path, mt)
	}
	return nil
}

// allowedHosts is the set of names Host may carry (nil: any).
func allowedHosts(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[hostName(n)] = true
	}
	return m
}

// hostName is the name in a Host header or listen address: without port or
// brackets, in lower case, without a final dot.
func hostName(hostport string) string {
	h := strings.TrimSpace(hostport)
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func (s *Server) hostList() string {
	names := make([]string, 0, len(s.hosts))
	for n := range s.hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
