package testtool

import (
	"testing"
)

// fakeT records how a test ended.
type fakeT struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeT) Helper()                        {}
func (f *fakeT) Skipf(format string, a ...any)  { f.skipped, f.msg = true, format }
func (f *fakeT) Fatalf(format string, a ...any) { f.failed, f.msg = true, format }

func TestFind(t *testing.T) {
	if p := Find(t, "coreutils", "no-such-program-x1", "sh"); p == "" {
		t.Fatal("sh not found")
	}
	t.Setenv(RequireEnv, "")
	f := &fakeT{}
	Find(f, "nothing", "no-such-program-x1")
	if !f.skipped || f.failed {
		t.Fatalf("missing program without %s: skipped %v, failed %v", RequireEnv, f.skipped, f.failed)
	}
	t.Setenv(RequireEnv, "1")
	f = &fakeT{}
	Find(f, "nothing", "no-such-program-x1")
	if f.skipped || !f.failed {
		t.Fatalf("missing program with %s=1: skipped %v, failed %v", RequireEnv, f.skipped, f.failed)
	}
}
