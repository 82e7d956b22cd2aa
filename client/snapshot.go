package client

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
)

// The disk snapshot: the last answers the client had, so that a process
// that starts while every server is down can still find its dependencies.
//
// Layout: magic "SWYCACHE", version (uint16), payload length (uint32),
// CRC-32C of the payload (uint32), then the payload (JSON). A file that is
// short, foreign, of another version, or whose checksum fails is rejected
// whole.
const (
	snapshotMagic   = "SWYCACHE"
	snapshotVersion = 1
	snapshotHeader  = len(snapshotMagic) + 2 + 4 + 4
	// SnapshotFile is the snapshot's name in Config.CacheDir.
	SnapshotFile = "switchyard-cache.snap"
	// maxSnapshot bounds what the reader accepts.
	maxSnapshot = 256 << 20
)

// ErrBadSnapshot: the disk snapshot cannot be used.
var ErrBadSnapshot = errors.New("bad client snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshot is what the file holds.
type snapshot struct {
	WrittenAt time.Time                 `json:"written_at"`
	Namespace string                    `json:"namespace"`
	Services  map[string]*snapshotEntry `json:"services"`
}

type snapshotEntry struct {
	Index     uint64          `json:"index"`
	ServedBy  string          `json:"served_by"`
	Protected bool            `json:"protected,omitempty"`
	Instances []wire.Instance `json:"instances"`
}

func encodeSnapshot(s *snapshot) ([]byte, error) {
	payload, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("client: encode snapshot: %w", err)
	}
	b := make([]byte, snapshotHeader, snapshotHeader+len(payload))
	b = append(b, payload...)
	putHeader(b, payload)
	return b, nil
}

// putHeader writes the header of a snapshot whose payload follows it in b.
func putHeader(b, payload []byte) {
	copy(b, snapshotMagic)
	binary.BigEndian.PutUint16(b[8:], snapshotVersion)
	binary.BigEndian.PutUint32(b[10:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[14:], crc32.Checksum(payload, castagnoli))
}

func decodeSnapshot(b []byte) (*snapshot, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("client: %w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
	}
	if len(b) < snapshotHeader || !bytes.Equal(b[:8], []byte(snapshotMagic)) {
		return nil, bad("not a client snapshot")
	}
	if v := binary.BigEndian.Uint16(b[8:]); v != snapshotVersion {
		return nil, bad("version %d, this client reads version %d", v, snapshotVersion)
	}
	n := binary.BigEndian.Uint32(b[10:])
	if int64(n) != int64(len(b)-snapshotHeader) {
		return nil, bad("payload of %d bytes, header says %d", len(b)-snapshotHeader, n)
	}
	payload := b[snapshotHeader:]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[14:]) {
		return nil, bad("checksum mismatch")
	}
	var s snapshot
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, bad("payload: %v", err)
	}
	for name, e := range s.Services {
		if e == nil {
			return nil, bad("service %q without an entry", name)
		}
		for k, in := range e.Instances {
			if in.Instance == nil {
				return nil, bad("service %q: instance %d is empty", name, k)
			}
		}
	}
	return &s, nil
}

// readSnapshot loads dir's snapshot; (nil, nil) when there is none.
func readSnapshot(dir string) (*snapshot, error) {
	f, err := os.Open(filepath.Join(dir, SnapshotFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: read snapshot: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("client: read snapshot: %w", err)
	}
	if st.Size() > maxSnapshot {
		return nil, fmt.Errorf("client: %w: %d bytes, at most %d", ErrBadSnapshot, st.Size(), maxSnapshot)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("client: read snapshot: %w", err)
	}
	return decodeSnapshot(b)
}

// writeSnapshot replaces dir's snapshot atomically: a temporary file in the
// same directory, fsync, rename over the old one, fsync of the directory.
// A crash at any point leaves the old snapshot or the new one, never half.
func writeSnapshot(dir string, s *snapshot) error {
	b, err := encodeSnapshot(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, SnapshotFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("client: write snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up on error
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("client: write snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("client: sync snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("client: write snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, SnapshotFile)); err != nil {
		return fmt.Errorf("client: install snapshot: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("client: sync snapshot directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("client: sync snapshot directory: %w", err)
	}
	return nil
}
