package dns

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/switchyard-io/switchyard/store"
)

// recorder is a ResponseWriter that keeps the reply.
type recorder struct {
	tcp bool
	msg *mdns.Msg
}

func (r *recorder) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5353}
	}
	return &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5353}
}
func (r *recorder) WriteMsg(m *mdns.Msg) error { r.msg = m; return nil }
func (r *recorder) Write([]byte) (int, error)  { return 0, fmt.Errorf("raw writes not expected") }
func (r *recorder) Close() error               { return nil }
func (r *recorder) TsigStatus() error          { return nil }
func (r *recorder) TsigTimersOnly(bool)        {}
func (r *recorder) Hijack()                    {}

// query builds a raw query packet.
func rawQuery(name string, qtype uint16, edns bool) []byte {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// malformed are the raw packets every DNS server must survive.
func malformed() map[string][]byte {
	out := map[string][]byte{}
	hdr := func(id, qd uint16) []byte {
		b := make([]byte, 12)
		binary.BigEndian.PutUint16(b[0:], id)
		binary.BigEndian.PutUint16(b[4:], qd)
		return b
	}
	// A name whose compression pointer points at itself.
	self := append(hdr(1, 1), 0xc0, 12, 0, 1, 0, 1)
	out["self-pointing compression"] = self
	// Two pointers that point at each other.
	out["compression loop"] = append(hdr(2, 1), 0xc0, 14, 0xc0, 12, 0, 1, 0, 1)
	// A name of more than 255 bytes.
	long := hdr(3, 1)
	for range 5 {
		long = append(long, 63)
		long = append(long, []byte(strings.Repeat("a", 63))...)
	}
	out["name over 255 bytes"] = append(long, 0, 0, 1, 0, 1)
	// A label of more than 63 bytes (the length byte 64 is a reserved
	// label type).
	out["label over 63 bytes"] = append(append(append(hdr(4, 1), 64), []byte(strings.Repeat("b", 64))...), 0, 0, 1, 0, 1)
	out["truncated header"] = []byte{0, 5, 1, 0, 0}
	out["header only, qdcount 1"] = hdr(6, 1)
	q := rawQuery("web.svc.switchyard.", mdns.TypeA, false)
	out["truncated question"] = q[:len(q)-3]
	two := rawQuery("web.svc.switchyard.", mdns.TypeA, false)
	binary.BigEndian.PutUint16(two[4:], 2)
	two = append(two, q[12:]...)
	out["qdcount 2"] = two
	zero := rawQuery("web.svc.switchyard.", mdns.TypeA, false)
	binary.BigEndian.PutUint16(zero[4:], 0)
	out["qdcount 0"] = zero[:12]
	resp := rawQuery("web.svc.switchyard.", mdns.TypeA, false)
	resp[2] |= 0x80
	out["a response, not a query"] = resp
	upd := rawQuery("web.svc.switchyard.", mdns.TypeA, false)
	upd[2] = 5 << 3 // opcode UPDATE
	out["update opcode"] = upd
	out["garbage"] = []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	return out
}

func fuzzStore() *store.Store {
	st := store.New()
	in := store.Instance{Address: "10.0.0.1", Port: 80, Weight: 100, Enabled: true, Tags: []string{"http"}}
	st.Apply(1, &store.Command{Type: store.CommandRegister, Namespace: "default", Service: "web", ID: "w-1", Instance: &in})
	h := store.Instance{Address: "host.example.com", Port: 81, Weight: 1, Enabled: true}
	st.Apply(2, &store.Command{Type: store.CommandRegister, Namespace: "default", Service: "web", ID: "w-2", Instance: &h})
	return st
}

// FuzzHandler feeds raw bytes to the handler chain the way the server does:
// what does not parse is the DNS library's to reject (FORMERR); what parses
// must get one reply that packs, carries the query's id, and fits a UDP
// client's buffer and the server's own UDP cap.
func FuzzHandler(f *testing.F) {
	for _, b := range malformed() {
		f.Add(b)
	}
	for _, qt := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypeANY, mdns.TypeSOA} {
		f.Add(rawQuery("web.svc.switchyard.", qt, false))
		f.Add(rawQuery("_http._tcp.web.default.svc.switchyard.", qt, true))
	}
	f.Add(rawQuery("w-1.web.default.svc.switchyard.", mdns.TypeA, true))
	f.Add(rawQuery("example.com.", mdns.TypeA, false))
	f.Add(rawQuery("_web._http.service.consul.", mdns.TypeSRV, false))
	f.Add(rawQuery("http.web.service.consul.", mdns.TypeA, true))
	cfg := DefaultConfig()
	cfg.ConsulDomain = "consul."
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := New(cfg, fuzzStore())
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(mdns.Msg)
		if err := m.Unpack(b); err != nil {
			return
		}
		w := &recorder{tcp: len(b)%2 == 0}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeDNS(w, m)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("handler hung")
		}
		if w.msg == nil {
			t.Fatal("no reply")
		}
		if w.msg.Id != m.Id || !w.msg.Response {
			t.Fatalf("reply id %d response %v to query %d", w.msg.Id, w.msg.Response, m.Id)
		}
		packed, err := w.msg.Pack()
		if err != nil {
			t.Fatalf("reply does not pack: %v\n%v", err, w.msg)
		}
		limit := mdns.MaxMsgSize
		if !w.tcp {
			limit = mdns.MinMsgSize
			if o := m.IsEdns0(); o != nil {
				limit = max(int(o.UDPSize()), mdns.MinMsgSize)
			}
			limit = min(limit, cfg.MaxUDPSize)
		}
		if len(packed) > limit {
			t.Fatalf("reply of %d bytes over a %d-byte limit", len(packed), limit)
		}
	})
}

// The malformed packets over real UDP: FORMERR (or NOTIMP, or silence for
// what cannot even be read as a header), and the server keeps answering.
func TestMalformedOverUDP(t *testing.T) {
	r := newRig(t)
	r.register(t, "default", "web", "w-1", store.Instance{Address: "10.0.0.1"})
	conn, err := net.Dial("udp", r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for name, b := range malformed() {
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 65535)
		n, err := conn.Read(buf)
		if err != nil {
			if len(b) >= 12 && name != "a response, not a query" {
				t.Errorf("%s: no reply: %v", name, err)
			}
			continue
		}
		reply := new(mdns.Msg)
		if err := reply.Unpack(buf[:n]); err != nil {
			t.Errorf("%s: reply does not parse: %v", name, err)
			continue
		}
		if reply.Rcode != mdns.RcodeFormatError && reply.Rcode != mdns.RcodeNotImplemented {
			t.Errorf("%s: rcode %s, want FORMERR or NOTIMP", name, mdns.RcodeToString[reply.Rcode])
		}
	}
	if m := r.exchange(t, "web.svc.switchyard.", mdns.TypeA, false); len(m.Answer) != 1 {
		t.Fatalf("after the malformed packets: %v", m)
	}
}
