package store

import (
	"fmt"
	"maps"
	"slices"
)

// Apply applies one command at log index index. It is called in log order by
// a single goroutine (the Raft FSM) and must be deterministic: the same
// commands in the same order give the same catalog on every replica. An error
// is a rejected command (unknown namespace, say): it changes nothing, and
// every replica rejects it the same way.
//
// The result is the stored value: *Instance for a register, *Service,
// *Namespace or Server for the put commands, nil otherwise.
func (s *Store) Apply(index uint64, c *Command) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The index moves even for rejected commands: it is the applied position
	// in the log, and consistent reads wait on it.
	defer func() {
		if index > s.index.Load() {
			s.index.Store(index)
		}
	}()
	switch c.Type {
	case CommandRegister:
		return s.register(index, c)
	case CommandDeregister:
		return nil, s.deregister(index, c)
	case CommandPutService:
		return s.putService(index, c)
	case CommandDeleteService:
		return nil, s.deleteService(index, c)
	case CommandPutNamespace:
		return s.putNamespace(index, c)
	case CommandDeleteNamespace:
		return nil, s.deleteNamespace(index, c)
	case CommandPutServer:
		return s.putServer(index, c)
	case CommandRemoveServer:
		return nil, s.removeServer(index, c)
	}
	return nil, fmt.Errorf("store: apply %s: %w", c.Type, ErrUnknownCommand)
}

// serviceEntry finds the entry of a service. With create set, a missing
// service gets a new entry with default settings; the entry is published
// into its namespace only when the caller runs publish, after filling it, so
// that no reader ever sees a half-built service at this index. publish is
// nil for an existing service.
func (s *Store) serviceEntry(index uint64, ns, svc string, create bool) (se *svcEntry, publish func(), err error) {
	e := s.root.Load().namespaces[ns]
	if e == nil {
		return nil, nil, fmt.Errorf("store: namespace %q: %w", ns, ErrNamespaceNotFound)
	}
	nv := e.view.Load()
	if se := nv.services[svc]; se != nil {
		return se, nil, nil
	}
	if !create {
		return nil, nil, fmt.Errorf("store: service %q in namespace %q: %w", svc, ns, ErrServiceNotFound)
	}
	se = &svcEntry{}
	se.view.Store(&ServiceView{
		Service: Service{Namespace: ns, Name: svc, ServiceSettings: DefaultServiceSettings(),
			CreateIndex: index, ModifyIndex: index},
		Index:   index,
		changed: make(chan struct{}),
	})
	publish = func() {
		nv := e.view.Load()
		services := maps.Clone(nv.services)
		services[svc] = se
		s.replaceNamespace(e, &NamespaceView{Namespace: nv.Namespace, Index: index, services: services})
	}
	return se, publish, nil
}

func (s *Store) replaceNamespace(e *nsEntry, nv *NamespaceView) {
	nv.changed = make(chan struct{})
	old := e.view.Swap(nv)
	if old != nil {
		close(old.changed)
	}
}

func (s *Store) replaceService(se *svcEntry, v *ServiceView) {
	v.changed = make(chan struct{})
	old := se.view.Swap(v)
	close(old.changed)
}

// touchNamespace moves a namespace view's index after a change to one of its
// services' instances: the service list shows instance counts. The services
// map is shared, so this costs one small allocation.
func (s *Store) touchNamespace(ns string, index uint64) {
	e := s.root.Load().namespaces[ns]
	nv := e.view.Load()
	s.replaceNamespace(e, &NamespaceView{Namespace: nv.Namespace, Index: index, services: nv.services})
}

func (s *Store) register(index uint64, c *Command) (any, error) {
	in := *c.Instance
	in.Namespace, in.Service, in.ID = c.Namespace, c.Service, c.ID
	if err := in.Normalize(); err != nil {
		return nil, fmt.Errorf("store: register %q: %w", c.ID, err)
	}
	se, publish, err := s.serviceEntry(index, c.Namespace, c.Service, true)
	if err != nil {
		return nil, fmt.Errorf("store: register %q: %w", c.ID, err)
	}
	old := se.view.Load()
	pos, found := old.find(c.ID)
	// A registration is proof of life.
	in.Healthy = true
	in.Tags = slices.Clone(in.Tags)
	in.Metadata = maps.Clone(in.Metadata)
	if found {
		prev := old.Instances[pos]
		if prev.sameSpec(&in) {
			return prev, nil
		}
		in.CreateIndex, in.RegisteredAt = prev.CreateIndex, prev.RegisteredAt
	} else {
		in.CreateIndex, in.RegisteredAt = index, c.Time
	}
	in.ModifyIndex, in.UpdatedAt = index, c.Time
	instances := make([]*Instance, 0, len(old.Instances)+1)
	instances = append(instances, old.Instances[:pos]...)
	instances = append(instances, &in)
	if found {
		pos++
	}
	instances = append(instances, old.Instances[pos:]...)
	s.replaceService(se, &ServiceView{Service: old.Service, Instances: instances, Index: index})
	if publish != nil {
		publish()
	} else {
		s.touchNamespace(c.Namespace, index)
	}
	return &in, nil
}

func (s *Store) deregister(index uint64, c *Command) error {
	se, _, err := s.serviceEntry(index, c.Namespace, c.Service, false)
	if err != nil {
		return fmt.Errorf("store: deregister %q: %w", c.ID, err)
	}
	old := se.view.Load()
	pos, found := old.find(c.ID)
	if !found {
		return fmt.Errorf("store: deregister %q from %s/%s: %w", c.ID, c.Namespace, c.Service, ErrInstanceNotFound)
	}
	instances := slices.Delete(slices.Clone(old.Instances), pos, pos+1)
	s.replaceService(se, &ServiceView{Service: old.Service, Instances: instances, Index: index})
	s.touchNamespace(c.Namespace, index)
	return nil
}

func (s *Store) putService(index uint64, c *Command) (any, error) {
	if err := ValidateName("service", c.Service); err != nil {
		return nil, fmt.Errorf("store: put service: %w", err)
	}
	if err := c.ServiceSettings.Validate(); err != nil {
		return nil, fmt.Errorf("store: put service %q: %w", c.Service, err)
	}
	se, publish, err := s.serviceEntry(index, c.Namespace, c.Service, true)
	if err != nil {
		return nil, fmt.Errorf("store: put service %q: %w", c.Service, err)
	}
	old := se.view.Load()
	svc := old.Service
	if svc.ServiceSettings == *c.ServiceSettings && publish == nil {
		return &svc, nil
	}
	svc.ServiceSettings = *c.ServiceSettings
	svc.ModifyIndex = index
	s.replaceService(se, &ServiceView{Service: svc, Instances: old.Instances, Index: index})
	if publish != nil {
		publish()
	} else {
		// The namespace's service list shows settings: move its index too.
		s.touchNamespace(c.Namespace, index)
	}
	return &svc, nil
}

func (s *Store) deleteService(index uint64, c *Command) error {
	e := s.root.Load().namespaces[c.Namespace]
	if e == nil {
		return fmt.Errorf("store: delete service %q: namespace %q: %w", c.Service, c.Namespace, ErrNamespaceNotFound)
	}
	nv := e.view.Load()
	se := nv.services[c.Service]
	if se == nil {
		return fmt.Errorf("store: delete service %q in namespace %q: %w", c.Service, c.Namespace, ErrServiceNotFound)
	}
	services := maps.Clone(nv.services)
	delete(services, c.Service)
	s.replaceNamespace(e, &NamespaceView{Namespace: nv.Namespace, Index: index, services: services})
	// Wake the service's watchers: their re-run finds it gone.
	close(se.view.Load().changed)
	return nil
}

func (s *Store) replaceCatalog(old, c *catalog) {
	c.changed = make(chan struct{})
	s.root.Store(c)
	close(old.changed)
}

func (s *Store) putNamespace(index uint64, c *Command) (any, error) {
	name := c.Namespace
	if err := ValidateName("namespace", name); err != nil {
		return nil, fmt.Errorf("store: put namespace: %w", err)
	}
	set := *c.NamespaceSettings
	if err := set.Validate(name); err != nil {
		return nil, fmt.Errorf("store: put namespace %q: %w", name, err)
	}
	root := s.root.Load()
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
			p = e.view.Load().Namespace.Fallback
		}
	}
	if e := root.namespaces[name]; e != nil {
		nv := e.view.Load()
		if nv.Namespace.NamespaceSettings == set {
			ns := nv.Namespace
			return &ns, nil
		}
		ns := nv.Namespace
		ns.NamespaceSettings, ns.ModifyIndex = set, index
		s.replaceNamespace(e, &NamespaceView{Namespace: ns, Index: index, services: nv.services})
		// The namespace list shows settings: wake its watchers too.
		next := *root
		next.nsIndex = index
		s.replaceCatalog(root, &next)
		return &ns, nil
	}
	ns := Namespace{Name: name, NamespaceSettings: set, CreateIndex: index, ModifyIndex: index}
	e := &nsEntry{}
	e.view.Store(&NamespaceView{Namespace: ns, Index: index, services: map[string]*svcEntry{}, changed: make(chan struct{})})
	next := *root
	next.namespaces = maps.Clone(root.namespaces)
	next.namespaces[name] = e
	next.nsIndex = index
	s.replaceCatalog(root, &next)
	return &ns, nil
}

func (s *Store) deleteNamespace(index uint64, c *Command) error {
	name := c.Namespace
	if name == DefaultNamespace {
		return fmt.Errorf("store: delete namespace: %w: %q always exists", ErrInvalid, name)
	}
	root := s.root.Load()
	e := root.namespaces[name]
	if e == nil {
		return fmt.Errorf("store: delete namespace %q: %w", name, ErrNamespaceNotFound)
	}
	nv := e.view.Load()
	if len(nv.services) > 0 {
		return fmt.Errorf("store: delete namespace %q: %w: it still has %d services", name, ErrNamespaceInUse, len(nv.services))
	}
	for other, oe := range root.namespaces {
		if oe.view.Load().Namespace.Fallback == name {
			return fmt.Errorf("store: delete namespace %q: %w: namespace %q falls back to it", name, ErrNamespaceInUse, other)
		}
	}
	next := *root
	next.namespaces = maps.Clone(root.namespaces)
	delete(next.namespaces, name)
	next.nsIndex = index
	s.replaceCatalog(root, &next)
	close(nv.changed)
	return nil
}

func (s *Store) putServer(index uint64, c *Command) (any, error) {
	if c.Server.ID == "" {
		return nil, fmt.Errorf("store: put server: %w: empty id", ErrInvalid)
	}
	root := s.root.Load()
	if prev, ok := root.servers[c.Server.ID]; ok && prev == *c.Server {
		return prev, nil
	}
	next := *root
	next.servers = maps.Clone(root.servers)
	next.servers[c.Server.ID] = *c.Server
	next.serversIndex = index
	s.replaceCatalog(root, &next)
	return *c.Server, nil
}

func (s *Store) removeServer(index uint64, c *Command) error {
	root := s.root.Load()
	if _, ok := root.servers[c.ID]; !ok {
		return nil
	}
	next := *root
	next.servers = maps.Clone(root.servers)
	delete(next.servers, c.ID)
	next.serversIndex = index
	s.replaceCatalog(root, &next)
	return nil
}
