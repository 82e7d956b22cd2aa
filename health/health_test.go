package health

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestLivenessFlushMerge(t *testing.T) {
	ca, cb := &clock{t: t0}, &clock{t: t0.Add(time.Hour)} // clocks need not agree
	a, b := NewLiveness(ca.now), NewLiveness(cb.now)
	k1, k2 := Key{"default", "web", "i-1"}, Key{"prod", "db", "i-2"}
	if a.Flush() != nil {
		t.Fatal("empty table flushed something")
	}
	a.Heard(k1)
	ca.add(2 * time.Second)
	a.Heard(k2)
	ca.add(time.Second)
	msg := a.Flush()
	if a.Flush() != nil {
		t.Fatal("second flush repeated the heartbeats")
	}
	if err := b.Merge(msg); err != nil {
		t.Fatal(err)
	}
	// Ages travel, not timestamps: k1 was heard 3 s ago, k2 1 s ago.
	for k, age := range map[Key]time.Duration{k1: 3 * time.Second, k2: time.Second} {
		got, ok := b.LastSeen(k)
		if !ok || cb.now().Sub(got) != age {
			t.Errorf("%s on b: seen %v ago (ok=%v), want %v", k, cb.now().Sub(got), ok, age)
		}
	}
	// An older report never moves a time back.
	b.Heard(k1)
	if err := b.Merge(msg); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.LastSeen(k1); !got.Equal(cb.now()) {
		t.Errorf("older gossip moved k1 back to %v", got)
	}
	// Full state carries everything.
	c := NewLiveness(ca.now)
	if err := c.Merge(b.State()); err != nil || c.Len() != 2 {
		t.Fatalf("state merge: len %d, %v", c.Len(), err)
	}
	c.Forget(func(k Key, _ time.Time) bool { return k == k2 })
	if _, ok := c.LastSeen(k2); ok || c.Len() != 1 {
		t.Error("Forget kept k2")
	}
}

func TestLivenessRejectsGarbage(t *testing.T) {
	l := NewLiveness(nil)
	good := func() []byte { l2 := NewLiveness(nil); l2.Heard(Key{"a", "b", "c"}); return l2.Flush() }()
	for _, b := range [][]byte{nil, {}, {2}, {1, 5, 'a'}, {1, 0xff, 0xff, 0xff, 0xff, 0x0f}, good[:len(good)-1]} {
		if err := l.Merge(b); err == nil {
			t.Errorf("Merge(%q) accepted", b)
		}
	}
}

// What gossip says is the network's word: names that are no catalog names
// are dropped, and entries of instances the catalog lacks wait apart, at
// most the bound, until their instance appears.
func TestLivenessBoundsWhatGossipSays(t *testing.T) {
	clk := &clock{t: t0}
	catalog := map[Key]bool{{"default", "web", "i-1"}: true}
	l := NewLiveness(clk.now)
	l.Restrict(func(k Key) bool { return catalog[k] }, 100)

	from := NewLiveness(clk.now)
	from.Heard(Key{"default", "web", "i-1"})
	for i := range 1000 {
		from.Heard(Key{"default", "web", fmt.Sprintf("made-up-%d", i)})
	}
	for _, bad := range []Key{{"Default", "web", "x"}, {"default", "web_1", "x"}, {"default", "web", "-x"}, {"", "web", "x"}} {
		from.Heard(bad)
	}
	if err := l.Merge(from.Flush()); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.LastSeen(Key{"default", "web", "i-1"}); !ok {
		t.Fatal("the catalog's instance was not taken in")
	}
	if n := l.Unknown(); n != 100 {
		t.Errorf("%d entries of unknown instances kept, want the bound 100", n)
	}
	if l.Len() != 1 {
		t.Errorf("the table holds %d entries, want the one known instance", l.Len())
	}
	if d := l.Dropped(); d != 900+4 {
		t.Errorf("dropped %d entries, want 904 (900 beyond the bound, 4 bad names)", d)
	}
	for _, bad := range []Key{{"Default", "web", "x"}, {"default", "web_1", "x"}} {
		if _, ok := l.LastSeen(bad); ok {
			t.Errorf("%v taken in", bad)
		}
	}
	// A heartbeat gossiped before its registration arrived is not lost.
	var early Key
	for k := range l.unknown {
		early = k
		break
	}
	catalog[early] = true
	if _, ok := l.LastSeen(early); !ok || l.Unknown() != 99 || l.Len() != 2 {
		t.Errorf("an early heartbeat of %v was not kept for its instance (unknown %d, len %d)", early, l.Unknown(), l.Len())
	}
}

// judgeRig is a judge over a real store, with writes applied straight to it
// (one package's unit test; the cluster tests use Raft).
type judgeRig struct {
	st     *store.Store
	live   *Liveness
	clk    *clock
	j      *Judge
	index  uint64
	writes int
	leader bool
}

func newRig(t *testing.T) *judgeRig {
	r := &judgeRig{st: store.New(), clk: &clock{t: t0}, leader: true}
	r.live = NewLiveness(r.clk.now)
	r.j = NewJudge(JudgeConfig{Store: r.st, Liveness: r.live, Now: r.clk.now,
		IsLeader: func() bool { return r.leader },
		Apply: func(_ context.Context, c *store.Command) error {
			r.index++
			r.writes++
			_, err := r.st.Apply(r.index, c)
			return err
		}})
	return r
}

func (r *judgeRig) register(t *testing.T, id string, ttl time.Duration) {
	t.Helper()
	r.index++
	in := store.Instance{Address: "10.0.0.1", Port: 80, Weight: 1, Enabled: true, Ephemeral: true,
		Check: store.Check{TTL: store.Duration(ttl), DeregisterAfter: store.Duration(4 * ttl)}}
	if _, err := r.st.Apply(r.index, &store.Command{Type: store.CommandRegister, Time: r.clk.now(),
		Namespace: "default", Service: "web", ID: id, Instance: &in}); err != nil {
		t.Fatal(err)
	}
	r.live.Heard(Key{"default", "web", id})
}

func (r *judgeRig) healthy(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	v, err := r.st.Service("default", "web")
	if err != nil {
		return out
	}
	for _, in := range v.Instances() {
		out[in.ID] = in.Healthy
	}
	return out
}

func TestJudgeSilenceRecoveryExpiry(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	for i := range 3 {
		r.register(t, fmt.Sprintf("i-%d", i), 10*time.Second)
	}
	before := r.writes
	// Heartbeats keep everyone healthy; nothing is written.
	for range 20 {
		r.clk.add(time.Second)
		for i := range 3 {
			r.live.Heard(Key{"default", "web", fmt.Sprintf("i-%d", i)})
		}
		if err := r.j.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r.writes != before {
		t.Fatalf("%d writes while every instance heartbeats", r.writes-before)
	}
	// i-0 falls silent: unhealthy after its TTL, in one write.
	for range 10 {
		r.clk.add(time.Second)
		r.live.Heard(Key{"default", "web", "i-1"})
		r.live.Heard(Key{"default", "web", "i-2"})
		_ = r.j.Round(ctx)
	}
	if h := r.healthy(t); !h["i-0"] || !h["i-1"] {
		t.Fatalf("after exactly the TTL: %v (silence must exceed the TTL)", h)
	}
	r.clk.add(time.Second)
	_ = r.j.Round(ctx)
	if h := r.healthy(t); h["i-0"] || !h["i-1"] || !h["i-2"] {
		t.Fatalf("after TTL+1s: %v", h)
	}
	if r.writes != before+1 {
		t.Fatalf("%d writes for one health change", r.writes-before)
	}
	// It comes back: healthy again.
	for i := range 3 {
		r.live.Heard(Key{"default", "web", fmt.Sprintf("i-%d", i)})
	}
	_ = r.j.Round(ctx)
	if h := r.healthy(t); !h["i-0"] {
		t.Fatal("heartbeat did not restore health")
	}
	// Everyone silent past deregister_after (40 s): removed, one write each.
	before = r.writes
	for range 41 {
		r.clk.add(time.Second)
		_ = r.j.Round(ctx)
	}
	if h := r.healthy(t); len(h) != 0 {
		t.Fatalf("not expired: %v", h)
	}
	// One set-health (all three unhealthy together) + three expiries.
	if r.writes-before != 4 {
		t.Fatalf("%d writes, want 4", r.writes-before)
	}
}

func TestJudgeOnlyLeaderAndGrace(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.register(t, "i-0", 10*time.Second)
	r.leader = false
	r.clk.add(time.Minute)
	_ = r.j.Round(ctx)
	if !r.healthy(t)["i-0"] {
		t.Fatal("a follower judged")
	}
	// A new judge that has not heard i-0 for a minute (say it restarted)
	// gives it a full TTL from the moment it starts judging.
	r.leader = true
	r.live.Forget(func(Key, time.Time) bool { return true })
	_ = r.j.Round(ctx)
	r.clk.add(9 * time.Second)
	_ = r.j.Round(ctx)
	if !r.healthy(t)["i-0"] {
		t.Fatal("judged before the grace ended")
	}
	r.clk.add(2 * time.Second)
	_ = r.j.Round(ctx)
	if r.healthy(t)["i-0"] {
		t.Fatal("not judged after the grace")
	}
}

func TestJudgeSelfPreservation(t *testing.T) {
	r := newRig(t)
	r.j.cfg.SelfPreservation = DefaultSelfPreservation()
	ctx := context.Background()
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%02d", i)
		r.register(t, ids[i], 10*time.Second) // deregister after 40 s
	}
	beat := func(from, to int) {
		for _, id := range ids[from:to] {
			r.live.Heard(Key{"default", "web", id})
		}
	}
	// 8 of 20 (40%) fall silent together.
	for range 60 {
		r.clk.add(time.Second)
		beat(8, 20)
		if err := r.j.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sp := r.st.SelfPreservation()
	if !sp.Active || sp.Reason == "" {
		t.Fatalf("not in self-preservation after 40%% fell silent: %+v", sp)
	}
	h := r.healthy(t)
	if len(h) != 20 {
		t.Fatalf("%d instances left: self-preservation did not hold expiry", len(h))
	}
	for i, id := range ids {
		if h[id] != (i >= 8) {
			t.Fatalf("%s healthy=%v: silent ones must still turn unhealthy", id, h[id])
		}
	}
	// Heartbeats return: all healthy, the mode ends.
	r.clk.add(time.Second)
	beat(0, 20)
	_ = r.j.Round(ctx)
	_ = r.j.Round(ctx)
	if sp := r.st.SelfPreservation(); sp.Active || sp.EndedBy != "heartbeats" {
		t.Fatalf("mode after recovery: %+v", sp)
	}
	for id, ok := range r.healthy(t) {
		if !ok {
			t.Fatalf("%s still unhealthy after heartbeats returned", id)
		}
	}

	// A second storm that does not recover: the operator ends the mode,
	// the dead are removed, and the same storm does not start it again.
	for range 50 {
		r.clk.add(time.Second)
		beat(5, 20)
		_ = r.j.Round(ctx)
	}
	if !r.st.SelfPreservation().Active {
		t.Fatal("second storm (25%) did not start self-preservation")
	}
	r.index++
	end := r.st.SelfPreservation()
	end.Active, end.EndedAt, end.EndedBy = false, r.clk.now(), "operator"
	if _, err := r.st.Apply(r.index, &store.Command{Type: store.CommandSetSelfPreservation, SelfPreservation: &end}); err != nil {
		t.Fatal(err)
	}
	r.clk.add(time.Second)
	beat(5, 20)
	_ = r.j.Round(ctx)
	if sp := r.st.SelfPreservation(); sp.Active {
		t.Fatalf("re-entered after the operator ended it: %+v", sp)
	}
	if h := r.healthy(t); len(h) != 15 {
		t.Fatalf("%d instances after the operator ended the mode, want the 15 live ones", len(h))
	}
}

func TestJudgeNoSelfPreservationForSmallFleets(t *testing.T) {
	r := newRig(t)
	r.j.cfg.SelfPreservation = DefaultSelfPreservation()
	ctx := context.Background()
	for i := range 3 {
		r.register(t, fmt.Sprintf("i-%d", i), time.Second)
	}
	for range 10 {
		r.clk.add(time.Second)
		r.live.Heard(Key{"default", "web", "i-0"})
		_ = r.j.Round(ctx)
	}
	if r.st.SelfPreservation().Active {
		t.Fatal("self-preservation with 3 instances")
	}
	if h := r.healthy(t); len(h) != 1 {
		t.Fatalf("silent instances of a small fleet not expired: %v", h)
	}
}

// An instance whose deregister_after equals its TTL goes from healthy to
// expiring in one round; under self-preservation it must still turn
// unhealthy.
func TestJudgeSelfPreservationMarksExpiringUnhealthy(t *testing.T) {
	r := newRig(t)
	r.j.cfg.SelfPreservation = DefaultSelfPreservation()
	ctx := context.Background()
	for i := range 10 {
		r.index++
		in := store.Instance{Address: "10.0.0.1", Port: 80, Weight: 1, Enabled: true, Ephemeral: true,
			Check: store.Check{TTL: store.Duration(time.Second), DeregisterAfter: store.Duration(time.Second)}}
		if _, err := r.st.Apply(r.index, &store.Command{Type: store.CommandRegister, Time: r.clk.now(),
			Namespace: "default", Service: "web", ID: fmt.Sprintf("i-%d", i), Instance: &in}); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		r.clk.add(time.Second)
		_ = r.j.Round(ctx)
	}
	if !r.st.SelfPreservation().Active {
		t.Fatal("all ten silent at once: no self-preservation")
	}
	h := r.healthy(t)
	if len(h) != 10 {
		t.Fatalf("%d instances left under self-preservation", len(h))
	}
	for id, ok := range h {
		if ok {
			t.Fatalf("%s still healthy although silent past its TTL", id)
		}
	}
}

// When heartbeats end self-preservation, instances still silent at that
// moment are not removed at once: they get a full deregister_after.
func TestJudgeStragglersAfterSelfPreservation(t *testing.T) {
	r := newRig(t)
	r.j.cfg.SelfPreservation = DefaultSelfPreservation()
	ctx := context.Background()
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%02d", i)
		r.register(t, ids[i], 10*time.Second) // deregister after 40 s
	}
	beat := func(from, to int) {
		for _, id := range ids[from:to] {
			r.live.Heard(Key{"default", "web", id})
		}
	}
	for range 60 { // 8 of 20 silent for a minute: self-preservation
		r.clk.add(time.Second)
		beat(8, 20)
		_ = r.j.Round(ctx)
	}
	if !r.st.SelfPreservation().Active {
		t.Fatal("no self-preservation")
	}
	// Six come back: two stay silent (10%, under the threshold).
	r.clk.add(time.Second)
	beat(2, 20)
	_ = r.j.Round(ctx)
	if sp := r.st.SelfPreservation(); sp.Active || sp.EndedBy != "heartbeats" {
		t.Fatalf("mode %+v", sp)
	}
	for range 30 {
		r.clk.add(time.Second)
		beat(2, 20)
		_ = r.j.Round(ctx)
	}
	if h := r.healthy(t); len(h) != 20 || h["i-00"] || h["i-01"] {
		t.Fatalf("30 s after the mode ended: %d instances (%v); stragglers must stay, unhealthy", len(h), h)
	}
	for range 11 {
		r.clk.add(time.Second)
		beat(2, 20)
		_ = r.j.Round(ctx)
	}
	if h := r.healthy(t); len(h) != 18 {
		t.Fatalf("41 s after the mode ended: %d instances, want the 18 alive", len(h))
	}
}
