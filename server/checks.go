package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/health"
	"github.com/switchyard-io/switchyard/health/check"
	"github.com/switchyard-io/switchyard/store"
)

// checks runs this server's share of the server-side health checks: each
// persistent instance with an HTTP, TCP or gRPC check is checked by exactly
// one live server, its rendezvous owner among the servers gossip finds
// alive. When a server joins, leaves or dies, the owners are recomputed
// everywhere and only the moved share changes hands.
type checks struct {
	s      *Server
	runner atomic.Pointer[check.Runner]
	hc     *http.Client
	// policy dials every probe (and vets registrations, in the APIs).
	policy *check.Policy
}

func (s *Server) runChecks() {
	r := check.NewRunner(check.RunnerConfig{OnChange: s.checkChanged, Logger: s.logger, Policy: s.checks.policy})
	s.checks.runner.Store(r)
	defer r.Stop()
	t := time.NewTicker(s.cfg.CheckSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.checksChanged:
		}
		if !s.node.Ready() {
			// A server behind the leader would check from a stale catalog.
			r.Sync(nil)
			continue
		}
		r.Sync(s.ownedChecks())
	}
}

// liveServers lists the servers that share the checks: those gossip finds
// alive. A suspect server hands its share on at once; if it recovers, it
// takes the share back.
func (s *Server) liveServers() []string {
	// Only servers of the cluster (each records itself in the catalog,
	// through Raft) own checks: a stranger in the gossip pool must neither
	// silence checks by claiming them nor be sent callers' requests.
	_, servers := s.node.Store().Servers()
	member := make(map[string]bool, len(servers))
	for _, srv := range servers {
		member[srv.ID] = true
	}
	var out []string
	for _, m := range s.pool.Members() {
		if m.Status == gossip.StatusAlive && member[m.Name] {
			out = append(out, m.Name)
		}
	}
	return out
}

// ownedChecks returns the checks this server must run now.
func (s *Server) ownedChecks() map[check.Key]check.Target {
	live := s.liveServers()
	self := s.cfg.NodeID
	out := map[check.Key]check.Target{}
	st := s.node.Store()
	_, namespaces, _ := st.Namespaces()
	for _, ns := range namespaces {
		_, svcs, err := st.Services(ns.Name)
		if err != nil {
			continue
		}
		for _, v := range svcs {
			// A service with nothing the servers probe (ephemeral
			// instances, persistent ones without an HTTP, TCP or gRPC
			// check) is skipped without a walk, and no view gets its
			// flat slice built for this.
			if v.Probed() == 0 {
				continue
			}
			for in := range v.All {
				if !in.Probed() {
					continue
				}
				k := health.Key{Namespace: in.Namespace, Service: in.Service, ID: in.ID}
				if health.Owner(k, live) == self {
					out[check.Key(k)] = check.Target{Check: in.Check, Healthy: in.Healthy}
				}
			}
		}
	}
	return out
}

// checkChanged writes a damped health change to the catalog.
func (s *Server) checkChanged(k check.Key, healthy bool, r check.Result) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	_, err := s.node.Apply(ctx, &store.Command{Type: store.CommandSetHealth, Health: []store.HealthChange{{
		Namespace: k.Namespace, Service: k.Service, ID: k.ID, Healthy: healthy}}})
	if err != nil {
		// The runner re-seeds from the catalog at its next sync and
		// reports the change again.
		s.logger.Warn("could not record a check result", "instance", health.Key(k), "healthy", healthy, "err", err)
		return
	}
	s.logger.Info("instance health changed by its check", "instance", health.Key(k), "healthy", healthy, "output", r.Output)
}

// CheckStatus implements api.Checks.
func (c *checks) CheckStatus(ctx context.Context, in *store.Instance, out *wire.CheckStatus) error {
	s := c.s
	k := health.Key{Namespace: in.Namespace, Service: in.Service, ID: in.ID}
	if in.Ephemeral {
		out.CheckedBy = s.cfg.NodeID
		age := -1.0
		if t, ok := s.liveness.LastSeen(k); ok {
			age = float64(time.Since(t).Microseconds()) / 1000
		}
		out.LastHeartbeatAgeMs = &age
		return nil
	}
	if !check.Probeable(in.Check) {
		return nil
	}
	owner := health.Owner(k, s.liveServers())
	out.CheckedBy = owner
	if owner == s.cfg.NodeID {
		if r := c.runner.Load(); r != nil {
			if st, ok := r.Status(check.Key(k)); ok && !st.Last.At.IsZero() {
				ok := st.Last.OK
				out.LastOK, out.Reason, out.Output = &ok, st.Last.Reason, st.Last.Output
				out.CheckedAt = st.Last.At.UTC().Format(time.RFC3339Nano)
				out.DurationMs = float64(st.Last.Duration.Microseconds()) / 1000
				out.ConsecutiveFailures, out.ConsecutiveSuccesses = st.ConsecutiveFailures, st.ConsecutiveSuccesses
			}
		}
		return nil
	}
	// Ask the owner; its answer is the one that knows.
	var addr string
	_, servers := s.node.Store().Servers()
	for _, srv := range servers {
		if srv.ID == owner {
			addr = srv.HTTPAddr // recorded by that server itself, through Raft
		}
	}
	if addr == "" || strings.Contains(addr, "/") || ctx.Value(proxiedKey{}) != nil {
		return nil
	}
	u := fmt.Sprintf("%s/v1/namespaces/%s/services/%s/instances/%s/check",
		s.apiURL(addr), url.PathEscape(in.Namespace), url.PathEscape(in.Service), url.PathEscape(in.ID))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("ask %s for the check of %s: %w", owner, k, err)
	}
	req.Header.Set(headerProxied, "1")
	if tok, _ := ctx.Value(tokenKey{}).(string); tok != "" {
		req.Header.Set(api.HeaderToken, tok) // the owner checks the caller's token too
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		s.logger.Debug("check owner unreachable", "owner", owner, "err", err)
		return nil // the catalog's verdict is still worth answering
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var theirs wire.CheckStatus
	if err := json.NewDecoder(resp.Body).Decode(&theirs); err != nil {
		return nil
	}
	if theirs.CheckedBy == owner {
		out.LastOK, out.Reason, out.Output, out.CheckedAt, out.DurationMs = theirs.LastOK, theirs.Reason, theirs.Output, theirs.CheckedAt, theirs.DurationMs
		out.ConsecutiveFailures, out.ConsecutiveSuccesses = theirs.ConsecutiveFailures, theirs.ConsecutiveSuccesses
	}
	return nil
}

// headerProxied marks a check-status request one server sent another, so
// that two servers that disagree on the owner do not bounce it forever.
const headerProxied = "X-Switchyard-Proxied"

type proxiedKey struct{}

// tokenKey carries the caller's token secret to a proxied check-status
// request.
type tokenKey struct{}

// markProxied puts the proxied flag of a request into its context.
func markProxied(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(headerProxied) != "" {
			r = r.WithContext(context.WithValue(r.Context(), proxiedKey{}, true))
		}
		if tok := api.TokenSecret(r); tok != "" {
			r = r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok))
		}
		next.ServeHTTP(w, r)
	})
}
