package dns

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/switchyard-io/switchyard/internal/testlog"
	"github.com/switchyard-io/switchyard/internal/testtool"
	"github.com/switchyard-io/switchyard/store"
)

// rig is a real DNS server (UDP and TCP on loopback) over a real store.
type rig struct {
	st    *store.Store
	srv   *Server
	index uint64
}

func newRig(t *testing.T, tune ...func(*Config)) *rig {
	t.Helper()
	r := &rig{st: store.New()}
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = testlog.New(t, slog.LevelInfo)
	for _, f := range tune {
		f(&cfg)
	}
	srv, err := New(cfg, r.st)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	r.srv = srv
	return r
}

func (r *rig) apply(t *testing.T, c *store.Command) {
	t.Helper()
	r.index++
	c.Time = time.Unix(int64(r.index), 0).UTC()
	if _, err := r.st.Apply(r.index, c); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) register(t *testing.T, ns, svc, id string, in store.Instance) {
	t.Helper()
	if in.Port == 0 {
		in.Port = 8080
	}
	if in.Weight == 0 {
		in.Weight = 100
	}
	in.Enabled = true
	r.apply(t, &store.Command{Type: store.CommandRegister, Namespace: ns, Service: svc, ID: id, Instance: &in})
}

// exchange sends one query over UDP (or TCP) and returns the reply.
func (r *rig) exchange(t *testing.T, name string, qtype uint16, tcp bool, opts ...func(*mdns.Msg)) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	for _, o := range opts {
		o(m)
	}
	c := &mdns.Client{Timeout: 5 * time.Second, UDPSize: 65535}
	if tcp {
		c.Net = "tcp"
	}
	reply, _, err := c.Exchange(m, r.srv.Addr())
	if err != nil {
		t.Fatalf("%s %s: %v", name, mdns.TypeToString[qtype], err)
	}
	return reply
}

// resolver is Go's own resolver pointed at the server.
func (r *rig) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, r.srv.Addr())
	}}
}

func TestResolverAnswers(t *testing.T) {
	r := newRig(t)
	r.register(t, "default", "web", "w-1", store.Instance{Address: "10.0.0.1", Port: 8080, Tags: []string{"http"}})
	r.register(t, "default", "web", "w-2", store.Instance{Address: "10.0.0.2", Port: 8081})
	r.register(t, "default", "web", "w-6", store.Instance{Address: "2001:db8::6", Port: 8086, Tags: []string{"http"}})
	r.register(t, "default", "web", "w-h", store.Instance{Address: "web-h.example.com", Port: 9000, Tags: []string{"http"}})
	r.apply(t, &store.Command{Type: store.CommandPutNamespace, Namespace: "prod", NamespaceSettings: &store.NamespaceSettings{}})
	r.register(t, "prod", "db", "d-1", store.Instance{Address: "10.1.0.1", Port: 5432})
	res := r.resolver()
	ctx := context.Background()

	ips, err := res.LookupIP(ctx, "ip4", "web.svc.switchyard")
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedStrings(ips); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Fatalf("A web (default namespace): %v", got)
	}
	ips, err = res.LookupIP(ctx, "ip6", "web.default.svc.switchyard")
	if err != nil || len(ips) != 1 || ips[0].String() != "2001:db8::6" {
		t.Fatalf("AAAA web: %v %v", ips, err)
	}
	if ips, err := res.LookupIP(ctx, "ip4", "db.prod.svc.switchyard"); err != nil || len(ips) != 1 || ips[0].String() != "10.1.0.1" {
		t.Fatalf("A db.prod: %v %v", ips, err)
	}

	_, srvs, err := res.LookupSRV(ctx, "", "", "web.svc.switchyard")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range srvs {
		got = append(got, fmt.Sprintf("%s:%d/%d/%d", s.Target, s.Port, s.Priority, s.Weight))
	}
	slices.Sort(got)
	want := []string{"w-1.web.default.svc.switchyard.:8080/0/100", "w-2.web.default.svc.switchyard.:8081/0/100",
		"w-6.web.default.svc.switchyard.:8086/0/100", "web-h.example.com.:9000/0/100"}
	if !slices.Equal(got, want) {
		t.Fatalf("SRV web:\n got %v\nwant %v", got, want)
	}
	// RFC 2782 form, restricted to the tag.
	_, srvs, err = res.LookupSRV(ctx, "http", "tcp", "web.default.svc.switchyard")
	if err != nil {
		t.Fatal(err)
	}
	if len(srvs) != 3 {
		t.Fatalf("_http._tcp SRV: %d records, want the 3 tagged", len(srvs))
	}
	// SRV targets resolve.
	if ips, err := res.LookupIP(ctx, "ip4", "w-1.web.default.svc.switchyard"); err != nil || ips[0].String() != "10.0.0.1" {
		t.Fatalf("target w-1: %v %v", ips, err)
	}
	// Unknown names: NXDOMAIN.
	for _, n := range []string{"nothing.svc.switchyard", "web.nowhere.svc.switchyard", "x.switchyard", "ghost.web.default.svc.switchyard"} {
		_, err := res.LookupIP(ctx, "ip4", n)
		var de *net.DNSError
		if !errorsAs(err, &de) || !de.IsNotFound {
			t.Errorf("%s: %v, want not found", n, err)
		}
	}
}

func errorsAs(err error, de **net.DNSError) bool {
	e, ok := err.(*net.DNSError)
	if ok {
		*de = e
	}
	return ok
}

func sortedStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

func TestRcodes(t *testing.T) {
	r := newRig(t)
	r.register(t, "default", "web", "w-1", store.Instance{Address: "10.0.0.1"})
	for _, c := range []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer int
		soa    bool
	}{
		{"A", "web.svc.switchyard.", mdns.TypeA, mdns.RcodeSuccess, 1, false},
		{"case-insensitive", "WEB.Svc.SwitchYard.", mdns.TypeA, mdns.RcodeSuccess, 1, false},
		{"unknown service", "nope.svc.switchyard.", mdns.TypeA, mdns.RcodeNameError, 0, true},
		{"unknown namespace", "web.nope.svc.switchyard.", mdns.TypeA, mdns.RcodeNameError, 0, true},
		{"not a service name", "a.b.c.d.e.svc.switchyard.", mdns.TypeA, mdns.RcodeNameError, 0, true},
		{"known name, wrong type", "web.svc.switchyard.", mdns.TypeMX, mdns.RcodeSuccess, 0, true},
		{"known name, no AAAA", "web.svc.switchyard.", mdns.TypeAAAA, mdns.RcodeSuccess, 0, true},
		{"tag nobody has", "_grpc._tcp.web.svc.switchyard.", mdns.TypeSRV, mdns.RcodeSuccess, 0, true},
		{"zone apex SOA", "switchyard.", mdns.TypeSOA, mdns.RcodeSuccess, 1, false},
		{"zone apex A", "switchyard.", mdns.TypeA, mdns.RcodeSuccess, 0, true},
		{"outside the zone", "example.com.", mdns.TypeA, mdns.RcodeRefused, 0, false},
		{"root", ".", mdns.TypeNS, mdns.RcodeRefused, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, tcp := range []bool{false, true} {
				m := r.exchange(t, c.qname, c.qtype, tcp)
				if m.Rcode != c.rcode || len(m.Answer) != c.answer {
					t.Fatalf("tcp=%v: rcode %s, %d answers; want %s, %d", tcp, mdns.RcodeToString[m.Rcode], len(m.Answer),
						mdns.RcodeToString[c.rcode], c.answer)
				}
				hasSOA := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == mdns.TypeSOA
				if hasSOA != c.soa {
					t.Fatalf("tcp=%v: SOA in authority %v, want %v", tcp, hasSOA, c.soa)
				}
				if c.rcode != mdns.RcodeRefused && !m.Authoritative {
					t.Fatalf("answer not authoritative")
				}
			}
		})
	}
	// The TTL is the service's (default 5 s), and settable.
	m := r.exchange(t, "web.svc.switchyard.", mdns.TypeA, false)
	if ttl := m.Answer[0].Header().Ttl; ttl != 5 {
		t.Fatalf("default TTL %d", ttl)
	}
	set := store.DefaultServiceSettings()
	set.DNSTTL = store.Duration(30 * time.Second)
	r.apply(t, &store.Command{Type: store.CommandPutService, Namespace: "default", Service: "web", ServiceSettings: &set})
	if ttl := r.exchange(t, "web.svc.switchyard.", mdns.TypeA, false).Answer[0].Header().Ttl; ttl != 30 {
		t.Fatalf("TTL after dns_ttl 30s: %d", ttl)
	}
}

// 300 instances: over UDP as many as fit with TC set; over TCP, without a
// cap on answers, all of them.
func TestTruncationUDPThenTCP(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxAnswers = 0 })
	for k := range 300 {
		r.register(t, "default", "big", fmt.Sprintf("b-%03d", k), store.Instance{Address: fmt.Sprintf("10.2.%d.%d", k/250, 1+k%250)})
	}
	udp := r.exchange(t, "big.svc.switchyard.", mdns.TypeA, false)
	if !udp.Truncated || len(udp.Answer) == 0 || len(udp.Answer) >= 300 {
		t.Fatalf("UDP without EDNS: TC=%v, %d answers", udp.Truncated, len(udp.Answer))
	}
	udp.Compress = true
	if b, _ := udp.Pack(); len(b) > 512 {
		t.Fatalf("UDP answer of %d bytes over a 512-byte buffer", len(b))
	}
	edns := r.exchange(t, "big.svc.switchyard.", mdns.TypeA, false, func(m *mdns.Msg) { m.SetEdns0(1232, false) })
	if !edns.Truncated || len(edns.Answer) <= len(udp.Answer) || edns.IsEdns0() == nil {
		t.Fatalf("UDP with EDNS 1232: TC=%v, %d answers (512: %d), OPT %v", edns.Truncated, len(edns.Answer), len(udp.Answer), edns.IsEdns0())
	}
	edns.Compress = true
	if b, _ := edns.Pack(); len(b) > 1232 {
		t.Fatalf("EDNS answer of %d bytes over a 1232-byte buffer", len(b))
	}
	tcp := r.exchange(t, "big.svc.switchyard.", mdns.TypeA, true)
	if tcp.Truncated || len(tcp.Answer) != 300 {
		t.Fatalf("TCP: TC=%v, %d answers", tcp.Truncated, len(tcp.Answer))
	}
	// SRV over TCP carries every target's address; over UDP the
	// additional records go first, answers after, with TC.
	srv := r.exchange(t, "big.svc.switchyard.", mdns.TypeSRV, true)
	if len(srv.Answer) != 300 || len(srv.Extra) != 300 || srv.Truncated {
		t.Fatalf("SRV over TCP: %d answers, %d additional, TC=%v", len(srv.Answer), len(srv.Extra), srv.Truncated)
	}
	srv = r.exchange(t, "big.svc.switchyard.", mdns.TypeSRV, false)
	if !srv.Truncated || len(srv.Answer) == 0 {
		t.Fatalf("SRV over UDP: %d answers, TC=%v", len(srv.Answer), srv.Truncated)
	}
	// Go's resolver retries over TCP on TC and gets everything.
	ips, err := r.resolver().LookupIP(context.Background(), "ip4", "big.svc.switchyard")
	if err != nil || len(ips) != 300 {
		t.Fatalf("Go resolver: %d addresses, %v", len(ips), err)
	}
}

func TestMaxAnswers(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxAnswers = 3 })
	for k := range 10 {
		r.register(t, "default", "web", fmt.Sprintf("w-%d", k), store.Instance{Address: fmt.Sprintf("10.0.0.%d", k+1)})
	}
	for _, tcp := range []bool{false, true} {
		m := r.exchange(t, "web.svc.switchyard.", mdns.TypeSRV, tcp)
		if len(m.Answer) != 3 || len(m.Extra) != 3 || m.Truncated {
			t.Fatalf("tcp=%v: %d answers, %d additional, TC=%v; want 3, 3, no TC", tcp, len(m.Answer), len(m.Extra), m.Truncated)
		}
	}
}

// The first record of an answer follows the weights: over 10,000 queries
// each instance leads within ±3 percentage points of weight/total (over 6
// standard deviations here, so the test does not flake, while a shuffle
// that ignored weights, at a third each, fails it).
func TestWeightedShuffle(t *testing.T) {
	r := newRig(t)
	weights := map[string]int{"10.0.0.1": 100, "10.0.0.2": 300, "10.0.0.3": 600}
	for ip, w := range weights {
		r.register(t, "default", "web", "w-"+ip[len(ip)-1:], store.Instance{Address: ip, Weight: w})
	}
	const n = 10000
	first := map[string]int{}
	c := &mdns.Client{Timeout: 5 * time.Second}
	conn, err := c.Dial(r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range n {
		m := new(mdns.Msg)
		m.SetQuestion("web.svc.switchyard.", mdns.TypeA)
		reply, _, err := c.ExchangeWithConn(m, conn)
		if err != nil {
			t.Fatal(err)
		}
		first[reply.Answer[0].(*mdns.A).A.String()]++
	}
	for ip, w := range weights {
		want := float64(w) / 1000
		got := float64(first[ip]) / n
		if math.Abs(got-want) > 0.03 {
			t.Errorf("%s (weight %d) first in %.3f of the answers, want %.3f ± 3%%", ip, w, got, want)
		}
	}
}

// Locality: the caller's subnet (EDNS Client Subnet, or its source address)
// picks its datacenter; SRV priorities follow the levels.
func TestLocalityAndSubnets(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.Locality = store.Locality{Region: "eu", Datacenter: "eu-a"}
		c.Subnets = []SubnetLocality{
			{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Locality: store.Locality{Region: "eu", Datacenter: "eu-b"}},
		}
	})
	r.register(t, "default", "web", "a-1", store.Instance{Address: "10.0.0.1", Locality: store.Locality{Region: "eu", Datacenter: "eu-a"}})
	r.register(t, "default", "web", "b-1", store.Instance{Address: "10.0.1.1", Locality: store.Locality{Region: "eu", Datacenter: "eu-b"}})
	// From loopback (no subnet): the server's datacenter.
	if m := r.exchange(t, "web.svc.switchyard.", mdns.TypeA, false); len(m.Answer) != 1 || m.Answer[0].(*mdns.A).A.String() != "10.0.0.1" {
		t.Fatalf("server's locality: %v", m.Answer)
	}
	// With ECS 192.0.2.0/24: eu-b, and the scope is echoed.
	ecs := func(m *mdns.Msg) {
		m.SetEdns0(1232, false)
		o := m.IsEdns0()
		o.Option = append(o.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("192.0.2.0").To4()})
	}
	m := r.exchange(t, "web.svc.switchyard.", mdns.TypeA, false, ecs)
	if len(m.Answer) != 1 || m.Answer[0].(*mdns.A).A.String() != "10.0.1.1" {
		t.Fatalf("ECS eu-b: %v", m.Answer)
	}
	var scope uint8 = 255
	for _, o := range m.IsEdns0().Option {
		if e, ok := o.(*mdns.EDNS0_SUBNET); ok {
			scope = e.SourceScope
		}
	}
	if scope != 24 {
		t.Fatalf("ECS scope %d, want 24", scope)
	}
	// eu-b goes down: its callers spill over to eu-a; SRV says which is
	// nearer by priority.
	r.apply(t, &store.Command{Type: store.CommandSetHealth, Health: []store.HealthChange{{Namespace: "default", Service: "web", ID: "b-1", Healthy: false}}})
	m = r.exchange(t, "web.svc.switchyard.", mdns.TypeA, false, ecs)
	if len(m.Answer) != 1 || m.Answer[0].(*mdns.A).A.String() != "10.0.0.1" {
		t.Fatalf("eu-b down: %v", m.Answer)
	}
	r.apply(t, &store.Command{Type: store.CommandSetHealth, Health: []store.HealthChange{{Namespace: "default", Service: "web", ID: "b-1", Healthy: true}}})
	// With min_healthy_ratio 1 and one of eu-a's two down, eu-a does not
	// serve alone: eu-b joins, one priority further.
	r.register(t, "default", "web", "a-2", store.Instance{Address: "10.0.0.2", Locality: store.Locality{Region: "eu", Datacenter: "eu-a"}})
	r.apply(t, &store.Command{Type: store.CommandSetHealth, Health: []store.HealthChange{{Namespace: "default", Service: "web", ID: "a-2", Healthy: false}}})
	set := store.DefaultServiceSettings()
	set.MinHealthyRatio = 1
	r.apply(t, &store.Command{Type: store.CommandPutService, Namespace: "default", Service: "web", ServiceSettings: &set})
	m = r.exchange(t, "web.svc.switchyard.", mdns.TypeSRV, false)
	prio := map[string]uint16{}
	for _, rr := range m.Answer {
		s := rr.(*mdns.SRV)
		prio[strings.SplitN(s.Target, ".", 2)[0]] = s.Priority
	}
	if prio["a-1"] != 0 || prio["b-1"] != 1 {
		t.Fatalf("SRV priorities %v: the caller's datacenter first", prio)
	}
}

func TestFallbackAndProtection(t *testing.T) {
	r := newRig(t)
	r.apply(t, &store.Command{Type: store.CommandPutNamespace, Namespace: "prod", NamespaceSettings: &store.NamespaceSettings{}})
	r.apply(t, &store.Command{Type: store.CommandPutNamespace, Namespace: "feature-42", NamespaceSettings: &store.NamespaceSettings{Fallback: "prod"}})
	r.register(t, "prod", "orders", "p-1", store.Instance{Address: "10.9.0.1"})
	m := r.exchange(t, "orders.feature-42.svc.switchyard.", mdns.TypeSRV, false)
	if len(m.Answer) != 1 || m.Answer[0].(*mdns.SRV).Target != "p-1.orders.prod.svc.switchyard." {
		t.Fatalf("fallback SRV: %v", m.Answer)
	}
	// Protect threshold: with 1 of 4 healthy below 0.5, all four answer.
	set := store.DefaultServiceSettings()
	set.ProtectThreshold = 0.5
	r.apply(t, &store.Command{Type: store.CommandPutService, Namespace: "prod", Service: "orders", ServiceSettings: &set})
	var down []store.HealthChange
	for k := 2; k <= 4; k++ {
		id := fmt.Sprintf("p-%d", k)
		r.register(t, "prod", "orders", id, store.Instance{Address: fmt.Sprintf("10.9.0.%d", k)})
		down = append(down, store.HealthChange{Namespace: "prod", Service: "orders", ID: id, Healthy: false})
	}
	r.apply(t, &store.Command{Type: store.CommandSetHealth, Health: down})
	if m := r.exchange(t, "orders.prod.svc.switchyard.", mdns.TypeA, false); len(m.Answer) != 4 {
		t.Fatalf("protected: %d answers, want 4", len(m.Answer))
	}
	set.ProtectThreshold = 0
	r.apply(t, &store.Command{Type: store.CommandPutService, Namespace: "prod", Service: "orders", ServiceSettings: &set})
	if m := r.exchange(t, "orders.prod.svc.switchyard.", mdns.TypeA, false); len(m.Answer) != 1 {
		t.Fatalf("unprotected: %d answers, want 1", len(m.Answer))
	}
}

func TestNotReadyIsServfail(t *testing.T) {
	var ready atomic.Bool
	r := newRig(t, func(c *Config) { c.Ready = ready.Load })
	r.register(t, "default", "web", "w-1", store.Instance{Address: "10.0.0.1"})
	if m := r.exchange(t, "web.svc.switchyard.", mdns.TypeA, false); m.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("not ready: %s", mdns.RcodeToString[m.Rcode])
	}
	ready.Store(true)
	if m := r.exchange(t, "web.svc.switchyard.", mdns.TypeA, false); m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("ready: %s %v", mdns.RcodeToString[m.Rcode], m.Answer)
	}
}

// dig, the tool operators use, sees the same: an answer, TC and the TCP
// retry (which gets the --dns-max-answers first records of 300), NXDOMAIN,
// REFUSED.
func TestDig(t *testing.T) {
	dig := testtool.Find(t, "dnsutils", "dig")
	r := newRig(t, func(c *Config) { c.ConsulDomain = "consul." })
	for k := range 300 {
		r.register(t, "default", "big", fmt.Sprintf("b-%03d", k), store.Instance{Address: fmt.Sprintf("10.3.%d.%d", k/250, 1+k%250)})
	}
	host, port, _ := net.SplitHostPort(r.srv.Addr())
	run := func(args ...string) string {
		out, err := exec.Command(dig, append([]string{"@" + host, "-p", port, "+time=5", "+tries=1"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("big.svc.switchyard", "A", "+ignore", "+noedns")
	if !strings.Contains(out, " tc") || !strings.Contains(out, "status: NOERROR") {
		t.Fatalf("dig +ignore over UDP: no TC flag:\n%s", out)
	}
	out = run("big.svc.switchyard", "A", "+short")
	if n := len(strings.Fields(out)); n != DefaultMaxAnswers {
		t.Fatalf("dig (retrying over TCP): %d addresses, want the default cap, %d", n, DefaultMaxAnswers)
	}
	if out := run("nothing.svc.switchyard", "A"); !strings.Contains(out, "status: NXDOMAIN") || !strings.Contains(out, "SOA") {
		t.Fatalf("dig unknown name:\n%s", out)
	}
	if out := run("example.com", "A"); !strings.Contains(out, "status: REFUSED") {
		t.Fatalf("dig outside the zone:\n%s", out)
	}
	if out := run("_http._tcp.big.svc.switchyard", "SRV"); !strings.Contains(out, "status: NOERROR") {
		t.Fatalf("dig tag SRV:\n%s", out)
	}
	// A tool that hard-codes Consul's names.
	if out := run("big.service.consul", "A", "+short", "+tcp"); len(strings.Fields(out)) != DefaultMaxAnswers {
		t.Fatalf("dig big.service.consul: %d addresses, want %d", len(strings.Fields(out)), DefaultMaxAnswers)
	}
}

// Consul's names, when the Consul domain is served: the service, a tag,
// the RFC 2782 forms, in the Consul namespace; what Consul would send to
// another datacenter or node, and everything when the domain is off, is
// not answered as if it were ours.
func TestConsulNames(t *testing.T) {
	r := newRig(t, func(c *Config) { c.ConsulDomain, c.ConsulNamespace = "consul", "prod" })
	r.apply(t, &store.Command{Type: store.CommandPutNamespace, Namespace: "prod", NamespaceSettings: &store.NamespaceSettings{}})
	r.register(t, "prod", "web", "w-1", store.Instance{Address: "10.0.0.1", Port: 8080, Tags: []string{"http"}})
	r.register(t, "prod", "web", "w-2", store.Instance{Address: "10.0.0.2", Port: 8081})
	r.register(t, "default", "web", "d-1", store.Instance{Address: "10.9.9.9", Port: 80})
	addrs := func(m *mdns.Msg) []string {
		var out []string
		for _, rr := range m.Answer {
			switch v := rr.(type) {
			case *mdns.A:
				out = append(out, v.A.String())
			case *mdns.SRV:
				out = append(out, fmt.Sprintf("%s:%d", v.Target, v.Port))
			}
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		qname string
		qtype uint16
		rcode int
		want  []string
	}{
		{"web.service.consul.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.0.1", "10.0.0.2"}},
		{"WEB.Service.Consul.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.0.1", "10.0.0.2"}},
		{"http.web.service.consul.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.0.1"}},
		{"_web._tcp.service.consul.", mdns.TypeSRV, mdns.RcodeSuccess, []string{"w-1.web.prod.svc.switchyard.:8080", "w-2.web.prod.svc.switchyard.:8081"}},
		{"_web._http.service.consul.", mdns.TypeSRV, mdns.RcodeSuccess, []string{"w-1.web.prod.svc.switchyard.:8080"}},
		{"web.service.consul.", mdns.TypeSRV, mdns.RcodeSuccess, []string{"w-1.web.prod.svc.switchyard.:8080", "w-2.web.prod.svc.switchyard.:8081"}},
		{"grpc.web.service.consul.", mdns.TypeA, mdns.RcodeSuccess, nil},
		{"nope.service.consul.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"web.service.dc1.consul.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"node1.node.consul.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"a.b.web.service.consul.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"consul.", mdns.TypeSOA, mdns.RcodeSuccess, nil},
		// Our own names still answer, in their own namespaces.
		{"web.svc.switchyard.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.9.9.9"}},
	} {
		m := r.exchange(t, c.qname, c.qtype, false)
		if c.qtype == mdns.TypeSOA {
			if m.Rcode != c.rcode || len(m.Answer) != 1 || m.Answer[0].Header().Name != "consul." {
				t.Errorf("%s SOA: %v", c.qname, m)
			}
			continue
		}
		if got := addrs(m); m.Rcode != c.rcode || !slices.Equal(got, c.want) {
			t.Errorf("%s %s: rcode %s, %v; want %s, %v", c.qname, mdns.TypeToString[c.qtype], mdns.RcodeToString[m.Rcode], got,
				mdns.RcodeToString[c.rcode], c.want)
		}
		// A negative answer carries the SOA of the domain asked in.
		if len(m.Answer) == 0 && (len(m.Ns) != 1 || !strings.HasSuffix(m.Ns[0].Header().Name, "consul.") && strings.HasSuffix(c.qname, "consul.")) {
			t.Errorf("%s: authority %v, want the consul. SOA", c.qname, m.Ns)
		}
	}
	off := newRig(t)
	off.register(t, "default", "web", "w-1", store.Instance{Address: "10.0.0.1"})
	if m := off.exchange(t, "web.service.consul.", mdns.TypeA, false); m.Rcode != mdns.RcodeRefused {
		t.Errorf("Consul name with the Consul domain off: %s, want REFUSED", mdns.RcodeToString[m.Rcode])
	}
}

func TestConsulDomainConfig(t *testing.T) {
	for _, c := range []struct{ domain, want string }{
		{"switchyard.", "overlap"}, {"svc.switchyard.", "overlap"}, {".", "not a domain name"}, {"a..b", "not a domain name"},
	} {
		cfg := DefaultConfig()
		cfg.ConsulDomain = c.domain
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Consul domain %q: %v, want an error about %q", c.domain, err, c.want)
		}
	}
	cfg := DefaultConfig()
	cfg.ConsulDomain = "Consul"
	if err := cfg.Validate(); err != nil || cfg.ConsulDomain != "consul." || cfg.ConsulNamespace != store.DefaultNamespace {
		t.Errorf("Consul domain \"Consul\": %v, %q, namespace %q", err, cfg.ConsulDomain, cfg.ConsulNamespace)
	}
}
