package check

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// Runner defaults and limits.
const (
	// DefaultInterval is used for checks without an Interval when
	// RunnerConfig.DefaultInterval is 0.
	DefaultInterval = 10 * time.Second
	// MinInterval is the shortest interval a Runner probes at, whatever the
	// Check says: the catalog accepts any positive duration, and a loop
	// probing every microsecond would burn a core.
	MinInterval = 10 * time.Millisecond
)

// Key names one instance in the catalog.
type Key struct{ Namespace, Service, ID string }

// Target is one instance a Runner must check.
type Target struct {
	Check store.Check
	// Healthy is the catalog's current state of the instance.
	Healthy bool
}

// Status is what a Runner knows about one instance. It lives in memory only.
type Status struct {
	// Healthy is the damped state (the catalog's, unless a change is on
	// its way there).
	Healthy bool
	// Last is the latest probe; zero before the first one.
	Last                                      Result
	ConsecutiveFailures, ConsecutiveSuccesses int
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// OnChange is called from the check's own goroutine when damping flips
	// an instance's state, with the new state and the probe that flipped
	// it. The caller writes the change to Raft; OnChange must not block for
	// long (the check's next probe waits for it, and so does a Sync or Stop
	// that ends the check) and must not call Sync or Stop itself. It may
	// call Status and Len. Nil means changes are only logged.
	OnChange func(key Key, healthy bool, r Result)
	// Logger receives state changes (Info) and probe failures (Debug). Nil
	// discards.
	Logger *slog.Logger
	// DefaultInterval is the interval of checks that set none; 0 means
	// DefaultInterval.
	DefaultInterval time.Duration
	// Policy dials every probe, refusing the addresses it denies (nil: a
	// policy from DefaultPolicyConfig).
	Policy *Policy
}

// Runner runs the checks this server owns, one goroutine per instance.
// Its methods are safe for concurrent use.
type Runner struct {
	cfg    RunnerConfig
	logger *slog.Logger
	// jitter picks the delay before a loop's first probe; tests replace it.
	jitter func(interval time.Duration) time.Duration

	syncMu sync.Mutex // serialises Sync calls, waits included

	mu     sync.Mutex // guards loops and closed
	loops  map[Key]*loop
	closed bool

	wg      sync.WaitGroup
	running atomic.Int64 // live loop goroutines, for tests
}

// loop is the goroutine checking one instance, and its state.
type loop struct {
	key      Key
	spec     store.Check // as given to Sync, to detect a change
	check    store.Check // spec with the effective interval filled in
	interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{} // closed when the goroutine has returned

	mu     sync.Mutex // guards the fields below
	damper *Damper
	last   Result
	// delivering is set from a state change until OnChange has returned;
	// meanwhile Sync's view of the catalog cannot include the change yet,
	// so it must not re-seed the damper from it.
	delivering bool
}

// NewRunner returns a Runner checking nothing; call Sync to give it work.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.DefaultInterval <= 0 {
		cfg.DefaultInterval = DefaultInterval
	}
	if cfg.Policy == nil {
		cfg.Policy, _ = NewPolicy(DefaultPolicyConfig()) // valid by construction
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{
		cfg:    cfg,
		logger: logger,
		jitter: randomJitter,
		loops:  make(map[Key]*loop),
	}
}

// randomJitter spreads first probes over one interval, so that the
// thousands of loops started by one Sync (a server starting, or taking over
// a dead one's share) do not all probe in the same instant, and keep not
// doing so on every tick after.
func randomJitter(interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	return rand.N(interval)
}

// Sync makes the Runner check exactly targets, the full set of instances
// this server owns now. It starts loops for new keys and stops the loops of
// keys that are gone; a key whose Check changed is restarted with a fresh
// damper. For a key whose Check is unchanged the loop and its counters go
// on; if target.Healthy differs from the damped state, the damper is
// re-seeded with it (the catalog is the truth), unless the change that
// explains the difference is still being delivered to OnChange.
//
// Targets of a type servers do not probe (ttl, none) are skipped and
// logged. When Sync returns, the loops it stopped have returned too, so no
// OnChange follows for a key outside targets or for an old Check. After
// Stop, Sync does nothing.
func (r *Runner) Sync(targets map[Key]Target) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	var stopped []*loop
	for k, l := range r.loops {
		t, ok := targets[k]
		if ok && t.Check == l.spec {
			continue
		}
		l.cancel()
		delete(r.loops, k)
		stopped = append(stopped, l)
	}
	r.mu.Unlock()

	// Wait outside r.mu: a loop may be in OnChange, which may call Status.
	// Probes watch their context, so this is quick.
	for _, l := range stopped {
		<-l.done
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for k, t := range targets {
		if l, ok := r.loops[k]; ok {
			if l.reseed(t.Healthy) {
				r.logger.Debug("health check re-seeded from the catalog", keyAttrs(k, "healthy", t.Healthy)...)
			}
			continue
		}
		if !Probeable(t.Check) {
			r.logger.Warn("health check skipped: type is not probed by servers",
				keyAttrs(k, "type", t.Check.Type)...)
			continue
		}
		r.start(k, t)
	}
}

// start launches the loop of k. r.mu is held and r is not closed.
func (r *Runner) start(k Key, t Target) {
	interval := time.Duration(t.Check.Interval)
	if interval <= 0 {
		interval = r.cfg.DefaultInterval
	}
	interval = max(interval, MinInterval)
	check := t.Check
	check.Interval = store.Duration(interval)

	ctx, cancel := context.WithCancel(context.Background())
	l := &loop{
		key:      k,
		spec:     t.Check,
		check:    check,
		interval: interval,
		cancel:   cancel,
		done:     make(chan struct{}),
		damper:   NewDamper(t.Healthy, t.Check.FailuresBeforeUnhealthy, t.Check.SuccessesBeforeHealthy),
	}
	r.loops[k] = l
	r.wg.Add(1)
	r.running.Add(1)
	go r.run(ctx, l, r.jitter(interval))
}

// run probes l every interval, after an initial delay, until ctx ends.
func (r *Runner) run(ctx context.Context, l *loop, delay time.Duration) {
	// Run last: once done is closed, Sync may check that the count is down.
	defer close(l.done)
	defer r.wg.Done()
	defer r.running.Add(-1)

	wait := time.NewTimer(delay)
	select {
	case <-ctx.Done():
		wait.Stop()
		return
	case <-wait.C:
	}
	tick := time.NewTicker(l.interval)
	defer tick.Stop()

	for {
		res := r.cfg.Policy.Probe(ctx, l.check)
		if ctx.Err() != nil {
			// Stopped mid-probe: the result says "canceled", not
			// anything about the instance.
			return
		}
		if !res.OK {
			r.logger.Debug("health check failed", keyAttrs(l.key, "output", res.Output)...)
		}
		if healthy, changed := l.observe(res); changed {
			r.logger.Info("health check changed state",
				keyAttrs(l.key, "healthy", healthy, "output", res.Output)...)
			if r.cfg.OnChange != nil {
				r.cfg.OnChange(l.key, healthy, res)
			}
			l.delivered()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// observe feeds res to the damper.
func (l *loop) observe(res Result) (healthy, changed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = res
	healthy, changed = l.damper.Observe(res.OK)
	if changed {
		l.delivering = true
	}
	return healthy, changed
}

func (l *loop) delivered() {
	l.mu.Lock()
	l.delivering = false
	l.mu.Unlock()
}

// reseed puts the damper in the catalog's state if it differs and no
// change is being delivered, and reports whether it did.
func (l *loop) reseed(healthy bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.delivering || l.damper.Healthy() == healthy {
		return false
	}
	l.damper.Reset(healthy)
	return true
}

// Status returns what the Runner knows of key, and false if it does not
// check key.
func (r *Runner) Status(key Key) (Status, bool) {
	r.mu.Lock()
	l, ok := r.loops[key]
	r.mu.Unlock()
	if !ok {
		return Status{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, s := l.damper.Streaks()
	return Status{
		Healthy:              l.damper.Healthy(),
		Last:                 l.last,
		ConsecutiveFailures:  f,
		ConsecutiveSuccesses: s,
	}, true
}

// Len returns the number of instances being checked.
func (r *Runner) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.loops)
}

// Stop ends every loop, cancelling probes in flight, and waits for them.
// It may be called more than once.
func (r *Runner) Stop() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		for k, l := range r.loops {
			l.cancel()
			delete(r.loops, k)
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func keyAttrs(k Key, more ...any) []any {
	return append([]any{"namespace", k.Namespace, "service", k.Service, "id", k.ID}, more...)
}
