package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/switchyard-io/switchyard/internal/testlog"
)

type recorder struct {
	mu     sync.Mutex
	msgs   []string
	merged []string
	state  string
}

func (r *recorder) Message(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, string(b))
}

func (r *recorder) LocalState() []byte { return []byte(r.state) }

func (r *recorder) MergeState(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.merged = append(r.merged, string(b))
}

func (r *recorder) has(list *[]string, s string) bool {
	return slices.Contains(r.get(list), s)
}

func (r *recorder) get(list *[]string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*list)
}

func startPool(t *testing.T, name string, h Handler) *Pool {
	t.Helper()
	return startWith(t, name, func(cfg *Config) {
		cfg.Meta = Meta{RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2", Datacenter: "dc-" + name}
		cfg.Handler = h
	})
}

// startWith starts a pool on loopback with local timings, a recorder and
// the test's logger, after tune (nil: none) has changed its config.
func startWith(t *testing.T, name string, tune func(*Config)) *Pool {
	t.Helper()
	cfg := LocalConfig()
	cfg.Name, cfg.BindAddr = name, "127.0.0.1:0"
	cfg.Handler = &recorder{}
	cfg.Logger = testlog.New(t, slog.LevelInfo)
	if tune != nil {
		tune(&cfg)
	}
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statuses(p *Pool) map[string]Status {
	out := map[string]Status{}
	for _, m := range p.Members() {
		out[m.Name] = m.Status
	}
	return out
}

func TestPoolMembershipMessagesAndFailure(t *testing.T) {
	recs := []*recorder{{state: "state-a"}, {state: "state-b"}, {state: "state-c"}}
	a := startPool(t, "a", recs[0])
	b := startPool(t, "b", recs[1])
	c := startPool(t, "c", recs[2])
	ctx := context.Background()
	if _, err := b.Join(ctx, []string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, []string{b.Addr()}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Pool{a, b, c} {
		eventually(t, 5*time.Second, "all alive on "+p.cfg.Name, func() error {
			st := statuses(p)
			if st["a"] != StatusAlive || st["b"] != StatusAlive || st["c"] != StatusAlive {
				return fmt.Errorf("statuses %v", st)
			}
			return nil
		})
	}
	for _, m := range a.Members() {
		if m.Meta.Datacenter != "dc-"+m.Name || m.Meta.RaftAddr != "127.0.0.1:1" {
			t.Errorf("meta of %s seen by a: %+v", m.Name, m.Meta)
		}
		if m.Self != (m.Name == "a") {
			t.Errorf("member %s Self=%v on a", m.Name, m.Self)
		}
	}
	// Live and LivePeers say whom a Broadcast reaches: the others, not
	// this server, nor a name the pool never held.
	if !a.Live("b") || !a.Live("c") || a.Live("a") || a.Live("nope") || a.LivePeers() != 2 {
		t.Errorf("on a: Live b=%v c=%v a=%v nope=%v, LivePeers %d; want true, true, false, false, 2",
			a.Live("b"), a.Live("c"), a.Live("a"), a.Live("nope"), a.LivePeers())
	}
	// The joiner and the member it joined exchanged their full states.
	if !recs[1].has(&recs[1].merged, "state-a") || !recs[0].has(&recs[0].merged, "state-b") {
		t.Errorf("join state exchange missing: a merged %v, b merged %v", recs[0].get(&recs[0].merged), recs[1].get(&recs[1].merged))
	}

	c.Broadcast([]byte("hello from c"))
	eventually(t, 2*time.Second, "SentBytes after one broadcast to two members", func() error {
		if got, want := c.SentBytes(), uint64(2*(1+len("hello from c"))); got != want {
			return fmt.Errorf("SentBytes %d, want %d", got, want)
		}
		return nil
	})
	for i, r := range recs[:2] {
		eventually(t, 2*time.Second, fmt.Sprintf("message at %d", i), func() error {
			if !r.has(&r.msgs, "hello from c") {
				return fmt.Errorf("messages %v", r.get(&r.msgs))
			}
			return nil
		})
	}
	if m := recs[2].get(&recs[2].msgs); len(m) != 0 {
		t.Errorf("sender received its own broadcast: %v", m)
	}

	// Probes measure RTT to the others.
	eventually(t, 3*time.Second, "RTT measured", func() error {
		for _, m := range a.Members() {
			if !m.Self && m.RTT <= 0 {
				return fmt.Errorf("no RTT to %s", m.Name)
			}
		}
		return nil
	})

	// A server that stops without a word is found dead; one that leaves
	// is dead at once (gossip does not tell the two apart: see
	// raft.Node.AnnounceLeave).
	start := time.Now()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "c dead on a", func() error {
		if st := statuses(a)["c"]; st != StatusDead {
			return fmt.Errorf("c is %s", st)
		}
		return nil
	})
	t.Logf("dead server detected in %v", time.Since(start).Round(time.Millisecond))
	if a.Live("c") || a.LivePeers() != 1 {
		t.Errorf("on a, c dead: Live c=%v, LivePeers %d; want false, 1", a.Live("c"), a.LivePeers())
	}
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	leftAt := time.Now()
	eventually(t, 5*time.Second, "b dead on a", func() error {
		if st := statuses(a)["b"]; st != StatusDead {
			return fmt.Errorf("b is %s", st)
		}
		return nil
	})
	t.Logf("leave heard in %v", time.Since(leftAt).Round(time.Millisecond))
	a.Forget("c")
	a.Forget("a") // live: not forgotten
	st := statuses(a)
	if _, ok := st["c"]; ok {
		t.Error("forgotten dead member still listed")
	}
	if st["a"] != StatusAlive {
		t.Error("Forget dropped a live member")
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	cfg := LocalConfig()
	cfg.BindAddr = "127.0.0.1:0"
	if _, err := Start(cfg); err == nil {
		t.Error("Start without a name succeeded")
	}
	cfg.Name = "x"
	cfg.BindAddr = "127.0.0.1"
	if _, err := Start(cfg); err == nil {
		t.Error("Start with an address without port succeeded")
	}
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Meta.HTTPAddr = string(make([]byte, 600))
	if _, err := Start(cfg); err == nil {
		t.Error("Start with oversized meta succeeded")
	}
}

// cutTransport drops everything this pool sends to the addresses cut.
type cutTransport struct {
	memberlist.Transport
	mu   sync.Mutex
	cut  map[string]bool
	hang map[string]bool // dials wait for their timeout, as when packets are dropped
}

func (c *cutTransport) hangDials(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hang == nil {
		c.hang = map[string]bool{}
	}
	c.hang[addr] = true
}

func (c *cutTransport) hangs(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hang[addr]
}

func (c *cutTransport) set(addrs []string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range addrs {
		c.cut[a] = on
	}
}

func (c *cutTransport) blocked(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut[addr]
}

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.blocked(addr) {
		return time.Now(), nil
	}
	return c.Transport.WriteTo(b, addr)
}

func (c *cutTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	if c.blocked(addr) {
		return nil, errors.New("link cut")
	}
	if c.hangs(addr) {
		time.Sleep(d)
		return nil, errors.New("dial timed out: packets dropped")
	}
	return c.Transport.DialTimeout(addr, d)
}

// After a partition heals, both sides find each other alive again: each
// holds the other dead, and memberlist alone never speaks to a dead member.
func TestPoolHealsAfterAPartition(t *testing.T) {
	names := []string{"a", "b", "c"}
	pools, cuts := startCuttable(t, names, nil)
	ctx := context.Background()
	for _, name := range []string{"b", "c"} {
		if _, err := pools[name].Join(ctx, []string{pools["a"].Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(on, of string, st Status) func() error {
		return func() error {
			if got := statuses(pools[on])[of]; got != st {
				return fmt.Errorf("%s sees %s %s", on, of, got)
			}
			return nil
		}
	}
	for _, on := range names {
		for _, of := range names {
			eventually(t, 5*time.Second, "joined", want(on, of, StatusAlive))
		}
	}
	// Cut c off from a and b, both ways.
	cuts["a"].set([]string{pools["c"].Addr()}, true)
	cuts["b"].set([]string{pools["c"].Addr()}, true)
	cuts["c"].set([]string{pools["a"].Addr(), pools["b"].Addr()}, true)
	for _, pair := range [][2]string{{"a", "c"}, {"b", "c"}, {"c", "a"}, {"c", "b"}} {
		eventually(t, 15*time.Second, "partitioned", want(pair[0], pair[1], StatusDead))
	}
	// Stay apart long enough that memberlist no longer gossips to the dead.
	time.Sleep(2 * time.Second)
	healed := time.Now()
	cuts["a"].set([]string{pools["c"].Addr()}, false)
	cuts["b"].set([]string{pools["c"].Addr()}, false)
	cuts["c"].set([]string{pools["a"].Addr(), pools["b"].Addr()}, false)
	for _, on := range names {
		for _, of := range names {
			eventually(t, 5*time.Second, "healed", want(on, of, StatusAlive))
		}
	}
	t.Logf("whole again %v after the heal", time.Since(healed).Round(10*time.Millisecond))
}

func startKeyed(t *testing.T, name string, keys ...[]byte) *Pool {
	t.Helper()
	return startWith(t, name, func(cfg *Config) { cfg.Keys = keys })
}

// With a key, gossip is sealed: a server without it, or with another key,
// cannot join, and nothing it sends is taken; a second key rolls in.
func TestEncryptedGossip(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210fedcba9876543210")
	a := startKeyed(t, "a", key)
	b := startKeyed(t, "b", key)
	ctx := context.Background()
	if _, err := b.Join(ctx, []string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b alive on a", func() error {
		if st := statuses(a)["b"]; st != StatusAlive {
			return fmt.Errorf("b is %q", st)
		}
		return nil
	})
	plain := startPool(t, "plain", &recorder{})
	wrong := startKeyed(t, "wrong", other)
	for _, p := range []*Pool{plain, wrong} {
		jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		n, err := p.Join(jctx, []string{a.Addr()})
		cancel()
		if err == nil && n > 0 {
			t.Fatalf("%s joined a keyed pool", p.cfg.Name)
		}
	}
	if st := statuses(a); st["plain"] != "" || st["wrong"] != "" {
		t.Fatalf("a lists outsiders: %v", st)
	}
	// Rolling a key in: a server that seals with the cluster's key and
	// also reads a new one joins.
	rolling := startKeyed(t, "rolling", key, other)
	if _, err := rolling.Join(ctx, []string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "rolling alive on a", func() error {
		if st := statuses(a)["rolling"]; st != StatusAlive {
			return fmt.Errorf("rolling is %q", st)
		}
		return nil
	})
	for _, k := range [][]byte{nil, key[:16], bytes.Repeat([]byte{0}, 32), bytes.Repeat([]byte("x"), 32)} {
		cfg := LocalConfig()
		cfg.Name, cfg.BindAddr, cfg.Keys = "bad", "127.0.0.1:0", [][]byte{k}
		if p, err := Start(cfg); err == nil {
			p.Shutdown()
			t.Fatalf("key %q accepted", k)
		}
	}
}

// A key is rotated on a running pool in three steps (install, use, remove)
// without any member falling out; afterwards only the new key joins, and a
// member restarted with the old key in its configuration keeps the new one
// from its keyring file.
func TestKeyRotation(t *testing.T) {
	oldKey := []byte("0123456789abcdef0123456789abcdef")
	newKey := []byte("fedcba9876543210fedcba9876543210")
	dir := t.TempDir()
	start := func(name string, keys ...[]byte) *Pool {
		return startWith(t, name, func(cfg *Config) {
			cfg.Keys, cfg.KeyringFile = keys, filepath.Join(dir, name+".keyring")
		})
	}
	ctx := context.Background()
	pools := []*Pool{start("a", oldKey), start("b", oldKey), start("c", oldKey)}
	for _, p := range pools[1:] {
		if _, err := p.Join(ctx, []string{pools[0].Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	allAlive := func(what string) {
		t.Helper()
		eventually(t, 5*time.Second, what, func() error {
			for _, p := range pools {
				for _, n := range []string{"a", "b", "c"} {
					if st := statuses(p)[n]; st != StatusAlive {
						return fmt.Errorf("%s sees %s %q", p.cfg.Name, n, st)
					}
				}
			}
			return nil
		})
	}
	allAlive("three members alive")
	failures := func() (n uint64) {
		for _, p := range pools {
			n += p.Failures()
		}
		return n
	}
	before := failures()

	if err := pools[0].UseKey(newKey); err == nil {
		t.Fatalf("UseKey of a key not installed succeeded")
	}
	for _, step := range []struct {
		name string
		do   func(*Pool) error
	}{
		{"install", func(p *Pool) error { return p.InstallKey(newKey) }},
		{"use", func(p *Pool) error { return p.UseKey(newKey) }},
		{"remove", func(p *Pool) error { return p.RemoveKey(oldKey) }},
	} {
		for _, p := range pools {
			if err := step.do(p); err != nil {
				t.Fatalf("%s on %s: %v", step.name, p.cfg.Name, err)
			}
			// Let a few gossip rounds run between servers, as a rolling
			// change does.
			time.Sleep(100 * time.Millisecond)
		}
		allAlive("alive after " + step.name)
	}
	if got := failures(); got != before {
		t.Errorf("members were found dead during the rotation: %d failures, %d before", got, before)
	}
	keys, err := pools[1].Keys()
	if err != nil || len(keys) != 1 || !keys[0].Primary || keys[0].Fingerprint != Fingerprint(newKey) {
		t.Fatalf("keyring after rotation: %+v %v", keys, err)
	}
	if err := pools[1].RemoveKey(newKey); err == nil {
		t.Fatalf("removing the primary key succeeded")
	}

	// Only the new key gets in now.
	for _, c := range []struct {
		name string
		key  []byte
		ok   bool
	}{{"old", oldKey, false}, {"new", newKey, true}} {
		p := startKeyed(t, c.name, c.key)
		jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		n, err := p.Join(jctx, []string{pools[0].Addr()})
		cancel()
		if joined := err == nil && n > 0; joined != c.ok {
			t.Errorf("a member with the %s key joined = %v (%v), want %v", c.name, joined, err, c.ok)
		}
	}

	// b restarts with the old key in its configuration: its keyring file
	// has the new one, and it comes back.
	addr := pools[1].Addr()
	if err := pools[1].Shutdown(); err != nil {
		t.Fatal(err)
	}
	b2 := startWith(t, "b", func(cfg *Config) {
		cfg.BindAddr, cfg.Keys, cfg.KeyringFile = addr, [][]byte{oldKey}, filepath.Join(dir, "b.keyring")
	})
	if _, err := b2.Join(ctx, []string{pools[0].Addr()}); err != nil {
		t.Fatalf("restarted b cannot join with its saved keyring: %v", err)
	}
	if keys, _ := b2.Keys(); len(keys) != 1 || keys[0].Fingerprint != Fingerprint(newKey) {
		t.Errorf("restarted b's keyring: %+v", keys)
	}

	// A plaintext pool has no keyring to change.
	plain := startPool(t, "plain2", &recorder{})
	if err := plain.InstallKey(newKey); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("InstallKey on a plaintext pool = %v, want ErrNotEncrypted", err)
	}
}

// A member silent long enough to be suspect, but not dead, is shown
// suspect while it is silent and counted in Suspicions when it answers
// again; it is not a failure.
func TestSuspicionIsShownAndCounted(t *testing.T) {
	pools, cuts := startCuttable(t, []string{"a", "b"}, func(cfg *Config) {
		cfg.SuspicionMult = 50 // memberlist declares death after 10 s: far beyond the cut
	})
	a, b := pools["a"], pools["b"]
	if _, err := b.Join(context.Background(), []string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b alive on a", func() error {
		if st := statuses(a)["b"]; st != StatusAlive {
			return fmt.Errorf("b is %q", st)
		}
		return nil
	})
	// Let a hear b at least once, then cut them apart.
	eventually(t, 5*time.Second, "an ack from b", func() error {
		for _, m := range a.Members() {
			if m.Name == "b" && m.RTT > 0 {
				return nil
			}
		}
		return fmt.Errorf("no RTT to b yet")
	})
	before := a.Suspicions()
	cuts["a"].set([]string{b.Addr()}, true)
	cuts["b"].set([]string{a.Addr()}, true)
	eventually(t, 5*time.Second, "b suspect on a", func() error {
		if st := statuses(a)["b"]; st != StatusSuspect {
			return fmt.Errorf("b is %q", st)
		}
		return nil
	})
	cuts["a"].set([]string{b.Addr()}, false)
	cuts["b"].set([]string{a.Addr()}, false)
	eventually(t, 5*time.Second, "b alive again and the suspicion counted", func() error {
		if st := statuses(a)["b"]; st != StatusAlive {
			return fmt.Errorf("b is %q", st)
		}
		if a.Suspicions() == before {
			return fmt.Errorf("no suspicion counted")
		}
		return nil
	})
	if a.Failures() != 0 {
		t.Errorf("a suspect member that came back counted as %d failures", a.Failures())
	}
}

// startCuttable starts pools whose links a test can cut (cutTransport).
func startCuttable(t *testing.T, names []string, tune func(*Config)) (map[string]*Pool, map[string]*cutTransport) {
	t.Helper()
	pools := map[string]*Pool{}
	cuts := map[string]*cutTransport{}
	for _, name := range names {
		pools[name] = startWith(t, name, func(cfg *Config) {
			if tune != nil {
				tune(cfg)
			}
			cfg.wrapTransport = func(tr memberlist.Transport) memberlist.Transport {
				ct := &cutTransport{Transport: tr, cut: map[string]bool{}}
				cuts[name] = ct
				return ct
			}
		})
	}
	return pools, cuts
}

// rawMeta is a memberlist delegate that announces meta as given.
type rawMeta []byte

func (m rawMeta) NodeMeta(int) []byte                  { return m }
func (rawMeta) NotifyMsg([]byte)                       {}
func (rawMeta) GetBroadcasts(int, int) [][]byte        { return nil }
func (rawMeta) LocalState(bool) []byte                 { return nil }
func (rawMeta) MergeRemoteState(buf []byte, join bool) {}

// startRaw starts a bare memberlist, as a stranger on the network would.
func startRaw(t *testing.T, name string, meta []byte) *memberlist.Memberlist {
	t.Helper()
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertisePort = name, "127.0.0.1", 0, 0
	mc.Delegate = rawMeta(meta)
	mc.LogOutput = testlogWriter{t}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	return ml
}

type testlogWriter struct{ t *testing.T }

func (w testlogWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

// The pool lets in only members with a node id for a name and metadata it
// can read, and no more than MaxMembers: whatever a stranger announces
// cannot grow it without bound.
func TestPoolRefusesBadNamesAndKeepsItsBound(t *testing.T) {
	a := startWith(t, "a", func(cfg *Config) { cfg.MaxMembers = 3 })
	for _, bad := range []struct{ name, meta string }{
		{"Evil", `{}`},
		{"has_underscore", `{}`},
		{"-x", `{}`},
		{string(bytes.Repeat([]byte("n"), 64)), `{}`},
		{"junk-meta", `{"raft": 5`},
		{"bad-role", `{"role": "king"}`},
	} {
		ml := startRaw(t, bad.name, []byte(bad.meta))
		_, _ = ml.Join([]string{a.Addr()})
		// The refusal is memberlist's answer to the join itself; wait for
		// a probe round so that a late acceptance would show.
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if _, ok := statuses(a)[bad.name]; ok {
				t.Fatalf("member %q (meta %s) let in", bad.name, bad.meta)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, n := range a.ml.Members() {
			if n.Name == bad.name {
				t.Fatalf("memberlist holds %q", bad.name)
			}
		}
	}
	// Room for two more members, then no more.
	for _, name := range []string{"b", "c"} {
		p := startPool(t, name, &recorder{})
		if _, err := p.Join(context.Background(), []string{a.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "b and c in a's pool", func() error {
		if st := statuses(a); st["b"] != StatusAlive || st["c"] != StatusAlive {
			return fmt.Errorf("%v", st)
		}
		return nil
	})
	ml := startRaw(t, "d", []byte(`{}`))
	_, _ = ml.Join([]string{a.Addr()})
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if _, ok := statuses(a)["d"]; ok {
			t.Fatal("a fourth member let into a pool of at most 3")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A member whose link drops packets (every dial waits for the TCP timeout)
// holds up neither the caller of Broadcast nor the other members'
// messages: each member has a sender of its own.
func TestBroadcastPastAHangingMember(t *testing.T) {
	pools, cuts := startCuttable(t, []string{"a", "b", "c"}, nil)
	ctx := context.Background()
	for _, name := range []string{"b", "c"} {
		if _, err := pools[name].Join(ctx, []string{pools["a"].Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "a holds b and c alive", func() error {
		if !pools["a"].Live("b") || !pools["a"].Live("c") {
			return fmt.Errorf("a: %v", statuses(pools["a"]))
		}
		return nil
	})
	// Only a's messages to c hang; c stays alive to a (its probes are
	// answered), so every broadcast is sent to it too.
	cuts["a"].hangDials(pools["c"].Addr())
	b := pools["b"].cfg.Handler.(*recorder)
	for i := range 8 {
		msg := fmt.Sprintf("m-%d", i)
		t0 := time.Now()
		pools["a"].Broadcast([]byte(msg))
		if d := time.Since(t0); d > 200*time.Millisecond {
			t.Fatalf("Broadcast %d took %v: it waited for the hanging member", i, d)
		}
		eventually(t, time.Second, "b receives "+msg, func() error {
			if !b.has(&b.msgs, msg) {
				return fmt.Errorf("b has %v", b.get(&b.msgs))
			}
			return nil
		})
		if d := time.Since(t0); d > 500*time.Millisecond {
			t.Fatalf("b received %s %v after it was sent: held up behind the hanging member", msg, d)
		}
	}
	if !pools["a"].Live("c") {
		t.Fatalf("c was found dead meanwhile (%v): the test did not send to a hanging member", statuses(pools["a"]))
	}
}
