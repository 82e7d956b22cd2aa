package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A change to a namespace's settings must wake a watcher of the namespace
// list, whose answer shows those settings.
func TestNamespacesWatchSeesSettingsChange(t *testing.T) {
	s := New()
	mustApply(t, s, 1, putNamespaceCmd("prod", NamespaceSettings{}))
	idx, _, ch := s.Namespaces()
	mustApply(t, s, 2, putNamespaceCmd("prod", NamespaceSettings{Description: "y"}))
	if !isClosed(ch) {
		t.Fatalf("namespace list watch not woken by a settings change")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []Namespace
	n, err := s.Blocking(ctx, idx, func() (uint64, <-chan struct{}, error) {
		i, nss, ch := s.Namespaces()
		got = nss
		return i, ch, nil
	})
	if err != nil || n <= idx {
		t.Fatalf("blocking namespaces: index %d (was %d), err %v", n, idx, err)
	}
	for _, ns := range got {
		if ns.Name == "prod" && ns.Description != "y" {
			t.Fatalf("stale namespace list: %+v", ns)
		}
	}
	// Registering a service does not move the namespace list's index.
	before, _, ch := s.Namespaces()
	mustApply(t, s, 3, registerCmd(3, "prod", "web", "w1", persistent("10.0.0.1", 80)))
	after, _, _ := s.Namespaces()
	if after != before || isClosed(ch) {
		t.Fatalf("a registration moved the namespace list (index %d -> %d)", before, after)
	}
}

// A snapshot whose fallback names a missing namespace is refused whole.
func TestRestoreRefusesDanglingFallback(t *testing.T) {
	src := New()
	mustApply(t, src, 1, putNamespaceCmd("ghost", NamespaceSettings{}))
	mustApply(t, src, 2, putNamespaceCmd("a", NamespaceSettings{Fallback: "ghost"}))
	var buf bytes.Buffer
	if _, err := src.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	// Drop the ghost namespace's record, keeping the count right.
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.Contains(l, `"name":"ghost"`) {
			continue
		}
		lines = append(lines, l)
	}
	lines[len(lines)-1] = strings.Replace(lines[len(lines)-1], `"records":4`, `"records":3`, 1)
	dst := New()
	err := dst.Restore(strings.NewReader(strings.Join(lines, "\n") + "\n"))
	if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), "missing namespace") {
		t.Fatalf("restore with dangling fallback: got %v, want ErrBadSnapshot naming the missing namespace", err)
	}
	if _, err := dst.Namespace("a"); err == nil {
		t.Fatalf("refused snapshot was half-loaded")
	}
}
