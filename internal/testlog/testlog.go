// Package testlog gives tests a *slog.Logger that writes through t.Log, so
// a test's logs show only when it fails (as hashicorp/raft's tests do).
package testlog

import (
	"log/slog"
	"strings"
	"testing"
)

// New returns a logger writing to t.Log at the given level and above.
func New(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(writer{t}, &slog.HandlerOptions{Level: level}))
}

type writer struct{ t testing.TB }

func (w writer) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
