package store

import "time"

// EventKind names what happened to an instance.
type EventKind string

// The kinds of Event.
const (
	EventRegistered   EventKind = "registered"   // a new instance
	EventUpdated      EventKind = "updated"      // registered again with another address, port, check…
	EventDeregistered EventKind = "deregistered" // removed (by a caller, or expired)
	EventHealthy      EventKind = "healthy"      // the leader's judge found it alive again
	EventUnhealthy    EventKind = "unhealthy"    // silent past its TTL, or its check failing
	EventEnabled      EventKind = "enabled"      // given traffic again
	EventDisabled     EventKind = "disabled"     // taken out of traffic, still registered
	EventWeight       EventKind = "weight"       // its weight changed
)

// Event is one change to one instance, as the log applied it: the history
// the console shows. Events are told to the sink after their batch is
// published, in log order; a restore from a snapshot tells none.
type Event struct {
	Time      time.Time `json:"time"` // the command's time, set by the server that proposed it
	Index     uint64    `json:"index"`
	Namespace string    `json:"namespace"`
	Service   string    `json:"service"`
	ID        string    `json:"id"`
	Kind      EventKind `json:"kind"`
	// Weight is the new weight (EventWeight), or the weight registered.
	Weight int `json:"weight,omitempty"`
	// Ephemeral says whether the instance lives by heartbeats (its
	// unhealthy events are silences) or by a server's check.
	Ephemeral bool `json:"ephemeral"`
}

// SetEventSink has f told every batch's instance events once the batch is
// published (nil: none). f runs on the applying goroutine, after the
// store's lock is released: it must be quick and must not write.
func (s *Store) SetEventSink(f func([]Event)) {
	if f == nil {
		s.sink.Store(nil)
		return
	}
	s.sink.Store(&f)
}

// event records e for the sink, when there is one.
func (t *txn) event(c *Command, in *Instance, kind EventKind) {
	if t.s.sink.Load() == nil {
		return
	}
	t.events = append(t.events, Event{Time: c.Time, Index: t.index, Namespace: in.Namespace, Service: in.Service, ID: in.ID,
		Kind: kind, Weight: in.Weight, Ephemeral: in.Ephemeral})
}
