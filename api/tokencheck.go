package api

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"
)

// DefaultTokenCatchUpInterval is the default shortest time between two of
// a server's catch-ups for unknown tokens (Config.TokenCatchUpInterval).
const DefaultTokenCatchUpInterval = 100 * time.Millisecond

// tokenCatchUp bounds what unknown tokens cost the leader. A token made an
// instant ago on the leader may not have reached this replica yet, so an
// unknown one is looked up again after a consistent read. Done per
// request, a flood of random tokens sent to the followers would turn into
// as many leader round trips. Instead the catch-ups of one server are
// serialised, start at most once per interval, and one that began after a
// request arrived answers for it: whatever the flood, a server asks the
// leader at most once per interval, and a token made before its request
// arrived is still found.
type tokenCatchUp struct {
	sem      chan struct{} // held by the request running a catch-up
	interval time.Duration
	// last is when the last catch-up began, err how it ended; read and
	// written only while holding sem.
	last time.Time
	err  error
}

func newTokenCatchUp(interval time.Duration) *tokenCatchUp {
	return &tokenCatchUp{sem: make(chan struct{}, 1), interval: interval}
}

// wait returns once a consistent read that began after arrived has ended,
// running one when none has, with its outcome.
func (t *tokenCatchUp) wait(ctx context.Context, arrived time.Time, read func(context.Context) error) error {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-t.sem }()
	if !t.last.Before(arrived) {
		return t.err // began after this request arrived: it covers it
	}
	if d := t.interval - time.Since(t.last); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
	t.last = time.Now()
	// The read answers for the requests queued behind this one too: the
	// caller going away must not end it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	t.err = read(rctx)
	return t.err
}

// anonymousMeets reports whether the anonymous token meets the need of the
// request's route: then an unknown token is answered as anonymous, with no
// catch-up (its owner gets at least what anyone gets). Consul's routes
// decide in their handlers and are not known here.
func (s *Server) anonymousMeets(c *gin.Context) bool {
	n := s.needs[routeOf(c)]
	if n.Scope == 0 || n.Scope == ScopeHandler {
		return false
	}
	return s.checkNeed(c, &caller{token: s.node.Store().Anonymous()}, n) == nil
}
