// Package gossip joins the registry's servers into a gossip pool with
// hashicorp/memberlist: who the servers are, where they run, whether they
// are alive, how far away they are, and a channel for the messages the
// servers exchange outside Raft (liveness of heartbeating instances).
//
// Membership and failure detection are memberlist's (SWIM). On top of it the
// pool keeps its own record of every server it has seen, including dead
// ones, so that callers can say how long a server has been dead, and
// measures the round-trip time of each probe. It does not tell a graceful
// leave from a failure: anyone who can speak gossip could claim another
// server left, so a departure is believed only from the server itself, over
// the Raft port (raft.Node.AnnounceLeave).
package gossip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what a server tells the others about itself. It travels in every
// alive message, so it stays small (memberlist caps it at 512 bytes).
type Meta struct {
	RaftAddr        string `json:"raft"`
	HTTPAddr        string `json:"http"`
	Region          string `json:"region,omitempty"`
	Datacenter      string `json:"dc,omitempty"`
	Unit            string `json:"unit,omitempty"`
	BootstrapExpect int    `json:"expect,omitempty"`
	// Protocol is the server-to-server protocol the running server speaks
	// (raft.ProtocolVersion; absent from versions before it).
	Protocol int `json:"proto,omitempty"`
	// Role is the server's configured role (store.RoleVoter or
	// store.RoleRead; absent from versions before roles: a voter).
	Role string `json:"role,omitempty"`
}

// Status is a server's state as this pool sees it.
type Status string

// Statuses. Suspect: still a member, but it has not answered this server's
// probes for a while (memberlist may yet declare it dead, or it recovers).
// Dead: gone, by failure or on purpose.
const (
	StatusAlive   Status = "alive"
	StatusSuspect Status = "suspect"
	StatusDead    Status = "dead"
)

// Member is one server of the pool.
type Member struct {
	Name   string
	Addr   string // gossip address, host:port
	Meta   Meta
	Status Status
	// Since is when the status last changed (when this server learned it).
	Since time.Time
	// RTT is a smoothed round-trip time of this server's probes to the
	// member; 0 while unknown, and for the local server.
	RTT  time.Duration
	Self bool
}

// Live reports whether the member takes part in the cluster now.
func (m Member) Live() bool { return m.Status == StatusAlive || m.Status == StatusSuspect }

// Handler receives what other servers send. Its methods are called from
// memberlist's goroutines and must not block for long.
type Handler interface {
	// Message is called with the payload of every message from another
	// server (see Pool.Broadcast).
	Message(payload []byte)
	// LocalState returns the state exchanged in full with another server
	// when it joins and periodically after (anti-entropy).
	LocalState() []byte
	// MergeState merges another server's LocalState.
	MergeState(state []byte)
}

// Config configures a pool. Start from DefaultConfig (or LocalConfig for
// tests on one machine) and set Name, BindAddr and Meta.
type Config struct {
	Name string
	// BindAddr is host:port for both TCP and UDP; port 0 picks a free one.
	BindAddr string
	// AdvertiseAddr is the host:port other servers use (default: BindAddr).
	AdvertiseAddr string
	Meta          Meta

	// Failure detection. ProbeInterval is the time between probes of one
	// random member; a member that misses a probe is suspect, and dead
	// after SuspicionMult × log10(members) probe intervals without refuting.
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	SuspicionMult    int
	GossipInterval   time.Duration
	PushPullInterval time.Duration
	// ReconnectInterval is how often the pool tries to reach each member it
	// holds dead, for ReconnectTimeout after it died. Memberlist alone
	// never talks to a dead member again: after a network partition heals,
	// each side would keep the other dead for good.
	ReconnectInterval time.Duration
	ReconnectTimeout  time.Duration

	// Keys encrypt and authenticate every gossip message (AES-GCM, 32-byte
	// keys): the first encrypts, any of them decrypts, so a new key can be
	// rolled in. Without keys gossip is plaintext; with them, a message
	// that is not sealed with one of them is dropped.
	Keys [][]byte
	// KeyringFile keeps the keys across restarts once they are rotated at
	// run time (see keyring.go). When it exists it wins over Keys, and
	// turns encryption on by itself ("": keys live in memory only).
	KeyringFile string

	// MaxMembers bounds the pool (this server included): a member beyond
	// it is not let in, so that a stranger cannot fill the pool's memory
	// with made-up names. 0: DefaultMaxMembers.
	MaxMembers int

	Handler  Handler
	OnChange func() // called (in its own goroutine) after a membership change
	Logger   *slog.Logger

	// wrapTransport, when set, wraps the network transport (the package's
	// tests cut links with it).
	wrapTransport func(memberlist.Transport) memberlist.Transport
}

// DefaultConfig returns settings for servers on a LAN: a registry has a
// handful of servers, so probing one every 500 ms costs little, and a dead
// server is suspect within about 2 s and declared dead within about 3 s.
func DefaultConfig() Config {
	return Config{
		ProbeInterval:     500 * time.Millisecond,
		ProbeTimeout:      250 * time.Millisecond,
		SuspicionMult:     4,
		GossipInterval:    200 * time.Millisecond,
		PushPullInterval:  30 * time.Second,
		ReconnectInterval: 2 * time.Second,
		ReconnectTimeout:  72 * time.Hour,
	}
}

// LocalConfig returns fast settings for servers on one machine (tests).
func LocalConfig() Config {
	return Config{
		ProbeInterval:     200 * time.Millisecond,
		ProbeTimeout:      100 * time.Millisecond,
		SuspicionMult:     3,
		GossipInterval:    50 * time.Millisecond,
		PushPullInterval:  5 * time.Second,
		ReconnectInterval: 500 * time.Millisecond,
		ReconnectTimeout:  time.Hour,
	}
}

// Pool is this server's membership in the gossip pool.
type Pool struct {
	cfg    Config
	ml     *memberlist.Memberlist
	logger *slog.Logger
	meta   []byte

	mu      sync.Mutex
	members map[string]*record
	refused map[string]bool // members refused and logged (warnRefused)

	changed chan struct{} // coalesces OnChange calls
	done    chan struct{}
	wg      sync.WaitGroup

	sendMu  sync.Mutex
	senders map[string]*sender // by member name: see Broadcast

	sentBytes atomic.Uint64
	dropped   atomic.Uint64
	failures  atomic.Uint64
	suspects  atomic.Uint64

	kr    *memberlist.Keyring // nil: plaintext
	keyMu sync.Mutex          // one keyring change at a time, with its file
}

// Failures counts the members this pool found dead (not those that left).
func (p *Pool) Failures() uint64 { return p.failures.Load() }

// Suspicions counts the times a member this pool held suspect answered
// again: silences long enough to be shown suspect that ended short of
// death (those that did not are Failures).
func (p *Pool) Suspicions() uint64 { return p.suspects.Load() }

// SentBytes counts the bytes of messages this pool broadcast (payloads
// times recipients; memberlist's own probes and gossip not included).
func (p *Pool) SentBytes() uint64 { return p.sentBytes.Load() }

// Dropped counts the messages dropped unsent because a member's queue was
// full (it could not be reached for a minute's worth of messages).
func (p *Pool) Dropped() uint64 { return p.dropped.Load() }

type record struct {
	m       Member
	lastAck time.Time
}

// msgUser is the first byte of every message between pools. Versions
// before the Raft-port departure announcement also sent 'l' and a name
// that leaves, which anyone in the pool could forge: it is ignored.
const msgUser byte = 'u'

// Start binds the pool's sockets and starts gossiping (alone until Join).
func Start(cfg Config) (*Pool, error) {
	if cfg.Name == "" {
		return nil, errors.New("gossip: config: name is required")
	}
	if cfg.ProbeInterval <= 0 || cfg.ProbeTimeout <= 0 || cfg.SuspicionMult <= 0 || cfg.GossipInterval <= 0 || cfg.PushPullInterval <= 0 ||
		cfg.ReconnectInterval <= 0 || cfg.ReconnectTimeout <= 0 {
		return nil, errors.New("gossip: config: timings must be positive (start from DefaultConfig)")
	}
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("gossip: meta: %w", err)
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip: meta is %d bytes, at most %d", len(meta), memberlist.MetaMaxSize)
	}
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip: bind address %q: %w", cfg.BindAddr, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pool{cfg: cfg, logger: logger, meta: meta,
		members: map[string]*record{}, refused: map[string]bool{}, senders: map[string]*sender{},
		changed: make(chan struct{}, 1), done: make(chan struct{})}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if cfg.AdvertiseAddr != "" {
		ah, ap, err := splitHostPort(cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("gossip: advertise address %q: %w", cfg.AdvertiseAddr, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	mc.ProbeInterval, mc.ProbeTimeout = cfg.ProbeInterval, cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.GossipInterval, mc.PushPullInterval = cfg.GossipInterval, cfg.PushPullInterval
	mc.TCPTimeout = max(2*time.Second, 4*cfg.ProbeTimeout)
	if cfg.KeyringFile != "" {
		saved, err := loadKeyring(cfg.KeyringFile)
		if err != nil {
			return nil, err
		}
		if saved != nil {
			if len(cfg.Keys) > 0 && !bytes.Equal(cfg.Keys[0], saved[0]) {
				logger.Warn("the keyring file wins over the configured gossip key (the keys were rotated since)",
					"file", cfg.KeyringFile, "configured", Fingerprint(cfg.Keys[0]), "primary", Fingerprint(saved[0]))
			}
			cfg.Keys = saved
		}
	}
	if len(cfg.Keys) > 0 {
		for _, k := range cfg.Keys {
			if err := CheckKey(k); err != nil {
				return nil, err
			}
		}
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: keyring: %w", err)
		}
		mc.Keyring = kr
		p.kr = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
		if err := p.saveKeyring(); err != nil {
			return nil, err
		}
	}
	mc.Delegate = (*delegate)(p)
	mc.Alive = (*alive)(p)
	mc.Events = (*events)(p)
	mc.Ping = (*pings)(p)
	mc.Logger = newStdLogger(logger.With("component", "memberlist"))
	if cfg.wrapTransport != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: mc.Logger})
		if err != nil {
			return nil, fmt.Errorf("gossip: start on %s: %w", cfg.BindAddr, err)
		}
		mc.BindPort = nt.GetAutoBindPort()
		if cfg.AdvertiseAddr == "" {
			mc.AdvertisePort = mc.BindPort
		}
		mc.Transport = cfg.wrapTransport(nt)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: start on %s: %w", cfg.BindAddr, err)
	}
	p.ml = ml
	p.wg.Add(2)
	go p.notifier()
	go p.reconnector()
	return p, nil
}

// reconnector tries, every ReconnectInterval, a state exchange with each
// member held dead (not forgotten, dead for less than
// ReconnectTimeout). When one answers, the exchange tells each side the
// other thinks it dead; both refute, and the pool is whole again within a
// round or two, as Serf's reconnect does.
func (p *Pool) reconnector() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		var addrs []string
		p.mu.Lock()
		for _, r := range p.members {
			if r.m.Status == StatusDead && !r.m.Self && time.Since(r.m.Since) < p.cfg.ReconnectTimeout {
				addrs = append(addrs, r.m.Addr)
			}
		}
		p.mu.Unlock()
		for _, a := range addrs {
			select {
			case <-p.done:
				return
			default:
			}
			if _, err := p.ml.Join([]string{a}); err != nil {
				p.logger.Debug("dead gossip member still unreachable", "addr", a, "err", err)
			} else {
				p.logger.Info("reached a dead gossip member again", "addr", a)
			}
		}
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		host = "0.0.0.0"
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

// Addr returns the gossip address other servers reach this one at.
func (p *Pool) Addr() string { return p.ml.LocalNode().Address() }

// Join contacts the given gossip addresses and merges their view of the
// pool. It succeeds if at least one answered.
func (p *Pool) Join(ctx context.Context, addrs []string) (int, error) {
	type res struct {
		n   int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		n, err := p.ml.Join(addrs)
		ch <- res{n, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil && r.n == 0 {
			return 0, fmt.Errorf("gossip: join %v: %w", addrs, r.err)
		}
		return r.n, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("gossip: join %v: %w", addrs, ctx.Err())
	}
}

// Members lists every server this pool has seen, this one included, dead
// ones until Forget, sorted by name.
func (p *Pool) Members() []Member {
	alive := map[string]bool{}
	for _, n := range p.ml.Members() {
		alive[n.Name] = true
	}
	now := time.Now()
	suspectAfter := p.suspectAfter(len(alive))
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Member, 0, len(p.members))
	for _, r := range p.members {
		m := r.m
		if m.Status == StatusAlive && !m.Self && !r.lastAck.IsZero() && now.Sub(r.lastAck) > suspectAfter {
			m.Status, m.Since = StatusSuspect, r.lastAck.Add(suspectAfter)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// suspectAfter is how long a member may go without answering this server's
// probes before it is shown as suspect. memberlist probes one member per
// interval, going round the others in an order it shuffles every round, so
// two probes of one member can be up to 2(n-1)-1 intervals apart: only a
// longer silence means a probe went unanswered.
func (p *Pool) suspectAfter(n int) time.Duration {
	return time.Duration(2*max(n-1, 1))*p.cfg.ProbeInterval + p.cfg.ProbeTimeout
}

// Forget drops a dead or departed member from Members (after it has been
// removed from the cluster). A live member is not forgotten.
func (p *Pool) Forget(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.members[name]; r != nil && !r.m.Live() {
		delete(p.members, name)
	}
}

// Broadcast sends payload to every other live member over TCP, each
// through a sender of its own (sender.go), and returns without waiting:
// a member that cannot be reached (a cut link holds each dial for the TCP
// timeout) delays only its own messages, never another member's or the
// caller. Errors are logged, not returned: the next message or the
// periodic state exchange repairs what one lost message missed.
func (p *Pool) Broadcast(payload []byte) {
	msg := make([]byte, 0, len(payload)+1)
	msg = append(msg, msgUser)
	msg = append(msg, payload...)
	nodes := p.liveNodes()
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	live := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		live[n.Name] = true
		s := p.senders[n.Name]
		if s == nil {
			s = p.startSender(n.Name)
			p.senders[n.Name] = s
		}
		s.enqueue(n, msg)
	}
	// Senders of members no longer live stop; a member that comes back
	// gets a new one.
	for name, s := range p.senders {
		if !live[name] {
			s.stop()
			delete(p.senders, name)
		}
	}
}

// Live reports whether the pool holds the named member alive or suspect:
// whether a Broadcast now would be sent to it.
func (p *Pool) Live(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.members[name]
	return r != nil && !r.m.Self && r.m.Live()
}

// LivePeers counts the other members the pool holds alive or suspect: those
// a Broadcast now would be sent to.
func (p *Pool) LivePeers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.members {
		if !r.m.Self && r.m.Live() {
			n++
		}
	}
	return n
}

// liveNodes returns the other live members as nodes of their own, built
// from this pool's records. The nodes memberlist's Members returns are its
// own, which it updates under a lock of its own when a member refutes a
// suspicion: reading their addresses here would race with that.
func (p *Pool) liveNodes() []*memberlist.Node {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*memberlist.Node, 0, len(p.members))
	for _, r := range p.members {
		if r.m.Self || !r.m.Live() {
			continue
		}
		ap, err := netip.ParseAddrPort(r.m.Addr)
		if err != nil {
			continue
		}
		out = append(out, &memberlist.Node{Name: r.m.Name, Addr: net.IP(ap.Addr().AsSlice()), Port: ap.Port()})
	}
	return out
}

// Leave tells the others this server is leaving on purpose (they stop
// probing it at once), then shuts the pool down.
func (p *Pool) Leave(timeout time.Duration) error {
	err := p.ml.Leave(timeout)
	if serr := p.Shutdown(); err == nil {
		err = serr
	}
	return err
}

// Shutdown stops gossiping at once; the others will find this server dead.
func (p *Pool) Shutdown() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.sendMu.Lock()
	close(p.done)
	for name, snd := range p.senders {
		snd.stop()
		delete(p.senders, name)
	}
	p.sendMu.Unlock()
	err := p.ml.Shutdown()
	p.wg.Wait()
	return err
}

func (p *Pool) notifier() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.changed:
			if p.cfg.OnChange != nil {
				p.cfg.OnChange()
			}
		}
	}
}

func (p *Pool) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *Pool) set(n *memberlist.Node, status Status) {
	var meta Meta
	if err := json.Unmarshal(n.Meta, &meta); err != nil {
		p.logger.Warn("gossip member with unreadable metadata", "member", n.Name, "err", err)
	}
	p.mu.Lock()
	r := p.members[n.Name]
	if r == nil {
		r = &record{}
		p.members[n.Name] = r
	}
	prev := r.m.Status
	r.m.Name, r.m.Addr, r.m.Meta = n.Name, n.Address(), meta
	r.m.Self = n.Name == p.cfg.Name
	if prev != status {
		r.m.Status, r.m.Since = status, time.Now()
		r.lastAck = time.Time{}
	}
	p.mu.Unlock()
	if prev != status {
		if status == StatusDead {
			p.failures.Add(1)
		}
		p.logger.Info("gossip member "+string(status), "member", n.Name, "addr", n.Address())
	}
	p.notify()
}
