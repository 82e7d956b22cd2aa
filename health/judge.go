package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// Defaults for ephemeral instances whose check leaves them unset.
const (
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultTTL               = 15 * time.Second
	DefaultDeregisterAfter   = 60 * time.Second
)

// JudgeConfig configures a Judge.
type JudgeConfig struct {
	Store    *store.Store
	Liveness *Liveness
	// Apply commits a command through Raft (on the leader, without a hop).
	Apply func(ctx context.Context, c *store.Command) error
	// IsLeader reports whether this server is the Raft leader now; only the
	// leader judges.
	IsLeader func() bool
	// Interval between two rounds (default 500 ms).
	Interval time.Duration
	// DefaultTTL and DefaultDeregisterAfter apply where an instance's check
	// leaves them unset.
	DefaultTTL             time.Duration
	DefaultDeregisterAfter time.Duration
	// SelfPreservation configures the mode that pauses expiry when many
	// instances fall silent at once.
	SelfPreservation SelfPreservationConfig
	Now              func() time.Time
	Logger           *slog.Logger
}

// SelfPreservationConfig says when self-preservation starts.
type SelfPreservationConfig struct {
	// Threshold: the mode starts when more than this share of the
	// ephemeral instances fell silent within Window (0: never).
	Threshold float64
	Window    time.Duration
	// MinInstances: below this many ephemeral instances the mode never
	// starts (one silent instance of three is not a storm).
	MinInstances int
}

// DefaultSelfPreservation returns the defaults: 15% within one minute, from
// 10 ephemeral instances up.
func DefaultSelfPreservation() SelfPreservationConfig {
	return SelfPreservationConfig{Threshold: 0.15, Window: time.Minute, MinInstances: 10}
}

// Judge turns silence into health changes and expiries. It runs on every
// server and acts only while its server leads, so each change is written
// once, by one server.
type Judge struct {
	cfg    JudgeConfig
	logger *slog.Logger

	// since is when this server began judging (became leader); an instance
	// it has not heard of since then counts as heard at that moment, so a
	// new or restarted leader gives every instance a full TTL first.
	since time.Time
}

// NewJudge returns a judge; call Run.
func NewJudge(cfg JudgeConfig) *Judge {
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.DefaultDeregisterAfter <= 0 {
		cfg.DefaultDeregisterAfter = DefaultDeregisterAfter
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Judge{cfg: cfg, logger: logger}
}

// Run judges every interval until ctx ends.
func (j *Judge) Run(ctx context.Context) {
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.Round(ctx); err != nil && ctx.Err() == nil {
				j.logger.Warn("health round failed", "err", err)
			}
		}
	}
}

// Verdict is what one round decided.
type Verdict struct {
	Unhealthy, Healthy, Expired int
	// Ephemeral instances seen, how many of them are silent (past their
	// TTL) now, and how many of those fell silent within the window.
	Ephemeral, Silent, NewlySilent int
	// Preserving: self-preservation held back expiries this round.
	Preserving bool
}

// Round judges every ephemeral instance once and writes the changes.
func (j *Judge) Round(ctx context.Context) error {
	if !j.cfg.IsLeader() {
		j.since = time.Time{}
		return nil
	}
	now := j.cfg.Now()
	if j.since.IsZero() {
		j.since = now
		j.logger.Info("judging instance health", "grace", j.cfg.DefaultTTL)
	}
	_, err := j.round(ctx, now)
	return err
}

func (j *Judge) round(ctx context.Context, now time.Time) (Verdict, error) {
	var v Verdict
	var changes []store.HealthChange
	var expire []*store.Command
	sp := j.cfg.Store.SelfPreservation()
	window := j.cfg.SelfPreservation.Window
	_, namespaces, _ := j.cfg.Store.Namespaces()
	for _, ns := range namespaces {
		_, svcs, err := j.cfg.Store.Services(ns.Name)
		if err != nil {
			continue // deleted meanwhile
		}
		for _, sv := range svcs {
			for _, in := range sv.Instances() {
				if !in.Ephemeral {
					continue
				}
				v.Ephemeral++
				k := Key{in.Namespace, in.Service, in.ID}
				last, ok := j.cfg.Liveness.LastSeen(k)
				if !ok || last.Before(j.since) {
					last = j.since
				}
				if in.UpdatedAt.After(last) {
					last = in.UpdatedAt // registered (or updated) after
				}
				silence := now.Sub(last)
				ttl, dereg := j.limits(in)
				silent := silence > ttl
				if silent {
					v.Silent++
					// Fell silent within the window, and after the operator
					// (or recovery) last ended the mode.
					if start := last.Add(ttl); now.Sub(start) <= window && start.After(sp.EndedAt) {
						v.NewlySilent++
					}
				}
				// When heartbeats ended self-preservation, the last few
				// instances still silent get a full deregister_after from
				// that moment: they are most likely on their way back.
				expSilence := silence
				if !sp.Active && sp.EndedBy == "heartbeats" && sp.EndedAt.After(last) {
					expSilence = now.Sub(sp.EndedAt)
				}
				if expSilence > dereg {
					expire = append(expire, &store.Command{Type: store.CommandDeregister,
						Namespace: in.Namespace, Service: in.Service, ID: in.ID, IfIndex: in.ModifyIndex})
				}
				// Health is judged for expiring instances too: if
				// self-preservation holds the expiry back, they must still
				// turn unhealthy.
				switch {
				case silent && in.Healthy:
					changes = append(changes, store.HealthChange{Namespace: in.Namespace, Service: in.Service, ID: in.ID, Healthy: false, IfIndex: in.ModifyIndex})
					v.Unhealthy++
				case !silent && !in.Healthy && !last.Before(in.HealthChangedAt):
					// Heard since it was marked unhealthy (a heartbeat
					// from before a TTL check's fail does not undo it).
					changes = append(changes, store.HealthChange{Namespace: in.Namespace, Service: in.Service, ID: in.ID, Healthy: true, IfIndex: in.ModifyIndex})
					v.Healthy++
				}
			}
		}
	}
	preserving, err := j.selfPreservation(ctx, now, sp, &v)
	if err != nil {
		return v, err
	}
	if preserving {
		v.Preserving = true
		expire = nil
	} else if len(expire) > 0 {
		// Those removed now need no health change first (and one would move
		// their modify_index under the conditional deregister).
		gone := make(map[Key]bool, len(expire))
		for _, c := range expire {
			gone[Key{c.Namespace, c.Service, c.ID}] = true
		}
		changes = slices.DeleteFunc(changes, func(h store.HealthChange) bool {
			if gone[Key{h.Namespace, h.Service, h.ID}] {
				if h.Healthy {
					v.Healthy--
				} else {
					v.Unhealthy--
				}
				return true
			}
			return false
		})
	}
	for len(changes) > 0 {
		n := min(len(changes), store.MaxHealthChanges)
		if err := j.cfg.Apply(ctx, &store.Command{Type: store.CommandSetHealth, Health: changes[:n]}); err != nil {
			return v, fmt.Errorf("health: write %d changes: %w", n, err)
		}
		changes = changes[n:]
	}
	if v.Unhealthy+v.Healthy > 0 {
		j.logger.Info("instance health changed", "unhealthy", v.Unhealthy, "healthy", v.Healthy)
	}
	for _, c := range expire {
		err := j.cfg.Apply(ctx, c)
		switch {
		case err == nil:
			v.Expired++
			j.logger.Info("instance expired", "instance", Key{c.Namespace, c.Service, c.ID})
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrInstanceNotFound),
			errors.Is(err, store.ErrServiceNotFound), errors.Is(err, store.ErrNamespaceNotFound):
			// Re-registered or removed since this round read it.
		default:
			return v, fmt.Errorf("health: expire %s/%s/%s: %w", c.Namespace, c.Service, c.ID, err)
		}
	}
	return v, nil
}

// selfPreservation enters or ends the mode from what this round saw, and
// says whether expiries must wait.
func (j *Judge) selfPreservation(ctx context.Context, now time.Time, sp store.SelfPreservation, v *Verdict) (bool, error) {
	c := j.cfg.SelfPreservation
	if c.Threshold <= 0 {
		return false, nil
	}
	limit := c.Threshold * float64(v.Ephemeral)
	// An operator who ended the mode has seen this storm: the instances
	// still falling silent in the next window belong to it.
	operatorQuiet := sp.EndedBy == "operator" && now.Sub(sp.EndedAt) < c.Window
	switch {
	case !sp.Active && !operatorQuiet && v.Ephemeral >= c.MinInstances && float64(v.NewlySilent) > limit:
		next := store.SelfPreservation{Active: true, Since: now,
			Reason: fmt.Sprintf("%d of %d ephemeral instances (%.0f%%) fell silent within %v; expiry paused until heartbeats return",
				v.NewlySilent, v.Ephemeral, 100*float64(v.NewlySilent)/float64(v.Ephemeral), c.Window),
			EndedAt: sp.EndedAt, EndedBy: sp.EndedBy}
		if err := j.cfg.Apply(ctx, &store.Command{Type: store.CommandSetSelfPreservation, SelfPreservation: &next}); err != nil {
			return true, fmt.Errorf("health: enter self-preservation: %w", err)
		}
		j.logger.Warn("self-preservation entered: no instance will be removed until heartbeats return or an operator ends it",
			"silent", v.NewlySilent, "ephemeral", v.Ephemeral, "threshold", c.Threshold)
		return true, nil
	case sp.Active && float64(v.Silent) <= limit:
		next := sp
		next.Active, next.EndedAt, next.EndedBy = false, now, "heartbeats"
		if err := j.cfg.Apply(ctx, &store.Command{Type: store.CommandSetSelfPreservation, SelfPreservation: &next}); err != nil {
			return true, fmt.Errorf("health: end self-preservation: %w", err)
		}
		j.logger.Info("self-preservation ended: heartbeats are back", "silent", v.Silent, "ephemeral", v.Ephemeral,
			"lasted", now.Sub(sp.Since).Round(time.Second))
		// Expire from the next round on, once this one's health changes
		// are in.
		return true, nil
	}
	return sp.Active, nil
}

// limits returns an instance's TTL and deregister_after, defaults filled in.
func (j *Judge) limits(in *store.Instance) (ttl, dereg time.Duration) {
	ttl, dereg = time.Duration(in.Check.TTL), time.Duration(in.Check.DeregisterAfter)
	if ttl <= 0 {
		ttl = j.cfg.DefaultTTL
	}
	if dereg <= 0 {
		dereg = j.cfg.DefaultDeregisterAfter
	}
	return ttl, max(dereg, ttl)
}
