package check

import (
	"fmt"
	"testing"
)

func TestDamper(t *testing.T) {
	const (
		T = true
		F = false
	)
	cases := []struct {
		name       string
		healthy    bool
		fails, oks int // thresholds given to NewDamper
		in         []bool
		// want is the state after each observation; flips lists the
		// indexes of in whose observation changed the state.
		want  []bool
		flips []int
	}{
		{name: "healthy stays healthy on success", healthy: T,
			in: []bool{T, T, T}, want: []bool{T, T, T}},
		{name: "default: unhealthy after 3 failures", healthy: T,
			in: []bool{F, F, F, F}, want: []bool{T, T, F, F}, flips: []int{2}},
		{name: "default: healthy after 2 successes", healthy: F,
			in: []bool{T, T, T}, want: []bool{F, T, T}, flips: []int{1}},
		{name: "success resets the failure streak", healthy: T,
			in: []bool{F, F, T, F, F, T, F, F, F}, want: []bool{T, T, T, T, T, T, T, T, F}, flips: []int{8}},
		{name: "failure resets the success streak", healthy: F,
			in: []bool{T, F, T, F, T, T}, want: []bool{F, F, F, F, F, T}, flips: []int{5}},
		{name: "flapping healthy never changes", healthy: T,
			in: []bool{T, F, T, F, T, F, T, F, T, F, T, F}, want: []bool{T, T, T, T, T, T, T, T, T, T, T, T}},
		{name: "flapping unhealthy never changes", healthy: F,
			in: []bool{T, F, T, F, T, F, T, F, T, F, T, F}, want: []bool{F, F, F, F, F, F, F, F, F, F, F, F}},
		{name: "flapping in pairs below threshold", healthy: T, fails: 3, oks: 3,
			in: []bool{F, F, T, T, F, F, T, T}, want: []bool{T, T, T, T, T, T, T, T}},
		{name: "thresholds of 1 follow every result", healthy: T, fails: 1, oks: 1,
			in: []bool{F, T, F, T}, want: []bool{F, T, F, T}, flips: []int{0, 1, 2, 3}},
		{name: "custom thresholds", healthy: T, fails: 5, oks: 4,
			in:    []bool{F, F, F, F, F, T, T, T, T},
			want:  []bool{T, T, T, T, F, F, F, F, T},
			flips: []int{4, 8}},
		{name: "negative thresholds take the defaults", healthy: T, fails: -1, oks: -7,
			in: []bool{F, F, F, T, T}, want: []bool{T, T, F, F, T}, flips: []int{2, 4}},
		{name: "full round trip", healthy: T,
			in:    []bool{F, F, F, T, T, F, F, F},
			want:  []bool{T, T, F, F, T, T, T, F},
			flips: []int{2, 4, 7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.in) != len(tc.want) {
				t.Fatalf("bad case: %d inputs, %d wants", len(tc.in), len(tc.want))
			}
			d := NewDamper(tc.healthy, tc.fails, tc.oks)
			var flips []int
			prev := tc.healthy
			for i, ok := range tc.in {
				got, changed := d.Observe(ok)
				if got != tc.want[i] {
					t.Fatalf("after observation %d (%v): healthy = %v, want %v", i, ok, got, tc.want[i])
				}
				if changed != (got != prev) {
					t.Fatalf("after observation %d: changed = %v but state went %v -> %v", i, changed, prev, got)
				}
				if d.Healthy() != got {
					t.Fatalf("Healthy() = %v, Observe returned %v", d.Healthy(), got)
				}
				if changed {
					flips = append(flips, i)
				}
				prev = got
			}
			if fmt.Sprint(flips) != fmt.Sprint(tc.flips) {
				t.Errorf("state changed at %v, want %v", flips, tc.flips)
			}
		})
	}
}

func TestDamperStreaks(t *testing.T) {
	d := NewDamper(true, 0, 0)
	steps := []struct {
		ok               bool
		wantF, wantS     int
		wantHealthy, chg bool
	}{
		{false, 1, 0, true, false},
		{false, 2, 0, true, false},
		{true, 0, 1, true, false},
		{false, 1, 0, true, false},
		{false, 2, 0, true, false},
		{false, 3, 0, false, true},
		{false, 4, 0, false, false}, // the streak keeps counting once unhealthy
		{true, 0, 1, false, false},
		{true, 0, 2, true, true},
	}
	for i, s := range steps {
		h, c := d.Observe(s.ok)
		f, ok := d.Streaks()
		if f != s.wantF || ok != s.wantS || h != s.wantHealthy || c != s.chg {
			t.Fatalf("step %d (%v): failures=%d successes=%d healthy=%v changed=%v, want %d %d %v %v",
				i, s.ok, f, ok, h, c, s.wantF, s.wantS, s.wantHealthy, s.chg)
		}
	}
}

func TestDamperReset(t *testing.T) {
	d := NewDamper(true, 2, 2)
	d.Observe(false)
	d.Reset(false)
	if f, s := d.Streaks(); d.Healthy() || f != 0 || s != 0 {
		t.Fatalf("after Reset(false): healthy=%v streaks=%d,%d", d.Healthy(), f, s)
	}
	// Thresholds survive a reset: one success is not enough.
	if h, c := d.Observe(true); h || c {
		t.Fatalf("one success after reset: healthy=%v changed=%v", h, c)
	}
	if h, c := d.Observe(true); !h || !c {
		t.Fatalf("two successes after reset: healthy=%v changed=%v", h, c)
	}
}
