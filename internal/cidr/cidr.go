// Package cidr reads the lists of address ranges that flags give, and
// tells whether an address falls in one of them. Addresses and ranges are
// compared unmapped: ::ffff:10.0.0.1 is 10.0.0.1.
package cidr

import (
	"fmt"
	"net/netip"
	"strings"
)

// Parse reads a comma-separated list of CIDRs (a bare address is its own
// /32 or /128; an IPv4-mapped range is its IPv4 range), as flags such as
// --check-allow-cidrs and --trusted-proxies give them. Empty items are
// skipped.
func Parse(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR (like 10.0.0.0/8) or an address", f)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR (like 10.0.0.0/8): %w", f, err)
		}
		if p.Addr().Is4In6() {
			// ::ffff:10.0.0.0/104 means 10.0.0.0/8: addresses are judged
			// unmapped.
			if p.Bits() < 96 {
				return nil, fmt.Errorf("%q: an IPv4-mapped range needs at least 96 bits", f)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Contains reports whether a falls in one of ps.
func Contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
