package dns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/switchyard-io/switchyard/store"
)

// bigService registers n instances of svc in namespace default, with IPv4
// or IPv6 addresses.
func (r *rig) bigService(t *testing.T, svc string, n int, v6 bool) {
	t.Helper()
	for k := range n {
		addr := fmt.Sprintf("10.20.%d.%d", k/250, 1+k%250)
		if v6 {
			addr = fmt.Sprintf("2001:db8::%x", k+1)
		}
		r.register(t, "default", svc, fmt.Sprintf("i-%04d", k), store.Instance{Address: addr, Port: 8000 + k%1000})
	}
}

// udpRaw sends q over real UDP with the miekg/dns client and returns the
// reply's bytes as they came, read into a 64 KiB buffer so that nothing
// the server sends is cut on this side.
func (r *rig) udpRaw(t *testing.T, q *mdns.Msg) []byte {
	t.Helper()
	c := &mdns.Client{Net: "udp", UDPSize: mdns.MaxMsgSize, Timeout: 5 * time.Second}
	conn, err := c.Dial(r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	raw, err := conn.ReadMsgHeader(nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// parseWhole parses a raw reply and checks that every record in it is
// whole: the header's counts are the records that parse, and the parsed
// message packs back to the very same bytes (nothing cut, nothing after).
func parseWhole(t *testing.T, raw []byte) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	if err := m.Unpack(raw); err != nil {
		t.Fatalf("reply of %d bytes does not parse: %v", len(raw), err)
	}
	counts := [3]int{int(binary.BigEndian.Uint16(raw[6:])), int(binary.BigEndian.Uint16(raw[8:])), int(binary.BigEndian.Uint16(raw[10:]))}
	if got := [3]int{len(m.Answer), len(m.Ns), len(m.Extra)}; got != counts {
		t.Fatalf("header counts %v, records parsed %v: a record is cut", counts, got)
	}
	m.Compress = true
	again, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, raw) {
		t.Fatalf("reply of %d bytes packs back to %d different bytes", len(raw), len(again))
	}
	return m
}

// checkGlue checks that the additional section holds only the OPT record
// and the addresses of SRV targets kept in the answer: no glue for a
// record that was dropped.
func checkGlue(t *testing.T, m *mdns.Msg) {
	t.Helper()
	targets := map[string]bool{}
	for _, rr := range m.Answer {
		if srv, ok := rr.(*mdns.SRV); ok {
			targets[srv.Target] = true
		}
	}
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == mdns.TypeOPT {
			continue
		}
		if !targets[rr.Header().Name] {
			t.Fatalf("additional record %v for an SRV target not in the answer", rr)
		}
	}
}

// A 2,000-instance service queried over UDP by a client claiming a 65,000
// byte EDNS buffer: the reply stays within --dns-max-udp-size (1232 by
// default) or the client's own smaller buffer, is cut at a record
// boundary with TC set, keeps the OPT record and only the glue of the SRV
// records kept. Over TCP the same questions get --dns-max-answers records.
func TestDNSIsNoAmplifier(t *testing.T) {
	r := newRig(t)
	r.bigService(t, "big4", 2000, false)
	r.bigService(t, "big6", 2000, true)
	questions := []struct {
		name  string
		qtype uint16
	}{
		{"big4.svc.switchyard.", mdns.TypeA},
		{"big6.svc.switchyard.", mdns.TypeAAAA},
		{"big4.svc.switchyard.", mdns.TypeSRV},
		{"big6.svc.switchyard.", mdns.TypeSRV},
	}
	for _, c := range []struct {
		claim int // the client's EDNS buffer size; 0: no EDNS
		limit int
	}{
		{65000, 1232},
		{4096, 1232},
		{1232, 1232},
		{800, 800},
		{512, 512}, // the OPT record counts within the 512 bytes
		{0, 512},
	} {
		for _, qq := range questions {
			t.Run(fmt.Sprintf("UDP/%s/%s/edns=%d", qq.name, mdns.TypeToString[qq.qtype], c.claim), func(t *testing.T) {
				q := new(mdns.Msg)
				q.SetQuestion(qq.name, qq.qtype)
				if c.claim > 0 {
					q.SetEdns0(uint16(c.claim), false)
				}
				raw := r.udpRaw(t, q)
				if len(raw) > c.limit {
					t.Fatalf("reply of %d bytes to a query claiming %d: over the %d-byte limit", len(raw), c.claim, c.limit)
				}
				m := parseWhole(t, raw)
				if !m.Truncated || len(m.Answer) == 0 {
					t.Fatalf("TC=%v with %d answers: want TC and some answers", m.Truncated, len(m.Answer))
				}
				for _, rr := range m.Answer {
					if rr.Header().Rrtype != qq.qtype {
						t.Fatalf("answer %v to a %s question", rr, mdns.TypeToString[qq.qtype])
					}
				}
				if (m.IsEdns0() != nil) != (c.claim > 0) {
					t.Fatalf("OPT in the reply %v, in the query %v", m.IsEdns0() != nil, c.claim > 0)
				}
				checkGlue(t, m)
			})
		}
	}
	// The OPT record, client subnet echo included, counts within the
	// client's buffer: it is not added after fitting the answers.
	t.Run("UDP/edns=512 with client subnet", func(t *testing.T) {
		q := new(mdns.Msg)
		q.SetQuestion("big4.svc.switchyard.", mdns.TypeA)
		q.SetEdns0(512, false)
		o := q.IsEdns0()
		o.Option = append(o.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0).To4()})
		raw := r.udpRaw(t, q)
		if len(raw) > 512 {
			t.Fatalf("reply of %d bytes to a query claiming 512", len(raw))
		}
		m := parseWhole(t, raw)
		if !m.Truncated || m.IsEdns0() == nil {
			t.Fatalf("TC=%v, OPT %v: want both", m.Truncated, m.IsEdns0())
		}
	})
	maxAnswers := DefaultConfig().MaxAnswers
	if maxAnswers <= 0 {
		t.Fatalf("default max answers %d: every answer must be capped", maxAnswers)
	}
	for _, qq := range questions {
		t.Run(fmt.Sprintf("TCP/%s/%s", qq.name, mdns.TypeToString[qq.qtype]), func(t *testing.T) {
			m := r.exchange(t, qq.name, qq.qtype, true, func(m *mdns.Msg) { m.SetEdns0(65000, false) })
			if len(m.Answer) != maxAnswers || m.Truncated {
				t.Fatalf("%d answers, TC=%v: want the %d of --dns-max-answers, no TC", len(m.Answer), m.Truncated, maxAnswers)
			}
			if qq.qtype == mdns.TypeSRV && len(m.Extra) != maxAnswers+1 {
				t.Fatalf("%d additional records: want the %d targets' addresses and the OPT", len(m.Extra), maxAnswers)
			}
			checkGlue(t, m)
		})
	}
}

// With --dns-max-udp-size 4096, a client claiming 4096 gets up to 4096
// bytes, one claiming more still no more than 4096.
func TestDNSMaxUDPSize(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxUDPSize = 4096 })
	r.bigService(t, "big4", 2000, false)
	for _, c := range []struct {
		claim, limit int
	}{{4096, 4096}, {65000, 4096}, {2000, 2000}} {
		t.Run(fmt.Sprintf("edns=%d", c.claim), func(t *testing.T) {
			q := new(mdns.Msg)
			q.SetQuestion("big4.svc.switchyard.", mdns.TypeA)
			q.SetEdns0(uint16(c.claim), false)
			raw := r.udpRaw(t, q)
			// Records are 16 bytes: a reply within one record of the
			// limit used the buffer, beyond 1232 (the default cap).
			if len(raw) > c.limit || len(raw) <= c.limit-16 {
				t.Fatalf("reply of %d bytes to a query claiming %d: want up to %d, and no less than %d", len(raw), c.claim, c.limit, c.limit-16)
			}
			if m := parseWhole(t, raw); !m.Truncated {
				t.Fatal("no TC on a cut answer")
			}
		})
	}
}

func TestConfigBounds(t *testing.T) {
	for _, c := range []struct {
		name string
		tune func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"udp 512", func(c *Config) { c.MaxUDPSize = 512 }, true},
		{"udp 65535", func(c *Config) { c.MaxUDPSize = 65535 }, true},
		{"udp 511", func(c *Config) { c.MaxUDPSize = 511 }, false},
		{"udp 65536", func(c *Config) { c.MaxUDPSize = 65536 }, false},
		{"no TCP connections", func(c *Config) { c.MaxTCPConns = 0 }, false},
		{"no idle timeout", func(c *Config) { c.TCPIdleTimeout = 0 }, false},
		{"negative max answers", func(c *Config) { c.MaxAnswers = -1 }, false},
		{"no cap on answers", func(c *Config) { c.MaxAnswers = 0 }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.tune(&cfg)
			if err := cfg.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate: %v, want ok %v", err, c.ok)
			}
		})
	}
}

// tcpQuery asks for web.svc.switchyard. A on conn.
func tcpQuery(conn *mdns.Conn) error {
	c := &mdns.Client{Net: "tcp", Timeout: 5 * time.Second}
	q := new(mdns.Msg)
	q.SetQuestion("web.svc.switchyard.", mdns.TypeA)
	m, _, err := c.ExchangeWithConn(q, conn)
	if err != nil {
		return err
	}
	if len(m.Answer) != 1 {
		return fmt.Errorf("%d answers", len(m.Answer))
	}
	return nil
}

// closedWithin reports whether the server closes conn before d: a read
// that ends with EOF or a reset, not with the deadline.
func closedWithin(conn net.Conn, d time.Duration) error {
	conn.SetReadDeadline(time.Now().Add(d))
	var buf [512]byte
	n, err := conn.Read(buf[:])
	var ne net.Error
	switch {
	case err == nil:
		return fmt.Errorf("read %d bytes from a connection that should be closed", n)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("still open after %v", d)
	}
	return nil
}

// More TCP connections than --dns-max-tcp-connections: the ones above it
// are closed at once, the admitted ones keep answering, and a slot freed
// is given to the next connection.
func TestDNSTCPConnectionLimit(t *testing.T) {
	const limit, extra = 4, 3
	r := newRig(t, func(c *Config) { c.MaxTCPConns, c.TCPIdleTimeout = limit, time.Minute })
	r.register(t, "default", "web", "w-1", store.Instance{Address: "10.0.0.1"})
	dial := func() (*mdns.Conn, error) {
		c, err := net.DialTimeout("tcp", r.srv.Addr(), 5*time.Second)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		return &mdns.Conn{Conn: c}, nil
	}
	admitted := make([]*mdns.Conn, limit)
	for k := range admitted {
		c, err := dial()
		if err == nil {
			err = tcpQuery(c)
		}
		if err != nil {
			t.Fatalf("connection %d of %d: %v", k+1, limit, err)
		}
		admitted[k] = c
	}
	for k := range extra {
		// The server may reset it before the handshake is seen through on
		// this side: refused all the same.
		c, err := dial()
		if err == nil {
			err = closedWithin(c, 2*time.Second)
		} else {
			err = nil
		}
		if err != nil {
			t.Fatalf("connection %d over the limit of %d: %v", k+1, limit, err)
		}
	}
	if n := r.srv.Stats().TCPRefused(); n != extra {
		t.Fatalf("%d connections counted refused, want %d", n, extra)
	}
	for k, c := range admitted {
		if err := tcpQuery(c); err != nil {
			t.Fatalf("admitted connection %d after the refusals: %v", k+1, err)
		}
	}
	// One admitted connection closes: its slot goes to the next one
	// (once the server has seen the close).
	admitted[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dial()
		if err == nil {
			err = tcpQuery(c)
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection admitted after one closed: %v", err)
		}
	}
}

// A TCP connection that sends nothing, and one that goes silent after a
// query, are both closed after --dns-tcp-idle-timeout.
func TestDNSTCPIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	r := newRig(t, func(c *Config) { c.TCPIdleTimeout = idle })
	r.register(t, "default", "web", "w-1", store.Instance{Address: "10.0.0.1"})
	silent, err := net.DialTimeout("tcp", r.srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	used, err := net.DialTimeout("tcp", r.srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer used.Close()
	if err := tcpQuery(&mdns.Conn{Conn: used}); err != nil {
		t.Fatal(err)
	}
	// Well under the old fixed timeouts (5 s before the first query, 10 s
	// between queries), well over the idle timeout.
	for name, c := range map[string]net.Conn{"silent from the start": silent, "silent after a query": used} {
		if err := closedWithin(c, 3*time.Second); err != nil {
			t.Errorf("%s, idle timeout %v: %v", name, idle, err)
		}
	}
}
