package store

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Result is the outcome of one command of a batch: the stored value
// (*Instance for a register, *Service, *Namespace or Server for the put
// commands, nil otherwise) or the error that rejected the command.
type Result struct {
	Value any
	Err   error
}

// Apply applies one command at log index index. It is called in log order by
// a single goroutine (the Raft FSM) and must be deterministic: the same
// commands in the same order give the same catalog on every replica. An error
// is a rejected command (unknown namespace, say): it changes nothing, and
// every replica rejects it the same way.
func (s *Store) Apply(index uint64, c *Command) (any, error) {
	r := s.ApplyBatch(index, []*Command{c})
	return r[0].Value, r[0].Err
}

// ApplyBatch applies several commands that share one log index, in order.
// Readers see all of their changes at once or none of them: views are built
// aside and published together at the end, so a watcher that saw index
// index can never have seen only part of it. A rejected command changes
// nothing and does not affect the others.
func (s *Store) ApplyBatch(index uint64, cmds []*Command) []Result {
	s.mu.Lock()
	t := &txn{s: s, index: index,
		ns: map[*nsEntry]*NamespaceView{}, ownNSMap: map[*nsEntry]bool{},
		svc: map[*svcEntry]*ServiceView{}, ownInst: map[*svcEntry]bool{}}
	out := make([]Result, len(cmds))
	for i, c := range cmds {
		if c == nil {
			continue // ignorable command of a newer version
		}
		out[i].Value, out[i].Err = t.apply(c)
	}
	t.commit()
	// The index moves even for rejected commands: it is the applied
	// position in the log.
	if index > s.index.Load() {
		s.index.Store(index)
	}
	s.mu.Unlock()
	if sink := s.sink.Load(); sink != nil && len(t.events) > 0 {
		(*sink)(t.events)
	}
	return out
}

// txn holds the views a batch has changed until it publishes them. Views it
// created are its own and may be changed in place; published ones are never
// touched, only replaced.
type txn struct {
	s     *Store
	index uint64

	root     *catalog // the new catalog, nil while unchanged
	ns       map[*nsEntry]*NamespaceView
	ownNSMap map[*nsEntry]bool // the pending view's services map is a copy
	svc      map[*svcEntry]*ServiceView
	ownInst  map[*svcEntry]bool  // the pending view's chunk slice is a copy
	ownChunk map[*instChunk]bool // chunks made in this batch, changed in place
	closing  []chan struct{}     // channels of views that leave the catalog
	events   []Event             // for the sink (SetEventSink)
}

func (t *txn) apply(c *Command) (any, error) {
	switch c.Type {
	case CommandRegister:
		return t.register(c)
	case CommandDeregister:
		return nil, t.deregister(c)
	case CommandPutService:
		return t.putService(c)
	case CommandDeleteService:
		return nil, t.deleteService(c)
	case CommandPutNamespace:
		return t.putNamespace(c)
	case CommandDeleteNamespace:
		return nil, t.deleteNamespace(c)
	case CommandPutServer:
		return t.putServer(c)
	case CommandRemoveServer:
		return nil, t.removeServer(c)
	case CommandSetHealth:
		return t.setHealth(c)
	case CommandSetSelfPreservation:
		return t.setSelfPreservation(c)
	case CommandPutToken:
		return t.putToken(c, false)
	case CommandBootstrapACL:
		return t.putToken(c, true)
	case CommandDeleteToken:
		return nil, t.deleteToken(c)
	case CommandPatchInstance:
		return t.patchInstance(c)
	}
	return nil, fmt.Errorf("store: apply %s: %w", c.Type, ErrUnknownCommand)
}

// commit publishes every changed view: services first, then namespaces, then
// the catalog, so a reader walking down from the top finds each new entry
// already filled. Old views' channels close after their replacement is in.
func (t *txn) commit() {
	for se, v := range t.svc {
		v.changed = make(chan struct{})
		if old := se.view.Swap(v); old != nil {
			close(old.changed)
		}
	}
	for e, v := range t.ns {
		v.changed = make(chan struct{})
		if old := e.view.Swap(v); old != nil {
			close(old.changed)
		}
	}
	if t.root != nil {
		t.root.changed = make(chan struct{})
		old := t.s.root.Swap(t.root)
		close(old.changed)
	}
	for _, ch := range t.closing {
		close(ch)
	}
}

func (t *txn) catalog() *catalog {
	if t.root != nil {
		return t.root
	}
	return t.s.root.Load()
}

func (t *txn) mutableCatalog() *catalog {
	if t.root == nil {
		c := *t.s.root.Load()
		c.namespaces = maps.Clone(c.namespaces)
		c.servers = maps.Clone(c.servers)
		t.root = &c
	}
	return t.root
}

func (t *txn) nsView(e *nsEntry) *NamespaceView {
	if v := t.ns[e]; v != nil {
		return v
	}
	return e.view.Load()
}

// mutableNS returns a pending view of the namespace with its index moved to
// this batch; with services set, its services map is a private copy.
func (t *txn) mutableNS(e *nsEntry, services bool) *NamespaceView {
	v := t.ns[e]
	if v == nil {
		old := e.view.Load()
		v = &NamespaceView{Namespace: old.Namespace, services: old.services}
		t.ns[e] = v
	}
	v.Index = t.index
	if services && !t.ownNSMap[e] {
		v.services = maps.Clone(v.services)
		t.ownNSMap[e] = true
	}
	return v
}

func (t *txn) svcView(se *svcEntry) *ServiceView {
	if v := t.svc[se]; v != nil {
		return v
	}
	return se.view.Load()
}

// mutableSvc returns a pending view of the service with its index moved to
// this batch; instances edits its instance list.
func (t *txn) mutableSvc(se *svcEntry) *ServiceView {
	v := t.svc[se]
	if v == nil {
		old := se.view.Load()
		v = &ServiceView{Service: old.Service, list: old.list, changes: old.changes}
		t.svc[se] = v
	}
	v.Index = t.index
	return v
}

// instances returns an editor of the pending view's instances. The view's
// flat slice (Instances) must not be asked for before the batch commits.
func (t *txn) instances(se *svcEntry) listEdit {
	v := t.mutableSvc(se)
	if !t.ownInst[se] {
		v.list.chunks = slices.Grow(slices.Clone(v.list.chunks), 1)
		t.ownInst[se] = true
	}
	if t.ownChunk == nil {
		t.ownChunk = map[*instChunk]bool{}
	}
	return listEdit{l: &v.list, owned: t.ownChunk}
}

// service finds a service's entry. With create set, a missing service gets
// a new entry with default settings, published with the batch.
func (t *txn) service(ns, svc string, create bool) (*nsEntry, *svcEntry, error) {
	e := t.catalog().namespaces[ns]
	if e == nil {
		return nil, nil, fmt.Errorf("namespace %q: %w", ns, ErrNamespaceNotFound)
	}
	if se := t.nsView(e).services[svc]; se != nil {
		return e, se, nil
	}
	if !create {
		return nil, nil, fmt.Errorf("service %q in namespace %q: %w", svc, ns, ErrServiceNotFound)
	}
	se := &svcEntry{}
	t.svc[se] = &ServiceView{
		Service: Service{Namespace: ns, Name: svc, ServiceSettings: DefaultServiceSettings(),
			CreateIndex: t.index, ModifyIndex: t.index},
		Index: t.index,
	}
	t.ownInst[se] = true
	t.mutableNS(e, true).services[svc] = se
	return e, se, nil
}

func (t *txn) register(c *Command) (any, error) {
	in := *c.Instance
	in.Namespace, in.Service, in.ID = c.Namespace, c.Service, c.ID
	if err := in.Normalize(); err != nil {
		return nil, fmt.Errorf("store: register %q: %w", c.ID, err)
	}
	e, se, err := t.service(c.Namespace, c.Service, true)
	if err != nil {
		return nil, fmt.Errorf("store: register %q: %w", c.ID, err)
	}
	prev := t.svcView(se).Instance(c.ID)
	// A registration is proof of life.
	in.Healthy = true
	in.HealthChangedAt = time.Time{}
	in.Tags = slices.Clone(in.Tags)
	in.Metadata = maps.Clone(in.Metadata)
	if prev != nil {
		if prev.sameSpec(&in) {
			return prev, nil
		}
		in.CreateIndex, in.RegisteredAt = prev.CreateIndex, prev.RegisteredAt
	} else {
		in.CreateIndex, in.RegisteredAt = t.index, c.Time
	}
	in.ModifyIndex, in.UpdatedAt = t.index, c.Time
	t.instances(se).set(&in)
	// The namespace's service list shows instance counts.
	t.mutableNS(e, false)
	if prev == nil {
		t.event(c, &in, EventRegistered)
	} else {
		t.event(c, &in, EventUpdated)
	}
	return &in, nil
}

func (t *txn) deregister(c *Command) error {
	e, se, err := t.service(c.Namespace, c.Service, false)
	if err != nil {
		return fmt.Errorf("store: deregister %q: %w", c.ID, err)
	}
	prev := t.svcView(se).Instance(c.ID)
	if prev == nil {
		return fmt.Errorf("store: deregister %q from %s/%s: %w", c.ID, c.Namespace, c.Service, ErrInstanceNotFound)
	}
	if c.IfIndex != 0 && prev.ModifyIndex != c.IfIndex {
		return fmt.Errorf("store: deregister %q from %s/%s: %w: modify_index is %d, not %d",
			c.ID, c.Namespace, c.Service, ErrConflict, prev.ModifyIndex, c.IfIndex)
	}
	t.instances(se).remove(c.ID)
	t.mutableSvc(se).recordRemoval(prev.ID, t.index)
	t.mutableNS(e, false)
	t.event(c, prev, EventDeregistered)
	return nil
}

func (t *txn) setSelfPreservation(c *Command) (any, error) {
	next := t.mutableCatalog()
	next.selfPres = *c.SelfPreservation
	next.selfPres.Index = t.index
	return next.selfPres, nil
}

// setHealth applies the changes that still hold and returns how many did.
func (t *txn) patchInstance(c *Command) (any, error) {
	e, se, err := t.service(c.Namespace, c.Service, false)
	if err != nil {
		return nil, fmt.Errorf("store: patch %q: %w", c.ID, err)
	}
	prev := t.svcView(se).Instance(c.ID)
	if prev == nil {
		return nil, fmt.Errorf("store: patch %q in %s/%s: %w", c.ID, c.Namespace, c.Service, ErrInstanceNotFound)
	}
	if c.IfIndex != 0 && prev.ModifyIndex != c.IfIndex {
		return nil, fmt.Errorf("store: patch %q in %s/%s: %w: modify_index is %d, not %d", c.ID, c.Namespace, c.Service,
			ErrConflict, prev.ModifyIndex, c.IfIndex)
	}
	in := *prev
	if w := c.Patch.Weight; w != nil {
		if *w < 0 || *w > MaxWeight {
			return nil, fmt.Errorf("store: patch %q: %w", c.ID, invalid("weight %d is outside 0-%d", *w, MaxWeight))
		}
		in.Weight = *w
	}
	if en := c.Patch.Enabled; en != nil {
		in.Enabled = *en
	}
	if in.Weight == prev.Weight && in.Enabled == prev.Enabled {
		return prev, nil
	}
	in.ModifyIndex, in.UpdatedAt = t.index, c.Time
	t.instances(se).set(&in)
	t.mutableNS(e, false)
	if in.Weight != prev.Weight {
		t.event(c, &in, EventWeight)
	}
	if in.Enabled != prev.Enabled {
		t.event(c, &in, map[bool]EventKind{true: EventEnabled, false: EventDisabled}[in.Enabled])
	}
	return &in, nil
}

func (t *txn) setHealth(c *Command) (any, error) {
	n := 0
	for _, h := range c.Health {
		e, se, err := t.service(h.Namespace, h.Service, false)
		if err != nil {
			continue
		}
		prev := t.svcView(se).Instance(h.ID)
		if prev == nil {
			continue
		}
		if prev.Healthy == h.Healthy || (h.IfIndex != 0 && prev.ModifyIndex != h.IfIndex) {
			continue
		}
		in := *prev
		in.Healthy = h.Healthy
		in.HealthChangedAt = c.Time
		in.ModifyIndex = t.index
		t.instances(se).set(&in)
		// The namespace's service list shows healthy counts.
		t.mutableNS(e, false)
		t.event(c, &in, map[bool]EventKind{true: EventHealthy, false: EventUnhealthy}[in.Healthy])
		n++
	}
	return n, nil
}

func (t *txn) putService(c *Command) (any, error) {
	if err := ValidateName("service", c.Service); err != nil {
		return nil, fmt.Errorf("store: put service: %w", err)
	}
	if err := c.ServiceSettings.Validate(); err != nil {
		return nil, fmt.Errorf("store: put service %q: %w", c.Service, err)
	}
	e, se, err := t.service(c.Namespace, c.Service, true)
	if err != nil {
		return nil, fmt.Errorf("store: put service %q: %w", c.Service, err)
	}
	cur := t.svcView(se)
	if cur.Service.ServiceSettings == *c.ServiceSettings && cur.Service.CreateIndex != t.index {
		svc := cur.Service
		return &svc, nil
	}
	v := t.mutableSvc(se)
	v.Service.ServiceSettings = *c.ServiceSettings
	v.Service.ModifyIndex = t.index
	// The namespace's service list shows settings.
	t.mutableNS(e, false)
	svc := v.Service
	return &svc, nil
}

func (t *txn) deleteService(c *Command) error {
	e := t.catalog().namespaces[c.Namespace]
	if e == nil {
		return fmt.Errorf("store: delete service %q: namespace %q: %w", c.Service, c.Namespace, ErrNamespaceNotFound)
	}
	se := t.nsView(e).services[c.Service]
	if se == nil {
		return fmt.Errorf("store: delete service %q in namespace %q: %w", c.Service, c.Namespace, ErrServiceNotFound)
	}
	delete(t.mutableNS(e, true).services, c.Service)
	// The entry leaves the catalog: drop its pending view and wake the
	// watchers of its published one; their re-run finds it gone.
	delete(t.svc, se)
	if old := se.view.Load(); old != nil {
		t.closing = append(t.closing, old.changed)
	}
	return nil
}

func (t *txn) putNamespace(c *Command) (any, error) {
	name := c.Namespace
	if err := ValidateName("namespace", name); err != nil {
		return nil, fmt.Errorf("store: put namespace: %w", err)
	}
	set := *c.NamespaceSettings
	if err := set.Validate(name); err != nil {
		return nil, fmt.Errorf("store: put namespace %q: %w", name, err)
	}
	root := t.catalog()
	if set.Fallback != "" {
		if root.namespaces[set.Fallback] == nil {
			return nil, fmt.Errorf("store: put namespace %q: fallback %q: %w", name, set.Fallback, ErrNamespaceNotFound)
		}
		// Refuse a cycle: walk the chain up from the new parent.
		seen := map[string]bool{name: true}
		for p := set.Fallback; p != ""; {
			if seen[p] {
				return nil, fmt.Errorf("store: put namespace %q: %w: fallback %q makes a cycle", name, ErrInvalid, set.Fallback)
			}
			seen[p] = true
			e := root.namespaces[p]
			if e == nil {
				break
			}
			p = t.nsView(e).Namespace.Fallback
		}
	}
	if e := root.namespaces[name]; e != nil {
		cur := t.nsView(e)
		if cur.Namespace.NamespaceSettings == set {
			ns := cur.Namespace
			return &ns, nil
		}
		v := t.mutableNS(e, false)
		v.Namespace.NamespaceSettings, v.Namespace.ModifyIndex = set, t.index
		// The namespace list shows settings: wake its watchers too.
		t.mutableCatalog().nsIndex = t.index
		ns := v.Namespace
		return &ns, nil
	}
	ns := Namespace{Name: name, NamespaceSettings: set, CreateIndex: t.index, ModifyIndex: t.index}
	e := &nsEntry{}
	t.ns[e] = &NamespaceView{Namespace: ns, Index: t.index, services: map[string]*svcEntry{}}
	t.ownNSMap[e] = true
	next := t.mutableCatalog()
	next.namespaces[name] = e
	next.nsIndex = t.index
	return &ns, nil
}

func (t *txn) deleteNamespace(c *Command) error {
	name := c.Namespace
	if name == DefaultNamespace {
		return fmt.Errorf("store: delete namespace: %w: %q always exists", ErrInvalid, name)
	}
	root := t.catalog()
	e := root.namespaces[name]
	if e == nil {
		return fmt.Errorf("store: delete namespace %q: %w", name, ErrNamespaceNotFound)
	}
	nv := t.nsView(e)
	if len(nv.services) > 0 {
		return fmt.Errorf("store: delete namespace %q: %w: it still has %d services", name, ErrNamespaceInUse, len(nv.services))
	}
	for other, oe := range root.namespaces {
		if t.nsView(oe).Namespace.Fallback == name {
			return fmt.Errorf("store: delete namespace %q: %w: namespace %q falls back to it", name, ErrNamespaceInUse, other)
		}
	}
	next := t.mutableCatalog()
	delete(next.namespaces, name)
	next.nsIndex = t.index
	delete(t.ns, e)
	if old := e.view.Load(); old != nil {
		t.closing = append(t.closing, old.changed)
	}
	return nil
}

func (t *txn) putServer(c *Command) (any, error) {
	if c.Server.ID == "" {
		return nil, fmt.Errorf("store: put server: %w: empty id", ErrInvalid)
	}
	if !ValidRole(c.Server.Role) {
		return nil, fmt.Errorf("store: put server %s: %w: role %q (want %s or %s)", c.Server.ID, ErrInvalid, c.Server.Role, RoleVoter, RoleRead)
	}
	if prev, ok := t.catalog().servers[c.Server.ID]; ok && prev == *c.Server {
		return prev, nil
	}
	next := t.mutableCatalog()
	next.servers[c.Server.ID] = *c.Server
	next.serversIndex = t.index
	return *c.Server, nil
}

func (t *txn) removeServer(c *Command) error {
	if _, ok := t.catalog().servers[c.ID]; !ok {
		return nil
	}
	next := t.mutableCatalog()
	delete(next.servers, c.ID)
	next.serversIndex = t.index
	return nil
}
