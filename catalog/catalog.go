// Package catalog is the one service behind every door of the registry: the
// native HTTP API, the Consul-compatible API, DNS and the console all
// register, change and look up instances through it. It owns the rules of
// a write (validation, limits, the check policy, liveness) and the reads and
// their blocking form, so that a rule added here holds for every door. It
// knows nothing of HTTP: errors are named (errors.Is), and each door maps
// them to its own dialect in one place.
package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-io/switchyard/health"
	"github.com/switchyard-io/switchyard/health/check"
	"github.com/switchyard-io/switchyard/store"
)

// Errors of the catalog's own rules. Errors of the store (store.ErrInvalid,
// store.ErrNamespaceNotFound…) and of the node pass through unchanged.
var (
	// ErrTooManyInstances: the service is full (Config.MaxInstancesPerService).
	ErrTooManyInstances = errors.New("too many instances")
	// ErrNotReady: this server has not caught up with the leader, so its
	// replica may lack what the request names; or, for a heartbeat, what
	// it hears would not reach the leader's judge (Config.ReachesJudge).
	ErrNotReady = errors.New("server not ready")
	// ErrNotEphemeral: a heartbeat for an instance whose health comes from
	// its check.
	ErrNotEphemeral = errors.New("not ephemeral")
)

// Node is what the catalog needs from a server: the local replica, writes
// through the log, and whether reads of the replica are current.
// *raft.Node provides it.
type Node interface {
	// Store returns the local catalog replica.
	Store() *store.Store
	// Apply commits a command (forwarded to the leader when needed) and
	// returns once this node has applied it.
	Apply(ctx context.Context, cmd *store.Command) (uint64, error)
	// ConsistentRead waits until a read of the local store is linearizable.
	ConsistentRead(ctx context.Context) error
	// Ready reports whether the node has caught up with the leader.
	Ready() bool
}

// Config holds the rules every registration obeys, whichever door it came
// through. Zero values turn a limit off.
type Config struct {
	// MaxInstancesPerService refuses a new instance in a service that has
	// that many (checked on the server that takes the request: concurrent
	// registrations on several servers can pass it by a few).
	MaxInstancesPerService int
	// MaxMetadataBytes caps the metadata of one instance: its keys and
	// values together, in bytes. The store's own caps (64 keys, 128-byte
	// keys, 512-byte values) hold whatever this says.
	MaxMetadataBytes int
	// CheckPolicy refuses checks the servers may not probe, or probe too
	// often (nil: none refused).
	CheckPolicy *check.Policy
	// Liveness records the signs of life of ephemeral instances
	// (registrations, heartbeats) for the judge (nil: none recorded).
	Liveness *health.Liveness
	// ReachesJudge says whether what Liveness records here reaches the
	// health judge (the leader): nil when it does, else why not, wrapping
	// ErrNotReady. A heartbeat this server cannot pass on is refused, so
	// that the instance takes it to another server instead of getting a
	// 200 and lapsing (nil: every heartbeat is taken).
	ReachesJudge func() error
}

// DefaultConfig: generous enough for any real service, tight enough that
// one client cannot fill a server's memory through one service.
func DefaultConfig() Config {
	return Config{MaxInstancesPerService: 100_000, MaxMetadataBytes: 8192}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxInstancesPerService < 0 || c.MaxMetadataBytes < 0 {
		return fmt.Errorf("catalog: config: limits must not be negative (0 turns one off)")
	}
	return nil
}

// Catalog is the catalog service of one server.
type Catalog struct {
	cfg     Config
	node    Node
	history *History
}

// New builds the catalog service over node, and starts keeping its
// history (History) from the events node's store applies.
func New(cfg Config, node Node) (*Catalog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Catalog{cfg: cfg, node: node}
	if st := node.Store(); st != nil {
		c.history = NewHistory(func(ns, svc string) (int, int, bool) {
			v, err := st.Service(ns, svc)
			if err != nil {
				return 0, 0, false
			}
			return v.Len(), v.Healthy(), true
		})
		st.SetEventSink(c.history.Record)
	}
	return c, nil
}

// InstanceHistory returns an instance's last events on this server
// (History), oldest first.
func (c *Catalog) InstanceHistory(ns, svc, id string) []store.Event {
	if c.history == nil {
		return []store.Event{}
	}
	return c.history.Instance(ns, svc, id)
}

// ServiceHistory returns a service's instance and healthy counts over the
// last hour on this server (History), oldest first.
func (c *Catalog) ServiceHistory(ns, svc string) []Sample {
	if c.history == nil {
		return []Sample{}
	}
	return c.history.Service(ns, svc)
}

// Config returns the catalog's rules.
func (c *Catalog) Config() Config { return c.cfg }

// Ready returns ErrNotReady, with what to do about it, while this server
// has not caught up with the leader.
func (c *Catalog) Ready() error {
	if c.node.Ready() {
		return nil
	}
	return fmt.Errorf("%w: this server has not caught up with the cluster leader yet; retry or ask another server", ErrNotReady)
}

// ConsistentRead waits until reads of this catalog are linearizable.
func (c *Catalog) ConsistentRead(ctx context.Context) error { return c.node.ConsistentRead(ctx) }

// Index is the index of the last change this replica applied.
func (c *Catalog) Index() uint64 { return c.node.Store().Index() }

// Namespaces lists every namespace, with the index of the list and a
// channel closed when it changes.
func (c *Catalog) Namespaces() (uint64, []store.Namespace, <-chan struct{}) {
	return c.node.Store().Namespaces()
}

// Namespace returns a namespace's current view.
func (c *Catalog) Namespace(ns string) (*store.NamespaceView, error) {
	return c.node.Store().Namespace(ns)
}

// Services returns a namespace's view and its services' views.
func (c *Catalog) Services(ns string) (*store.NamespaceView, []*store.ServiceView, error) {
	return c.node.Store().Services(ns)
}

// Service returns a service's current view: its settings and instances.
func (c *Catalog) Service(ns, svc string) (*store.ServiceView, error) {
	return c.node.Store().Service(ns, svc)
}

// Wait is the blocking form of every read: it runs query until the index
// of its answer exceeds minIndex, the query fails or ctx ends (with minIndex
// 0, once). A door with its own index rule (Consul's, by the answer's
// bytes) applies it inside query. It is store.Blocking, the one long-poll
// loop.
func (c *Catalog) Wait(ctx context.Context, minIndex uint64, query store.QueryFunc) (uint64, error) {
	return c.node.Store().Blocking(ctx, minIndex, query)
}

// AbandonCh returns a channel closed when a restore replaces every view.
func (c *Catalog) AbandonCh() <-chan struct{} { return c.node.Store().AbandonCh() }
