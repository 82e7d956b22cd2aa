package check

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/internal/testlog"
	"github.com/switchyard-io/switchyard/store"
)

const (
	testInterval = 20 * time.Millisecond
	// countedInterval is for tests that count probes at the server: each
	// probe must get its answer, and the probe timeout is the interval, so
	// it is longer than testInterval to keep a loaded machine from timing
	// a probe out after the server counted it.
	countedInterval = 100 * time.Millisecond
	// waitFor bounds every wait for something that should happen in a few
	// intervals; it is long so that a slow machine does not fail the test.
	waitFor = 15 * time.Second
)

// change is one OnChange call, with what the test could see at that moment.
type change struct {
	key     Key
	healthy bool
	result  Result
	status  Status // Runner.Status(key) from inside OnChange
	probes  int64  // the value of the test's probe counter inside OnChange
}

// harness is a Runner whose OnChange calls are recorded on a channel.
type harness struct {
	*Runner
	changes chan change
	// counter, if set, is read inside OnChange into change.probes.
	counter func() int64
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{changes: make(chan change, 64)}
	h.Runner = NewRunner(RunnerConfig{
		Logger:          testlog.New(t, slog.LevelDebug),
		DefaultInterval: testInterval,
		Policy:          loopbackPolicy,
		OnChange: func(key Key, healthy bool, r Result) {
			c := change{key: key, healthy: healthy, result: r}
			c.status, _ = h.Status(key)
			if h.counter != nil {
				c.probes = h.counter()
			}
			select {
			case h.changes <- c:
			default:
				t.Errorf("OnChange(%v, %v) dropped: too many changes", key, healthy)
			}
		},
	})
	t.Cleanup(h.Stop)
	return h
}

func (h *harness) nextChange(t *testing.T) change {
	t.Helper()
	select {
	case c := <-h.changes:
		return c
	case <-time.After(waitFor):
		t.Fatalf("no OnChange within %v", waitFor)
		return change{}
	}
}

func (h *harness) noChange(t *testing.T) {
	t.Helper()
	select {
	case c := <-h.changes:
		t.Fatalf("unexpected OnChange(%v, healthy=%v): %q, status %+v", c.key, c.healthy, c.result.Output, c.status)
	default:
	}
}

// waitStatus polls key's status until cond holds.
func (h *harness) waitStatus(t *testing.T, key Key, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		st, ok := h.Status(key)
		if ok && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: status never reached %s; last %+v (known %v)", key, what, st, ok)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunnerUnhealthyWhenListenerStops(t *testing.T) {
	srv := newHTTPServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	h := newHarness(t)
	key := Key{"default", "web", "web-1"}
	h.Sync(map[Key]Target{key: {Healthy: true, Check: store.Check{
		Type: store.CheckHTTP, Target: srv.URL, Interval: store.Duration(testInterval), FailuresBeforeUnhealthy: 3,
	}}})

	h.waitStatus(t, key, "two successes", func(s Status) bool { return s.ConsecutiveSuccesses >= 2 })
	h.noChange(t)

	srv.Close()
	c := h.nextChange(t)
	if c.key != key || c.healthy || c.result.OK || !strings.Contains(c.result.Output, "connection refused") {
		t.Fatalf("OnChange(%v, healthy=%v, %q), want %v unhealthy after a refused probe", c.key, c.healthy, c.result.Output, key)
	}
	// Exactly FailuresBeforeUnhealthy probes failed when the state flipped.
	if c.status.ConsecutiveFailures != 3 || c.status.ConsecutiveSuccesses != 0 || c.status.Healthy {
		t.Fatalf("status at the change: %+v, want unhealthy after exactly 3 failures", c.status)
	}
	if c.status.Last != c.result {
		t.Fatalf("status.Last = %+v, want the flipping probe %+v", c.status.Last, c.result)
	}

	// Failing goes on, and is not reported again.
	h.waitStatus(t, key, "six failures", func(s Status) bool { return s.ConsecutiveFailures >= 6 })
	h.noChange(t)
	if st, _ := h.Status(key); st.Healthy {
		t.Fatalf("status %+v, want unhealthy", st)
	}
}

// TestRunnerCountsProbes switches a real server between failing and
// succeeding and counts, at the server, the probes it answered before each
// OnChange: exactly the configured thresholds, not the defaults.
func TestRunnerCountsProbes(t *testing.T) {
	var failing atomic.Bool
	var oks, fails atomic.Int64
	srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			fails.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		oks.Add(1)
	}))
	h := newHarness(t)
	var base atomic.Int64 // ok count when the server recovered
	h.counter = func() int64 {
		if failing.Load() {
			return fails.Load()
		}
		return oks.Load() - base.Load()
	}
	key := Key{"default", "api", "api-1"}
	h.Sync(map[Key]Target{key: {Healthy: true, Check: store.Check{
		Type: store.CheckHTTP, Target: srv.URL, Interval: store.Duration(countedInterval),
		FailuresBeforeUnhealthy: 4, SuccessesBeforeHealthy: 3,
	}}})
	waitUntil(t, "two successful probes", func() bool { return oks.Load() >= 2 })
	h.noChange(t)

	failing.Store(true)
	c := h.nextChange(t)
	if c.healthy || c.result.OK || c.probes != 4 || c.status.ConsecutiveFailures != 4 {
		t.Fatalf("going down: healthy=%v ok=%v after %d failed probes (status %+v), want unhealthy after exactly 4",
			c.healthy, c.result.OK, c.probes, c.status)
	}
	if !strings.Contains(c.result.Output, "503 Service Unavailable") {
		t.Fatalf("flipping probe output %q", c.result.Output)
	}

	base.Store(oks.Load()) // no request succeeds while failing
	failing.Store(false)
	c = h.nextChange(t)
	if !c.healthy || !c.result.OK || c.probes != 3 || c.status.ConsecutiveSuccesses != 3 {
		t.Fatalf("coming back: healthy=%v ok=%v after %d good probes (status %+v), want healthy after exactly 3",
			c.healthy, c.result.OK, c.probes, c.status)
	}
	h.noChange(t)
}

func TestRunnerFlappingNeverChanges(t *testing.T) {
	// Each key has its own server, so its probes (one at a time) see a
	// strict 200, 500, 200, 500… sequence.
	flapper := func() (*atomic.Int64, string) {
		var n atomic.Int64
		srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if n.Add(1)%2 == 0 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}))
		return &n, srv.URL
	}
	upN, upURL := flapper()
	downN, downURL := flapper()
	h := newHarness(t)
	up, down := Key{"default", "flap", "up"}, Key{"default", "flap", "down"}
	check := func(url string) store.Check {
		return store.Check{Type: store.CheckHTTP, Target: url, Interval: store.Duration(countedInterval)}
	}
	h.Sync(map[Key]Target{
		up:   {Healthy: true, Check: check(upURL)},
		down: {Healthy: false, Check: check(downURL)},
	})

	waitUntil(t, "12 probes of each flapping instance", func() bool { return upN.Load() >= 12 && downN.Load() >= 12 })
	h.noChange(t)
	for key, want := range map[Key]bool{up: true, down: false} {
		st, ok := h.Status(key)
		if !ok || st.Healthy != want || st.ConsecutiveFailures > 1 || st.ConsecutiveSuccesses > 1 {
			t.Errorf("%v: status %+v (known %v), want healthy=%v and streaks of at most 1", key, st, ok, want)
		}
	}
}

func TestRunnerSync(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	tcp := store.Check{Type: store.CheckTCP, Target: lis.Addr().String(), Interval: store.Duration(testInterval)}
	// idle never probes during the test: its first probe waits one hour.
	idle := store.Check{Type: store.CheckTCP, Target: "127.0.0.1:1", Interval: store.Duration(time.Hour)}

	h := newHarness(t)
	h.jitter = func(d time.Duration) time.Duration {
		if d == time.Hour {
			return d
		}
		return 0
	}
	loopOf := func(k Key) *loop {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.loops[k]
	}
	expectLoops := func(step string, n int) {
		t.Helper()
		if h.Len() != n || h.running.Load() != int64(n) {
			t.Fatalf("%s: Len=%d goroutines=%d, want %d", step, h.Len(), h.running.Load(), n)
		}
	}
	a, b, c := Key{"ns", "svc", "a"}, Key{"ns", "svc", "b"}, Key{"ns", "svc", "c"}

	h.Sync(map[Key]Target{a: {Check: tcp, Healthy: true}, b: {Check: idle, Healthy: true}, c: {Check: idle}})
	expectLoops("three keys", 3)
	if st, ok := h.Status(c); !ok || st.Healthy || st.Last != (Result{}) {
		t.Fatalf("c before any probe: %+v %v, want known, unhealthy as seeded, no result", st, ok)
	}

	// Removing a key stops its goroutine before Sync returns.
	cLoop := loopOf(c)
	h.Sync(map[Key]Target{a: {Check: tcp, Healthy: true}, b: {Check: idle, Healthy: true}})
	expectLoops("c removed", 2)
	if _, ok := h.Status(c); ok {
		t.Fatal("Status(c) still known after removal")
	}
	select {
	case <-cLoop.done:
	default:
		t.Fatal("c's goroutine still running after Sync returned")
	}

	// Same target again: the loop and its counters go on.
	aLoop := loopOf(a)
	before := h.waitStatus(t, a, "three successes", func(s Status) bool { return s.ConsecutiveSuccesses >= 3 })
	// The first probe waits for the jitter (here, b's hour).
	if st, _ := h.Status(b); !st.Last.At.IsZero() {
		t.Fatalf("b probed before its jitter elapsed: %+v", st)
	}
	h.Sync(map[Key]Target{a: {Check: tcp, Healthy: true}, b: {Check: idle, Healthy: true}})
	if loopOf(a) != aLoop {
		t.Fatal("unchanged target restarted its loop")
	}
	if st, _ := h.Status(a); !st.Healthy || st.ConsecutiveSuccesses < before.ConsecutiveSuccesses {
		t.Fatalf("unchanged target: status %+v after %+v, want counters kept", st, before)
	}

	// The catalog now says a is unhealthy (say, another server's verdict
	// before this one took over): re-seed, same loop, and the successes
	// that follow bring it back through OnChange after exactly 2.
	h.Sync(map[Key]Target{a: {Check: tcp, Healthy: false}, b: {Check: idle, Healthy: true}})
	if loopOf(a) != aLoop {
		t.Fatal("a change of Healthy alone restarted the loop")
	}
	ch := h.nextChange(t)
	if ch.key != a || !ch.healthy || ch.status.ConsecutiveSuccesses != 2 {
		t.Fatalf("after re-seeding unhealthy: OnChange(%v, %v) with %+v, want a healthy after exactly 2 successes", ch.key, ch.healthy, ch.status)
	}
	// The catalog caught up: nothing to re-seed, counters kept.
	h.Sync(map[Key]Target{a: {Check: tcp, Healthy: true}, b: {Check: idle, Healthy: true}})
	if st, _ := h.Status(a); !st.Healthy || st.ConsecutiveSuccesses < 2 {
		t.Fatalf("after the catalog caught up: %+v", st)
	}

	// A changed Check restarts the loop with a fresh damper in the
	// catalog's state, and the old goroutine is gone.
	bLoop := loopOf(b)
	idle2 := idle
	idle2.FailuresBeforeUnhealthy = 7
	h.Sync(map[Key]Target{a: {Check: tcp, Healthy: true}, b: {Check: idle2, Healthy: false}})
	expectLoops("b restarted", 2)
	if nb := loopOf(b); nb == bLoop || nb.damper.failN != 7 {
		t.Fatal("a changed Check did not restart the loop with the new thresholds")
	}
	select {
	case <-bLoop.done:
	default:
		t.Fatal("b's old goroutine still running after Sync returned")
	}
	if st, _ := h.Status(b); st.Healthy {
		t.Fatalf("restarted b: %+v, want the catalog's unhealthy", st)
	}

	// Types servers do not probe are skipped, and so are their keys.
	h.Sync(map[Key]Target{
		a: {Check: tcp, Healthy: true}, b: {Check: idle2},
		c: {Check: store.Check{Type: store.CheckTTL}}, {"ns", "svc", "d"}: {Check: store.Check{Type: store.CheckNone}},
	})
	expectLoops("ttl and none skipped", 2)

	h.Sync(nil)
	expectLoops("empty set", 0)

	h.Sync(map[Key]Target{a: {Check: tcp, Healthy: true}})
	expectLoops("a again", 1)
	h.Stop()
	expectLoops("stopped", 0)
	h.Sync(map[Key]Target{a: {Check: tcp, Healthy: true}})
	expectLoops("Sync after Stop", 0)
	h.Stop() // twice is fine
}

// TestRunnerReseedWaitsForDelivery: while OnChange is delivering a flip,
// the catalog cannot know it yet, so a Sync carrying the old state must not
// undo it; once delivered, a Sync that still disagrees (the write was lost)
// re-seeds the damper, and the change is found and reported again.
func TestRunnerReseedWaitsForDelivery(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // refused from now on

	entered := make(chan bool, 4)
	release := make(chan struct{})
	var calls atomic.Int32
	r := NewRunner(RunnerConfig{
		Logger:          testlog.New(t, slog.LevelDebug),
		DefaultInterval: testInterval,
		Policy:          loopbackPolicy,
		OnChange: func(_ Key, healthy bool, _ Result) {
			entered <- healthy
			if calls.Add(1) == 1 {
				<-release
			}
		},
	})
	t.Cleanup(r.Stop)
	key := Key{"ns", "svc", "x"}
	target := map[Key]Target{key: {Healthy: true, Check: store.Check{
		Type: store.CheckTCP, Target: addr, Interval: store.Duration(testInterval), FailuresBeforeUnhealthy: 1,
	}}}
	r.Sync(target)

	select {
	case healthy := <-entered:
		if healthy {
			t.Fatal("OnChange(healthy=true) for a refused target")
		}
	case <-time.After(waitFor):
		close(release)
		t.Fatal("no OnChange")
	}
	r.Sync(target) // stale: the catalog still says healthy
	st, _ := r.Status(key)
	close(release)
	if st.Healthy {
		t.Fatalf("a Sync during delivery re-seeded the damper: %+v", st)
	}

	// Delivered, and the catalog still says healthy: re-seed, and the next
	// failure is reported again.
	waitUntil(t, "first OnChange returned", func() bool {
		r.mu.Lock()
		l := r.loops[key]
		r.mu.Unlock()
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.delivering
	})
	r.Sync(target)
	select {
	case healthy := <-entered:
		if healthy {
			t.Fatal("second OnChange(healthy=true) for a refused target")
		}
	case <-time.After(waitFor):
		t.Fatal("no second OnChange after re-seeding to healthy")
	}
}

func TestRunnerStopCancelsProbes(t *testing.T) {
	srv, entered := hangingServer(t)
	h := newHarness(t)
	h.jitter = func(time.Duration) time.Duration { return 0 }
	targets := map[Key]Target{}
	for i := range 5 {
		// One failure would flip the state: the cancelled probes must not
		// count as failures.
		targets[Key{"ns", "slow", fmt.Sprint(i)}] = Target{Healthy: true, Check: store.Check{
			Type: store.CheckHTTP, Target: srv.URL, Interval: store.Duration(time.Hour), Timeout: store.Duration(time.Hour),
			FailuresBeforeUnhealthy: 1,
		}}
	}
	h.Sync(targets)
	for range targets {
		select {
		case <-entered:
		case <-time.After(waitFor):
			t.Fatal("probes never reached the server")
		}
	}
	stopped := make(chan struct{})
	go func() { h.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(waitFor):
		t.Fatal("Stop did not return while probes with a 1h timeout were in flight")
	}
	if n := h.running.Load(); n != 0 || h.Len() != 0 {
		t.Fatalf("after Stop: %d goroutines, Len %d", n, h.Len())
	}
	// Cancelled probes are not results: no state change was reported.
	h.noChange(t)
}

// TestRunnerNoGoroutineLeak runs HTTP, TCP and gRPC checks, removes some,
// stops the rest, and expects the process to come back to the goroutines
// it had before: nothing of the loops or their probes survives.
func TestRunnerNoGoroutineLeak(t *testing.T) {
	httpSrv := newHTTPServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	grpcAddr, _, _ := newGRPCServer(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	checks := []store.Check{
		{Type: store.CheckHTTP, Target: httpSrv.URL},
		{Type: store.CheckTCP, Target: lis.Addr().String()},
		{Type: store.CheckGRPC, Target: grpcAddr},
		{Type: store.CheckTCP, Target: "127.0.0.1:1"}, // refused
	}
	baseline := runtime.NumGoroutine()

	h := NewRunner(RunnerConfig{Logger: testlog.New(t, slog.LevelInfo), DefaultInterval: testInterval, Policy: loopbackPolicy})
	targets := map[Key]Target{}
	for i := range 40 {
		targets[Key{"ns", "svc", fmt.Sprint(i)}] = Target{Healthy: true, Check: checks[i%len(checks)]}
	}
	h.Sync(targets)
	if h.running.Load() != 40 {
		t.Fatalf("%d goroutines for 40 keys", h.running.Load())
	}
	// Every loop gets to probe, so that probe goroutines (gRPC's
	// included) have existed before we count what is left.
	for k := range targets {
		waitProbed(t, h, k)
	}
	for i := range 20 {
		delete(targets, Key{"ns", "svc", fmt.Sprint(i)})
	}
	h.Sync(targets)
	if h.running.Load() != 20 || h.Len() != 20 {
		t.Fatalf("after removing 20 of 40: %d goroutines, Len %d", h.running.Load(), h.Len())
	}
	h.Stop()
	if h.running.Load() != 0 {
		t.Fatalf("after Stop: %d loop goroutines", h.running.Load())
	}
	deadline := time.Now().Add(waitFor)
	for n := runtime.NumGoroutine(); n > baseline; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Stop, %d before the Runner:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitProbed waits until key has a probe result, and returns its status.
func waitProbed(t *testing.T, r *Runner, key Key) Status {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		if st, ok := r.Status(key); ok && !st.Last.At.IsZero() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v never probed", key)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunnerIntervals(t *testing.T) {
	r := NewRunner(RunnerConfig{})
	t.Cleanup(r.Stop)
	r.jitter = func(d time.Duration) time.Duration { return d } // no probe during the test
	if r.cfg.DefaultInterval != DefaultInterval {
		t.Fatalf("default interval %v, want %v", r.cfg.DefaultInterval, DefaultInterval)
	}
	cases := []struct {
		interval store.Duration
		want     time.Duration
	}{
		{0, DefaultInterval},
		{store.Duration(time.Nanosecond), MinInterval},
		{store.Duration(time.Minute), time.Minute},
	}
	for i, tc := range cases {
		k := Key{"ns", "svc", fmt.Sprint(i)}
		r.Sync(map[Key]Target{k: {Check: store.Check{Type: store.CheckTCP, Target: "127.0.0.1:1", Interval: tc.interval}}})
		r.mu.Lock()
		l := r.loops[k]
		r.mu.Unlock()
		if l.interval != tc.want || time.Duration(l.check.Interval) != tc.want || l.spec.Interval != tc.interval {
			t.Errorf("Check.Interval %v: loop interval %v, probe interval %v, want %v",
				time.Duration(tc.interval), l.interval, time.Duration(l.check.Interval), tc.want)
		}
	}
}

func TestRandomJitter(t *testing.T) {
	if d := randomJitter(0); d != 0 {
		t.Fatalf("randomJitter(0) = %v", d)
	}
	const interval = 100 * time.Millisecond
	var lo, hi bool
	for range 10000 {
		d := randomJitter(interval)
		if d < 0 || d >= interval {
			t.Fatalf("randomJitter(%v) = %v, outside [0, interval)", interval, d)
		}
		lo = lo || d < interval/4
		hi = hi || d > 3*interval/4
	}
	// 10000 uniform draws miss a quarter of the range with probability
	// (3/4)^10000: never, unless the jitter is not spread.
	if !lo || !hi {
		t.Fatalf("jitter not spread over the interval (low quarter seen %v, high quarter %v)", lo, hi)
	}
}
