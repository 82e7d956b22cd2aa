package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// Config configures a Client.
type Config struct {
	// Servers are the registry servers' HTTP addresses ("host:port" or
	// "http://host:port"); the client fails over between them.
	Servers []string
	// Namespace is where services are looked up and registered
	// (default "default").
	Namespace string
	// Locality is where this process runs: lookups are chosen for it,
	// nearest first.
	Locality store.Locality
	// CacheDir keeps a disk snapshot of the last answers, read at start
	// when no server answers ("": none).
	CacheDir string
	// Static lists instances per service, the last resort when neither a
	// server, memory nor the disk snapshot knows the service.
	Static map[string][]wire.Instance
	// AllowEmpty lets an empty answer replace a non-empty one. By default
	// a service's instances are kept until the service itself is deleted:
	// a server that restarts empty, or a bad deploy that deregisters
	// everything, must not leave callers with nothing.
	AllowEmpty bool
	// Wait is the blocking query's wait (default 30 s).
	Wait time.Duration
	// SnapshotEvery is the least time between two snapshot writes
	// (default 1 s).
	SnapshotEvery time.Duration
	// HTTPClient is used for every request (default: a client without a
	// global timeout; each request has its own).
	HTTPClient *http.Client
	// Token is the secret sent with every request, for servers with access
	// control on: read on the services looked up, write on those
	// registered.
	Token  string
	Logger *slog.Logger
}

// Source says where an answer came from.
type Source string

// Sources, in the order the client falls back through them.
const (
	SourceLive     Source = "live"     // a server answered, and still does
	SourceMemory   Source = "memory"   // the last answer of a server that no longer answers
	SourceSnapshot Source = "snapshot" // the disk snapshot
	SourceStatic   Source = "static"   // Config.Static
)

// Answer is what Lookup returns. Its slices are shared: do not modify them.
type Answer struct {
	Service string
	// Instances may take this caller's traffic, nearest first.
	Instances []wire.Instance
	// ServedBy is the namespace that served (see namespace fallbacks).
	ServedBy  string
	Protected bool
	Source    Source
	// Age is how old the data is: zero when live, else the time since a
	// server last confirmed it.
	Age time.Duration
}

// ErrNoAnswer: no server, memory, snapshot or static list knows the service.
var ErrNoAnswer = errors.New("no answer for the service")

// Client is a registry client with memory and disk fallbacks. It is safe
// for concurrent use.
type Client struct {
	cfg    Config
	logger *slog.Logger
	apis   []*API
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.RWMutex
	services map[string]*serviceState

	regMu sync.Mutex
	regs  map[*Registered]bool

	dirty chan struct{} // a view changed: the snapshot is due
	snap  *snapshot     // read at start, nil if none
	pins  atomic.Pointer[pinned]
}

// New starts a client. It contacts no server until asked something.
func New(cfg Config) (*Client, error) {
	if len(cfg.Servers) == 0 && len(cfg.Static) == 0 && cfg.CacheDir == "" {
		return nil, errors.New("client: config: give Servers (or at least CacheDir or Static)")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = store.DefaultNamespace
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 30 * time.Second
	}
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, logger: logger, services: map[string]*serviceState{}, regs: map[*Registered]bool{},
		dirty: make(chan struct{}, 1)}
	for _, s := range cfg.Servers {
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		a, err := NewAPI(s, cfg.HTTPClient)
		if err != nil {
			return nil, err
		}
		c.apis = append(c.apis, a.WithToken(cfg.Token))
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.CacheDir != "" {
		snap, err := readSnapshot(cfg.CacheDir)
		switch {
		case err != nil:
			logger.Warn("disk snapshot not used", "dir", cfg.CacheDir, "err", err)
		case snap != nil && snap.Namespace != cfg.Namespace:
			logger.Warn("disk snapshot is of another namespace; not used", "snapshot", snap.Namespace, "namespace", cfg.Namespace)
		case snap != nil:
			c.snap = snap
		}
		c.wg.Add(2)
		go c.runSnapshots()
		c.loadPins()
		go c.runPins()
	}
	return c, nil
}

// serviceState is one watched service.
type serviceState struct {
	name string
	cur  atomic.Pointer[view]
	// live: the watcher's last request succeeded.
	live atomic.Bool
	// ready closes at the first answer from a server, or when every
	// server has failed once: Lookup waits for it no longer.
	ready     chan struct{}
	readyOnce sync.Once

	inflight map[string]*atomic.Int64 // by instance id; replaced with the view
	inMu     sync.RWMutex
	inFlight func(id string) int

	subMu sync.Mutex
	subs  map[chan Answer]struct{}
}

// publish sends the current answer to every watcher; a watcher that has
// not read the previous one gets this one instead (latest wins).
func (st *serviceState) publish() {
	v := st.cur.Load()
	if v == nil {
		return
	}
	a := v.answer
	st.subMu.Lock()
	defer st.subMu.Unlock()
	for ch := range st.subs {
		select {
		case ch <- a:
			continue
		default:
		}
		select {
		case <-ch:
		default:
		}
		select {
		case ch <- a:
		default:
		}
	}
}

// subscribe adds a watcher's channel, holding the current answer if there
// is one. The first answer goes in under subMu, like publish's: sent after
// unlocking, a publish in between could fill the one slot first, and the
// send would block forever, before the caller has the channel to read.
func (st *serviceState) subscribe() chan Answer {
	ch := make(chan Answer, 1)
	st.subMu.Lock()
	defer st.subMu.Unlock()
	if st.subs == nil {
		st.subs = map[chan Answer]struct{}{}
	}
	st.subs[ch] = struct{}{}
	if v := st.cur.Load(); v != nil {
		ch <- v.answer
	}
	return ch
}

// unsubscribe removes a watcher's channel and closes it.
func (st *serviceState) unsubscribe(ch chan Answer) {
	st.subMu.Lock()
	defer st.subMu.Unlock()
	delete(st.subs, ch)
	close(ch)
}

// Watch returns a channel that receives the service's answer when known
// and again after every change, until ctx ends (then it is closed). A slow
// reader misses intermediate answers, never the latest one.
func (c *Client) Watch(ctx context.Context, service string) <-chan Answer {
	st := c.state(service)
	ch := st.subscribe()
	go func() {
		select {
		case <-ctx.Done():
		case <-c.ctx.Done():
		}
		st.unsubscribe(ch)
	}()
	return ch
}

// view is an answer and what picking needs.
type view struct {
	answer  Answer
	index   uint64
	at      time.Time // when a server last confirmed it
	picker  *route.Picker
	deleted bool
	balance string // the service's default balancer
}

func (st *serviceState) markReady() { st.readyOnce.Do(func() { close(st.ready) }) }

// state returns the service's state, starting its watcher the first time.
func (c *Client) state(svc string) *serviceState {
	c.mu.RLock()
	st := c.services[svc]
	c.mu.RUnlock()
	if st != nil {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st = c.services[svc]; st != nil {
		return st
	}
	st = &serviceState{name: svc, ready: make(chan struct{}), inflight: map[string]*atomic.Int64{}}
	st.inFlight = func(id string) int {
		st.inMu.RLock()
		n := st.inflight[id]
		st.inMu.RUnlock()
		if n == nil {
			return 0
		}
		return int(n.Load())
	}
	if c.snap != nil {
		if e := c.snap.Services[svc]; e != nil {
			v := c.newView(svc, e.Instances, e.ServedBy, e.Protected, e.Index, c.snap.WrittenAt, SourceSnapshot, "")
			st.cur.Store(v)
		}
	}
	c.services[svc] = st
	if len(c.apis) == 0 {
		st.markReady()
	} else {
		c.wg.Add(1)
		go c.watch(st)
	}
	return st
}

func (c *Client) newView(svc string, ins []wire.Instance, servedBy string, protected bool, index uint64, at time.Time, src Source, balancer string) *view {
	cands := make([]route.Candidate, len(ins))
	for k, in := range ins {
		cands[k] = route.Candidate{Instance: in.Instance}
	}
	return &view{
		answer: Answer{Service: svc, Instances: ins, ServedBy: servedBy, Protected: protected, Source: src},
		index:  index, at: at, balance: balancer,
		picker: route.NewPicker(route.Selection{Candidates: cands}),
	}
}

// Lookup returns the instances of service that may take this caller's
// traffic: from a server when one answers, else from memory, else from the
// disk snapshot, else from Config.Static.
func (c *Client) Lookup(ctx context.Context, service string) (Answer, error) {
	if p := c.pins.Load(); p != nil {
		if a, ok := p.answers[service]; ok {
			return a, nil
		}
	}
	st := c.state(service)
	select {
	case <-st.ready:
	case <-ctx.Done():
		// Answer with what there is rather than nothing.
	}
	if v := st.cur.Load(); v != nil && !(v.deleted && len(v.answer.Instances) == 0) {
		a := v.answer
		switch {
		case a.Source == SourceSnapshot:
			a.Age = time.Since(v.at)
		case !st.live.Load():
			a.Source, a.Age = SourceMemory, time.Since(v.at)
		}
		return a, nil
	}
	if ins, ok := c.cfg.Static[service]; ok && len(ins) > 0 {
		return Answer{Service: service, Instances: ins, ServedBy: c.cfg.Namespace, Source: SourceStatic}, nil
	}
	if err := ctx.Err(); err != nil {
		return Answer{}, fmt.Errorf("client: lookup %s: %w", service, err)
	}
	return Answer{}, fmt.Errorf("client: lookup %s: %w", service, ErrNoAnswer)
}

// PickOptions refine Pick.
type PickOptions struct {
	// Key makes consistent_hash sticky (a session or user id).
	Key string
	// Balancer overrides the service's balancer.
	Balancer string
}

// Pick chooses one instance of service for this caller and counts it in
// flight until Done.
func (c *Client) Pick(ctx context.Context, service string, o PickOptions) (wire.Instance, error) {
	if p := c.pins.Load(); p != nil {
		if pk, ok := p.pickers[service]; ok {
			cand, err := pk.Pick(route.PickOptions{Rand: rand.Uint64})
			if err != nil {
				return wire.Instance{}, fmt.Errorf("client: pick %s (pinned): %w", service, err)
			}
			return wire.Instance{Instance: cand.Instance}, nil
		}
	}
	st := c.state(service)
	var v *view
	select {
	case <-st.ready:
		v = st.cur.Load() // a view in memory: live, memory or snapshot
	default:
	}
	if v == nil || len(v.answer.Instances) == 0 {
		a, err := c.Lookup(ctx, service)
		if err != nil {
			return wire.Instance{}, err
		}
		if v = st.cur.Load(); v == nil || a.Source == SourceStatic {
			v = c.newView(service, a.Instances, a.ServedBy, false, 0, time.Time{}, a.Source, "")
		}
	}
	balancer := o.Balancer
	if balancer == "" {
		balancer = v.balance
	}
	if balancer == route.ConsistentHash && o.Key == "" {
		balancer = route.WeightedRandom
	}
	k, err := v.picker.PickIndex(route.PickOptions{Balancer: balancer, Rand: rand.Uint64, Key: o.Key, InFlight: st.inFlight})
	if err != nil {
		return wire.Instance{}, fmt.Errorf("client: pick %s: %w", service, err)
	}
	in := v.answer.Instances[k]
	st.counter(in.ID).Add(1)
	return in, nil
}

// Done reports that a call to an instance returned by Pick has ended.
func (c *Client) Done(service string, in wire.Instance, err error) {
	c.mu.RLock()
	st := c.services[service]
	c.mu.RUnlock()
	if st == nil || in.Instance == nil {
		return
	}
	if n := st.counter(in.ID); n != nil && n.Add(-1) < 0 {
		n.Store(0)
	}
}

func (st *serviceState) counter(id string) *atomic.Int64 {
	st.inMu.RLock()
	n := st.inflight[id]
	st.inMu.RUnlock()
	if n != nil {
		return n
	}
	st.inMu.Lock()
	defer st.inMu.Unlock()
	if n = st.inflight[id]; n == nil {
		n = new(atomic.Int64)
		st.inflight[id] = n
	}
	return n
}

// watch keeps a service's view fresh with blocking queries, failing over
// between servers with jittered backoff. After its first full answer it
// asks for deltas (LookupDelta) and applies them to the last full answer
// a server gave, which it keeps apart from the view: empty-answer
// protection may keep a view the server's answer no longer holds.
func (c *Client) watch(st *serviceState) {
	defer c.wg.Done()
	server := rand.IntN(len(c.apis))
	var index uint64
	var (
		last  *Instances // the last full answer, rebuilt from deltas
		token string     // its delta token; "" asks for a full answer
	)
	failures := 0
	near := c.cfg.Locality.Path()
	for c.ctx.Err() == nil {
		a := c.apis[server]
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Wait+10*time.Second)
		res, next, err := a.LookupDelta(ctx, c.cfg.Namespace, st.name, LookupOptions{HealthyOnly: true, Near: near, Index: index, Wait: c.cfg.Wait}, token)
		cancel()
		if err == nil && res.Delta {
			full, aerr := applyDelta(last, res)
			if aerr != nil {
				// Nothing to apply it to, or it does not fit: ask again in
				// full, at once.
				c.logger.Debug("delta not applied; asking for the full answer", "service", st.name, "err", aerr)
				last, token, index = nil, "", 0
				continue
			}
			res = full
		}
		switch {
		case err == nil:
			failures = 0
			st.live.Store(true)
			// A token is good on every server (they share one history);
			// one that cannot use it answers in full.
			last, token = res, next
			c.update(st, res)
			index = res.Index
			st.markReady()
			continue
		case IsNotFound(err):
			// The service (or namespace) does not exist: that is an
			// answer, and empty is what it is.
			failures = 0
			st.live.Store(true)
			c.deleted(st)
			st.markReady()
			index = 0
			last, token = nil, ""
			if !sleepCtx(c.ctx, time.Second) {
				return
			}
			continue
		}
		if c.ctx.Err() != nil {
			return
		}
		if IsDenied(err) && failures == 0 {
			c.logger.Warn("a registry server refused this client's token: answering from memory meanwhile", "service", st.name, "server", a.base, "err", err)
		}
		failures++
		st.live.Store(false)
		if failures >= len(c.apis) {
			st.markReady() // every server failed once: answer from what we have
		}
		c.logger.Debug("registry server failed; trying another", "service", st.name, "server", a.base, "err", err)
		server = (server + 1) % len(c.apis)
		index = 0 // another server's index need not match
		if !sleepCtx(c.ctx, backoff(failures)) {
			return
		}
	}
}

// applyDelta makes the full answer of a delta answer to the last full
// one.
func applyDelta(last, d *Instances) (*Instances, error) {
	if last == nil {
		return nil, fmt.Errorf("client: a delta answer, but no full answer to apply it to: %w", wire.ErrBadDelta)
	}
	return last.ApplyDelta(d)
}

// backoff is 50 ms doubling to 800 ms, with full jitter (the first
// failover is immediate). The ceiling is low on purpose: when the servers
// come back, callers must see changes within a second; a client makes at
// most a few requests a second per service meanwhile.
func backoff(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := min(50*time.Millisecond<<min(failures-2, 4), 800*time.Millisecond)
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (c *Client) update(st *serviceState, res *Instances) {
	cur := st.cur.Load()
	if len(res.Instances) == 0 && !c.cfg.AllowEmpty && cur != nil && len(cur.answer.Instances) > 0 && !cur.deleted {
		// Empty-answer protection: keep serving what we had, but follow
		// the index so that the next change wakes us.
		if cur.index != res.Index {
			c.logger.Warn("empty answer for a service that had instances; keeping them (Config.AllowEmpty to accept)", "service", st.name)
			kept := *cur
			kept.index, kept.at = res.Index, time.Now()
			kept.answer.Source = SourceLive
			st.cur.Store(&kept)
		}
		return
	}
	v := c.newView(st.name, res.Instances, res.ServedBy, res.Protected, res.Index, time.Now(), SourceLive, res.Settings.Balancer)
	st.cur.Store(v)
	st.publish()
	c.markDirty()
}

func (c *Client) deleted(st *serviceState) {
	cur := st.cur.Load()
	if cur != nil && cur.deleted {
		return
	}
	v := c.newView(st.name, nil, c.cfg.Namespace, false, 0, time.Now(), SourceLive, "")
	v.deleted = true
	st.cur.Store(v)
	st.publish()
	c.markDirty()
}

func (c *Client) markDirty() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// runSnapshots writes the disk snapshot after changes, at most once per
// SnapshotEvery, and once more at Close.
func (c *Client) runSnapshots() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.dirty:
		}
		c.writeSnapshot()
		if !sleepCtx(c.ctx, c.cfg.SnapshotEvery) {
			return
		}
	}
}

func (c *Client) writeSnapshot() {
	s := &snapshot{WrittenAt: time.Now().UTC(), Namespace: c.cfg.Namespace, Services: map[string]*snapshotEntry{}}
	c.mu.RLock()
	for name, st := range c.services {
		v := st.cur.Load()
		if v == nil || v.answer.Source == SourceSnapshot || v.deleted {
			continue
		}
		s.Services[name] = &snapshotEntry{Index: v.index, ServedBy: v.answer.ServedBy, Protected: v.answer.Protected, Instances: v.answer.Instances}
	}
	c.mu.RUnlock()
	// Keep what the old snapshot knew of services not looked up this run.
	if c.snap != nil {
		for name, e := range c.snap.Services {
			if _, ok := s.Services[name]; !ok {
				s.Services[name] = e
			}
		}
	}
	if err := writeSnapshot(c.cfg.CacheDir, s); err != nil {
		c.logger.Warn("disk snapshot not written", "err", err)
	}
}

// Close deregisters this client's registrations (graceful offline), stops
// watching, and writes a last snapshot.
func (c *Client) Close() error {
	c.regMu.Lock()
	regs := make([]*Registered, 0, len(c.regs))
	for r := range c.regs {
		regs = append(regs, r)
	}
	c.regMu.Unlock()
	var errs []error
	for _, r := range regs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, r.Deregister(ctx))
		cancel()
	}
	c.cancel()
	c.wg.Wait()
	if c.cfg.CacheDir != "" {
		c.writeSnapshot()
	}
	return errors.Join(errs...)
}
