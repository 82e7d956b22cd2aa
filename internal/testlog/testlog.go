// Package testlog gives tests a *slog.Logger that writes through t.Log, so
// a test's logs show only when it fails (as hashicorp/raft's tests do).
package testlog

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// New returns a logger writing to t.Log at the given level and above.
// Lines logged after the test's cleanup has begun are dropped: libraries
// such as memberlist log from goroutines that outlive their Shutdown, and
// testing panics on a Log after the test has completed.
func New(t testing.TB, level slog.Level) *slog.Logger {
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type writer struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
