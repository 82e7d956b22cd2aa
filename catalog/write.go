package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-io/switchyard/health"
	"github.com/switchyard-io/switchyard/store"
)

// Prepare fills an instance's defaults and checks every field against the
// store's rules and the configured metadata cap: the one validation of an
// instance at the door (the store checks again when it applies the command,
// because the log must not depend on the doors). Pure: doors' decoders are
// fuzzed through it. The caller sets Namespace, Service and ID.
func (c Config) Prepare(in *store.Instance) error {
	if err := in.Normalize(); err != nil {
		return err
	}
	if c.MaxMetadataBytes <= 0 {
		return nil
	}
	n := 0
	for k, v := range in.Metadata {
		n += len(k) + len(v)
	}
	if n > c.MaxMetadataBytes {
		return fmt.Errorf("%w: metadata is %d bytes (keys and values), this server takes at most %d (--max-metadata-bytes)", store.ErrInvalid, n, c.MaxMetadataBytes)
	}
	return nil
}

// Register validates an instance (Prepare, the check policy, the instances
// per service), commits it and returns it as stored, with the index of the
// write. A registration of an ephemeral instance is a sign of life.
func (c *Catalog) Register(ctx context.Context, in *store.Instance) (*store.Instance, uint64, error) {
	if err := c.cfg.Prepare(in); err != nil {
		return nil, 0, err
	}
	if err := c.cfg.CheckPolicy.Check(ctx, in.Check); err != nil {
		return nil, 0, err
	}
	ns, svc, id := in.Namespace, in.Service, in.ID
	if max := c.cfg.MaxInstancesPerService; max > 0 {
		if v, err := c.Service(ns, svc); err == nil && v.Len() >= max && v.Instance(id) == nil {
			return nil, 0, fmt.Errorf("%w: service %s/%s has %d instances, the most this server takes (--max-instances-per-service)", ErrTooManyInstances, ns, svc, v.Len())
		}
	}
	idx, err := c.node.Apply(ctx, &store.Command{Type: store.CommandRegister, Namespace: ns, Service: svc, ID: id, Instance: in})
	if err != nil {
		return nil, idx, err
	}
	if in.Ephemeral {
		c.heard(ns, svc, id)
	}
	stored, err := c.stored(ns, svc, id)
	return stored, idx, err
}

// Patch changes an instance's weight or traffic switch without registering
// it again: its health, check state and liveness stay. ifIndex, when not 0,
// makes the change conditional on the instance's ModifyIndex.
func (c *Catalog) Patch(ctx context.Context, ns, svc, id string, p store.InstancePatch, ifIndex uint64) (*store.Instance, uint64, error) {
	idx, err := c.node.Apply(ctx, &store.Command{Type: store.CommandPatchInstance, Namespace: ns, Service: svc, ID: id,
		IfIndex: ifIndex, Patch: &p})
	if err != nil {
		return nil, idx, err
	}
	stored, err := c.stored(ns, svc, id)
	return stored, idx, err
}

// Deregister removes an instance.
func (c *Catalog) Deregister(ctx context.Context, ns, svc, id string) (uint64, error) {
	return c.node.Apply(ctx, &store.Command{Type: store.CommandDeregister, Namespace: ns, Service: svc, ID: id})
}

// SetHealth records a verdict on an instance's health at once (a TTL check
// failed by its owner), until its next sign of life.
func (c *Catalog) SetHealth(ctx context.Context, ns, svc, id string, healthy bool) (uint64, error) {
	return c.node.Apply(ctx, &store.Command{Type: store.CommandSetHealth, Health: []store.HealthChange{{
		Namespace: ns, Service: svc, ID: id, Healthy: healthy}}})
}

// Heartbeat records a sign of life of an ephemeral instance on this server,
// without a write: the judge turns it into health. It returns the service's
// view and the instance as this replica holds them. A heartbeat that could
// not reach the judge from here (Config.ReachesJudge) is refused with
// ErrNotReady rather than taken and lost.
func (c *Catalog) Heartbeat(ns, svc, id string) (*store.ServiceView, *store.Instance, error) {
	v, in, err := c.Local(ns, svc, id, ": register it again")
	if err != nil {
		return nil, nil, err
	}
	if !in.Ephemeral {
		return nil, nil, fmt.Errorf("%w: instance %q in %s/%s is persistent: its health comes from its %s check, not from heartbeats",
			ErrNotEphemeral, id, ns, svc, in.Check.Type)
	}
	if c.cfg.ReachesJudge != nil {
		if err := c.cfg.ReachesJudge(); err != nil {
			return nil, nil, err
		}
	}
	c.heard(ns, svc, id)
	return v, in, nil
}

// Local finds an instance in this replica, refusing with ErrNotReady while
// the replica has not caught up (an instance registered elsewhere would be
// "not found" only here). hint ends the message of a not-found error.
func (c *Catalog) Local(ns, svc, id, hint string) (*store.ServiceView, *store.Instance, error) {
	if err := c.Ready(); err != nil {
		return nil, nil, err
	}
	v, err := c.Service(ns, svc)
	if err != nil {
		return nil, nil, err
	}
	in := v.Instance(id)
	if in == nil {
		return nil, nil, fmt.Errorf("instance %q in %s/%s: %w%s", id, ns, svc, store.ErrInstanceNotFound, hint)
	}
	return v, in, nil
}

func (c *Catalog) heard(ns, svc, id string) {
	if c.cfg.Liveness != nil {
		c.cfg.Liveness.Heard(health.Key{Namespace: ns, Service: svc, ID: id})
	}
}

// stored reads back an instance this server just wrote: Apply returns once
// the local replica has applied the write, so it is there unless a later
// write removed it again.
func (c *Catalog) stored(ns, svc, id string) (*store.Instance, error) {
	if v, err := c.Service(ns, svc); err == nil {
		if in := v.Instance(id); in != nil {
			return in, nil
		}
	}
	return nil, fmt.Errorf("instance %q in %s/%s: %w (deregistered again since)", id, ns, svc, store.ErrInstanceNotFound)
}

// PutService changes a service's settings (creating the service): update
// gets the current settings, read after a consistent read so that a lagging
// server does not write old values back over a newer change, and returns
// the new ones. It returns the service as stored.
func (c *Catalog) PutService(ctx context.Context, ns, svc string, update func(cur store.ServiceSettings) (store.ServiceSettings, error)) (store.Service, uint64, error) {
	if err := c.node.ConsistentRead(ctx); err != nil {
		return store.Service{}, 0, err
	}
	cur := store.DefaultServiceSettings()
	if v, err := c.Service(ns, svc); err == nil {
		cur = v.Service.ServiceSettings
	}
	set, err := update(cur)
	if err == nil {
		err = set.Validate()
	}
	if err != nil {
		return store.Service{}, 0, err
	}
	idx, err := c.node.Apply(ctx, &store.Command{Type: store.CommandPutService, Namespace: ns, Service: svc, ServiceSettings: &set})
	if err != nil {
		return store.Service{}, idx, err
	}
	v, err := c.Service(ns, svc)
	if err != nil {
		return store.Service{}, idx, err
	}
	return v.Service, idx, nil
}

// DeleteService removes a service and its instances.
func (c *Catalog) DeleteService(ctx context.Context, ns, svc string) (uint64, error) {
	return c.node.Apply(ctx, &store.Command{Type: store.CommandDeleteService, Namespace: ns, Service: svc})
}

// PutNamespace creates a namespace or changes its settings, as PutService
// does for a service. allow, when not nil, may still refuse the valid new
// settings (a door's access control over the fallback).
func (c *Catalog) PutNamespace(ctx context.Context, name string, update func(cur store.NamespaceSettings) (store.NamespaceSettings, error),
	allow func(cur, next store.NamespaceSettings) error) (store.Namespace, uint64, error) {
	if err := c.node.ConsistentRead(ctx); err != nil {
		return store.Namespace{}, 0, err
	}
	var cur store.NamespaceSettings
	if v, err := c.Namespace(name); err == nil {
		cur = v.Namespace.NamespaceSettings
	}
	set, err := update(cur)
	if err == nil {
		err = set.Validate(name)
	}
	if err == nil && allow != nil {
		err = allow(cur, set)
	}
	if err != nil {
		return store.Namespace{}, 0, err
	}
	idx, err := c.node.Apply(ctx, &store.Command{Type: store.CommandPutNamespace, Namespace: name, NamespaceSettings: &set})
	if err != nil {
		return store.Namespace{}, idx, err
	}
	v, err := c.Namespace(name)
	if err != nil {
		return store.Namespace{}, idx, err
	}
	return v.Namespace, idx, nil
}

// DeleteNamespace removes an empty namespace that is no fallback.
func (c *Catalog) DeleteNamespace(ctx context.Context, name string) (uint64, error) {
	return c.node.Apply(ctx, &store.Command{Type: store.CommandDeleteNamespace, Namespace: name})
}

// LastHeard is when this server last heard a sign of life of an ephemeral
// instance (gossip brings it the other servers' heartbeats); false when
// never, or when liveness is not recorded.
func (c *Catalog) LastHeard(ns, svc, id string) (time.Time, bool) {
	if c.cfg.Liveness == nil {
		return time.Time{}, false
	}
	return c.cfg.Liveness.LastSeen(health.Key{Namespace: ns, Service: svc, ID: id})
}
