// Package gctune gives the garbage collector a fixed headroom above the
// live heap while that heap is small.
//
// Go's default (GOGC=100) lets the heap grow to twice the live heap before
// the next collection. A registry's live heap is small next to what it
// allocates per second under writes: with 25 MiB live, a three-node cluster
// on two cores collected about four times a second, and marking took a
// tenth of the servers' CPU. Holding the heap goal at live + headroom while
// live < headroom (GOGC = 100·headroom/live) spends a bounded amount of
// memory to collect several times less often; once the live heap outgrows
// the headroom, GOGC stays at 100, as if nothing were tuned.
//
// The tuner retunes after every collection, from a cleanup that re-arms
// itself (runtime.AddCleanup on a fresh object each cycle), with the live
// heap the collection measured (runtime/metrics /gc/heap/live:bytes).
// GOMEMLIMIT still applies: the runtime collects sooner near the limit.
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// MinPercent is the GOGC the tuner never goes below: Go's default.
const MinPercent = 100

// MaxPercent bounds the GOGC the tuner sets, so that a nearly empty heap
// does not wait for headroom bytes of garbage. At 25 MiB live and 128 MiB
// headroom the tuner sets 512.
const MaxPercent = 2000

// Percent is the GOGC that puts the heap goal at live + headroom, within
// [MinPercent, MaxPercent]. A zero live heap (no collection yet) gets
// MaxPercent.
func Percent(live, headroom uint64) int {
	if live == 0 {
		return MaxPercent
	}
	p := float64(headroom) * 100 / float64(live)
	return int(math.Round(max(MinPercent, min(MaxPercent, p))))
}

// tuner retunes GOGC after every collection. There is one collector per
// process, so there is one tuner, shared by every Start until the last
// stop.
type tuner struct {
	headroom uint64
	stopped  atomic.Bool
	percent  int // the GOGC last set, 0 before the first
	prev     int // the GOGC before the first Start, restored by the last stop
	sample   []metrics.Sample
}

var (
	mu     sync.Mutex // guards active, users and the tuner's fields but stopped
	active *tuner
	users  int
)

// Start sets GOGC for the current live heap and retunes it after every
// collection until stop is called. headroom is in bytes. Starts that
// overlap share one tuner with the largest headroom asked for; the last
// stop restores the GOGC from before the first Start.
func Start(headroom uint64) (stop func()) {
	mu.Lock()
	if active == nil {
		active = &tuner{headroom: headroom, prev: Current(), sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
		active.arm()
	}
	active.headroom = max(active.headroom, headroom)
	users++
	t := active
	mu.Unlock()
	t.tune()
	var once sync.Once
	return func() { once.Do(release) }
}

func release() {
	mu.Lock()
	defer mu.Unlock()
	if users--; users == 0 {
		active.stopped.Store(true)
		debug.SetGCPercent(active.prev)
		active = nil
	}
}

// sentinel is the object whose collection signals a finished cycle. It
// holds a pointer so that it is not placed in a tiny-allocation block,
// whose cleanup could wait on its neighbours.
type sentinel struct{ _ *byte }

func (t *tuner) arm() {
	runtime.AddCleanup(&sentinel{}, func(t *tuner) {
		if t.stopped.Load() {
			return
		}
		// Arm before tuning, so that a collection right after the
		// change is seen too.
		t.arm()
		t.tune()
	}, t)
}

// tune sets GOGC from the live heap of the last collection.
func (t *tuner) tune() {
	mu.Lock()
	defer mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if p := Percent(live, t.headroom); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// Current is the GOGC in force (-1: off).
func Current() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
