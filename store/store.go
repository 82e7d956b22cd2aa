// Package store is the catalog state machine: namespaces, services,
// instances and servers, indexed and watchable. It is pure: no network, disk,
// clock, goroutines or randomness. Writes are applied in log order by one
// caller (the Raft FSM) and carry their log index; reads take no lock and are
// served from immutable views swapped atomically on each write.
package store

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Store holds the catalog. The zero value is not usable; call New.
type Store struct {
	mu      sync.Mutex // serialises writers; readers never take it
	root    atomic.Pointer[catalog]
	index   atomic.Uint64
	abandon atomic.Pointer[chan struct{}]
	sink    atomic.Pointer[func([]Event)] // SetEventSink
}

// catalog is the immutable top of the tree. It is replaced when the set of
// namespaces or servers changes (rare); instance writes replace only one
// ServiceView.
type catalog struct {
	namespaces   map[string]*nsEntry
	nsIndex      uint64
	servers      map[string]Server
	serversIndex uint64
	selfPres     SelfPreservation
	acl          *acl
	changed      chan struct{}
}

type nsEntry struct{ view atomic.Pointer[NamespaceView] }

type svcEntry struct{ view atomic.Pointer[ServiceView] }

// NamespaceView is an immutable picture of one namespace and the set of its
// services. Index moves on any change inside the namespace: its settings, a
// service created, deleted or re-set, an instance registered or removed.
type NamespaceView struct {
	Namespace Namespace
	Index     uint64
	services  map[string]*svcEntry
	changed   chan struct{}
}

// WatchCh is closed when this view is replaced.
func (v *NamespaceView) WatchCh() <-chan struct{} { return v.changed }

// ServiceView is an immutable picture of one service: its settings and its
// instances sorted by id. Index is the log index of the last change to the
// service or any of its instances. Never modify a view or its instances.
type ServiceView struct {
	Service Service
	Index   uint64
	list    instList
	// changes records the last removals of instances and the horizon
	// (changes.go); nil until the first removal. A pointer, so that a view
	// costs no more than before it was kept (a view's size class).
	changes *changeLog
	changed chan struct{}
	memo    sync.Map

	flatOnce sync.Once
	flat     []*Instance
}

// Instances returns the instances sorted by id. The slice is built once per
// view, on first use, and shared: callers must not change it. Len, Instance
// and All answer without building it.
func (v *ServiceView) Instances() []*Instance {
	v.flatOnce.Do(func() { v.flat = v.list.appendTo(nil) })
	return v.flat
}

// Len is the number of instances.
func (v *ServiceView) Len() int { return v.list.Len() }

// Probed is the number of instances the servers probe: persistent ones
// with an HTTP, TCP or gRPC check.
func (v *ServiceView) Probed() int { return v.list.probed }

// All yields the instances in id order.
func (v *ServiceView) All(yield func(*Instance) bool) { v.list.all(yield) }

// WatchCh is closed when this view is replaced or the service is deleted.
func (v *ServiceView) WatchCh() <-chan struct{} { return v.changed }

// Memo returns a value derived from this view, building it once. Views are
// immutable, so a derived value (an encoded answer, say) stays valid for the
// life of the view.
//
// Concurrent first callers build the value once: the others wait for it,
// rather than each encoding a large answer right after a change.
func (v *ServiceView) Memo(key any, build func() any) any {
	m, ok := v.memo.Load(key)
	if !ok {
		m, _ = v.memo.LoadOrStore(key, &memoEntry{})
	}
	e := m.(*memoEntry)
	e.once.Do(func() { e.v = build() })
	return e.v
}

// MemoKeyed is Memo for many keys of one kind (a caller's locality, a
// question): the values live in one memo entry holding a plain map, so a
// lookup boxes no key and allocates nothing. At most limit keys are kept;
// past that a value is built and returned without being kept (keys that
// come from requests must not grow memory without bound).
func MemoKeyed[K comparable, V any](v *ServiceView, k K, limit int, build func() V) V {
	m := v.Memo(keyedMemoKey[K, V]{}, func() any { return &keyedMemo[K, V]{m: map[K]V{}} }).(*keyedMemo[K, V])
	m.mu.RLock()
	val, ok := m.m[k]
	m.mu.RUnlock()
	if ok {
		return val
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if val, ok = m.m[k]; !ok {
		val = build()
		if len(m.m) < limit {
			m.m[k] = val
		}
	}
	return val
}

// keyedMemoKey is zero-size: boxing it allocates nothing, and its type
// parameters keep different kinds of keyed memos apart.
type keyedMemoKey[K comparable, V any] struct{}

type keyedMemo[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

type memoEntry struct {
	once sync.Once
	v    any
}

// Instance returns the instance with the given id, or nil.
func (v *ServiceView) Instance(id string) *Instance { return v.list.get(id) }

// Protected reports whether the service's protect threshold is tripped:
// fewer than ProtectThreshold of its enabled instances are healthy. A
// service with no enabled instance is never protected (there is nothing
// to spread traffic over).
func (v *ServiceView) Protected() bool {
	t := v.Service.ProtectThreshold
	if t <= 0 {
		return false
	}
	enabled, healthy := 0, 0
	for in := range v.All {
		if in.Enabled {
			enabled++
			if in.Healthy {
				healthy++
			}
		}
	}
	return enabled > 0 && float64(healthy) < t*float64(enabled)
}

// Healthy counts the healthy instances.
func (v *ServiceView) Healthy() int {
	n := 0
	for i := range v.All {
		if i.Healthy {
			n++
		}
	}
	return n
}

// New returns a store holding only the default namespace.
func New() *Store {
	s := &Store{}
	s.root.Store(emptyCatalog())
	ch := make(chan struct{})
	s.abandon.Store(&ch)
	return s
}

func emptyCatalog() *catalog {
	c := &catalog{
		namespaces: map[string]*nsEntry{},
		servers:    map[string]Server{},
		acl:        emptyACL,
		changed:    make(chan struct{}),
	}
	e := &nsEntry{}
	e.view.Store(&NamespaceView{
		Namespace: Namespace{Name: DefaultNamespace},
		services:  map[string]*svcEntry{},
		changed:   make(chan struct{}),
	})
	c.namespaces[DefaultNamespace] = e
	return c
}

// SelfPreservation returns the self-preservation mode.
func (s *Store) SelfPreservation() SelfPreservation { return s.root.Load().selfPres }

// Index returns the log index of the last applied command.
func (s *Store) Index() uint64 { return s.index.Load() }

// AbandonCh is closed when the whole store is replaced by a restore; a
// waiter must then re-run its query.
func (s *Store) AbandonCh() <-chan struct{} { return *s.abandon.Load() }

// Namespace returns the view of one namespace.
func (s *Store) Namespace(ns string) (*NamespaceView, error) {
	e := s.root.Load().namespaces[ns]
	if e == nil {
		return nil, fmt.Errorf("store: namespace %q: %w", ns, ErrNamespaceNotFound)
	}
	return e.view.Load(), nil
}

// Namespaces returns every namespace sorted by name, the index of the last
// change to the set, and a channel closed when the set changes.
func (s *Store) Namespaces() (uint64, []Namespace, <-chan struct{}) {
	c := s.root.Load()
	out := make([]Namespace, 0, len(c.namespaces))
	// nsIndex moves on every namespace create, update and delete, and comes
	// from the catalog root alone: a batch publishes namespace views before
	// the root, so an index taken from the views could run ahead of the set
	// of namespaces this answer shows.
	idx := c.nsIndex
	for _, e := range c.namespaces {
		out = append(out, e.view.Load().Namespace)
	}
	slices.SortFunc(out, func(a, b Namespace) int { return cmpString(a.Name, b.Name) })
	return max(idx, 1), out, c.changed
}

// Service returns the view of one service. This is the lookup hot path: two
// map reads and three atomic loads, no lock.
func (s *Store) Service(ns, svc string) (*ServiceView, error) {
	e := s.root.Load().namespaces[ns]
	if e == nil {
		return nil, fmt.Errorf("store: namespace %q: %w", ns, ErrNamespaceNotFound)
	}
	se := e.view.Load().services[svc]
	if se == nil {
		return nil, fmt.Errorf("store: service %q in namespace %q: %w", svc, ns, ErrServiceNotFound)
	}
	return se.view.Load(), nil
}

// Services returns the namespace view and the views of its services sorted
// by name.
func (s *Store) Services(ns string) (*NamespaceView, []*ServiceView, error) {
	nv, err := s.Namespace(ns)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*ServiceView, 0, len(nv.services))
	for _, e := range nv.services {
		out = append(out, e.view.Load())
	}
	slices.SortFunc(out, func(a, b *ServiceView) int { return cmpString(a.Service.Name, b.Service.Name) })
	return nv, out, nil
}

// Servers returns the registry servers recorded in the catalog, sorted by id.
func (s *Store) Servers() (uint64, []Server) {
	c := s.root.Load()
	out := slices.Collect(maps.Values(c.servers))
	slices.SortFunc(out, func(a, b Server) int { return cmpString(a.ID, b.ID) })
	return c.serversIndex, out
}

// Server returns one server's catalog record.
func (s *Store) Server(id string) (Server, bool) {
	srv, ok := s.root.Load().servers[id]
	return srv, ok
}

// Stats summarises the catalog size.
type Stats struct {
	Namespaces int `json:"namespaces"`
	Services   int `json:"services"`
	Instances  int `json:"instances"`
}

// Stats counts namespaces, services and instances.
func (s *Store) Stats() Stats {
	c := s.root.Load()
	st := Stats{Namespaces: len(c.namespaces)}
	for _, e := range c.namespaces {
		v := e.view.Load()
		st.Services += len(v.services)
		for _, se := range v.services {
			st.Instances += se.view.Load().Len()
		}
	}
	return st
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
