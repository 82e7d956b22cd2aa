package api

import "testing"

// FuzzDeltaToken: whatever delta= holds, reading it as a token never
// panics; a value read as one is exactly the token the server writes for
// its base and scope hash, and fits the parameter's bound; and every token
// the server writes reads back as itself.
func FuzzDeltaToken(f *testing.F) {
	for _, s := range []string{
		"d1.5.0123456789abcdef0123456789abcdef", "d1.18446744073709551615.0123456789abcdef0123456789abcdef",
		"d1.18446744073709551616.0123456789abcdef0123456789abcdef", "d1.05.0123456789abcdef0123456789abcdef",
		"d1.+5.0123456789abcdef0123456789abcdef", "d1.5.0123456789ABCDEF0123456789abcdef", "d1.5.", "d1..", "d2.5.0", "true", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if base, scope, ok := parseDeltaToken(v); ok {
			if got := deltaToken(base, scope); got != v {
				t.Fatalf("%q read as base %d scope %q, which the server writes %q", v, base, scope, got)
			}
			if len(v) > maxDeltaParam {
				t.Fatalf("a token of %d bytes read; delta= takes at most %d", len(v), maxDeltaParam)
			}
		}
		base := uint64(len(v)) * 1_000_000_007_000_000
		tok := deltaToken(base, scopeHash(v))
		if b, s, ok := parseDeltaToken(tok); !ok || b != base || s != scopeHash(v) || len(tok) > maxDeltaParam {
			t.Fatalf("the server's token %q reads as %d %q %v", tok, b, s, ok)
		}
	})
}
