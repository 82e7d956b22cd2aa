package raft

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLogStoreKeptWhenSettingChanges: a data directory keeps the log store
// it was made with when the setting changes, with everything in it, and the
// other kind's files are never created beside it.
func TestLogStoreKeptWhenSettingChanges(t *testing.T) {
	for _, from := range []string{LogStoreBolt, LogStoreWAL} {
		to := LogStoreWAL
		if from == LogStoreWAL {
			to = LogStoreBolt
		}
		t.Run(from+"-to-"+to, func(t *testing.T) {
			c := newCluster(t, 1, func(c *Config) { c.LogStore = from })
			ctx := context.Background()
			for _, id := range []string{"a", "b", "c"} {
				if _, err := register(ctx, c.nodes[0], "default", "web", id); err != nil {
					t.Fatal(err)
				}
			}
			c.stop(0)
			c.cfgs[0].LogStore = to
			c.start(0)
			c.waitLeader()
			c.waitReady()
			if got := c.nodes[0].LogStore(); got != from {
				t.Fatalf("log store after the setting changed to %s: %q, want %q", to, got, from)
			}
			if got := instanceIDs(t, c.nodes[0], "default", "web"); !slices.Equal(got, []string{"a", "b", "c"}) {
				t.Fatalf("instances after restart: %v", got)
			}
			if _, err := register(ctx, c.nodes[0], "default", "web", "d"); err != nil {
				t.Fatalf("write after restart: %v", err)
			}
			kind, err := existingLogStore(c.cfgs[0].DataDir)
			if err != nil || kind != from {
				t.Fatalf("data directory holds %q (%v), want only %q", kind, err, from)
			}
		})
	}
}

// TestLogStoreDefault: a new data directory with no setting keeps its log
// in bbolt, and nothing else (a version from before the WAL could not read
// a WAL: see raft/DESIGN.md).
func TestLogStoreDefault(t *testing.T) {
	c := newCluster(t, 1, func(c *Config) { c.LogStore = "" })
	if got := c.nodes[0].LogStore(); got != LogStoreBolt {
		t.Fatalf("log store of a new data directory with no setting: %q, want %q", got, LogStoreBolt)
	}
	if kind, err := existingLogStore(c.cfgs[0].DataDir); err != nil || kind != LogStoreBolt {
		t.Fatalf("data directory holds %q (%v), want only %q", kind, err, LogStoreBolt)
	}
}

// TestLogStoreLockedByAnotherServer: a second server on a data directory in
// use fails at once with a message that says so, instead of waiting.
func TestLogStoreLockedByAnotherServer(t *testing.T) {
	for _, kind := range []string{LogStoreBolt, LogStoreWAL} {
		t.Run(kind, func(t *testing.T) {
			c := newCluster(t, 1, func(c *Config) { c.LogStore = kind })
			cfg := c.cfgs[0]
			cfg.RaftAddr = "127.0.0.1:0"
			start := time.Now()
			n, err := Open(cfg, nil)
			if err == nil {
				n.Shutdown()
				t.Fatal("a second server opened a data directory in use")
			}
			if !strings.Contains(err.Error(), "another server uses this data directory") {
				t.Fatalf("error does not say the directory is in use: %v", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("refusal took %v", took)
			}
			// The first server is unharmed.
			if _, err := register(context.Background(), c.nodes[0], "default", "web", "a"); err != nil {
				t.Fatalf("write on the first server: %v", err)
			}
		})
	}
}

func TestLogStoreChoices(t *testing.T) {
	cfg := fastConfig(t, t.TempDir(), "n1")
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.LogStore = "rocksdb"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `log store "rocksdb": want bolt or wal`) {
		t.Fatalf("unknown log store: %v", err)
	}
	// A directory holding both kinds is ambiguous: refused, nothing removed.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, boltFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, walDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, walDir, walMeta), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.LogStore, cfg.DataDir = LogStoreBolt, dir
	if _, err := Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "both a bolt log") {
		t.Fatalf("open a directory with both log stores: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, walDir, walMeta)); err != nil {
		t.Fatalf("the WAL was touched: %v", err)
	}
}
