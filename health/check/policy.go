package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard-io/switchyard/internal/cidr"
	"github.com/switchyard-io/switchyard/store"
)

// Errors of the check policy. Both wrap nothing of the store's: the API
// maps them to 400 with a code of their own.
var (
	// ErrTargetDenied: a check's target is an address, or a name for one,
	// that the policy does not let servers probe. The error is a
	// *DeniedError naming the rule.
	ErrTargetDenied = errors.New("check target refused by the check policy")
	// ErrIntervalTooShort: a check's interval is below the policy's floor
	// (PolicyConfig.MinInterval).
	ErrIntervalTooShort = errors.New("check interval too short")
)

// Rules a target can be refused by; DeniedError.Rule is one of them.
const (
	// RuleUnspecified: 0.0.0.0/8 and ::, which reach the probing server
	// itself.
	RuleUnspecified = "unspecified-address"
	// RuleMetadata: cloud instance metadata services, by address or name
	// (their answers hold credentials).
	RuleMetadata = "cloud-metadata"
	// RuleLinkLocal: 169.254.0.0/16 and fe80::/10, where metadata services
	// and other host-local endpoints live.
	RuleLinkLocal = "link-local"
	// RuleMulticast: multicast and broadcast addresses.
	RuleMulticast = "multicast"
	// RuleLoopback: 127.0.0.0/8, ::1 and localhost, the probing server's
	// own services, unless PolicyConfig.AllowLoopback.
	RuleLoopback = "loopback"
	// RuleDenyCIDRs: a range the operator denied (--check-deny-cidrs).
	RuleDenyCIDRs = "check-deny-cidrs"
	// RuleAllowCIDRs: outside the ranges the operator allowed
	// (--check-allow-cidrs).
	RuleAllowCIDRs = "check-allow-cidrs"
)

// ruleHints say, per rule, why it exists or how to lift it.
var ruleHints = map[string]string{
	RuleUnspecified: "it reaches the probing server itself",
	RuleMetadata:    "health checks may not reach cloud metadata services",
	RuleLinkLocal:   "health checks may not reach link-local addresses, where cloud metadata services live",
	RuleMulticast:   "a health check probes one instance",
	RuleLoopback:    "a server's own loopback is not an instance's address; an operator may allow it with --check-allow-loopback",
	RuleDenyCIDRs:   "the operator denied this range with --check-deny-cidrs",
	RuleAllowCIDRs:  "it is outside every range of --check-allow-cidrs",
}

// DeniedError is a check target the policy refuses. It wraps
// ErrTargetDenied.
type DeniedError struct {
	// Target is the check's target as given.
	Target string
	// Addr is what was refused: the address, or the host name and the
	// address it resolved to.
	Addr string
	// Rule is one of the Rule constants.
	Rule string
}

func (e *DeniedError) Error() string {
	if e.Target == "" {
		// A refusal when dialling: the probe's output names the target.
		return fmt.Sprintf("address %s is refused by the %s rule of the check policy (%s)", e.Addr, e.Rule, ruleHints[e.Rule])
	}
	return fmt.Sprintf("check target %q: %s is refused by the %s rule of the check policy (%s)", e.Target, e.Addr, e.Rule, ruleHints[e.Rule])
}

// Unwrap makes errors.Is(err, ErrTargetDenied) hold.
func (e *DeniedError) Unwrap() error { return ErrTargetDenied }

// Built-in denials: they hold whatever the allow list says, because a
// probe of a metadata service would hand its credentials to whoever reads
// the check's output (SSRF), and no instance lives there.
var (
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, Oracle, DigitalOcean…
		netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
		netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
		netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	}
	// metadataNames are host names of metadata services, matched after
	// lower-casing and dropping a final dot; "metadata" alone is what GCP's
	// search domain turns into metadata.google.internal.
	metadataNames = map[string]bool{
		"metadata":                     true,
		"metadata.google.internal":     true,
		"metadata.goog":                true,
		"instance-data":                true,
		"instance-data.ec2.internal":   true,
		"metadata.tencentyun.com":      true,
		"metadata.azure.internal":      true,
		"metadata.platformequinix.com": true,
	}
	unspecified4 = netip.MustParsePrefix("0.0.0.0/8")
	linkLocal4   = netip.MustParsePrefix("169.254.0.0/16")
	linkLocal6   = netip.MustParsePrefix("fe80::/10")
	broadcast4   = netip.MustParseAddr("255.255.255.255")
	// Prefixes whose addresses carry an IPv4 address in their low bits
	// and reach it through a translator (NAT64) or are deprecated
	// spellings of it (IPv4-compatible): the IPv4 address is judged too.
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	v4compat  = netip.MustParsePrefix("::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// PolicyConfig says which targets server-side checks may probe and how
// often. Start from DefaultPolicyConfig.
type PolicyConfig struct {
	// Allow, when not empty, is the only ranges checks may reach (loopback
	// aside, see AllowLoopback). The built-in denials (metadata,
	// link-local, unspecified, multicast) hold whatever it says.
	Allow []netip.Prefix
	// Deny are ranges checks may not reach; deny wins over allow.
	Deny []netip.Prefix
	// AllowLoopback lets checks reach 127.0.0.0/8, ::1 and localhost (the
	// dev server and tests; a server of a cluster probes other hosts).
	// A loopback range in Allow allows it too.
	AllowLoopback bool
	// MinInterval is the shortest check interval a registration may ask
	// for (0: no floor).
	MinInterval time.Duration
	// Resolver looks up host names, at registration and when probing (nil:
	// the system's).
	Resolver *net.Resolver
	// ResolveTimeout bounds the lookup of a target's host name at
	// registration (0: DefaultResolveTimeout). A name that does not
	// resolve then is accepted: the probe judges what it resolves to.
	ResolveTimeout time.Duration
}

// DefaultResolveTimeout bounds a registration's lookup of a target's name.
const DefaultResolveTimeout = time.Second

// DefaultPolicyConfig is the policy of `registry server`: no loopback,
// intervals of at least a second.
func DefaultPolicyConfig() PolicyConfig {
	return PolicyConfig{MinInterval: time.Second, ResolveTimeout: DefaultResolveTimeout}
}

// Validate checks the configuration.
func (c PolicyConfig) Validate() error {
	if c.MinInterval < 0 || c.ResolveTimeout < 0 {
		return errors.New("check policy: min interval and resolve timeout must not be negative")
	}
	for _, p := range append(append([]netip.Prefix(nil), c.Allow...), c.Deny...) {
		if !p.IsValid() {
			return fmt.Errorf("check policy: invalid range %v", p)
		}
	}
	return nil
}

// Policy is the one place that decides which targets server-side checks
// may reach. The APIs ask it at registration (Check), and every probe
// dials through it (Probe), so that a name that resolves, or is rebound
// later, to a refused address is refused when probed too: the refusal
// happens on the resolved address, before the connection is opened.
// Its methods are safe for concurrent use; a nil *Policy allows
// everything at registration and is not to be probed through.
type Policy struct {
	cfg    PolicyConfig
	dialer *net.Dialer
	hc     *http.Client
}

// NewPolicy returns the policy cfg describes.
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ResolveTimeout == 0 {
		cfg.ResolveTimeout = DefaultResolveTimeout
	}
	p := &Policy{cfg: cfg}
	p.dialer = &net.Dialer{
		Timeout:   DefaultTimeout,
		KeepAlive: -1,
		Resolver:  cfg.Resolver,
		Control:   p.control,
	}
	p.hc = newHTTPClient(p.dialer)
	return p, nil
}

// control runs after the dialer has resolved the target and before it
// connects: the last moment a rebound name can be caught.
func (p *Policy) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &DeniedError{Addr: address, Rule: RuleUnspecified}
	}
	if rule := p.addrRule(ap.Addr()); rule != "" {
		return &DeniedError{Addr: ap.Addr().String(), Rule: rule}
	}
	return nil
}

// Check refuses a check a registration may not carry: a target the policy
// denies (a *DeniedError) or an interval below the floor. Checks the
// servers do not probe (ttl, none) pass. A target's host name is looked up
// (within ResolveTimeout); a name that does not resolve passes here and
// is judged at each probe.
func (p *Policy) Check(ctx context.Context, c store.Check) error {
	if p == nil || !c.Probed() {
		return nil
	}
	if iv := time.Duration(c.Interval); iv > 0 && iv < p.cfg.MinInterval {
		return fmt.Errorf("%w: check interval %s is below this server's floor of %s (--check-min-interval)",
			ErrIntervalTooShort, iv, p.cfg.MinInterval)
	}
	host, ok := targetHost(c.Type, c.Target)
	if !ok {
		return nil // the store refuses a malformed target with its own message
	}
	addr, rule, name := p.hostRule(host)
	if rule != "" {
		return &DeniedError{Target: c.Target, Addr: addr, Rule: rule}
	}
	if !name {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, p.cfg.ResolveTimeout)
	defer cancel()
	addrs, err := p.resolver().LookupNetIP(lctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if rule := p.addrRule(a); rule != "" {
			return &DeniedError{Target: c.Target, Addr: fmt.Sprintf("%s (resolves to %s)", host, a.Unmap()), Rule: rule}
		}
	}
	return nil
}

func (p *Policy) resolver() *net.Resolver {
	if p.cfg.Resolver != nil {
		return p.cfg.Resolver
	}
	return net.DefaultResolver
}

// targetHost is the host part of a check target, without brackets.
func targetHost(typ, target string) (string, bool) {
	hostPort := target
	switch typ {
	case store.CheckHTTP:
		u, err := url.Parse(target)
		if err != nil || u.Host == "" {
			return "", false
		}
		return u.Hostname(), true
	case store.CheckGRPC:
		hostPort, _, _ = strings.Cut(target, "/")
	}
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil || host == "" {
		return "", false
	}
	return host, true
}

// hostRule judges a target's host as written: an address in any spelling
// the resolvers would take, or a name. It returns what it judged, the rule
// that refuses it ("" for none), and whether host is a name to look up.
func (p *Policy) hostRule(host string) (addr, rule string, name bool) {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if a, err := netip.ParseAddr(h); err == nil {
		a = a.WithZone("")
		return a.String(), p.addrRule(a), false
	}
	if a, ok := parseLegacyIPv4(h); ok {
		// 2852039166, 0xa9fea9fe, 0251.0376.0251.0376 or 169.254.43518:
		// getaddrinfo and inet_aton read these as an address.
		return fmt.Sprintf("%s (%s)", host, a), p.addrRule(a), false
	}
	switch {
	case metadataNames[h]:
		return host, RuleMetadata, false
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		if !p.loopbackAllowed(netip.MustParseAddr("127.0.0.1")) {
			return host, RuleLoopback, false
		}
	}
	return host, "", true
}

// addrRule returns the rule that refuses a, or "".
func (p *Policy) addrRule(a netip.Addr) string {
	a = a.WithZone("").Unmap()
	if rule := builtinRule(a); rule != "" {
		return rule
	}
	if v4, ok := embeddedIPv4(a); ok {
		// The IPv4 address an IPv6 one carries is where the packets end
		// up: its denials hold too. Whether it is allowed is said by the
		// IPv6 address, the one the operator sees dialled.
		if rule := builtinRule(v4); rule != "" {
			return rule
		}
		if p.denied(v4) {
			return RuleDenyCIDRs
		}
		if v4.IsLoopback() && !p.loopbackAllowed(v4) {
			return RuleLoopback
		}
	}
	return p.operatorRule(a)
}

func (p *Policy) denied(a netip.Addr) bool { return cidr.Contains(p.cfg.Deny, a) }

// builtinRule: the denials no configuration lifts.
func builtinRule(a netip.Addr) string {
	for _, m := range metadataAddrs {
		if a == m {
			return RuleMetadata
		}
	}
	switch {
	case a.IsUnspecified() || a.Is4() && unspecified4.Contains(a):
		return RuleUnspecified
	case linkLocal4.Contains(a) || linkLocal6.Contains(a):
		return RuleLinkLocal
	case a.IsMulticast() || a == broadcast4:
		return RuleMulticast
	}
	return ""
}

// operatorRule applies the deny list, loopback and the allow list.
func (p *Policy) operatorRule(a netip.Addr) string {
	if p.denied(a) {
		return RuleDenyCIDRs
	}
	if a.IsLoopback() {
		if p.loopbackAllowed(a) {
			return ""
		}
		return RuleLoopback
	}
	if len(p.cfg.Allow) == 0 || cidr.Contains(p.cfg.Allow, a) {
		return ""
	}
	return RuleAllowCIDRs
}

func (p *Policy) loopbackAllowed(a netip.Addr) bool {
	return p.cfg.AllowLoopback || cidr.Contains(p.cfg.Allow, a)
}

// embeddedIPv4 returns the IPv4 address an IPv6 address carries in a
// NAT64, IPv4-compatible or 6to4 spelling.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case v4compat.Contains(a) && !a.IsUnspecified() && !a.IsLoopback():
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// parseLegacyIPv4 reads the IPv4 spellings inet_aton accepts and netip
// does not: one to four parts, each decimal, octal (leading 0) or hex
// (0x), the last part filling the remaining bytes.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, part := range parts {
		if part == "" {
			return netip.Addr{}, false
		}
		base, digits := 10, part
		switch {
		case strings.HasPrefix(part, "0x"):
			base, digits = 16, part[2:]
		case len(part) > 1 && part[0] == '0':
			base, digits = 8, part[1:]
		}
		if digits == "" {
			if base != 16 {
				return netip.Addr{}, false
			}
			digits = "0" // inet_aton takes a bare 0x as 0
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	last := len(vals) - 1
	for _, v := range vals[:last] {
		if v > 0xff {
			return netip.Addr{}, false
		}
	}
	if vals[last] >= 1<<(8*(4-last)) {
		return netip.Addr{}, false
	}
	var n uint32
	for i, v := range vals[:last] {
		n |= uint32(v) << (24 - 8*i)
	}
	n |= uint32(vals[last])
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
