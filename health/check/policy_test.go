package check

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/internal/cidr"
	"github.com/switchyard-io/switchyard/internal/fakedns"
	"github.com/switchyard-io/switchyard/store"
)

func mustPolicy(t *testing.T, cfg PolicyConfig) *Policy {
	t.Helper()
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustPrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := cidr.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPolicyTargets: every spelling of a refused address is refused, with
// the rule named, in every check type; allowed targets pass.
func TestPolicyTargets(t *testing.T) {
	dns := fakedns.Start(t)
	dns.Set("imds.attacker.example", netip.MustParseAddr("169.254.169.254"))
	dns.Set("web.internal.example", netip.MustParseAddr("10.1.2.3"))
	dns.Set("local.attacker.example", netip.MustParseAddr("127.0.0.1"))

	def := DefaultPolicyConfig()
	def.Resolver = dns.Resolver()
	ops := def
	ops.Allow = mustPrefixes(t, "10.0.0.0/8, 192.168.0.0/16")
	ops.Deny = mustPrefixes(t, "10.9.0.0/16,192.168.1.7")
	loop := def
	loop.AllowLoopback = true
	loopInAllow := def
	loopInAllow.Allow = mustPrefixes(t, "127.0.0.0/8")

	cases := []struct {
		name   string
		cfg    PolicyConfig
		typ    string
		target string
		rule   string // "" allowed
	}{
		{"aws metadata", def, store.CheckHTTP, "http://169.254.169.254/latest/meta-data/", RuleMetadata},
		{"metadata behind userinfo", def, store.CheckHTTP, "http://10.0.0.1@169.254.169.254/", RuleMetadata},
		{"metadata mapped", def, store.CheckHTTP, "http://[::ffff:169.254.169.254]/", RuleMetadata},
		{"metadata mapped hex", def, store.CheckTCP, "[::ffff:a9fe:a9fe]:80", RuleMetadata},
		{"metadata decimal", def, store.CheckHTTP, "http://2852039166/", RuleMetadata},
		{"metadata hex", def, store.CheckHTTP, "http://0xa9fea9fe/", RuleMetadata},
		{"metadata octal", def, store.CheckHTTP, "http://0251.0376.0251.0376/", RuleMetadata},
		{"metadata short form", def, store.CheckTCP, "169.254.43518:80", RuleMetadata},
		{"metadata nat64", def, store.CheckTCP, "[64:ff9b::a9fe:a9fe]:80", RuleMetadata},
		{"metadata ipv4-compatible", def, store.CheckTCP, "[::a9fe:a9fe]:80", RuleMetadata},
		{"metadata 6to4", def, store.CheckTCP, "[2002:a9fe:a9fe::1]:80", RuleMetadata},
		{"aws ipv6 imds", def, store.CheckHTTP, "http://[fd00:ec2::254]/", RuleMetadata},
		{"alibaba", def, store.CheckHTTP, "http://100.100.100.200/latest/meta-data/", RuleMetadata},
		{"gcp name", def, store.CheckHTTP, "http://metadata.google.internal/computeMetadata/v1/", RuleMetadata},
		{"gcp name upper, dot", def, store.CheckHTTP, "http://METADATA.Google.Internal./", RuleMetadata},
		{"bare metadata", def, store.CheckGRPC, "metadata:80/x", RuleMetadata},
		{"instance-data", def, store.CheckTCP, "instance-data:80", RuleMetadata},
		{"link-local v4", def, store.CheckTCP, "169.254.1.1:80", RuleLinkLocal},
		{"link-local v6", def, store.CheckTCP, "[fe80::1]:80", RuleLinkLocal},
		{"link-local v6 zone", def, store.CheckTCP, "[fe80::1%25eth0]:80", RuleLinkLocal},
		{"link-local v6 zone http", def, store.CheckHTTP, "http://[fe80::1%25eth0]:80/", RuleLinkLocal},
		{"zero", def, store.CheckHTTP, "http://0.0.0.0:8080/", RuleUnspecified},
		{"zero net", def, store.CheckTCP, "0.1.2.3:80", RuleUnspecified},
		{"decimal zero", def, store.CheckHTTP, "http://0:8080/", RuleUnspecified},
		{"v6 unspecified", def, store.CheckTCP, "[::]:80", RuleUnspecified},
		{"multicast", def, store.CheckTCP, "224.0.0.1:80", RuleMulticast},
		{"broadcast", def, store.CheckTCP, "255.255.255.255:80", RuleMulticast},
		{"loopback", def, store.CheckHTTP, "http://127.0.0.1:8080/", RuleLoopback},
		{"loopback far", def, store.CheckTCP, "127.1.2.3:80", RuleLoopback},
		{"loopback short", def, store.CheckTCP, "127.1:80", RuleLoopback},
		{"loopback v6", def, store.CheckTCP, "[::1]:80", RuleLoopback},
		{"loopback mapped", def, store.CheckTCP, "[::ffff:127.0.0.1]:80", RuleLoopback},
		{"localhost", def, store.CheckHTTP, "http://localhost:8080/", RuleLoopback},
		{"sub.localhost", def, store.CheckHTTP, "http://api.LOCALHOST./", RuleLoopback},
		{"name to metadata", def, store.CheckHTTP, "http://imds.attacker.example/", RuleMetadata},
		{"name to loopback", def, store.CheckTCP, "local.attacker.example:80", RuleLoopback},
		{"unknown name passes", def, store.CheckHTTP, "http://not-yet.example:8080/", ""},
		{"private passes", def, store.CheckHTTP, "http://10.0.0.5:8080/health", ""},
		{"public passes", def, store.CheckGRPC, "203.0.113.9:9000/orders", ""},
		{"v6 passes", def, store.CheckTCP, "[2001:db8::5]:80", ""},
		{"loopback allowed", loop, store.CheckHTTP, "http://127.0.0.1:8080/", ""},
		{"localhost allowed", loop, store.CheckHTTP, "http://localhost:8080/", ""},
		{"metadata whatever loopback says", loop, store.CheckHTTP, "http://169.254.169.254/", RuleMetadata},
		{"loopback in allow list", loopInAllow, store.CheckTCP, "127.0.0.1:80", ""},
		{"only allow list", loopInAllow, store.CheckTCP, "10.0.0.1:80", RuleAllowCIDRs},
		{"in allow", ops, store.CheckTCP, "10.0.0.1:80", ""},
		{"in allow, mapped", ops, store.CheckTCP, "[::ffff:10.0.0.1]:80", ""},
		{"outside allow", ops, store.CheckTCP, "172.16.0.1:80", RuleAllowCIDRs},
		{"deny wins", ops, store.CheckTCP, "10.9.1.1:80", RuleDenyCIDRs},
		{"deny one address", ops, store.CheckTCP, "192.168.1.7:80", RuleDenyCIDRs},
		{"deny mapped", ops, store.CheckTCP, "[::ffff:192.168.1.7]:80", RuleDenyCIDRs},
		{"deny decimal", ops, store.CheckHTTP, "http://3232235783/", RuleDenyCIDRs},
		{"deny through nat64", ops, store.CheckTCP, "[64:ff9b::c0a8:107]:80", RuleDenyCIDRs},
		{"loopback through nat64", def, store.CheckTCP, "[64:ff9b::7f00:1]:80", RuleLoopback},
		{"nat64 outside allow", ops, store.CheckTCP, "[64:ff9b::a00:1]:80", RuleAllowCIDRs},
		{"name in allow", ops, store.CheckHTTP, "http://web.internal.example/", ""},
		{"allow does not lift link-local", ops, store.CheckTCP, "169.254.169.254:80", RuleMetadata},
		{"loopback not in allow", ops, store.CheckTCP, "127.0.0.1:80", RuleLoopback},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, tc.cfg)
			err := p.Check(t.Context(), store.Check{Type: tc.typ, Target: tc.target})
			if tc.rule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var d *DeniedError
			if !errors.As(err, &d) || !errors.Is(err, ErrTargetDenied) {
				t.Fatalf("err = %v, want a DeniedError", err)
			}
			if d.Rule != tc.rule || !strings.Contains(err.Error(), tc.rule) || d.Target != tc.target {
				t.Fatalf("rule %q target %q (%v), want rule %q", d.Rule, d.Target, err, tc.rule)
			}
		})
	}
}

func TestPolicyInterval(t *testing.T) {
	p := mustPolicy(t, DefaultPolicyConfig())
	c := store.Check{Type: store.CheckHTTP, Target: "http://10.0.0.1/", Interval: store.Duration(500 * time.Millisecond)}
	if err := p.Check(t.Context(), c); !errors.Is(err, ErrIntervalTooShort) || !strings.Contains(err.Error(), "--check-min-interval") {
		t.Fatalf("500ms: %v", err)
	}
	for _, iv := range []time.Duration{0, time.Second, time.Minute} {
		c.Interval = store.Duration(iv)
		if err := p.Check(t.Context(), c); err != nil {
			t.Fatalf("%v: %v", iv, err)
		}
	}
	// TTL checks are not probed: their interval is the client's business.
	if err := p.Check(t.Context(), store.Check{Type: store.CheckTTL, Interval: store.Duration(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	var nilPolicy *Policy
	if err := nilPolicy.Check(t.Context(), store.Check{Type: store.CheckHTTP, Target: "http://169.254.169.254/"}); err != nil {
		t.Fatal(err)
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	cases := map[string]string{
		"2852039166":          "169.254.169.254",
		"0xa9fea9fe":          "169.254.169.254",
		"0XA9FEA9FE":          "", // lower-cased by the caller
		"0251.0376.0251.0376": "169.254.169.254",
		"169.254.43518":       "169.254.169.254",
		"169.16689662":        "169.254.169.254",
		"127.1":               "127.0.0.1",
		"0":                   "0.0.0.0",
		"0x":                  "0.0.0.0",
		"4294967296":          "",
		"256.1.1.1":           "",
		"1.2.3.4.5":           "",
		"08":                  "",
		"web":                 "",
		"1e3":                 "",
		"":                    "",
		"1..2":                "",
	}
	for in, want := range cases {
		a, ok := parseLegacyIPv4(in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != want {
			t.Errorf("parseLegacyIPv4(%q) = %q, want %q", in, got, want)
		}
	}
}

// countingListener accepts connections on loopback and counts them.
func countingListener(t *testing.T, addr string) (net.Listener, *atomic.Int64) {
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
	return ln, &n
}

// TestProbeRefusesRebound: a name that resolved to an allowed address at
// registration and resolves to a refused one when probed is refused when
// dialled, for every probe type: the listener behind it never sees a
// connection, and the result names the rule.
func TestProbeRefusesRebound(t *testing.T) {
	dns := fakedns.Start(t)
	cfg := DefaultPolicyConfig()
	cfg.Resolver = dns.Resolver()
	p := mustPolicy(t, cfg)
	ln, accepts := countingListener(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	for _, c := range []store.Check{
		{Type: store.CheckHTTP, Target: "http://rebind.attacker.example:" + port + "/"},
		{Type: store.CheckTCP, Target: "rebind.attacker.example:" + port},
		{Type: store.CheckGRPC, Target: "rebind.attacker.example:" + port + "/svc"},
	} {
		t.Run(c.Type, func(t *testing.T) {
			dns.Set("rebind.attacker.example", netip.MustParseAddr("192.0.2.10"))
			if err := p.Check(t.Context(), c); err != nil {
				t.Fatalf("registration refused a name of an allowed address: %v", err)
			}
			dns.Set("rebind.attacker.example", netip.MustParseAddr("127.0.0.1"))
			c.Timeout = store.Duration(2 * time.Second)
			r := p.Probe(t.Context(), c)
			if r.OK {
				t.Fatalf("probe passed: %+v", r)
			}
			if !strings.Contains(r.Output, RuleLoopback) || r.Reason != "target refused by the check policy (loopback)" {
				t.Fatalf("output %q reason %q: want the loopback rule named", r.Output, r.Reason)
			}
			if n := accepts.Load(); n != 0 {
				t.Fatalf("the refused address got %d connections", n)
			}
		})
	}
}

// TestProbeDoesNotFollowRedirectToRefused: an allowed instance that
// redirects to a refused address gets no probe sent there.
func TestProbeDoesNotFollowRedirectToRefused(t *testing.T) {
	denied, accepts := countingListener(t, "127.0.0.2:0")
	srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+denied.Addr().String()+"/", http.StatusFound)
	}))
	cfg := DefaultPolicyConfig()
	cfg.AllowLoopback = true
	cfg.Deny = mustPrefixes(t, "127.0.0.2/32")
	p := mustPolicy(t, cfg)
	r := p.Probe(t.Context(), httpCheck(srv.URL))
	if r.OK || r.Reason != "HTTP 302" || !strings.Contains(r.Output, "not followed") {
		t.Fatalf("result %+v", r)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("the redirect's target got %d connections", n)
	}
	// And a client that did follow it would be refused when dialling.
	follow := *p.hc
	follow.CheckRedirect = nil
	resp, err := follow.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("followed the redirect: %s", resp.Status)
	}
	if !errors.Is(err, ErrTargetDenied) || accepts.Load() != 0 {
		t.Fatalf("err %v, %d connections", err, accepts.Load())
	}
}

// TestProbeReasons: the short reason says no more than the verdict.
func TestProbeReasons(t *testing.T) {
	ln, _ := countingListener(t, "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	cases := []struct {
		c      store.Check
		reason string
	}{
		{store.Check{Type: store.CheckTCP, Target: closed}, "unreachable"},
		{store.Check{Type: store.CheckHTTP, Target: "http://" + closed + "/"}, "unreachable"},
		{store.Check{Type: store.CheckGRPC, Target: closed}, "unreachable"},
	}
	for _, tc := range cases {
		tc.c.Timeout = store.Duration(2 * time.Second)
		r := loopbackPolicy.Probe(t.Context(), tc.c)
		if r.OK || r.Reason != tc.reason {
			t.Errorf("%s %s: reason %q (output %q), want %q", tc.c.Type, tc.c.Target, r.Reason, r.Output, tc.reason)
		}
		if !strings.Contains(r.Output, "refused") && !strings.Contains(r.Output, "Unavailable") {
			t.Errorf("%s: output %q lost the detail", tc.c.Type, r.Output)
		}
	}
}
