// Package raft glues hashicorp/raft to the catalog store: the FSM, snapshots,
// write forwarding from followers to the leader, linearizable reads and
// cluster membership.
package raft

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/store"
)

// Errors returned by the node.
var (
	// ErrNoLeader: no leader could be reached before the deadline. The write
	// was not applied; the caller may retry.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrShutdown: the node is stopping.
	ErrShutdown = errors.New("node is shutting down")
	// ErrNotLeader: the call must be made on the leader (Restore).
	ErrNotLeader = errors.New("this server is not the leader")
)

const defaultTimeout = 10 * time.Second

// Config configures a Node. Start from DefaultConfig.
type Config struct {
	// ID names this server; it must stay the same across restarts.
	ID string
	// DataDir holds the Raft log (raft.db, or wal/) and snapshots.
	DataDir string
	// LogStore is the log store of a new data directory: LogStoreBolt
	// ("" too) or LogStoreWAL. A data directory that already holds one
	// keeps it.
	LogStore string
	// RaftAddr is the address to listen on for Raft and forwarded requests.
	RaftAddr string
	// AdvertiseAddr is the Raft address other servers dial; defaults to the
	// listener's address.
	AdvertiseAddr string
	// HTTPAddr is this server's HTTP API address, recorded in the catalog so
	// that members can be listed with it.
	HTTPAddr string
	// Locality of this server.
	Locality store.Locality
	// Bootstrap makes a fresh node start a new cluster with itself as the
	// only voter. Ignored when the data directory already holds state.
	Bootstrap bool
	// Protocol is the protocol version this server announces in the
	// catalog (0: ProtocolVersion); a lower one makes a newer server act
	// as an older one, as in the middle of a rolling upgrade.
	Protocol int

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot.
	TrailingLogs uint64
	// MaxAppendEntries caps a batch of entries written and sent together.
	MaxAppendEntries int
	// ApplyTimeout bounds a write when the caller's context has no deadline.
	ApplyTimeout time.Duration
	// TLS secures the raft port (Raft and forwarded writes) in both
	// directions (certs.PeerConfig: only peers with a server certificate of
	// the cluster's CA); nil: plaintext.
	TLS *tls.Config

	Logger *slog.Logger
	// OnLeader is called (on its own goroutine, never twice at once) each
	// time this node becomes leader, once its barrier has committed: the
	// catalog is then up to date.
	OnLeader func()
}

// DefaultConfig returns settings for a server on a LAN.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotThreshold:  16384,
		SnapshotInterval:   60 * time.Second,
		TrailingLogs:       10240,
		MaxAppendEntries:   512,
		ApplyTimeout:       defaultTimeout,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if err := store.ValidateName("node id", c.ID); err != nil {
		return fmt.Errorf("raft: config: %w", err)
	}
	if c.DataDir == "" {
		return fmt.Errorf("raft: config: data dir is empty")
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		return fmt.Errorf("raft: config: raft address %q: %w", c.RaftAddr, err)
	}
	// hashicorp/raft's own lower bounds, checked here for a clear message.
	if c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < 5*time.Millisecond ||
		c.LeaderLeaseTimeout < 5*time.Millisecond || c.CommitTimeout < time.Millisecond {
		return fmt.Errorf("raft: config: heartbeat, election and leader lease timeouts must be at least 5ms and the commit timeout at least 1ms")
	}
	switch c.LogStore {
	case "", LogStoreBolt, LogStoreWAL:
	default:
		return fmt.Errorf("raft: config: log store %q: want %s or %s", c.LogStore, LogStoreBolt, LogStoreWAL)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return fmt.Errorf("raft: config: leader lease timeout %v exceeds heartbeat timeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	return nil
}

// logCacheSize is how many of the newest log entries stay in memory (as
// Consul keeps 512).
const logCacheSize = 512

// Node is one registry server's replica of the catalog.
type Node struct {
	cfg       Config
	logger    *slog.Logger
	store     *store.Store
	raft      *hraft.Raft
	mux       *mux
	transport *hraft.NetworkTransport
	logs      logStore
	logKind   string // LogStoreBolt or LogStoreWAL
	fwd       *forwarder
	applied   *indexNotifier
	fwdConns  sync.Map // open forward connections, closed at shutdown
	batchCh   chan *pendingApply
	// gathering counts the commands the batcher holds for its next entry;
	// nudging is set while a commit-index nudge is in flight (see nudge).
	gathering atomic.Int64
	submitted atomic.Uint64 // batch entries appended, to see whether one followed
	nudgeWant atomic.Uint64 // submitted when the last forwarded write committed
	nudgeCh   chan struct{}
	// liveProtocols: see SetLiveProtocols.
	liveProtocols atomic.Pointer[map[string]int]

	leadership atomic.Uint64 // times this node became or stopped being leader
	// applyGate: batch entries hold it shared; Restore holds it alone, so
	// no command entry lands between choosing the restore's index and
	// installing it.
	applyGate  sync.RWMutex
	commitTime prometheus.Histogram
	// forwarded counts the requests other servers forwarded to this one
	// as leader, by op: what followers cost the leader.
	forwarded *prometheus.CounterVec

	hadState    bool // the data dir held Raft state at Open
	ready       atomic.Bool
	barrierTerm atomic.Uint64 // term in which this leader applied a barrier
	started     time.Time
	departed    departures // servers that announced their departure (proof.go)

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

// Open starts a node over st. st must be fresh (New): the node fills it
// from the latest snapshot and the log.
func Open(cfg Config, st *store.Store) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.ID)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("raft: data dir: %w", err)
	}
	logs, logKind, err := openLogStore(cfg.DataDir, cfg.LogStore, logger)
	if err != nil {
		return nil, fmt.Errorf("raft: open log store: %w", err)
	}
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 3, newHCLogger(logger, "snapshot"))
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("raft: open snapshot store: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("raft: listen on %s: %w", cfg.RaftAddr, err)
	}
	var advertise net.Addr = ln.Addr()
	if cfg.AdvertiseAddr != "" {
		advertise, err = net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			ln.Close()
			logs.Close()
			return nil, fmt.Errorf("raft: advertise address %q: %w", cfg.AdvertiseAddr, err)
		}
	} else if tcp, ok := advertise.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		ln.Close()
		logs.Close()
		return nil, fmt.Errorf("raft: listening on %s needs an advertise address other servers can dial", cfg.RaftAddr)
	}
	cfg.AdvertiseAddr = advertise.String()

	m := newMux(ln, advertise, logger)
	m.tls = cfg.TLS
	transport := hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream:  m,
		MaxPool: 8,
		Timeout: 10 * time.Second,
		Logger:  newHCLogger(logger, "raft-net"),
	})

	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	if cfg.MaxAppendEntries > 0 {
		rc.MaxAppendEntries = cfg.MaxAppendEntries
	}
	// Concurrent Apply calls are gathered into one disk write and one
	// AppendEntries round: group commit.
	rc.BatchApplyCh = true
	rc.Logger = newHCLogger(logger, "raft")

	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg: cfg, logger: logger, store: st, mux: m, transport: transport, logs: logs, logKind: logKind,
		fwd: newForwarder(cfg.TLS), applied: newIndexNotifier(), ctx: ctx, cancel: cancel,
		started: time.Now(), batchCh: make(chan *pendingApply, 1024), nudgeCh: make(chan struct{}, 1),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_raft_commit_seconds",
			Help:    "On the leader: from appending a batch entry to having applied it (a quorum's disk writes included).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5},
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_raft_forwarded_requests_total",
			Help: "On the leader: requests other servers forwarded to it, by op (apply, read_index, join).",
		}, []string{"op"}),
	}
	n.fwd.useMux = n.speaksMux
	hasState, err := hraft.HasExistingState(logs, logs, snaps)
	if err != nil {
		n.closeParts()
		return nil, fmt.Errorf("raft: read existing state: %w", err)
	}
	n.hadState = hasState
	// The newest entries stay in memory: the leader replicates them, and
	// every node applies them, without reading them back from bbolt.
	cached, err := hraft.NewLogCache(logCacheSize, logs)
	if err != nil {
		n.closeParts()
		return nil, fmt.Errorf("raft: log cache: %w", err)
	}
	r, err := hraft.NewRaft(rc, &fsm{store: st, applied: n.applied}, cached, logs, snaps, transport)
	if err != nil {
		n.closeParts()
		return nil, fmt.Errorf("raft: start: %w", err)
	}
	n.raft = r
	m.serve(n.serveForwardConn)
	if cfg.Bootstrap && !hasState {
		f := r.BootstrapCluster(hraft.Configuration{Servers: []hraft.Server{{
			Suffrage: hraft.Voter, ID: hraft.ServerID(cfg.ID), Address: hraft.ServerAddress(cfg.AdvertiseAddr),
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
			n.Shutdown()
			return nil, fmt.Errorf("raft: bootstrap: %w", err)
		}
	}
	logger.Info("raft node started", "raft_addr", cfg.AdvertiseAddr, "data_dir", cfg.DataDir, "log_store", logKind,
		"existing_state", hasState, "bootstrap", cfg.Bootstrap && !hasState)
	n.wg.Add(4)
	go n.runReadiness()
	go n.runLeadership()
	go n.runBatcher()
	go n.runNudger()
	return n, nil
}

func (n *Node) closeParts() {
	n.mux.Close()
	n.transport.Close()
	n.logs.Close()
}

// HadState reports whether the data directory already held Raft state when
// the node opened: such a node knows its cluster and needs no join.
func (n *Node) HadState() bool { return n.hadState }

// LogStore is the log store this node keeps its Raft log in: LogStoreBolt
// or LogStoreWAL.
func (n *Node) LogStore() string { return n.logKind }

// Store returns the catalog this node applies to.
func (n *Node) Store() *store.Store { return n.store }

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// RaftAddr returns the advertised Raft address.
func (n *Node) RaftAddr() string { return n.cfg.AdvertiseAddr }

// Shutdown stops the node. It is safe to call more than once.
func (n *Node) Shutdown() error {
	n.shutOnce.Do(func() {
		n.cancel()
		if n.raft != nil {
			n.shutErr = n.raft.Shutdown().Error()
		}
		n.mux.Close()
		n.transport.Close()
		n.fwd.close()
		n.fwdConns.Range(func(k, _ any) bool {
			k.(net.Conn).Close()
			return true
		})
		n.mux.wait()
		if !n.mux.drain(5 * time.Second) {
			n.logger.Warn("raft connections still being handled at shutdown")
		}
		n.wg.Wait()
		if err := n.logs.Close(); err != nil && n.shutErr == nil {
			n.shutErr = err
		}
		n.logger.Info("raft node stopped")
	})
	return n.shutErr
}

func (n *Node) isLeader() bool { return n.raft.State() == hraft.Leader }

// Leader returns the current leader's id and Raft address, empty if none is
// known.
func (n *Node) Leader() (id, raftAddr string) {
	addr, lid := n.raft.LeaderWithID()
	return string(lid), string(addr)
}

// Ready reports whether this node has caught up with the leader since it
// started. Until then its local reads could be missing acknowledged writes,
// so the API answers 503 instead.
func (n *Node) Ready() bool { return n.ready.Load() }

// Staleness reports whether a leader is known and how long ago this node
// last heard from it (zero on the leader).
func (n *Node) Staleness() (knownLeader bool, lastContact time.Duration) {
	if n.isLeader() {
		return true, 0
	}
	addr, _ := n.raft.LeaderWithID()
	lc := n.raft.LastContact()
	if lc.IsZero() {
		return addr != "", 0
	}
	return addr != "", time.Since(lc)
}

// AppliedIndex returns the last log index applied to the store.
func (n *Node) AppliedIndex() uint64 {
	idx, _ := n.applied.get()
	return idx
}

func (n *Node) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.cfg.ApplyTimeout)
}

// Apply commits a command through Raft from any node and returns its log
// index once this node has applied it, so a read here right after sees it.
// On a follower the command is forwarded to the leader; during an election
// it waits for the new leader until ctx ends. A command the catalog rejects
// returns the store's error (errors.Is with store.ErrNamespaceNotFound...).
func (n *Node) Apply(ctx context.Context, cmd *store.Command) (uint64, error) {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	var payload []byte
	idx, err := n.toLeader(ctx, func(ctx context.Context, leaderAddr string) (uint64, error) {
		if leaderAddr == "" {
			return n.applyLocal(ctx, cmd, false)
		}
		if payload == nil {
			b, err := cmd.EncodeFormat(n.entryFormat())
			if err != nil {
				return 0, err
			}
			payload = b
		}
		return n.fwd.call(ctx, leaderAddr, opApply, payload, cmd.Idempotent())
	})
	if idx > 0 {
		if werr := n.WaitApplied(ctx, idx); werr != nil && err == nil {
			err = werr
		}
	}
	return idx, err
}

// toLeader runs do on the leader: locally (leaderAddr "") when this node
// leads, or through the forward protocol. While there is no leader, or the
// leader moved before the request reached it, it retries until ctx ends.
func (n *Node) toLeader(ctx context.Context, do func(ctx context.Context, leaderAddr string) (uint64, error)) (uint64, error) {
	backoff := 5 * time.Millisecond
	for {
		var (
			idx uint64
			err error
		)
		leaderAddr, leaderID := n.raft.LeaderWithID()
		switch {
		case n.isLeader():
			idx, err = do(ctx, "")
		case leaderAddr != "" && string(leaderID) != n.cfg.ID:
			idx, err = do(ctx, string(leaderAddr))
		default:
			err = fmt.Errorf("raft: %w", ErrNoLeader)
		}
		if err == nil || !retryable(err) {
			return idx, err
		}
		select {
		case <-n.ctx.Done():
			return 0, fmt.Errorf("raft: %w", ErrShutdown)
		case <-ctx.Done():
			return 0, fmt.Errorf("raft: %w (waited %v): %w", ErrNoLeader, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

// retryable says whether a failed leader request certainly did not apply
// and may be sent again.
func retryable(err error) bool {
	if errors.Is(err, ErrNoLeader) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// applyLocal appends a command on this node, which must be the leader. The
// command joins the next batch entry (see runBatcher).
func (n *Node) applyLocal(ctx context.Context, cmd *store.Command, forwarded bool) (uint64, error) {
	// An entry every replica fails to decode would stop them all for good:
	// refuse a malformed command before it reaches the log.
	if err := cmd.Validate(); err != nil {
		return 0, fmt.Errorf("raft: apply: %w", err)
	}
	p := &pendingApply{cmd: cmd, forwarded: forwarded, done: make(chan applyOutcome, 1)}
	select {
	case n.batchCh <- p:
	case <-ctx.Done():
		return 0, fmt.Errorf("raft: apply %s: %w", cmd.Type, ctx.Err())
	case <-n.ctx.Done():
		return 0, fmt.Errorf("raft: apply %s: %w", cmd.Type, ErrShutdown)
	}
	select {
	case out := <-p.done:
		// A store error (unknown namespace, say) reaches the caller as is;
		// submit already named Raft's own failures.
		return out.index, out.err
	case <-ctx.Done():
		// The command may still commit: the caller hears the outcome is
		// unknown through the context error.
		return 0, fmt.Errorf("raft: apply %s: outcome unknown: %w", cmd.Type, ctx.Err())
	case <-n.ctx.Done():
		return 0, fmt.Errorf("raft: apply %s: %w", cmd.Type, ErrShutdown)
	}
}

// pendingApply is a command waiting for its batch.
type pendingApply struct {
	cmd *store.Command
	// forwarded: a follower sent it, and waits to apply its index itself.
	forwarded bool
	done      chan applyOutcome
}

type applyOutcome struct {
	index uint64
	err   error
}

// maxInflightBatches bounds the batch entries in Raft at once. While they
// are in flight, new commands gather into the next batch: under load one
// entry (one log write, one replication message, one FSM call) carries many
// commands; when idle a command goes alone at once. Every entry costs two
// syncs of bbolt on each of three nodes, so fewer, larger entries win: one
// at a time gave 1.23–1.25× the registrations/s of four at 64 clients
// (docs/benchmarks.md).
const maxInflightBatches = 1

// runBatcher turns concurrent applyLocal calls into batch entries.
func (n *Node) runBatcher() {
	defer n.wg.Done()
	slots := make(chan struct{}, maxInflightBatches)
	for {
		var first *pendingApply
		select {
		case first = <-n.batchCh:
		case <-n.ctx.Done():
			return
		}
		batch := []*pendingApply{first}
		n.gathering.Store(1)
	gather:
		for len(batch) < store.MaxBatch {
			select {
			case p := <-n.batchCh:
				batch = append(batch, p)
				n.gathering.Add(1)
			case slots <- struct{}{}:
				break gather
			case <-n.ctx.Done():
				failAll(batch, fmt.Errorf("raft: apply: %w", ErrShutdown))
				return
			}
		}
		if len(batch) == store.MaxBatch {
			select {
			case slots <- struct{}{}:
			case <-n.ctx.Done():
				failAll(batch, fmt.Errorf("raft: apply: %w", ErrShutdown))
				return
			}
		}
		n.gathering.Store(0)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() { <-slots }()
			n.submit(batch)
		}()
	}
}

func failAll(batch []*pendingApply, err error) {
	for _, p := range batch {
		p.done <- applyOutcome{err: err}
	}
}

// submit appends one batch entry and hands each command its outcome. The
// leader stamps the time here, before the entry exists, so every replica
// applies the same bytes.
func (n *Node) submit(batch []*pendingApply) {
	now := time.Now().UTC()
	format := n.entryFormat()
	// Commands that fail to encode are answered now and left out.
	kept := make([]*pendingApply, 0, len(batch))
	entry := make([][]byte, 0, len(batch))
	for _, p := range batch {
		c := *p.cmd
		c.Time = now
		b, err := c.EncodeFormat(format)
		if err != nil {
			p.done <- applyOutcome{err: err}
			continue
		}
		kept = append(kept, p)
		entry = append(entry, b)
	}
	if len(kept) == 0 {
		return
	}
	n.applyGate.RLock()
	start := time.Now()
	n.submitted.Add(1)
	f := n.raft.Apply(store.EncodeBatch(entry), n.cfg.ApplyTimeout)
	err := n.await(f)
	n.applyGate.RUnlock()
	if err == nil {
		n.commitTime.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrShutdown), errors.Is(err, hraft.ErrRaftShutdown):
			err = ErrShutdown
		case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipTransferInProgress):
			err = ErrNoLeader // not appended: the caller may retry
		case errors.Is(err, hraft.ErrEnqueueTimeout):
			err = context.DeadlineExceeded
		default:
			// Leadership lost after appending: the entry may still commit.
			err = fmt.Errorf("outcome unknown: %w", err)
		}
		failAll(kept, fmt.Errorf("raft: apply: %w", err))
		return
	}
	results, _ := f.Response().([]store.Result)
	for _, p := range kept {
		if p.forwarded {
			n.nudge()
			break
		}
	}
	for i, p := range kept {
		out := applyOutcome{index: f.Index()}
		if i < len(results) {
			out.err = results[i].Err
		}
		p.done <- out
	}
}

// Protocol versions, announced by each server in its catalog record
// (store.Server.Protocol):
//
//  1. (or 0: a version before they were recorded) JSON log entry bodies;
//     forwarded requests one at a time per connection (connForward).
//  2. binary bodies for register and deregister entries; forwarded
//     requests multiplexed on one connection (connForwardMux).
//
// A server writes log entries that every server of the Raft configuration
// reads, and forwards to the leader in the protocol the leader announced,
// so servers of both versions work together during a rolling upgrade.
const ProtocolVersion = 2

func (n *Node) protocol() int {
	if n.cfg.Protocol > 0 {
		return min(n.cfg.Protocol, ProtocolVersion)
	}
	return ProtocolVersion
}

// Protocol is the protocol version this server speaks and announces.
func (n *Node) Protocol() int { return n.protocol() }

// SetLiveProtocols tells the node the protocol each running server
// announces now, by id, as the gossip pool sees it alive or suspect. Once
// set, a server counts at the lower of that and its catalog record, and a
// server missing from the map (stopped, unknown to gossip) counts as 1.
// The catalog record alone can be stale: a server rolled back to a version
// before protocols keeps the record its newer version wrote, while what it
// tells the pool at each start is its own. Without it (nil), the records
// alone decide.
func (n *Node) SetLiveProtocols(m map[string]int) { n.liveProtocols.Store(&m) }

// memberProtocol is the protocol a server of the configuration counts at.
func (n *Node) memberProtocol(id string) int {
	rec, _ := n.store.Server(id)
	p := max(rec.Protocol, 1)
	if live := n.liveProtocols.Load(); live != nil {
		p = min(p, max((*live)[id], 1))
	}
	return p
}

// clusterProtocol is the lowest protocol of the servers of the Raft
// configuration (memberProtocol): a server not recorded yet, or recorded
// by a version before protocols, counts as 1. So a rolling upgrade keeps writing what
// the oldest server reads, and the newer protocol starts once the last
// server has announced itself. Entries already in the log are read in
// whatever format they were written.
func (n *Node) clusterProtocol() int {
	cfg := n.raft.GetConfiguration().Configuration()
	if len(cfg.Servers) == 0 {
		return 1
	}
	p := n.protocol()
	for _, member := range cfg.Servers {
		p = min(p, n.memberProtocol(string(member.ID)))
	}
	return p
}

// speaksMux reports whether the server at raftAddr announced protocol 2,
// and so takes multiplexed forward requests.
func (n *Node) speaksMux(raftAddr string) bool {
	if n.protocol() < 2 {
		return false
	}
	for _, member := range n.raft.GetConfiguration().Configuration().Servers {
		if string(member.Address) == raftAddr {
			return n.memberProtocol(string(member.ID)) >= 2
		}
	}
	return false
}

// ClusterProtocol is the protocol the cluster runs at, as this node sees
// it: the lowest of its servers' (see clusterProtocol).
func (n *Node) ClusterProtocol() int { return n.clusterProtocol() }

// entryFormat is the log entry format every server of the configuration
// reads.
func (n *Node) entryFormat() int {
	if n.clusterProtocol() >= 2 {
		return store.EntryFormatBinary
	}
	return store.EntryFormatJSON
}

// nudgeAfter is how long the leader waits for a next entry to carry the
// commit index before it sends a barrier to carry it.
const nudgeAfter = 2 * time.Millisecond

// EntriesAppended counts the batch entries this node appended as leader
// (catalog changes; barriers and Raft's own entries are not counted).
func (n *Node) EntriesAppended() uint64 { return n.submitted.Load() }

// nudge asks runNudger to tell the followers the commit index of a batch
// that just committed with forwarded writes in it: a follower that forwarded
// a write answers only once it has applied the write itself, and it learns
// the commit index only with the leader's next message, which an idle
// leader sends after CommitTimeout (5–10 ms).
func (n *Node) nudge() {
	want := n.submitted.Load() // every entry appended so far, this one included
	for {
		cur := n.nudgeWant.Load()
		if cur >= want || n.nudgeWant.CompareAndSwap(cur, want) {
			break
		}
	}
	select {
	case n.nudgeCh <- struct{}{}:
	default: // a request is pending; it reads nudgeWant when it runs
	}
}

// runNudger sends a barrier when no batch entry followed a committed one
// with forwarded writes within nudgeAfter: the barrier's message carries
// the commit index at once. Under load the next entry comes first and
// carries it, and no barrier is added (each costs every server a log
// write).
func (n *Node) runNudger() {
	defer n.wg.Done()
	for {
		select {
		case <-n.nudgeCh:
		case <-n.ctx.Done():
			return
		}
		select {
		case <-time.After(nudgeAfter):
		case <-n.ctx.Done():
			return
		}
		if n.submitted.Load() > n.nudgeWant.Load() || len(n.batchCh) > 0 || n.gathering.Load() > 0 {
			continue // an entry appended after the commit, or about to be, carries the index
		}
		_ = n.await(n.raft.Barrier(n.cfg.ApplyTimeout))
	}
}

// await waits for a Raft future, or for Shutdown: a future queued around
// shutdown may never be answered (hashicorp/raft abandons its batched apply
// channel), and a request must not hold the node's shutdown forever.
func (n *Node) await(f hraft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.ctx.Done():
		return ErrShutdown
	}
}

// WaitApplied waits until this node has applied index idx.
func (n *Node) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		cur, ch := n.applied.get()
		if cur >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("raft: wait for index %d (applied %d): %w", idx, cur, ctx.Err())
		case <-n.ctx.Done():
			return fmt.Errorf("raft: %w", ErrShutdown)
		}
	}
}

// ConsistentRead makes this node's store linearizable for a read that
// follows: it learns the leader's commit index, with leadership verified by
// a quorum, and waits until this node has applied it (the "read index"
// method). Works on followers too.
func (n *Node) ConsistentRead(ctx context.Context) error {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	idx, err := n.toLeader(ctx, func(ctx context.Context, leaderAddr string) (uint64, error) {
		if leaderAddr == "" {
			return n.readIndexLocal(ctx)
		}
		return n.fwd.call(ctx, leaderAddr, opReadIndex, nil, true)
	})
	if err != nil {
		return err
	}
	return n.WaitApplied(ctx, idx)
}

// readIndexLocal returns a read index after confirming leadership: the last
// command this leader applied. Every acknowledged write was applied by the
// leader before it was acknowledged, and a new leader first applies a
// barrier in its own term, which covers everything earlier leaders
// acknowledged. The index is that of a command entry (not a no-op or
// barrier), so a follower's FSM reaches it exactly.
func (n *Node) readIndexLocal(ctx context.Context) (uint64, error) {
	if !n.isLeader() {
		return 0, fmt.Errorf("raft: read index: %w", ErrNoLeader)
	}
	if err := n.ensureBarrier(ctx); err != nil {
		return 0, err
	}
	if err := n.await(n.raft.VerifyLeader()); err != nil {
		return 0, fmt.Errorf("raft: read index: verify leader: %w: %v", ErrNoLeader, err)
	}
	return n.AppliedIndex(), nil
}

func (n *Node) ensureBarrier(ctx context.Context) error {
	term := n.raft.CurrentTerm()
	if n.barrierTerm.Load() == term {
		return nil
	}
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := n.await(n.raft.Barrier(timeout)); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) || errors.Is(err, hraft.ErrLeadershipLost) {
			return fmt.Errorf("raft: barrier: %w", ErrNoLeader)
		}
		return fmt.Errorf("raft: barrier: %w", err)
	}
	n.barrierTerm.Store(term)
	return nil
}

// Join adds a server as a voter, from any node (forwarded to the leader).
// Joining a server that is already a voter at the same address is a no-op.
func (n *Node) Join(ctx context.Context, id, raftAddr string) error {
	if err := store.ValidateName("node id", id); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(raftAddr); err != nil {
		return fmt.Errorf("%w: raft address %q: %v", store.ErrInvalid, raftAddr, err)
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	payload, _ := json.Marshal(joinRequest{ID: id, RaftAddr: raftAddr})
	_, err := n.toLeader(ctx, func(ctx context.Context, leaderAddr string) (uint64, error) {
		if leaderAddr == "" {
			return 0, n.joinLocal(ctx, joinRequest{ID: id, RaftAddr: raftAddr})
		}
		return n.fwd.call(ctx, leaderAddr, opJoin, payload, true)
	})
	return err
}

func (n *Node) joinLocal(ctx context.Context, j joinRequest) error {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("raft: join %s: %w", j.ID, err)
	}
	servers := cf.Configuration().Servers
	for _, s := range servers {
		if s.ID == hraft.ServerID(j.ID) && s.Address == hraft.ServerAddress(j.RaftAddr) && s.Suffrage == hraft.Voter {
			return nil
		}
	}
	// However the address is spelt, it must not be another member's: and
	// only a server may vote (proof.go).
	if err := checkAddrUnused(ctx, servers, j.ID, j.RaftAddr); err != nil {
		return fmt.Errorf("raft: join %s: %w", j.ID, err)
	}
	if err := n.ProveServer(ctx, j.ID, j.RaftAddr); err != nil {
		return fmt.Errorf("raft: join %s: %w", j.ID, err)
	}
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := n.await(n.raft.AddVoter(hraft.ServerID(j.ID), hraft.ServerAddress(j.RaftAddr), 0, timeout)); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) {
			return fmt.Errorf("raft: join %s: %w", j.ID, ErrNoLeader)
		}
		return fmt.Errorf("raft: join %s: %w", j.ID, err)
	}
	n.logger.Info("server joined", "id", j.ID, "raft_addr", j.RaftAddr)
	return nil
}

// Snapshot takes a Raft snapshot now, truncating the log.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raft: snapshot: %w", err)
	}
	return nil
}

// Member is one server of the Raft configuration.
type Member struct {
	ID       string         `json:"id"`
	RaftAddr string         `json:"raft_addr"`
	HTTPAddr string         `json:"http_addr,omitempty"`
	Locality store.Locality `json:"locality"`
	Role     string         `json:"role"` // leader, voter, nonvoter
	// Protocol the server announced (0: not recorded; see ProtocolVersion).
	Protocol int `json:"protocol,omitempty"`
}

// Members lists the servers of the Raft configuration as this node knows
// it, with the HTTP address each recorded in the catalog.
func (n *Node) Members() ([]Member, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, fmt.Errorf("raft: members: %w", err)
	}
	_, servers := n.store.Servers()
	byID := make(map[string]store.Server, len(servers))
	for _, s := range servers {
		byID[s.ID] = s
	}
	_, leaderID := n.raft.LeaderWithID()
	var out []Member
	for _, s := range cf.Configuration().Servers {
		m := Member{ID: string(s.ID), RaftAddr: string(s.Address), Role: "voter"}
		if s.Suffrage != hraft.Voter {
			m.Role = "nonvoter"
		}
		if s.ID == leaderID {
			m.Role = "leader"
		}
		if rec, ok := byID[m.ID]; ok {
			m.HTTPAddr, m.Locality, m.Protocol = rec.HTTPAddr, rec.Locality, rec.Protocol
		}
		out = append(out, m)
	}
	return out, nil
}

// runReadiness marks the node ready once it has applied everything the
// leader had committed when it asked, then records this server in the
// catalog.
func (n *Node) runReadiness() {
	defer n.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !n.ready.Load() {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
		if addr, _ := n.raft.LeaderWithID(); addr == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
		err := n.ConsistentRead(ctx)
		cancel()
		if err != nil {
			n.logger.Debug("not caught up yet", "err", err)
			continue
		}
		n.ready.Store(true)
		n.logger.Info("caught up with the leader", "applied_index", n.AppliedIndex(),
			"after", time.Since(n.started).Round(time.Millisecond))
	}
	n.announce()
}

// announce records this server's HTTP address, locality and protocol in
// the catalog, retrying until it succeeds, then checks the record every
// reannounceEvery until the node stops and writes it again if it differs:
// a leader of an older version re-encodes a forwarded record without the
// fields it does not know (the protocol), and the record must be put right
// once that leader has been upgraded, or the cluster would never move to
// the newer protocol.
func (n *Node) announce() {
	self := store.Server{ID: n.cfg.ID, RaftAddr: n.cfg.AdvertiseAddr, HTTPAddr: n.cfg.HTTPAddr, Locality: n.cfg.Locality,
		Protocol: n.protocol()}
	backoff := 50 * time.Millisecond
	for {
		wait := reannounceEvery
		if rec, ok := n.store.Server(self.ID); !ok || rec != self {
			ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
			_, err := n.Apply(ctx, &store.Command{Type: store.CommandPutServer, Server: &self})
			cancel()
			if err == nil {
				backoff = 50 * time.Millisecond
			} else {
				n.logger.Debug("recording this server in the catalog", "err", err)
				wait = backoff
				backoff = min(backoff*2, 2*time.Second)
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// reannounceEvery is how often a server checks its catalog record.
var reannounceEvery = 10 * time.Second

// runLeadership commits a barrier as soon as this node wins an election, so
// consistent reads on the new leader need not wait for one.
func (n *Node) runLeadership() {
	defer n.wg.Done()
	ch := n.raft.LeaderCh()
	for {
		select {
		case <-n.ctx.Done():
			return
		case isLeader := <-ch:
			n.leadership.Add(1)
			if !isLeader {
				continue
			}
			n.logger.Info("became leader", "term", n.raft.CurrentTerm())
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
			err := n.ensureBarrier(ctx)
			if err != nil {
				n.logger.Warn("barrier after election failed", "err", err)
			}
			cancel()
			if err == nil && n.cfg.OnLeader != nil {
				n.cfg.OnLeader()
			}
		}
	}
}

// IsLeader reports whether this node is the Raft leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// Peer is a server of a first Raft configuration.
type Peer struct {
	ID       string
	RaftAddr string
}

// BootstrapWith starts a new cluster whose voters are peers (this server
// among them). Every server found by the same discovery calls it with the
// same peers, so they agree on the first configuration. It does nothing on
// a server that already holds cluster state.
func (n *Node) BootstrapWith(peers []Peer) error {
	if n.hadState {
		return nil
	}
	cf := hraft.Configuration{}
	self := false
	for _, p := range peers {
		cf.Servers = append(cf.Servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(p.ID), Address: hraft.ServerAddress(p.RaftAddr)})
		self = self || p.ID == n.cfg.ID
	}
	if !self {
		return fmt.Errorf("raft: bootstrap: this server (%s) is not among the peers", n.cfg.ID)
	}
	if err := n.raft.BootstrapCluster(cf).Error(); err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
		return fmt.Errorf("raft: bootstrap: %w", err)
	}
	n.logger.Info("bootstrapped a new cluster", "voters", len(peers))
	return nil
}

// RemoveServer takes a server out of the Raft configuration. Only the
// leader can; elsewhere it returns ErrNoLeader.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return fmt.Errorf("raft: remove %s: %w", id, ErrNoLeader)
	}
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := n.await(n.raft.RemoveServer(hraft.ServerID(id), 0, timeout)); err != nil {
		return fmt.Errorf("raft: remove %s: %w", id, err)
	}
	n.logger.Info("server removed from the cluster", "id", id)
	return nil
}

// Restore replaces the cluster's catalog with a backup's snapshot (the body
// store.ReadBackup returns): its namespaces, services and instances, with
// the cluster's own servers. It must run on the leader. The snapshot is
// rebased past the log's last index (store.Rebase), so every blocking query
// wakes, and handed to hashicorp/raft's restore, which installs it on the
// leader and sends it to the followers.
func (n *Node) Restore(ctx context.Context, body []byte) error {
	if !n.isLeader() {
		return fmt.Errorf("raft: restore: %w", ErrNotLeader)
	}
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return fmt.Errorf("raft: restore: %w", context.DeadlineExceeded)
		}
	}
	n.applyGate.Lock()
	defer n.applyGate.Unlock()
	at := n.raft.LastIndex() + 1
	var buf bytes.Buffer
	if err := store.Rebase(bytes.NewReader(body), &buf, at, n.store); err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	// Index at makes Raft place the snapshot after it: the store's index
	// (at) stays below the next command's.
	meta := &hraft.SnapshotMeta{Version: hraft.SnapshotVersionMax, Index: at, Size: int64(buf.Len())}
	if err := n.raft.Restore(meta, &buf, timeout); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) {
			err = ErrNotLeader
		}
		return fmt.Errorf("raft: restore: %w", err)
	}
	n.logger.Warn("catalog restored from a backup", "index", at)
	return nil
}

// Recover rewrites the Raft configuration kept in cfg.DataDir so that this
// server is the only voter, for when a majority of the cluster is lost for
// good (hashicorp/raft's RecoverCluster, the peers.json procedure). Run it
// on a stopped server; start the server afterwards without --bootstrap: it
// elects itself and serves everything its data held; other servers join it
// as new. Writes only this server acknowledged, not committed elsewhere,
// are kept; writes the lost majority committed after this server's last
// entry are gone.
func Recover(cfg Config) error {
	if err := store.ValidateName("node id", cfg.ID); err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	addr := cfg.AdvertiseAddr
	if addr == "" {
		addr = cfg.RaftAddr
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
		return fmt.Errorf("raft: recover: raft address %q: give the address other servers dial", addr)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kind, err := existingLogStore(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	if kind == "" {
		return fmt.Errorf("raft: recover: no Raft data in %s (neither %s nor %s/)", cfg.DataDir, boltFile, walDir)
	}
	logs, err := openLogStoreKind(cfg.DataDir, kind, logger)
	if err != nil {
		return fmt.Errorf("raft: recover: open log store (is the server still running? stop it first): %w", err)
	}
	defer logs.Close()
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 3, newHCLogger(logger, "snapshot"))
	if err != nil {
		return fmt.Errorf("raft: recover: open snapshot store: %w", err)
	}
	has, err := hraft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	if !has {
		return fmt.Errorf("raft: recover: %s holds no Raft state to recover", cfg.DataDir)
	}
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(cfg.ID)
	rc.Logger = newHCLogger(logger, "raft")
	_, trans := hraft.NewInmemTransport(hraft.ServerAddress(addr))
	conf := hraft.Configuration{Servers: []hraft.Server{{Suffrage: hraft.Voter, ID: hraft.ServerID(cfg.ID), Address: hraft.ServerAddress(addr)}}}
	st := store.New()
	if err := hraft.RecoverCluster(rc, &fsm{store: st, applied: newIndexNotifier()}, logs, logs, snaps, trans, conf); err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	return nil
}

// LeadershipChanges counts the times this node became leader or stopped
// being one.
func (n *Node) LeadershipChanges() uint64 { return n.leadership.Load() }

// Collectors are the node's own Prometheus metrics.
func (n *Node) Collectors() []prometheus.Collector {
	return []prometheus.Collector{n.commitTime, n.forwarded}
}
