package raft

import (
	"fmt"
	"io"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-io/switchyard/store"
)

// fsm applies committed log entries to the store. hashicorp/raft calls
// ApplyBatch, Snapshot and Restore from its single FSM goroutine; the FSM
// only decodes and applies: times and ids were stamped by the leader.
type fsm struct {
	store   *store.Store
	applied *indexNotifier
	// metrics, when set, times snapshots and restores (nil in recovery).
	metrics *snapshotMetrics
}

// snapshotMetrics time the catalog's Raft snapshots: capturing the views
// (under the store's writer lock, so writes wait for it), writing them to
// the snapshot file (concurrently with writes), and restoring one (a new
// follower's install, or a restart).
type snapshotMetrics struct {
	seconds *prometheus.HistogramVec
	bytes   prometheus.Gauge
}

func newSnapshotMetrics() *snapshotMetrics {
	return &snapshotMetrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_raft_snapshot_seconds",
			Help:    "Raft snapshots of the catalog by phase: capture (writes wait for it), persist (writing the file, concurrent with writes), restore (installing one: a new or lagging follower, a restart).",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"phase"}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_raft_snapshot_bytes",
			Help: "Size of the last catalog snapshot this server wrote.",
		}),
	}
}

func (m *snapshotMetrics) observe(phase string, since time.Time) {
	if m != nil {
		m.seconds.WithLabelValues(phase).Observe(time.Since(since).Seconds())
	}
}

// The FSM's answer for one entry, through the ApplyFuture, is a
// []store.Result: one per command of the entry.

var _ hraft.BatchingFSM = (*fsm)(nil)

// The applied index counts command entries only. Configuration, no-op and
// barrier entries never reach the store, so a snapshot (which records the
// store's index) could not restore an index that counted them, and a
// follower restored from it would wait for an index it never reaches.

func (f *fsm) Apply(l *hraft.Log) any {
	r := f.apply(l)
	if l.Type == hraft.LogCommand {
		f.applied.advance(l.Index)
	}
	return r
}

func (f *fsm) ApplyBatch(logs []*hraft.Log) []any {
	out := make([]any, len(logs))
	var last uint64
	for i, l := range logs {
		out[i] = f.apply(l)
		if l.Type == hraft.LogCommand {
			last = l.Index
		}
	}
	if last > 0 {
		f.applied.advance(last)
	}
	return out
}

func (f *fsm) apply(l *hraft.Log) any {
	if l.Type != hraft.LogCommand {
		return nil
	}
	cmds, err := store.DecodeEntry(l.Data)
	if err != nil {
		// Skipping an entry we cannot read would fork this replica from the
		// others. Stop instead; an operator upgrades the binary.
		panic(fmt.Sprintf("raft: log entry %d cannot be applied: %v", l.Index, err))
	}
	return f.store.ApplyBatch(l.Index, cmds)
}

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	start := time.Now()
	snap := f.store.Snapshot()
	f.metrics.observe("capture", start)
	return &fsmSnapshot{snap: snap, metrics: f.metrics}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	start := time.Now()
	if err := f.store.Restore(rc); err != nil {
		return err
	}
	f.metrics.observe("restore", start)
	f.applied.advance(f.store.Index())
	return nil
}

type fsmSnapshot struct {
	snap    *store.Snapshot
	metrics *snapshotMetrics
}

// Persist writes the catalog; the file snapshot store checksums it.
func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	start := time.Now()
	n, err := s.snap.WriteTo(sink)
	if err != nil {
		sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	if s.metrics != nil {
		s.metrics.observe("persist", start)
		s.metrics.bytes.Set(float64(n))
	}
	return nil
}

func (s *fsmSnapshot) Release() {}

// indexNotifier lets goroutines wait until the FSM has applied an index.
type indexNotifier struct {
	mu    sync.Mutex
	index uint64
	ch    chan struct{} // closed and replaced on every advance
}

func newIndexNotifier() *indexNotifier {
	return &indexNotifier{ch: make(chan struct{})}
}

func (n *indexNotifier) advance(idx uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	// A restore may move the index backwards; waiters compare afresh.
	n.index = idx
	close(n.ch)
	n.ch = make(chan struct{})
}

func (n *indexNotifier) get() (uint64, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.index, n.ch
}
