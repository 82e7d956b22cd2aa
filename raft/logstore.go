package raft

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// The log stores a server can keep its Raft log in, with Raft's own term
// and vote.
const (
	// LogStoreBolt is raft-boltdb/v2: one bbolt file, raft.db. Every
	// append is a copy-on-write transaction with two fdatasyncs. The
	// default.
	LogStoreBolt = "bolt"
	// LogStoreWAL is hashicorp/raft-wal: append-only segment files under
	// wal/, one fdatasync per append. Consul and Nomad offer it for the
	// same reason: fewer syncs, and a long log does not slow appends.
	LogStoreWAL = "wal"
)

// boltFile and walDir are where each log store lives in the data directory;
// walMeta is the file that says a WAL is there.
const (
	boltFile = "raft.db"
	walDir   = "wal"
	walMeta  = "wal-meta.db"
)

// logStore is what Raft needs of a log store; both kinds are one.
type logStore interface {
	hraft.LogStore
	hraft.StableStore
	io.Closer
}

// existingLogStore says which log store dir already holds: LogStoreBolt,
// LogStoreWAL, or "" when neither.
func existingLogStore(dir string) (string, error) {
	bolt, err := exists(filepath.Join(dir, boltFile))
	if err != nil {
		return "", err
	}
	w, err := exists(filepath.Join(dir, walDir, walMeta))
	if err != nil {
		return "", err
	}
	switch {
	case bolt && w:
		return "", fmt.Errorf("%s holds both a bolt log (%s) and a WAL (%s/): move the one not in use aside", dir, boltFile, walDir)
	case bolt:
		return LogStoreBolt, nil
	case w:
		return LogStoreWAL, nil
	}
	return "", nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// openLogStore opens the log store in dir: the kind already there, else
// want. A server whose data directory holds the other kind keeps it (as
// Consul does), so that changing the setting across a cluster never stops a
// server from starting; it logs how to switch.
func openLogStore(dir, want string, logger *slog.Logger) (logStore, string, error) {
	have, err := existingLogStore(dir)
	if err != nil {
		return nil, "", err
	}
	kind := want
	if kind == "" {
		kind = LogStoreBolt
	}
	if have != "" && have != kind {
		logger.Warn("the data directory holds another log store: keeping it; to switch, stop the server, empty its data directory and join the cluster again",
			"log_store", have, "configured", kind, "data_dir", dir)
		kind = have
	}
	s, err := openLogStoreKind(dir, kind, logger)
	return s, kind, err
}

func openLogStoreKind(dir, kind string, logger *slog.Logger) (logStore, error) {
	switch kind {
	case LogStoreBolt:
		// The timeout turns a second process on the same file (a server
		// still running) into an error instead of a wait.
		s, err := raftboltdb.New(raftboltdb.Options{
			Path:        filepath.Join(dir, boltFile),
			BoltOptions: &bbolt.Options{Timeout: time.Second},
		})
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("%s is locked: another server uses this data directory: %w", filepath.Join(dir, boltFile), err)
		}
		if err != nil {
			return nil, err
		}
		return s, nil
	case LogStoreWAL:
		d := filepath.Join(dir, walDir)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		// raft-wal's own bbolt file would wait forever for a second
		// process: a lock file of ours fails at once instead.
		lock, err := lockFile(filepath.Join(d, "lock"))
		if err != nil {
			return nil, err
		}
		// The meta store is ours to close: WAL.Close leaves it open,
		// and its bbolt lock would then hold off the next Open in this
		// process for ever.
		meta := &metadb.BoltMetaDB{}
		w, err := wal.Open(d, wal.WithLogger(newHCLogger(logger, "wal")), wal.WithMetaStore(meta))
		if err != nil {
			meta.Close()
			lock.Close()
			return nil, err
		}
		return &lockedWAL{WAL: w, meta: meta, lock: lock}, nil
	}
	return nil, fmt.Errorf("unknown log store %q (want %s or %s)", kind, LogStoreBolt, LogStoreWAL)
}

// lockedWAL holds its directory's lock file while open, and closes the
// meta store after the WAL.
type lockedWAL struct {
	*wal.WAL
	meta io.Closer
	lock io.Closer
}

func (w *lockedWAL) Close() error {
	return errors.Join(w.WAL.Close(), w.meta.Close(), w.lock.Close())
}
