package health

import (
	"testing"
	"time"
)

// FuzzLivenessMerge feeds arbitrary gossip bytes to Merge: it never
// panics, takes in only valid names, and keeps the bound on entries of
// instances the catalog lacks.
func FuzzLivenessMerge(f *testing.F) {
	l := NewLiveness(nil)
	l.Heard(Key{"default", "web", "i-1"})
	l.Heard(Key{"Bad", "web", "x"})
	f.Add(l.Flush())
	f.Add([]byte{1})
	f.Add([]byte{1, 1, 'a', 1, 'b', 1, 'c', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		clk := &clock{t: t0}
		l := NewLiveness(clk.now)
		l.Restrict(func(k Key) bool { return k.ID == "known" }, 4)
		_ = l.Merge(b)
		if l.Unknown() > 4 {
			t.Fatalf("%d unknown entries kept, bound 4", l.Unknown())
		}
		for k, at := range l.seen {
			if k.ID != "known" {
				t.Fatalf("%v taken into the table", k)
			}
			if at.After(clk.now()) || clk.now().Sub(at) > 366*24*time.Hour {
				t.Fatalf("%v seen at %v", k, at)
			}
		}
	})
}
