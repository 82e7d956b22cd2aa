// Package raft glues hashicorp/raft to the catalog store: the FSM, snapshots,
// write forwarding from followers to the leader, linearizable reads and
// cluster membership.
package raft

import (
	"context"
	"crypto/tls"
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
	// ErrNotLeader: the call must be made on the leader (Restore,
	// Promote, Demote).
	ErrNotLeader = errors.New("this server is not the leader")
	// ErrNotMember: the server named is not in the Raft configuration.
	ErrNotMember = errors.New("not a server of the cluster")
	// ErrLeadershipLost: the leader appended the write, then stopped
	// leading before it committed: the write may or may not apply. Apply
	// sends an idempotent command again to the next leader itself.
	ErrLeadershipLost = errors.New("leadership lost while committing")
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
	// Role is recorded in the catalog with the server (store.RoleVoter,
	// "" too, or store.RoleRead): which servers may be given a vote is
	// the leader's choice (server's reconcile); Raft itself only knows
	// voters and non-voters.
	Role string
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
	if c.SnapshotThreshold < 1 || c.SnapshotInterval < 5*time.Millisecond {
		return fmt.Errorf("raft: config: the snapshot threshold must be at least 1 entry and the snapshot interval at least 5ms")
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
	snapshots *snapshotMetrics

	hadState    bool // the data dir held Raft state at Open
	ready       atomic.Bool
	readyCh     chan struct{} // closed once ready
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
		started: time.Now(), batchCh: make(chan *pendingApply, 1024), nudgeCh: make(chan struct{}, 1), readyCh: make(chan struct{}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_raft_commit_seconds",
			Help:    "On the leader: from appending a batch entry to having applied it (a quorum's disk writes included).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5},
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_raft_forwarded_requests_total",
			Help: "On the leader: requests other servers forwarded to it, by op (apply, read_index, join).",
		}, []string{"op"}),
		snapshots: newSnapshotMetrics(),
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
	r, err := hraft.NewRaft(rc, &fsm{store: st, applied: n.applied, metrics: n.snapshots}, cached, logs, snaps, transport)
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

// futureTimeout is how long a Raft future started for ctx may take: until
// ctx's deadline, or ApplyTimeout without one.
func (n *Node) futureTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return n.cfg.ApplyTimeout
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

func (n *Node) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.cfg.ApplyTimeout)
}

// IsLeader reports whether this node is the Raft leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// Leader returns the current leader's id and Raft address, empty if none is
// known.
func (n *Node) Leader() (id, raftAddr string) {
	addr, lid := n.raft.LeaderWithID()
	return string(lid), string(addr)
}

// LeadershipChanges counts the times this node became leader or stopped
// being one.
func (n *Node) LeadershipChanges() uint64 { return n.leadership.Load() }

// Collectors are the node's own Prometheus metrics.
func (n *Node) Collectors() []prometheus.Collector {
	return []prometheus.Collector{n.commitTime, n.forwarded, n.snapshots.seconds, n.snapshots.bytes}
}
