package catalog

import (
	"container/list"
	"sync"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// History keeps, on this server and in memory only, what happened lately:
// each instance's last events (registered, unhealthy, disabled…) and each
// service's instance and healthy counts over the last hour, for the
// console. It is fed by the store's event sink, so every server, read
// servers included, has the same history from the moment it started
// applying the log. Bounded: a few tens of megabytes at most, whatever the
// catalog's size, the instances and services changed longest ago dropped
// first.
type History struct {
	mu        sync.Mutex
	instances map[instanceKey]*list.Element // of *instanceEvents, most recently changed at the back
	order     *list.List
	services  map[serviceKey]*list.Element // of *serviceSamples
	sorder    *list.List
	count     func(ns, svc string) (instances, healthy int, ok bool)
}

const (
	// EventsPerInstance are kept per instance, the newest.
	EventsPerInstance = 16
	// MaxInstancesWithHistory bounds the instances remembered.
	MaxInstancesWithHistory = 20000
	// SampleEvery is the width of one sample of a service's counts: the
	// last counts of each such slice of time are kept.
	SampleEvery = 30 * time.Second
	// SamplesPerService cover the last hour.
	SamplesPerService = int(time.Hour / SampleEvery)
	// MaxServicesWithHistory bounds the services remembered.
	MaxServicesWithHistory = 2000
)

type instanceKey struct{ ns, svc, id string }

type serviceKey struct{ ns, svc string }

// event is an Event without its names (held once per instance).
type event struct {
	at        int64 // unix ms
	index     uint64
	kind      store.EventKind
	weight    int32
	ephemeral bool
}

type instanceEvents struct {
	key    instanceKey
	events []event // oldest first, at most EventsPerInstance
}

// Sample is a service's counts at the end of a slice of SampleEvery.
type Sample struct {
	Time      time.Time `json:"time"`
	Instances int       `json:"instances"`
	Healthy   int       `json:"healthy"`
}

type serviceSamples struct {
	key     serviceKey
	samples []Sample // oldest first, within the last hour
}

// NewHistory returns a History that reads a service's counts with count.
func NewHistory(count func(ns, svc string) (instances, healthy int, ok bool)) *History {
	return &History{instances: map[instanceKey]*list.Element{}, order: list.New(),
		services: map[serviceKey]*list.Element{}, sorder: list.New(), count: count}
}

// Record takes in a batch of events (store.Store's event sink).
func (h *History) Record(events []store.Event) {
	touched := map[serviceKey]time.Time{}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		k := instanceKey{e.Namespace, e.Service, e.ID}
		ie := touch(h.instances, h.order, k, MaxInstancesWithHistory, func() *instanceEvents { return &instanceEvents{key: k} },
			func(v *instanceEvents) instanceKey { return v.key })
		if len(ie.events) == EventsPerInstance {
			copy(ie.events, ie.events[1:])
			ie.events = ie.events[:EventsPerInstance-1]
		}
		ie.events = append(ie.events, event{at: e.Time.UnixMilli(), index: e.Index, kind: e.Kind, weight: int32(e.Weight), ephemeral: e.Ephemeral})
		touched[serviceKey{e.Namespace, e.Service}] = e.Time
	}
	for k, at := range touched {
		h.sample(k, at)
	}
}

// sample records a service's counts at at; h.mu is held.
func (h *History) sample(k serviceKey, at time.Time) {
	n, healthy, ok := h.count(k.ns, k.svc)
	if !ok {
		n, healthy = 0, 0 // the service is gone: its last point says so
	}
	ss := touch(h.services, h.sorder, k, MaxServicesWithHistory, func() *serviceSamples { return &serviceSamples{key: k} },
		func(v *serviceSamples) serviceKey { return v.key })
	slice := at.Truncate(SampleEvery)
	s := Sample{Time: at, Instances: n, Healthy: healthy}
	if l := len(ss.samples); l > 0 && !ss.samples[l-1].Time.Before(slice) {
		ss.samples[l-1] = s // the same slice: its last counts
		return
	}
	ss.samples = append(ss.samples, s)
	// Drop what is older than an hour (but the last such, which says
	// what the counts were as the hour began), and keep the count bounded.
	cut := 0
	for cut+1 < len(ss.samples) && at.Sub(ss.samples[cut+1].Time) > time.Hour {
		cut++
	}
	cut = max(cut, len(ss.samples)-SamplesPerService)
	if cut > 0 {
		ss.samples = append(ss.samples[:0], ss.samples[cut:]...)
	}
}

// touch returns k's entry of m, made by fresh when it has none, and marks
// it changed last (the back of order); past bound entries, the one changed
// longest ago (the front) goes first. keyOf names an entry's key.
func touch[K comparable, V any](m map[K]*list.Element, order *list.List, k K, bound int, fresh func() V, keyOf func(V) K) V {
	if el, ok := m[k]; ok {
		order.MoveToBack(el)
		return el.Value.(V)
	}
	if order.Len() >= bound {
		oldest := order.Front()
		delete(m, keyOf(oldest.Value.(V)))
		order.Remove(oldest)
	}
	v := fresh()
	m[k] = order.PushBack(v)
	return v
}

// Instance returns an instance's last events, oldest first.
func (h *History) Instance(ns, svc, id string) []store.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	el, ok := h.instances[instanceKey{ns, svc, id}]
	if !ok {
		return []store.Event{}
	}
	ie := el.Value.(*instanceEvents)
	out := make([]store.Event, len(ie.events))
	for i, e := range ie.events {
		out[i] = store.Event{Time: time.UnixMilli(e.at).UTC(), Index: e.index, Namespace: ns, Service: svc, ID: id,
			Kind: e.kind, Weight: int(e.weight), Ephemeral: e.ephemeral}
	}
	return out
}

// Service returns a service's samples of the last hour, oldest first.
func (h *History) Service(ns, svc string) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	el, ok := h.services[serviceKey{ns, svc}]
	if !ok {
		return []Sample{}
	}
	ss := el.Value.(*serviceSamples)
	from := time.Now().Add(-time.Hour)
	out := make([]Sample, 0, len(ss.samples))
	for i, s := range ss.samples {
		switch {
		case !s.Time.Before(from):
			out = append(out, s)
		case i+1 == len(ss.samples) || ss.samples[i+1].Time.After(from):
			// The counts as the hour began.
			s.Time = from
			out = append(out, s)
		}
	}
	return out
}
