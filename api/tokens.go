package api

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

// Token management: GET/POST /v1/acl/tokens, GET/PUT/DELETE
// /v1/acl/tokens/{accessor}, GET /v1/acl/self. Secrets are made here, shown
// once in the answer, and only their hash goes into the log.

func parseRules(specs []string) ([]store.Rule, error) {
	out := make([]store.Rule, 0, len(specs))
	for _, r := range specs {
		rule, err := store.ParseRule(r)
		if err != nil {
			return nil, err
		}
		out = append(out, rule)
	}
	return out, nil
}

func (s *Server) tokenRequest(c *gin.Context) (*wire.TokenRequest, bool) {
	b, ok := s.body(c)
	if !ok {
		return nil, false
	}
	var req wire.TokenRequest
	if err := decodeStrict(b, &req); err != nil {
		s.fail(c, err)
		return nil, false
	}
	return &req, true
}

func (s *Server) accessorParam(c *gin.Context) (string, bool) {
	id := c.Param("accessor")
	if err := store.ValidateAccessor(id); err != nil {
		s.fail(c, err)
		return "", false
	}
	return id, true
}

func (s *Server) createToken(c *gin.Context) {
	req, ok := s.tokenRequest(c)
	if !ok {
		return
	}
	if req.RotateSecret {
		s.fail(c, fmt.Errorf("%w: rotate_secret applies to an existing token (PUT /v1/acl/tokens/{accessor})", ErrBadRequest))
		return
	}
	rules, err := parseRules(req.Rules)
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(rules) == 0 {
		s.fail(c, fmt.Errorf("%w: a token needs at least one rule, e.g. \"read:default\"", store.ErrInvalid))
		return
	}
	secret := NewSecret()
	tok := &store.Token{AccessorID: NewAccessor(), SecretHash: HashSecret(secret), Rules: rules}
	if req.Description != nil {
		tok.Description = *req.Description
	}
	s.putToken(c, tok, secret, http.StatusCreated)
}

// putToken writes a token and answers it as stored, with its secret when
// one was just made (shown this once).
func (s *Server) putToken(c *gin.Context, tok *store.Token, secret string, status int) {
	if _, ok := s.write(c, &store.Command{Type: store.CommandPutToken, Token: tok}); !ok {
		return
	}
	stored, err := s.node.Store().Token(tok.AccessorID)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := wire.WireToken(stored)
	out.Secret = secret
	c.JSON(status, out)
}

func (s *Server) updateToken(c *gin.Context) {
	id, ok := s.accessorParam(c)
	if !ok {
		return
	}
	req, ok := s.tokenRequest(c)
	if !ok {
		return
	}
	// Absent fields keep their values: read them linearizably.
	if err := s.node.ConsistentRead(c.Request.Context()); err != nil {
		s.fail(c, err)
		return
	}
	cur, err := s.node.Store().Token(id)
	if err != nil {
		s.fail(c, err)
		return
	}
	next := *cur
	next.SecretHash = "" // keeps the stored one
	if req.Description != nil {
		next.Description = *req.Description
	}
	if req.Rules != nil {
		if next.Rules, err = parseRules(req.Rules); err != nil {
			s.fail(c, err)
			return
		}
	}
	var secret string
	if req.RotateSecret {
		if id == store.AnonymousAccessor {
			s.fail(c, fmt.Errorf("%w: the anonymous token has no secret", store.ErrInvalid))
			return
		}
		secret = NewSecret()
		next.SecretHash = HashSecret(secret)
	}
	s.putToken(c, &next, secret, http.StatusOK)
}

func (s *Server) getToken(c *gin.Context) {
	id, ok := s.accessorParam(c)
	if !ok {
		return
	}
	t, err := s.node.Store().Token(id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.WireToken(t))
}

func (s *Server) listTokens(c *gin.Context) {
	_, boot, toks := s.node.Store().Tokens()
	out := wire.TokensResponse{AccessControl: s.cfg.AccessControl, Bootstrapped: boot, Tokens: make([]wire.Token, 0, len(toks)+1)}
	anon := false
	for _, t := range toks {
		anon = anon || t.AccessorID == store.AnonymousAccessor
		out.Tokens = append(out.Tokens, wire.WireToken(t))
	}
	if !anon {
		out.Tokens = append(out.Tokens, wire.WireToken(s.node.Store().Anonymous()))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) revokeToken(c *gin.Context) {
	id, ok := s.accessorParam(c)
	if !ok {
		return
	}
	if _, ok := s.write(c, &store.Command{Type: store.CommandDeleteToken, ID: id}); ok {
		c.JSON(http.StatusOK, gin.H{"revoked": id})
	}
}

// tokenSelf shows the caller its own token (without the secret).
func (s *Server) tokenSelf(c *gin.Context) {
	k := s.resolve(c)
	if k.token == nil || k.unknown {
		s.fail(c, s.denied(k, "read its own token"))
		return
	}
	c.JSON(http.StatusOK, wire.WireToken(k.token))
}
