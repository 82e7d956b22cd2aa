package server

import (
	"context"
	"errors"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/store"
)

// ACLConfig is access control.
type ACLConfig struct {
	// Enabled checks a token on every API request but health, leader and
	// members, and DNS answers only what the anonymous token may read.
	Enabled bool
	// BootstrapSecret is the secret of the first admin token, which the
	// first leader of a new cluster creates ("": a random one, told to
	// OnBootstrap). It must look random: CheckSecret refuses empty, short
	// and placeholder secrets.
	BootstrapSecret string
	// OnBootstrap is told the bootstrap token, once, on the server that
	// creates it: generated says whether the secret was made here (and must
	// be shown to the operator now: it is never stored).
	OnBootstrap func(accessor, secret string, generated bool)
}

// pendingBootstrap is a bootstrap token proposed but not yet known to be
// in the catalog: an Apply that timed out may still commit, so a retry
// proposes the same token, and whichever commits is reported.
type pendingBootstrap struct {
	tok       *store.Token
	secret    string
	generated bool
}

// bootstrapACL creates the first admin token if access control is on and
// the cluster has none yet. Only the leader calls it (from the reconcile
// loop, which runs one call at a time); a leader that lost the race to
// another finds the catalog bootstrapped and stops.
func (s *Server) bootstrapACL() {
	if !s.cfg.ACL.Enabled {
		return
	}
	st := s.node.Store()
	if p := s.bootPending; st.ACLBootstrapped() {
		if p != nil {
			if _, err := st.Token(p.tok.AccessorID); err == nil {
				s.bootstrapped(p) // an earlier attempt committed after all
			}
			s.bootPending = nil
		}
		return
	}
	if s.bootPending == nil {
		secret, generated := s.cfg.ACL.BootstrapSecret, false
		if secret == "" {
			secret, generated = api.NewSecret(), true
		}
		s.bootPending = &pendingBootstrap{secret: secret, generated: generated, tok: &store.Token{
			AccessorID: api.NewAccessor(), SecretHash: api.HashSecret(secret), Description: "bootstrap admin token",
			Rules: []store.Rule{{Namespace: store.AllNamespaces, Access: store.AccessAdmin}}}}
	}
	p := s.bootPending
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if _, err := s.node.Apply(ctx, &store.Command{Type: store.CommandBootstrapACL, Token: p.tok}); err != nil {
		if !errors.Is(err, store.ErrBootstrapped) {
			s.logger.Warn("could not create the bootstrap admin token; retrying", "err", err)
		}
		return // the next call sees whether it committed
	}
	s.bootPending = nil
	s.bootstrapped(p)
}

func (s *Server) bootstrapped(p *pendingBootstrap) {
	s.logger.Info("access control bootstrapped", "accessor", p.tok.AccessorID, "secret_generated", p.generated)
	if s.cfg.ACL.OnBootstrap != nil {
		s.cfg.ACL.OnBootstrap(p.tok.AccessorID, p.secret, p.generated)
	}
}

// dnsAllowed is what DNS may answer with access control on: what the
// anonymous token may read.
func (s *Server) dnsAllowed(ns, svc string) bool {
	return s.node.Store().Anonymous().Allows(store.AccessRead, ns, svc)
}
