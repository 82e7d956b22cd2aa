package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

func hashOf(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func accessor(n int) string { return fmt.Sprintf("%032x", n) }

func rules(t *testing.T, specs ...string) []Rule {
	t.Helper()
	var out []Rule
	for _, s := range specs {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", s, err)
		}
		out = append(out, r)
	}
	return out
}

func tokenCmd(typ CommandType, index uint64, tok Token) *Command {
	return &Command{Type: typ, Time: at(index), Token: &tok}
}

func TestRuleParsingAndMatching(t *testing.T) {
	tok := &Token{Rules: rules(t, "read:*", "write:payments/checkout-", "admin:payments/checkout-cart")}
	cases := []struct {
		access  Access
		ns, svc string
		want    bool
	}{
		{AccessRead, "default", "web", true},
		{AccessRead, "default", "", true},
		{AccessRead, "", "", true}, // cluster-wide read
		{AccessWrite, "default", "web", false},
		{AccessWrite, "payments", "checkout-api", true},
		{AccessWrite, "payments", "checkout", false}, // shorter than the prefix
		{AccessWrite, "payments", "", false},         // the namespace itself
		{AccessWrite, "other", "checkout-api", false},
		{AccessAdmin, "payments", "checkout-cart", true},
		{AccessAdmin, "payments", "checkout-cart-v2", true},
		{AccessAdmin, "payments", "checkout-api", false},
		{AccessAdmin, "", "", false},
	}
	for _, c := range cases {
		if got := tok.Allows(c.access, c.ns, c.svc); got != c.want {
			t.Errorf("Allows(%s, %q, %q) = %v, want %v", c.access, c.ns, c.svc, got, c.want)
		}
	}
	if !(&Token{Rules: rules(t, "admin:*")}).Allows(AccessAdmin, "", "") {
		t.Errorf("admin:* does not administer the cluster")
	}
	if (&Token{Rules: rules(t, "admin:default")}).Allows(AccessRead, "", "") {
		t.Errorf("admin:default reads the whole cluster")
	}
	nsOnly := &Token{Rules: rules(t, "read:team-a/api-")}
	if !nsOnly.AllowsSome(AccessRead, "team-a") || nsOnly.AllowsSome(AccessRead, "team-b") || nsOnly.AllowsSome(AccessWrite, "team-a") {
		t.Errorf("AllowsSome is wrong for %v", nsOnly.Rules)
	}
	var none *Token
	if none.Allows(AccessRead, "default", "web") || none.AllowsSome(AccessRead, "") {
		t.Errorf("a nil token allows something")
	}

	for _, bad := range []string{"", "read", "root:*", "read:Bad", "read:default/UP", "read:default/a_b", "write:-x", "none:*"} {
		if _, err := ParseRule(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRule(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	r, err := ParseRule("write:payments/checkout-")
	if err != nil || r.String() != "write:payments/checkout-" {
		t.Errorf("round trip: %v %v", r, err)
	}
}

func TestTokensApplyAndProtectTheLastAdmin(t *testing.T) {
	s := New()
	admin := Token{AccessorID: accessor(1), SecretHash: hashOf("boot"), Description: "bootstrap", Rules: rules(t, "admin:*")}
	if _, err := s.Apply(1, tokenCmd(CommandBootstrapACL, 1, Token{AccessorID: accessor(9), SecretHash: hashOf("x"), Rules: rules(t, "admin:default")})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bootstrap with a token that is not admin:* = %v, want ErrInvalid", err)
	}
	mustApply(t, s, 2, tokenCmd(CommandBootstrapACL, 2, admin))
	if !s.ACLBootstrapped() {
		t.Fatalf("not bootstrapped after bootstrap")
	}
	if _, err := s.Apply(3, tokenCmd(CommandBootstrapACL, 3, Token{AccessorID: accessor(2), SecretHash: hashOf("again"), Rules: rules(t, "admin:*")})); !errors.Is(err, ErrBootstrapped) {
		t.Fatalf("second bootstrap = %v, want ErrBootstrapped", err)
	}
	if got := s.TokenBySecretHash(hashOf("boot")); got == nil || got.AccessorID != accessor(1) || got.CreateIndex != 2 || !got.CreateTime.Equal(at(2)) {
		t.Fatalf("TokenBySecretHash(boot) = %+v", got)
	}
	if s.TokenBySecretHash(hashOf("again")) != nil {
		t.Fatalf("a refused bootstrap left its token")
	}

	// A second token; its update keeps the secret when none is given.
	w := Token{AccessorID: accessor(3), SecretHash: hashOf("writer"), Rules: rules(t, "write:default")}
	mustApply(t, s, 4, tokenCmd(CommandPutToken, 4, w))
	mustApply(t, s, 5, tokenCmd(CommandPutToken, 5, Token{AccessorID: accessor(3), Rules: rules(t, "read:default")}))
	got := s.TokenBySecretHash(hashOf("writer"))
	if got == nil || got.Allows(AccessWrite, "default", "web") || !got.Allows(AccessRead, "default", "web") || got.CreateIndex != 4 || got.ModifyIndex != 5 {
		t.Fatalf("updated token = %+v", got)
	}
	// A secret in use by another token is refused.
	if _, err := s.Apply(6, tokenCmd(CommandPutToken, 6, Token{AccessorID: accessor(4), SecretHash: hashOf("writer")})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate secret = %v, want ErrInvalid", err)
	}

	// The last admin:* token can be neither revoked nor demoted.
	if _, err := s.Apply(7, &Command{Type: CommandDeleteToken, ID: accessor(1)}); !errors.Is(err, ErrLockout) {
		t.Fatalf("revoking the last admin = %v, want ErrLockout", err)
	}
	if _, err := s.Apply(8, tokenCmd(CommandPutToken, 8, Token{AccessorID: accessor(1), Rules: rules(t, "admin:default")})); !errors.Is(err, ErrLockout) {
		t.Fatalf("demoting the last admin = %v, want ErrLockout", err)
	}
	// With a second admin, the first can go.
	mustApply(t, s, 9, tokenCmd(CommandPutToken, 9, Token{AccessorID: accessor(5), SecretHash: hashOf("ops"), Rules: rules(t, "admin:*")}))
	mustApply(t, s, 10, &Command{Type: CommandDeleteToken, ID: accessor(1)})
	if s.TokenBySecretHash(hashOf("boot")) != nil {
		t.Fatalf("a revoked token still resolves")
	}
	if _, err := s.Apply(11, &Command{Type: CommandDeleteToken, ID: accessor(1)}); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("revoking twice = %v, want ErrTokenNotFound", err)
	}

	// Anonymous: exists without rules, can be given rules, never a secret,
	// never removed.
	if a := s.Anonymous(); a.AccessorID != AnonymousAccessor || len(a.Rules) != 0 {
		t.Fatalf("Anonymous() = %+v", a)
	}
	mustApply(t, s, 12, tokenCmd(CommandPutToken, 12, Token{AccessorID: AnonymousAccessor, Rules: rules(t, "read:default")}))
	if !s.Anonymous().Allows(AccessRead, "default", "web") {
		t.Fatalf("anonymous rules not applied")
	}
	if _, err := s.Apply(13, tokenCmd(CommandPutToken, 13, Token{AccessorID: AnonymousAccessor, SecretHash: hashOf("a")})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("anonymous with a secret = %v", err)
	}
	for _, r := range []string{"write:default", "admin:*"} {
		if _, err := s.Apply(13, tokenCmd(CommandPutToken, 13, Token{AccessorID: AnonymousAccessor, Rules: rules(t, r)})); !errors.Is(err, ErrInvalid) {
			t.Fatalf("anonymous with %s = %v, want ErrInvalid", r, err)
		}
	}
	if _, err := s.Apply(14, &Command{Type: CommandDeleteToken, ID: AnonymousAccessor}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("removing anonymous = %v", err)
	}
	for _, bad := range []Token{
		{AccessorID: "short", SecretHash: hashOf("s")},
		{AccessorID: accessor(6), SecretHash: "abc"},
		{AccessorID: accessor(6), SecretHash: hashOf("s"), Rules: []Rule{{Namespace: "Default", Access: AccessRead}}},
		{AccessorID: accessor(6), SecretHash: hashOf("s"), Rules: []Rule{{Namespace: "default"}}},
	} {
		if _, err := s.Apply(15, tokenCmd(CommandPutToken, 15, bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("put %+v = %v, want ErrInvalid", bad, err)
		}
	}

	// Everything survives a snapshot, and the snapshot's bytes are stable.
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	dst := New()
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	wantIdx, wantBoot, wantTokens := s.Tokens()
	gotIdx, gotBoot, gotTokens := dst.Tokens()
	if gotIdx != wantIdx || gotBoot != wantBoot || dump(gotTokens) != dump(wantTokens) {
		t.Fatalf("restored tokens:\n%s %v %d\nwant\n%s %v %d", dump(gotTokens), gotBoot, gotIdx, dump(wantTokens), wantBoot, wantIdx)
	}
	if dst.TokenBySecretHash(hashOf("ops")) == nil || !dst.Anonymous().Allows(AccessRead, "default", "x") {
		t.Fatalf("restored store does not resolve its tokens")
	}
	var again bytes.Buffer
	if _, err := dst.Snapshot().WriteTo(&again); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatalf("snapshot of the restored store differs (%v)", err)
	}

	// A restore from a backup keeps the running cluster's tokens.
	other := New()
	mustApply(t, other, 1, tokenCmd(CommandBootstrapACL, 1, Token{AccessorID: accessor(7), SecretHash: hashOf("old"), Rules: rules(t, "admin:*")}))
	var old, rebased bytes.Buffer
	if _, err := other.Snapshot().WriteTo(&old); err != nil {
		t.Fatal(err)
	}
	if err := Rebase(&old, &rebased, 100, s); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(&rebased); err != nil {
		t.Fatal(err)
	}
	if dst.TokenBySecretHash(hashOf("old")) != nil || dst.TokenBySecretHash(hashOf("ops")) == nil {
		t.Fatalf("a rebased backup brought its own tokens in")
	}
}

func TestRestoreRefusesBadTokens(t *testing.T) {
	s := New()
	mustApply(t, s, 1, tokenCmd(CommandBootstrapACL, 1, Token{AccessorID: accessor(1), SecretHash: hashOf("a"), Rules: rules(t, "admin:*")}))
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	for name, edit := range map[string]func(string) string{
		"bad hash":         func(s string) string { return replaceOnce(s, hashOf("a"), "zz") },
		"token before acl": func(s string) string { return replaceOnce(s, `{"acl":`, `{"x":`) },
	} {
		if err := New().Restore(bytes.NewReader([]byte(edit(good)))); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: Restore = %v, want ErrBadSnapshot", name, err)
		}
	}
}

func replaceOnce(s, old, new string) string {
	return string(bytes.Replace([]byte(s), []byte(old), []byte(new), 1))
}
