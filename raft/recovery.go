package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/switchyard-io/switchyard/store"
)

// Snapshot takes a Raft snapshot now, truncating the log.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raft: snapshot: %w", err)
	}
	return nil
}

// Restore replaces the cluster's catalog with a backup's snapshot (the body
// store.ReadBackup returns): its namespaces, services and instances, with
// the cluster's own servers. It must run on the leader. The snapshot is
// rebased past the log's last index (store.Rebase), so every blocking query
// wakes, and handed to hashicorp/raft's restore, which installs it on the
// leader and sends it to the followers.
func (n *Node) Restore(ctx context.Context, body []byte) error {
	if !n.IsLeader() {
		return fmt.Errorf("raft: restore: %w", ErrNotLeader)
	}
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return fmt.Errorf("raft: restore: %w", context.DeadlineExceeded)
		}
	}
	n.applyGate.Lock()
	defer n.applyGate.Unlock()
	at := n.raft.LastIndex() + 1
	var buf bytes.Buffer
	if err := store.Rebase(bytes.NewReader(body), &buf, at, n.store); err != nil {
		return fmt.Errorf("raft: restore: %w", err)
	}
	// Index at makes Raft place the snapshot after it: the store's index
	// (at) stays below the next command's.
	meta := &hraft.SnapshotMeta{Version: hraft.SnapshotVersionMax, Index: at, Size: int64(buf.Len())}
	if err := n.raft.Restore(meta, &buf, timeout); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) {
			err = ErrNotLeader
		}
		return fmt.Errorf("raft: restore: %w", err)
	}
	n.logger.Warn("catalog restored from a backup", "index", at)
	return nil
}

// Recover rewrites the Raft configuration kept in cfg.DataDir so that this
// server is the only voter, for when a majority of the cluster is lost for
// good (hashicorp/raft's RecoverCluster, the peers.json procedure). Run it
// on a stopped server; start the server afterwards without --bootstrap: it
// elects itself and serves everything its data held; other servers join it
// as new. Writes only this server acknowledged, not committed elsewhere,
// are kept; writes the lost majority committed after this server's last
// entry are gone.
func Recover(cfg Config) error {
	if err := store.ValidateName("node id", cfg.ID); err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	addr := cfg.AdvertiseAddr
	if addr == "" {
		addr = cfg.RaftAddr
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
		return fmt.Errorf("raft: recover: raft address %q: give the address other servers dial", addr)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kind, err := existingLogStore(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	if kind == "" {
		return fmt.Errorf("raft: recover: no Raft data in %s (neither %s nor %s/)", cfg.DataDir, boltFile, walDir)
	}
	logs, err := openLogStoreKind(cfg.DataDir, kind, logger)
	if err != nil {
		return fmt.Errorf("raft: recover: open log store (is the server still running? stop it first): %w", err)
	}
	defer logs.Close()
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 3, newHCLogger(logger, "snapshot"))
	if err != nil {
		return fmt.Errorf("raft: recover: open snapshot store: %w", err)
	}
	has, err := hraft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	if !has {
		return fmt.Errorf("raft: recover: %s holds no Raft state to recover", cfg.DataDir)
	}
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(cfg.ID)
	rc.Logger = newHCLogger(logger, "raft")
	_, trans := hraft.NewInmemTransport(hraft.ServerAddress(addr))
	conf := hraft.Configuration{Servers: []hraft.Server{{Suffrage: hraft.Voter, ID: hraft.ServerID(cfg.ID), Address: hraft.ServerAddress(addr)}}}
	st := store.New()
	if err := hraft.RecoverCluster(rc, &fsm{store: st, applied: newIndexNotifier()}, logs, logs, snaps, trans, conf); err != nil {
		return fmt.Errorf("raft: recover: %w", err)
	}
	return nil
}
