// Package health decides whether instances are healthy without writing a
// heartbeat to Raft.
//
// Heartbeats of ephemeral instances reach any server. Each server records
// them in its Liveness table and, every flush interval, sends what it heard
// to the other servers in one gossip message; so every server knows, within
// a fraction of a second, when each instance was last heard from anywhere.
// One server, the Raft leader, judges: an instance silent for its TTL is
// marked unhealthy, one heard from again is marked healthy, one silent for
// deregister_after is removed. Only these changes become log entries, and
// many changes share one entry.
package health

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// Key names an instance.
type Key struct{ Namespace, Service, ID string }

func (k Key) String() string { return k.Namespace + "/" + k.Service + "/" + k.ID }

// Liveness records when each instance was last heard from, on this server
// or (by gossip) on any other. Times are this server's clock: a gossiped
// heartbeat travels as an age, not a timestamp, so clocks need not agree.
type Liveness struct {
	now func() time.Time

	mu      sync.Mutex
	seen    map[Key]time.Time
	pending map[Key]time.Time // heard here since the last Flush
	// Gossip is heard from the network: with a catalog (Restrict), what it
	// says of instances the catalog lacks (a registration still on its
	// way, or made-up names) waits in unknown, at most maxUnknown of them.
	known      func(Key) bool
	unknown    map[Key]time.Time
	maxUnknown int
	dropped    atomic.Uint64

	heard atomic.Uint64
}

// HeardTotal counts the heartbeats and registrations this server received.
func (l *Liveness) HeardTotal() uint64 { return l.heard.Load() }

// NewLiveness returns an empty table. now is the clock (time.Now outside
// tests).
func NewLiveness(now func() time.Time) *Liveness {
	if now == nil {
		now = time.Now
	}
	return &Liveness{now: now, seen: map[Key]time.Time{}, pending: map[Key]time.Time{}, unknown: map[Key]time.Time{}}
}

// DefaultMaxUnknown bounds the gossiped entries of instances the catalog
// does not hold.
const DefaultMaxUnknown = 65536

// Restrict bounds what Merge takes in: entries for instances for which
// known is false are kept apart, at most maxUnknown (0: DefaultMaxUnknown),
// and move into the table once known says yes. Call it before the table is
// used.
func (l *Liveness) Restrict(known func(Key) bool, maxUnknown int) {
	if maxUnknown <= 0 {
		maxUnknown = DefaultMaxUnknown
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.known, l.maxUnknown = known, maxUnknown
}

// Dropped counts gossiped entries refused: invalid names, or no room left
// for instances the catalog does not hold.
func (l *Liveness) Dropped() uint64 { return l.dropped.Load() }

// Unknown returns how many gossiped entries wait for their instance to
// appear in the catalog.
func (l *Liveness) Unknown() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.unknown)
}

// Heard records a heartbeat (or a registration) received by this server.
func (l *Liveness) Heard(k Key) {
	t := l.now()
	l.heard.Add(1)
	l.mu.Lock()
	l.seen[k] = t
	l.pending[k] = t
	l.mu.Unlock()
}

// LastSeen returns when k was last heard from anywhere, if ever since this
// server started.
func (l *Liveness) LastSeen(k Key) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.seen[k]
	if u, uok := l.unknown[k]; uok {
		// Heard by gossip before the registration reached this server.
		delete(l.unknown, k)
		if !ok || u.After(t) {
			t, ok = u, true
			l.seen[k] = u
		}
	}
	return t, ok
}

// Len returns the number of instances in the table.
func (l *Liveness) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// Forget drops the instances for which drop, given the key and when it
// was last heard from, returns true (instances long gone from the catalog).
func (l *Liveness) Forget(drop func(k Key, lastSeen time.Time) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, t := range l.seen {
		if drop(k, t) {
			delete(l.seen, k)
			delete(l.pending, k)
		}
	}
	for k, t := range l.unknown {
		if drop(k, t) {
			delete(l.unknown, k)
		}
	}
}

// Flush returns the heartbeats heard here since the last Flush, encoded for
// the other servers, or nil if there were none.
func (l *Liveness) Flush() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return nil
	}
	b := encode(l.now(), l.pending)
	clear(l.pending)
	return b
}

// State returns the whole table, encoded like Flush, for a server that
// joins (or for the periodic full exchange).
func (l *Liveness) State() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return encode(l.now(), l.seen)
}

// Merge takes in what another server heard (a Flush or a State). An entry
// never moves a last-seen time backwards. Entries whose names are not
// valid names of the catalog are dropped; so are those of instances the
// catalog lacks beyond the bound set by Restrict.
func (l *Liveness) Merge(b []byte) error {
	now := l.now()
	return decode(b, func(k Key, age time.Duration) {
		if store.ValidateName("namespace", k.Namespace) != nil || store.ValidateName("service", k.Service) != nil ||
			store.ValidateName("instance id", k.ID) != nil {
			l.dropped.Add(1)
			return
		}
		t := now.Add(-age)
		l.mu.Lock()
		defer l.mu.Unlock()
		if cur, ok := l.seen[k]; ok || l.known == nil || l.known(k) {
			if !ok || t.After(cur) {
				l.seen[k] = t
			}
			return
		}
		cur, ok := l.unknown[k]
		switch {
		case ok && t.After(cur):
			l.unknown[k] = t
		case !ok && len(l.unknown) < l.maxUnknown:
			l.unknown[k] = t
		case !ok:
			l.dropped.Add(1)
		}
	})
}

// Wire format: version byte 1, then for each entry three uvarint-prefixed
// strings (namespace, service, id) and the age in milliseconds as a uvarint.
const wireVersion = 1

// maxName bounds a decoded name, so a corrupt length cannot allocate much.
const maxName = 253

var errBadMessage = errors.New("health: bad liveness message")

func encode(now time.Time, m map[Key]time.Time) []byte {
	b := make([]byte, 1, 1+len(m)*40)
	b[0] = wireVersion
	for k, t := range m {
		for _, s := range [...]string{k.Namespace, k.Service, k.ID} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		b = binary.AppendUvarint(b, uint64(max(now.Sub(t), 0)/time.Millisecond))
	}
	return b
}

func decode(b []byte, each func(Key, time.Duration)) error {
	if len(b) == 0 || b[0] != wireVersion {
		return fmt.Errorf("%w: unknown version", errBadMessage)
	}
	b = b[1:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > maxName || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	for len(b) > 0 {
		var key Key
		var ok1, ok2, ok3 bool
		key.Namespace, ok1 = str()
		key.Service, ok2 = str()
		key.ID, ok3 = str()
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("%w: bad name", errBadMessage)
		}
		ms, k := binary.Uvarint(b)
		if k <= 0 || ms > uint64(365*24*time.Hour/time.Millisecond) {
			return fmt.Errorf("%w: bad age", errBadMessage)
		}
		b = b[k:]
		each(key, time.Duration(ms)*time.Millisecond)
	}
	return nil
}
