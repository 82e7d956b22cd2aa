package gctune

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		live, headroom uint64
		want           int
	}{
		{0, 128 * mib, MaxPercent},
		{1 * mib, 128 * mib, MaxPercent},
		{25 * mib, 128 * mib, 512},
		{64 * mib, 128 * mib, 200},
		{128 * mib, 128 * mib, 100},
		{1024 * mib, 128 * mib, MinPercent},
		{25 * mib, 0, MinPercent},
	} {
		if got := Percent(tc.live, tc.headroom); got != tc.want {
			t.Errorf("Percent(%d MiB live, %d MiB headroom) = %d, want %d", tc.live/mib, tc.headroom/mib, got, tc.want)
		}
	}
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// keep holds the test's live heap where the compiler cannot drop it.
var keep [][]byte

// awaitPercent collects until the tuner, which runs after a collection on
// the runtime's cleanup goroutine, has set GOGC for the live heap the last
// collection measured.
func awaitPercent(t *testing.T, headroom uint64) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		want := Percent(liveHeap(), headroom)
		if Current() == want {
			return want
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC = %d after 10 s of collections with %d MiB live; want %d", Current(), liveHeap()/mib, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTunerFollowsTheLiveHeap(t *testing.T) {
	before := Current()
	const headroom = 64 * mib
	stop := Start(headroom)
	t.Cleanup(func() { keep = nil; stop() })

	// A small heap: GOGC well above the default.
	if p := awaitPercent(t, headroom); p <= 2*MinPercent {
		t.Fatalf("GOGC %d for a %d MiB live heap and %d MiB headroom; want above %d", p, liveHeap()/mib, headroom/mib, 2*MinPercent)
	}

	// A live heap of twice the headroom: back to the default.
	for range 128 {
		keep = append(keep, make([]byte, mib))
	}
	if p := awaitPercent(t, headroom); p != MinPercent {
		t.Fatalf("GOGC %d with %d MiB live over a %d MiB headroom; want %d", p, liveHeap()/mib, headroom/mib, MinPercent)
	}

	// Half of it freed: about 64 MiB live, GOGC near 100 again but the
	// tuner must have followed the drop, not kept its last value.
	clear(keep[32:])
	keep = keep[:32]
	if p := awaitPercent(t, headroom); p <= MinPercent {
		t.Fatalf("GOGC %d with %d MiB live after a drop; want above %d", p, liveHeap()/mib, MinPercent)
	}
	keep = nil

	stop()
	if got := Current(); got != before {
		t.Fatalf("GOGC %d after Stop; want %d, as before Start", got, before)
	}
	// Stopped: a collection leaves GOGC alone.
	runtime.GC()
	runtime.GC()
	if got := Current(); got != before {
		t.Fatalf("GOGC %d after Stop and two collections; want %d", got, before)
	}
}

func TestOverlappingStartsShareOneTuner(t *testing.T) {
	before := Current()
	stopSmall := Start(1 * mib)
	stopLarge := Start(256 * mib)
	t.Cleanup(func() { stopSmall(); stopLarge() })
	// The larger headroom wins: a small test heap gets far above 100.
	if p := awaitPercent(t, 256*mib); p <= 4*MinPercent {
		t.Fatalf("GOGC %d with %d MiB live and 256 MiB headroom; want above %d", p, liveHeap()/mib, 4*MinPercent)
	}
	stopLarge()
	stopLarge() // a second call of one stop is a no-op
	if got := Current(); got == before {
		t.Fatalf("GOGC back to %d while a Start is still running", got)
	}
	stopSmall()
	if got := Current(); got != before {
		t.Fatalf("GOGC %d after the last stop; want %d, as before the first Start", got, before)
	}
}
