package dns

import (
	"log/slog"
	"net"
	"net/netip"

	mdns "github.com/miekg/dns"

	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// query is one request on its way down the chain.
type query struct {
	req *mdns.Msg
	q   mdns.Question
	// name is the question's name, lower case.
	name string
	// remote is the client's address; tcp whether it came over TCP.
	remote netip.Addr
	tcp    bool
	// opt is the client's EDNS record, nil without EDNS; ecs its client
	// subnet option, if any.
	opt *mdns.OPT
	ecs *mdns.EDNS0_SUBNET
	// caller is the locality answers are chosen for; scope the prefix
	// length of the subnet that decided it (for the ECS echo).
	caller store.Locality
	scope  uint8
}

// step is one handler of the chain: it returns the reply.
type step func(q *query) *mdns.Msg

// chain builds the handler: recover → check → zone → caller → answer, and
// the reply fitted to the transport on the way out.
func chain(cfg *Config, cat route.Catalog, logger *slog.Logger, stats *Stats) mdns.Handler {
	a := &answerer{cfg: cfg, cat: cat}
	var h step = a.serve
	h = withCaller(cfg, h)
	h = whenReady(cfg.Ready, h)
	h = inZone(cfg, h)
	h = checked(h)
	h = recovered(logger, h)
	return mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		q := &query{req: r}
		if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
			q.remote = ap.Addr().Unmap()
		}
		_, q.tcp = w.RemoteAddr().(*net.TCPAddr)
		reply := h(q)
		finish(q, reply, cfg)
		if stats != nil {
			stats.count(reply)
		}
		if err := w.WriteMsg(reply); err != nil {
			logger.Debug("DNS reply not sent", "err", err)
		}
	})
}

// recovered turns a panic into SERVFAIL: a bug must not take the server
// down with it.
func recovered(logger *slog.Logger, next step) step {
	return func(q *query) (reply *mdns.Msg) {
		defer func() {
			if p := recover(); p != nil {
				logger.Error("panic answering a DNS query", "panic", p, "question", q.req.Question)
				reply = rcode(q, mdns.RcodeServerFailure)
			}
		}()
		return next(q)
	}
}

// checked refuses what is not one plain question: FORMERR for anything but
// exactly one question in a query, NOTIMP for other opcodes, REFUSED for
// classes other than IN.
func checked(next step) step {
	return func(q *query) *mdns.Msg {
		r := q.req
		if r.Response || len(r.Question) != 1 || len(r.Answer) > 0 || len(r.Ns) > 0 {
			return rcode(q, mdns.RcodeFormatError)
		}
		if r.Opcode != mdns.OpcodeQuery {
			return rcode(q, mdns.RcodeNotImplemented)
		}
		q.q = r.Question[0]
		q.name = mdns.CanonicalName(q.q.Name)
		if q.q.Qclass != mdns.ClassINET && q.q.Qclass != mdns.ClassANY {
			return rcode(q, mdns.RcodeRefused)
		}
		q.opt = r.IsEdns0()
		if q.opt != nil && q.opt.Version() != 0 {
			reply := rcode(q, mdns.RcodeBadVers)
			return reply
		}
		return next(q)
	}
}

// whenReady answers SERVFAIL while the catalog replica has not caught up.
func whenReady(ready func() bool, next step) step {
	return func(q *query) *mdns.Msg {
		if ready != nil && !ready() {
			return rcode(q, mdns.RcodeServerFailure)
		}
		return next(q)
	}
}

// inZone refuses names outside the zone (and the Consul domain, when
// served): never an open resolver.
func inZone(cfg *Config, next step) step {
	return func(q *query) *mdns.Msg {
		if !mdns.IsSubDomain(cfg.Zone, q.name) && (cfg.ConsulDomain == "" || !mdns.IsSubDomain(cfg.ConsulDomain, q.name)) {
			return rcode(q, mdns.RcodeRefused)
		}
		return next(q)
	}
}

// withCaller decides the caller's locality: the subnet table, by the
// query's EDNS Client Subnet or else its source address, or the server's
// own locality.
func withCaller(cfg *Config, next step) step {
	return func(q *query) *mdns.Msg {
		q.caller = cfg.Locality
		addr := q.remote
		if q.opt != nil {
			for _, o := range q.opt.Option {
				if e, ok := o.(*mdns.EDNS0_SUBNET); ok {
					q.ecs = e
					if a, ok := netip.AddrFromSlice(e.Address); ok {
						addr = a.Unmap()
					}
				}
			}
		}
		if l, bits, ok := matchSubnet(cfg.Subnets, addr); ok {
			q.caller, q.scope = l, bits
		}
		return next(q)
	}
}

func matchSubnet(subnets []SubnetLocality, a netip.Addr) (store.Locality, uint8, bool) {
	best, bits, found := store.Locality{}, -1, false
	if !a.IsValid() {
		return best, 0, false
	}
	for _, s := range subnets {
		if s.Prefix.Contains(a) && s.Prefix.Bits() > bits {
			best, bits, found = s.Locality, s.Prefix.Bits(), true
		}
	}
	return best, uint8(max(bits, 0)), found
}

// rcode is an empty reply with an error code.
func rcode(q *query, code int) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetRcode(q.req, code)
	m.Authoritative = code != mdns.RcodeRefused
	return m
}

// finish caps the answers, adds EDNS when the client used it, and fits the
// reply to the transport: over UDP to the client's buffer (512 bytes, or
// its EDNS size) but never beyond cfg.MaxUDPSize, so that a forged source
// address and a large claimed buffer get no flood sent to a victim; over
// TCP to the 64 KiB message limit. Additional records go first; answers
// that do not fit are dropped and the reply is marked truncated, so the
// client retries over TCP.
func finish(q *query, m *mdns.Msg, cfg *Config) {
	if cfg.MaxAnswers > 0 && len(m.Answer) > cfg.MaxAnswers {
		m.Answer = m.Answer[:cfg.MaxAnswers]
		m.Extra = keepExtrasFor(m.Answer, m.Extra)
	}
	size := mdns.MaxMsgSize
	if !q.tcp {
		size = mdns.MinMsgSize
		if q.opt != nil {
			size = max(int(q.opt.UDPSize()), mdns.MinMsgSize)
		}
		size = min(size, cfg.MaxUDPSize)
	}
	if q.opt != nil {
		o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		o.SetUDPSize(4096)
		if q.ecs != nil {
			e := *q.ecs
			e.SourceScope = q.scope
			o.Option = append(o.Option, &e)
		}
		// Added before fitting: Truncate keeps the OPT record and counts
		// it within size.
		m.Extra = append(m.Extra, o)
	}
	fit(m, size)
}

// fit trims m to size bytes: answers are kept first (as many as fit, in
// order), then the authority section, then additional records. The reply
// is marked truncated only when answers were left out: RFC 2181 §9 does not
// want TC for additional records a client can do without.
func fit(m *mdns.Msg, size int) {
	n, tc := len(m.Answer), m.Truncated
	m.Truncate(size) // one pass, with compression
	m.Truncated = tc || len(m.Answer) < n
	if len(m.Answer) < n {
		m.Extra = keepExtrasFor(m.Answer, m.Extra)
	}
}

// keepExtrasFor keeps the additional records that belong to the SRV
// targets of answers, and the OPT record.
func keepExtrasFor(answers, extra []mdns.RR) []mdns.RR {
	targets := map[string]bool{}
	for _, rr := range answers {
		if srv, ok := rr.(*mdns.SRV); ok {
			targets[srv.Target] = true
		}
	}
	var out []mdns.RR
	for _, rr := range extra {
		if h := rr.Header(); targets[h.Name] || h.Rrtype == mdns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}
