package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Access control state: tokens and the rules they carry. It is catalog
// state like the rest, written through the log, in every snapshot and
// backup. Only a SHA-256 of each secret is kept.

// Errors of the access-control commands.
var (
	// ErrTokenNotFound: no token with that accessor.
	ErrTokenNotFound = errors.New("token not found")
	// ErrLockout: the change would leave no token that may administer the
	// whole cluster.
	ErrLockout = errors.New("would lock every administrator out")
	// ErrBootstrapped: access control was bootstrapped already.
	ErrBootstrapped = errors.New("access control already bootstrapped")
)

// AnonymousAccessor names the token whose rules apply to requests without
// a token, and to DNS. It has no secret and cannot be removed.
const AnonymousAccessor = "anonymous"

// MaxRules caps the rules of one token; MaxTokens the tokens of a catalog.
const (
	MaxRules  = 64
	MaxTokens = 10000
)

// Access is what a rule allows; each level includes the ones below it.
type Access uint8

// Access levels.
const (
	AccessNone Access = iota
	// AccessRead reads services, instances and settings.
	AccessRead
	// AccessWrite registers, heartbeats and deregisters instances.
	AccessWrite
	// AccessAdmin changes settings; with namespace "*" it also manages
	// tokens, snapshots and the cluster.
	AccessAdmin
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessAdmin:
		return "admin"
	}
	return "none"
}

// ParseAccess reads "read", "write" or "admin".
func ParseAccess(s string) (Access, error) {
	switch s {
	case "read":
		return AccessRead, nil
	case "write":
		return AccessWrite, nil
	case "admin":
		return AccessAdmin, nil
	}
	return AccessNone, invalid("access %q: use read, write or admin", s)
}

// MarshalText writes the access as its name.
func (a Access) MarshalText() ([]byte, error) {
	if a == AccessNone {
		return nil, invalid("access none cannot be written")
	}
	return []byte(a.String()), nil
}

// UnmarshalText reads an access name.
func (a *Access) UnmarshalText(b []byte) error {
	v, err := ParseAccess(string(b))
	*a = v
	return err
}

// AllNamespaces in a rule's namespace matches every namespace, and is the
// only scope of cluster-wide actions.
const AllNamespaces = "*"

// Rule grants an access on the services of a namespace whose names start
// with a prefix.
type Rule struct {
	// Namespace is a namespace name, or "*" for every namespace.
	Namespace string `json:"ns"`
	// ServicePrefix limits the rule to services whose names start with it
	// ("": every service, and the namespace itself).
	ServicePrefix string `json:"service_prefix,omitempty"`
	Access        Access `json:"access"`
}

func (r Rule) String() string {
	s := r.Access.String() + ":" + r.Namespace
	if r.ServicePrefix != "" {
		s += "/" + r.ServicePrefix
	}
	return s
}

// ParseRule reads ACCESS:NAMESPACE[/SERVICE-PREFIX], e.g. "write:payments/checkout-",
// "read:*" or "admin:*".
func ParseRule(s string) (Rule, error) {
	acc, scope, ok := strings.Cut(s, ":")
	if !ok {
		return Rule{}, invalid("rule %q: use ACCESS:NAMESPACE[/SERVICE-PREFIX], e.g. read:default or write:payments/checkout-", s)
	}
	a, err := ParseAccess(acc)
	if err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", s, err)
	}
	ns, prefix, _ := strings.Cut(scope, "/")
	r := Rule{Namespace: ns, ServicePrefix: prefix, Access: a}
	if err := r.validate(); err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", s, err)
	}
	return r, nil
}

func (r Rule) validate() error {
	if r.Access < AccessRead || r.Access > AccessAdmin {
		return invalid("access must be read, write or admin")
	}
	if r.Namespace != AllNamespaces {
		if err := ValidateName("rule namespace", r.Namespace); err != nil {
			return fmt.Errorf("%w (or * for every namespace)", err)
		}
	}
	if len(r.ServicePrefix) > 63 {
		return invalid("service prefix %q is longer than 63 characters", r.ServicePrefix)
	}
	for _, c := range r.ServicePrefix {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return invalid("service prefix %q: lowercase letters, digits and hyphens only", r.ServicePrefix)
		}
	}
	return nil
}

// Token is an access token. The secret itself is never stored.
type Token struct {
	// AccessorID names the token in lists, logs and revocations; it grants
	// nothing.
	AccessorID string `json:"accessor_id"`
	// SecretHash is the hex SHA-256 of the secret ("" for anonymous).
	SecretHash  string    `json:"secret_hash,omitempty"`
	Description string    `json:"description,omitempty"`
	Rules       []Rule    `json:"rules"`
	CreateTime  time.Time `json:"create_time"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// Allows reports whether the token's rules grant access on service svc of
// namespace ns. svc "" asks for the namespace itself (only rules without a
// service prefix grant it); ns "" asks for the whole cluster (only rules on
// "*" without a prefix grant it).
func (t *Token) Allows(access Access, ns, svc string) bool {
	if t == nil {
		return false
	}
	for _, r := range t.Rules {
		if r.Access < access {
			continue
		}
		if r.Namespace != AllNamespaces && (ns == "" || r.Namespace != ns) {
			continue
		}
		if strings.HasPrefix(svc, r.ServicePrefix) {
			return true
		}
	}
	return false
}

// AllowsSome reports whether the token grants access on at least one
// service of namespace ns (ns "": of any namespace).
func (t *Token) AllowsSome(access Access, ns string) bool {
	if t == nil {
		return false
	}
	for _, r := range t.Rules {
		if r.Access >= access && (ns == "" || r.Namespace == AllNamespaces || r.Namespace == ns) {
			return true
		}
	}
	return false
}

func (t *Token) validate() error {
	if t.AccessorID == AnonymousAccessor {
		if t.SecretHash != "" {
			return invalid("the anonymous token has no secret")
		}
		for _, r := range t.Rules {
			if r.Access != AccessRead {
				return invalid("the anonymous token may only read (rule %s): whoever reaches the API would have it", r)
			}
		}
	} else {
		if err := validateAccessor(t.AccessorID); err != nil {
			return err
		}
		if b, err := hex.DecodeString(t.SecretHash); err != nil || len(b) != 32 {
			return invalid("token %s: secret hash must be 64 hex digits", t.AccessorID)
		}
	}
	if len(t.Description) > 256 {
		return invalid("token description longer than 256 characters")
	}
	if len(t.Rules) > MaxRules {
		return invalid("%d rules, at most %d", len(t.Rules), MaxRules)
	}
	for _, r := range t.Rules {
		if err := r.validate(); err != nil {
			return err
		}
	}
	return nil
}

func validateAccessor(id string) error {
	if b, err := hex.DecodeString(id); err != nil || len(b) != 16 {
		return invalid("accessor %q: 32 hex digits (or %q)", id, AnonymousAccessor)
	}
	return nil
}

// ValidateAccessor checks an accessor id given by a caller.
func ValidateAccessor(id string) error {
	if id == AnonymousAccessor {
		return nil
	}
	return validateAccessor(id)
}

// acl is the immutable access-control part of a catalog, replaced whole on
// every change (tokens are few and change rarely).
type acl struct {
	tokens       map[string]*Token // by accessor
	byHash       map[string]*Token
	index        uint64
	bootstrapped bool
}

var emptyACL = &acl{tokens: map[string]*Token{}, byHash: map[string]*Token{}}

func (a *acl) with(t *Token, index uint64) *acl {
	n := &acl{tokens: maps.Clone(a.tokens), byHash: maps.Clone(a.byHash), index: index, bootstrapped: a.bootstrapped}
	if old := n.tokens[t.AccessorID]; old != nil && old.SecretHash != "" {
		delete(n.byHash, old.SecretHash)
	}
	n.tokens[t.AccessorID] = t
	if t.SecretHash != "" {
		n.byHash[t.SecretHash] = t
	}
	return n
}

func (a *acl) without(accessor string, index uint64) *acl {
	n := &acl{tokens: maps.Clone(a.tokens), byHash: maps.Clone(a.byHash), index: index, bootstrapped: a.bootstrapped}
	if old := n.tokens[accessor]; old != nil && old.SecretHash != "" {
		delete(n.byHash, old.SecretHash)
	}
	delete(n.tokens, accessor)
	return n
}

// admins counts the tokens with a secret that may administer the cluster.
func (a *acl) admins() int {
	n := 0
	for _, t := range a.tokens {
		if t.SecretHash != "" && t.Allows(AccessAdmin, "", "") {
			n++
		}
	}
	return n
}

// TokenBySecretHash returns the token whose secret hashes to hash (hex), or
// nil.
func (s *Store) TokenBySecretHash(hash string) *Token {
	return s.root.Load().acl.byHash[hash]
}

// Token returns the token with that accessor. The anonymous token exists
// even before it is first set, with no rules.
func (s *Store) Token(accessor string) (*Token, error) {
	if t := s.root.Load().acl.tokens[accessor]; t != nil {
		return t, nil
	}
	if accessor == AnonymousAccessor {
		return anonymousUnset, nil
	}
	return nil, fmt.Errorf("store: token %q: %w", accessor, ErrTokenNotFound)
}

// anonymousUnset is the anonymous token before it is first set: no rules.
// Shared: tokens are never changed in place.
var anonymousUnset = &Token{AccessorID: AnonymousAccessor, Rules: []Rule{}}

// Anonymous returns the rules that apply to requests without a token.
func (s *Store) Anonymous() *Token {
	t, _ := s.Token(AnonymousAccessor)
	return t
}

// Tokens lists the tokens by accessor, with the index of the last change
// and whether access control was bootstrapped.
func (s *Store) Tokens() (index uint64, bootstrapped bool, tokens []*Token) {
	a := s.root.Load().acl
	for _, id := range slices.Sorted(maps.Keys(a.tokens)) {
		tokens = append(tokens, a.tokens[id])
	}
	return a.index, a.bootstrapped, tokens
}

// ACLBootstrapped reports whether the bootstrap token was created.
func (s *Store) ACLBootstrapped() bool { return s.root.Load().acl.bootstrapped }

func (t *txn) putToken(c *Command, bootstrap bool) (any, error) {
	tok := *c.Token
	tok.Rules = slices.Clone(tok.Rules)
	if tok.Rules == nil {
		tok.Rules = []Rule{}
	}
	cur := t.catalog().acl
	old := cur.tokens[tok.AccessorID]
	if old != nil && tok.SecretHash == "" && tok.AccessorID != AnonymousAccessor {
		tok.SecretHash = old.SecretHash // an update keeps the secret
	}
	if err := tok.validate(); err != nil {
		return nil, fmt.Errorf("store: put token: %w", err)
	}
	if bootstrap {
		if cur.bootstrapped {
			return nil, fmt.Errorf("store: bootstrap: %w", ErrBootstrapped)
		}
		if !tok.Allows(AccessAdmin, "", "") || tok.SecretHash == "" {
			return nil, fmt.Errorf("store: bootstrap: %w: the bootstrap token must hold admin:*", ErrInvalid)
		}
	}
	if other := cur.byHash[tok.SecretHash]; tok.SecretHash != "" && other != nil && other.AccessorID != tok.AccessorID {
		return nil, fmt.Errorf("store: put token: %w: secret already in use", ErrInvalid)
	}
	switch {
	case old != nil:
		tok.CreateTime, tok.CreateIndex = old.CreateTime, old.CreateIndex
	case len(cur.tokens) >= MaxTokens:
		return nil, fmt.Errorf("store: put token: %w: %d tokens already, at most %d", ErrInvalid, len(cur.tokens), MaxTokens)
	default:
		tok.CreateTime, tok.CreateIndex = c.Time, t.index
	}
	tok.ModifyIndex = t.index
	next := cur.with(&tok, t.index)
	if bootstrap {
		next.bootstrapped = true
	}
	if cur.admins() > 0 && next.admins() == 0 {
		return nil, fmt.Errorf("store: put token %s: %w: it is the last token with admin:*", tok.AccessorID, ErrLockout)
	}
	t.mutableCatalog().acl = next
	return &tok, nil
}

func (t *txn) deleteToken(c *Command) error {
	if c.ID == AnonymousAccessor {
		return fmt.Errorf("store: delete token: %w: the anonymous token cannot be removed; give it no rules instead", ErrInvalid)
	}
	cur := t.catalog().acl
	if cur.tokens[c.ID] == nil {
		return fmt.Errorf("store: delete token %s: %w", c.ID, ErrTokenNotFound)
	}
	next := cur.without(c.ID, t.index)
	if cur.admins() > 0 && next.admins() == 0 {
		return fmt.Errorf("store: delete token %s: %w: it is the last token with admin:*", c.ID, ErrLockout)
	}
	t.mutableCatalog().acl = next
	return nil
}

// snapACL is the access-control header of a snapshot.
type snapACL struct {
	Index        uint64 `json:"index"`
	Bootstrapped bool   `json:"bootstrapped"`
}
