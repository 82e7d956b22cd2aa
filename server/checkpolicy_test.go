package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/health/check"
	"github.com/switchyard-io/switchyard/internal/cidr"
	"github.com/switchyard-io/switchyard/internal/fakedns"
	"github.com/switchyard-io/switchyard/store"
)

// withCheckPolicy gives a test server the policy of `registry server`
// (loopback refused, intervals of at least a second), host names looked up
// in dns, and checks re-assigned every 100 ms.
func withCheckPolicy(dns *fakedns.Server, tune func(*check.PolicyConfig)) func(*Config) {
	return func(cfg *Config) {
		cfg.CheckPolicy = check.DefaultPolicyConfig()
		cfg.CheckPolicy.Resolver = dns.Resolver()
		if tune != nil {
			tune(&cfg.CheckPolicy)
		}
		cfg.CheckSyncInterval = 100 * time.Millisecond
	}
}

// acceptCounter is a TCP listener on addr that counts the connections it
// accepts and closes them.
func acceptCounter(t *testing.T, addr string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

// rawCall sends a JSON body and returns the status and body.
func rawCall(t *testing.T, hc *http.Client, method, url string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestCheckPolicyRefusesTargets: checks aimed at cloud metadata, link-local
// and loopback addresses, in any spelling, and checks probing faster than
// the floor, are refused with 400 naming the rule by both APIs, and
// nothing is stored.
func TestCheckPolicyRefusesTargets(t *testing.T) {
	dns := fakedns.Start(t)
	dns.Set("imds.attacker.example", netip.MustParseAddr("169.254.169.254"))
	c := startCluster(t, 1, withCheckPolicy(dns, nil))
	s := c.servers[0]
	base := "http://" + s.HTTPAddr()
	self, accepts := acceptCounter(t, "127.0.0.1:0")
	_, selfPort, _ := net.SplitHostPort(self)

	cases := []struct {
		name, typ, target string
		interval          time.Duration
		code, rule        string
	}{
		{"aws metadata", store.CheckHTTP, "http://169.254.169.254/latest/meta-data/iam/security-credentials/", 0, "check_target_denied", check.RuleMetadata},
		{"mapped metadata", store.CheckHTTP, "http://[::ffff:169.254.169.254]/latest/meta-data/", 0, "check_target_denied", check.RuleMetadata},
		{"decimal metadata", store.CheckHTTP, "http://2852039166/latest/meta-data/", 0, "check_target_denied", check.RuleMetadata},
		{"gcp metadata name", store.CheckHTTP, "http://metadata.google.internal/computeMetadata/v1/", 0, "check_target_denied", check.RuleMetadata},
		{"name of metadata", store.CheckHTTP, "http://imds.attacker.example/latest/meta-data/", 0, "check_target_denied", check.RuleMetadata},
		{"alibaba metadata", store.CheckTCP, "100.100.100.200:80", 0, "check_target_denied", check.RuleMetadata},
		{"link-local", store.CheckTCP, "169.254.10.1:80", 0, "check_target_denied", check.RuleLinkLocal},
		{"link-local v6", store.CheckGRPC, "[fe80::1]:9000/svc", 0, "check_target_denied", check.RuleLinkLocal},
		{"unspecified", store.CheckTCP, "0.0.0.0:" + selfPort, 0, "check_target_denied", check.RuleUnspecified},
		{"loopback", store.CheckTCP, self, 0, "check_target_denied", check.RuleLoopback},
		{"localhost", store.CheckHTTP, "http://localhost:" + selfPort + "/", 0, "check_target_denied", check.RuleLoopback},
		{"interval 500ms", store.CheckHTTP, "http://10.0.0.1:8080/health", 500 * time.Millisecond, "check_interval_too_short", "--check-min-interval"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Native API.
			id := fmt.Sprintf("n-%d", i)
			code, body := rawCall(t, c.hc, http.MethodPut, base+"/v1/namespaces/default/services/web/instances/"+id,
				wire.RegisterRequest{Address: "10.0.0.1", Port: 8080, Ephemeral: new(bool),
					Check: store.Check{Type: tc.typ, Target: tc.target, Interval: store.Duration(tc.interval)}})
			var eb wire.ErrorBody
			_ = json.Unmarshal([]byte(body), &eb)
			if code != http.StatusBadRequest || eb.Code != tc.code || !strings.Contains(eb.Error, tc.rule) {
				t.Errorf("native API: %d %s, want 400 %s naming %q", code, body, tc.code, tc.rule)
			}
			// Consul's agent API.
			def := map[string]any{}
			switch tc.typ {
			case store.CheckHTTP:
				def["HTTP"] = tc.target
			case store.CheckTCP:
				def["TCP"] = tc.target
			case store.CheckGRPC:
				def["GRPC"] = tc.target
			}
			if tc.interval > 0 {
				def["Interval"] = tc.interval.String()
			}
			cid := fmt.Sprintf("c-%d", i)
			code, body = rawCall(t, c.hc, http.MethodPut, base+"/v1/agent/service/register",
				map[string]any{"ID": cid, "Name": "web", "Port": 8080, "Address": "10.0.0.1", "Check": def})
			if code != http.StatusBadRequest || !strings.Contains(body, tc.rule) {
				t.Errorf("Consul API: %d %s, want 400 naming %q", code, body, tc.rule)
			}
			for _, ref := range []string{id, cid} {
				code, body := rawCall(t, c.hc, http.MethodGet, base+"/v1/namespaces/default/services/web/instances/"+ref, nil)
				if code != http.StatusNotFound {
					t.Errorf("%s was stored: %d %s", ref, code, body)
				}
			}
		})
	}
	// Allowed targets still register, through both APIs.
	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/web/instances/ok-1", wire.RegisterRequest{
		Address: "10.0.0.1", Port: 8080, Ephemeral: new(bool),
		Check: store.Check{Type: store.CheckHTTP, Target: "http://10.0.0.1:8080/health", Interval: store.Duration(time.Second)}}, nil); err != nil {
		t.Fatal(err)
	}
	if code, body := rawCall(t, c.hc, http.MethodPut, base+"/v1/agent/service/register", map[string]any{
		"ID": "ok-2", "Name": "web", "Port": 8080, "Address": "10.0.0.2",
		"Check": map[string]any{"TCP": "10.0.0.2:8080", "Interval": "1s"}}); code != http.StatusOK {
		t.Fatalf("Consul register of an allowed target: %d %s", code, body)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("the server's own loopback got %d connections", n)
	}
}

// TestCheckPolicyRefusesReboundName: a host name that resolves to an
// allowed address at registration and to the server's own loopback later
// (DNS rebinding) is refused at every probe: the listener behind it never
// gets a connection, and the check's status names the rule.
func TestCheckPolicyRefusesReboundName(t *testing.T) {
	dns := fakedns.Start(t)
	const name = "rebind.attacker.example"
	dns.Set(name, netip.MustParseAddr("192.0.2.10"))
	c := startCluster(t, 1, withCheckPolicy(dns, nil))
	s := c.servers[0]
	target, accepts := acceptCounter(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(target)

	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/web/instances/web-1", wire.RegisterRequest{
		Address: "10.0.0.1", Port: 8080, Ephemeral: new(bool),
		Check: store.Check{Type: store.CheckHTTP, Target: "http://" + name + ":" + port + "/health",
			Interval: store.Duration(time.Second), Timeout: store.Duration(500 * time.Millisecond)}}, nil); err != nil {
		t.Fatalf("registration of a name of an allowed address: %v", err)
	}
	dns.Set(name, netip.MustParseAddr("127.0.0.1"))

	eventually(t, 10*time.Second, "a probe refused by the loopback rule", func() error {
		if n := accepts.Load(); n != 0 {
			t.Fatalf("the rebound address got %d connections", n)
		}
		var st wire.CheckStatus
		if err := c.do(s, http.MethodGet, "/v1/namespaces/default/services/web/instances/web-1/check", nil, &st); err != nil {
			return err
		}
		if st.LastOK == nil || *st.LastOK || !strings.Contains(st.Reason, check.RuleLoopback) ||
			!strings.Contains(st.Output, check.RuleLoopback) {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if dns.Queries(name) < 2 {
		t.Fatalf("the probe did not resolve %s (%d queries)", name, dns.Queries(name))
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("the rebound address got %d connections", n)
	}
}

// TestCheckPolicyRedirectNotFollowed: an allowed instance answering with a
// redirect to a denied address gets no probe sent there.
func TestCheckPolicyRedirectNotFollowed(t *testing.T) {
	dns := fakedns.Start(t)
	c := startCluster(t, 1, withCheckPolicy(dns, func(p *check.PolicyConfig) {
		p.AllowLoopback = true
		var err error
		if p.Deny, err = cidr.Parse("127.0.0.2/32"); err != nil {
			t.Fatal(err)
		}
	}))
	s := c.servers[0]
	denied, accepts := acceptCounter(t, "127.0.0.2:0")
	var asked atomic.Int64
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Redirect(w, r, "http://"+denied+"/latest/meta-data/", http.StatusFound)
	}))
	defer redirector.Close()

	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/web/instances/web-1", wire.RegisterRequest{
		Address: "10.0.0.1", Port: 8080, Ephemeral: new(bool),
		Check: store.Check{Type: store.CheckHTTP, Target: redirector.URL + "/health", Interval: store.Duration(time.Second)}}, nil); err != nil {
		t.Fatal(err)
	}
	// The denied address itself is refused at registration.
	err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/web/instances/web-2", wire.RegisterRequest{
		Address: "10.0.0.1", Port: 8080, Ephemeral: new(bool),
		Check: store.Check{Type: store.CheckHTTP, Target: "http://" + denied + "/", Interval: store.Duration(time.Second)}}, nil)
	var he *httpError
	if !errors.As(err, &he) || he.status != http.StatusBadRequest || !strings.Contains(he.body, check.RuleDenyCIDRs) {
		t.Fatalf("registration aimed at a denied range: %v", err)
	}
	eventually(t, 10*time.Second, "a probe answered by the redirect", func() error {
		var st wire.CheckStatus
		if err := c.do(s, http.MethodGet, "/v1/namespaces/default/services/web/instances/web-1/check", nil, &st); err != nil {
			return err
		}
		if st.LastOK == nil || *st.LastOK || st.Reason != "HTTP 302" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if asked.Load() == 0 {
		t.Fatal("the redirecting instance was never probed")
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("the redirect's denied target got %d connections", n)
	}
}

// TestCheckOutputOnlyForAdmins: a probe's output (how the network
// answered) goes to cluster admins only; a caller who may register checks
// sees the verdict and a short reason, so that checks are no port scanner.
func TestCheckOutputOnlyForAdmins(t *testing.T) {
	a := startACL(t)
	writer := a.token(t, "write:default/web")
	nsAdmin := a.token(t, "admin:default")
	path := "/v1/namespaces/default/services/web/instances/web-1"
	if code, body := a.call(t, writer.Secret, viaSwitchyard, http.MethodPut, path, wire.RegisterRequest{
		Address: "10.0.0.1", Port: 8080, Ephemeral: new(bool),
		Check: store.Check{Type: store.CheckTCP, Target: "127.0.0.1:1", Interval: store.Duration(100 * time.Millisecond)}}); code != http.StatusOK {
		t.Fatalf("register: %d %s", code, body)
	}
	read := func(secret string) wire.CheckStatus {
		t.Helper()
		var st wire.CheckStatus
		eventually(t, 10*time.Second, "a probe result", func() error {
			code, body := a.call(t, secret, viaSwitchyard, http.MethodGet, path+"/check", nil)
			if code != http.StatusOK {
				return fmt.Errorf("%d %s", code, body)
			}
			st = wire.CheckStatus{}
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				return err
			}
			if st.LastOK == nil {
				return fmt.Errorf("no probe yet: %s", body)
			}
			return nil
		})
		return st
	}
	for _, who := range []struct {
		name, secret string
	}{{"writer", writer.Secret}, {"namespace admin", nsAdmin.Secret}} {
		st := read(who.secret)
		if *st.LastOK || st.Reason != "unreachable" || st.Output != "" || st.DurationMs != 0 {
			t.Errorf("%s sees %+v: want last_ok false, reason unreachable, no output, no duration", who.name, st)
		}
	}
	st := read(a.admin)
	if *st.LastOK || st.Reason != "unreachable" || !strings.Contains(st.Output, "connection refused") {
		t.Errorf("cluster admin sees %+v: want the full output", st)
	}
}
