//go:build !linux

package delay

import (
	"errors"
	"sync/atomic"
	"time"
)

// Queue is Linux only.
type Queue struct{ stats Stats }

// Stats counts what a Queue did.
type Stats struct {
	Delayed atomic.Uint64
	Errors  atomic.Uint64
}

// Open fails: NFQUEUE is Linux's.
func Open(num uint16, d time.Duration) (*Queue, error) {
	return nil, errors.New("delaying packets needs Linux (NFQUEUE)")
}

func (q *Queue) Stats() *Stats         { return &q.stats }
func (q *Queue) Close() error          { return nil }
func (q *Queue) Done() <-chan struct{} { return nil }
func (q *Queue) Err() error            { return nil }
