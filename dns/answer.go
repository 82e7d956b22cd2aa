package dns

import (
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// answerer answers the questions inside the zone.
type answerer struct {
	cfg *Config
	cat route.Catalog
}

// name is a parsed question name.
type name struct {
	ns, svc, id string // id: an instance's own name (SRV targets)
	tag         string // _tag._tcp form
	apex        bool
	zone        string // the zone it was asked in (the Consul domain or ours)
}

// parse reads a name below the zone:
//
//	{svc}.svc  {svc}.{ns}.svc  _{tag}._tcp.{svc}[.{ns}].svc  {id}.{svc}.{ns}.svc
func (a *answerer) parse(qname string) (name, bool) {
	if a.cfg.ConsulDomain != "" && mdns.IsSubDomain(a.cfg.ConsulDomain, qname) {
		return a.parseConsul(qname)
	}
	if qname == a.cfg.Zone {
		return name{apex: true, zone: a.cfg.Zone}, true
	}
	rel := strings.TrimSuffix(qname, "."+a.cfg.Zone)
	labels := strings.Split(rel, ".")
	n := name{zone: a.cfg.Zone}
	if len(labels) >= 2 && strings.HasPrefix(labels[0], "_") && labels[1] == "_tcp" {
		n.tag = labels[0][1:]
		labels = labels[2:]
		if n.tag == "" {
			return n, false
		}
	}
	if len(labels) < 2 || labels[len(labels)-1] != "svc" {
		return n, false
	}
	labels = labels[:len(labels)-1]
	switch {
	case len(labels) == 1:
		n.svc, n.ns = labels[0], store.DefaultNamespace
	case len(labels) == 2:
		n.svc, n.ns = labels[0], labels[1]
	case len(labels) == 3 && n.tag == "":
		n.id, n.svc, n.ns = labels[0], labels[1], labels[2]
	default:
		return n, false
	}
	for _, l := range []string{n.ns, n.svc, n.id} {
		if l != "" && store.ValidateName("name", l) != nil {
			return n, false
		}
	}
	return n, true
}

// parseConsul reads Consul's names below the Consul domain, in the
// Consul namespace:
//
//	{svc}.service  {tag}.{svc}.service  _{svc}._tcp.service  _{svc}._{tag}.service
func (a *answerer) parseConsul(qname string) (name, bool) {
	n := name{zone: a.cfg.ConsulDomain, ns: a.cfg.ConsulNamespace}
	if qname == a.cfg.ConsulDomain {
		n.apex = true
		return n, true
	}
	labels := strings.Split(strings.TrimSuffix(qname, "."+a.cfg.ConsulDomain), ".")
	if len(labels) < 2 || labels[len(labels)-1] != "service" {
		return n, false
	}
	labels = labels[:len(labels)-1]
	switch {
	case len(labels) == 2 && strings.HasPrefix(labels[0], "_") && strings.HasPrefix(labels[1], "_"):
		n.svc = labels[0][1:]
		if labels[1] != "_tcp" {
			n.tag = labels[1][1:]
			if n.tag == "" {
				return n, false
			}
		}
	case len(labels) == 1:
		n.svc = labels[0]
	case len(labels) == 2:
		n.tag, n.svc = labels[0], labels[1]
		if n.tag == "" {
			return n, false
		}
	default:
		return n, false
	}
	return n, store.ValidateName("name", n.svc) == nil
}

func (a *answerer) serve(q *query) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(q.req)
	m.Authoritative = true
	n, ok := a.parse(q.name)
	switch {
	case !ok:
		return a.negative(m, n.zone, mdns.RcodeNameError)
	case n.apex:
		if q.q.Qtype == mdns.TypeSOA {
			m.Answer = append(m.Answer, a.soa(n.zone))
			return m
		}
		return a.negative(m, n.zone, mdns.RcodeSuccess)
	case a.cfg.Allowed != nil && !a.cfg.Allowed(n.ns, n.svc):
		m.Authoritative = false
		m.Rcode = mdns.RcodeRefused
		return m
	case n.id != "":
		return a.instance(m, q, n)
	}
	res, err := route.Lookup(a.cat, route.Query{Namespace: n.ns, Service: n.svc, Caller: q.caller, Tag: n.tag, Topology: a.cfg.Topology, NoWatch: true})
	if err != nil {
		if errors.Is(err, store.ErrNamespaceNotFound) || errors.Is(err, store.ErrServiceNotFound) {
			return a.negative(m, n.zone, mdns.RcodeNameError)
		}
		m.Rcode = mdns.RcodeServerFailure
		return m
	}
	qt := q.q.Qtype
	if qt == mdns.TypeA || qt == mdns.TypeAAAA || qt == mdns.TypeSRV {
		set := a.records(res, q.caller, n.tag, qt, q.name)
		m.Answer = make([]mdns.RR, 0, len(set.answers))
		for _, o := range set.order() {
			m.Answer = append(m.Answer, set.answers[o.k])
			if set.extras[o.k] != nil {
				m.Extra = append(m.Extra, set.extras[o.k])
			}
		}
	}
	if len(m.Answer) == 0 {
		// A known name: NOERROR without data, with the SOA for negative
		// caching (an unsupported type, a tag nobody carries, or no
		// instance that may take traffic).
		return a.negative(m, n.zone, mdns.RcodeSuccess)
	}
	return m
}

// rrSet is the records of one selection for one question type: built once
// per view, caller and question (records are never modified after, so
// replies share them), then ordered afresh for every query.
type rrSet struct {
	answers []mdns.RR // one per usable candidate, in selection order
	extras  []mdns.RR // the SRV target's address record, or nil
	levels  []route.Level
	weights []float64
}

type rrKey struct {
	caller store.Locality
	tag    string
	qtype  uint16
	owner  string
}

func (a *answerer) records(res route.Result, caller store.Locality, tag string, qt uint16, owner string) *rrSet {
	return store.MemoKeyed(res.Served, rrKey{caller, tag, qt, owner}, route.MaxCachedPerView,
		func() *rrSet { return a.buildRecords(res, qt, owner) })
}

func (a *answerer) buildRecords(res route.Result, qt uint16, owner string) *rrSet {
	sel := res.Chosen.Selection
	ttl := ttlOf(res.Served)
	prio := map[route.Level]uint16{}
	for k, l := range sel.Levels {
		prio[l] = uint16(k)
	}
	set := &rrSet{}
	for _, c := range sel.Candidates {
		in := c.Instance
		var ans, extra mdns.RR
		if qt == mdns.TypeSRV {
			target := a.instanceName(in)
			if isIP(in.Address) {
				extra = addressRR(target, in, addressType(in.Address), ttl)
			} else {
				target = mdns.Fqdn(strings.ToLower(in.Address))
			}
			ans = &mdns.SRV{
				Hdr:      mdns.RR_Header{Name: owner, Rrtype: mdns.TypeSRV, Class: mdns.ClassINET, Ttl: ttl},
				Priority: prio[c.Level], Weight: uint16(in.Weight), Port: uint16(in.Port), Target: target,
			}
		} else if ans = addressRR(owner, in, qt, ttl); ans == nil {
			continue
		}
		set.answers = append(set.answers, ans)
		set.extras = append(set.extras, extra)
		set.levels = append(set.levels, c.Level)
		set.weights = append(set.weights, float64(in.Weight))
	}
	return set
}

// order returns the records' indexes nearest level first and, within a
// level, in a weighted random order: each one comes first with probability
// weight/total of its level (Efraimidis–Spirakis: sort by -ln(u)/weight).
func (s *rrSet) order() []keyed {
	ks := make([]keyed, len(s.answers))
	for k := range ks {
		u := rand.Float64()
		for u == 0 {
			u = rand.Float64()
		}
		ks[k] = keyed{k, -math.Log(u) / s.weights[k]}
	}
	slices.SortFunc(ks, func(x, y keyed) int {
		if lx, ly := s.levels[x.k], s.levels[y.k]; lx != ly {
			return int(lx - ly)
		}
		switch {
		case x.key < y.key:
			return -1
		case x.key > y.key:
			return 1
		}
		return 0
	})
	return ks
}

// keyed is a record's index and its shuffle key.
type keyed struct {
	k   int
	key float64
}

// instance answers A/AAAA for one instance's own name (SRV targets),
// whatever its health: the SRV answer already chose it.
func (a *answerer) instance(m *mdns.Msg, q *query, n name) *mdns.Msg {
	v, err := a.cat.Service(n.ns, n.svc)
	if err != nil {
		return a.negative(m, n.zone, mdns.RcodeNameError)
	}
	in := v.Instance(n.id)
	if in == nil {
		return a.negative(m, n.zone, mdns.RcodeNameError)
	}
	if rr := addressRR(q.q.Name, in, q.q.Qtype, ttlOf(v)); rr != nil {
		m.Answer = append(m.Answer, rr)
		return m
	}
	return a.negative(m, n.zone, mdns.RcodeSuccess)
}

func (a *answerer) instanceName(in *store.Instance) string {
	return in.ID + "." + in.Service + "." + in.Namespace + ".svc." + a.cfg.Zone
}

// negative is NXDOMAIN or NODATA, with the SOA of the zone asked in (ours
// or the Consul domain) in the authority section, so that resolvers cache
// the absence for its minimum TTL.
func (a *answerer) negative(m *mdns.Msg, zone string, code int) *mdns.Msg {
	m.Rcode = code
	m.Answer, m.Extra = nil, nil
	m.Ns = []mdns.RR{a.soa(zone)}
	return m
}

func (a *answerer) soa(zone string) mdns.RR {
	ttl := uint32(store.DefaultDNSTTL / time.Second)
	return &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
		Ns:      "ns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl,
	}
}

func ttlOf(v *store.ServiceView) uint32 {
	return uint32(time.Duration(v.Service.DNSTTL) / time.Second)
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func addressType(s string) uint16 {
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return mdns.TypeA
	}
	return mdns.TypeAAAA
}

// addressRR is in's A or AAAA record under owner, nil when its address is
// of the other family or a host name.
func addressRR(owner string, in *store.Instance, qtype uint16, ttl uint32) mdns.RR {
	ip, err := netip.ParseAddr(in.Address)
	if err != nil {
		return nil
	}
	hdr := mdns.RR_Header{Name: owner, Class: mdns.ClassINET, Ttl: ttl}
	switch {
	case qtype == mdns.TypeA && ip.Is4():
		hdr.Rrtype = mdns.TypeA
		return &mdns.A{Hdr: hdr, A: ip.AsSlice()}
	case qtype == mdns.TypeAAAA && ip.Is6() && !ip.Is4In6():
		hdr.Rrtype = mdns.TypeAAAA
		return &mdns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()}
	}
	return nil
}
