package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
)

// Rebase reads a catalog snapshot from r and writes it to w ready to be
// restored into a running cluster at log index at: the namespaces, services
// and instances of the snapshot, with every index that readers wait on
// (the catalog's, each namespace's and each service's) set to at, so that
// every blocking query wakes and none waits for an index the restored
// catalog would reach only later; and the servers, self-preservation state
// and access tokens of cur (the running cluster's own), not the snapshot's:
// a restore brings the catalog back, not who may change it, and never
// revives a revoked token. r must be a
// whole, valid snapshot (ErrBadSnapshot otherwise); at must exceed every
// index cur has published.
func Rebase(r io.Reader, w io.Writer, at uint64, cur *Store) error {
	root, _, err := readSnapshot(r)
	if err != nil {
		return err
	}
	now := cur.root.Load()
	sn := &Snapshot{index: at, root: &catalog{namespaces: root.namespaces, servers: now.servers,
		nsIndex: at, serversIndex: now.serversIndex, selfPres: now.selfPres, acl: now.acl}}
	for _, n := range slices.Sorted(maps.Keys(root.namespaces)) {
		old := root.namespaces[n].view.Load()
		nv := *old
		nv.Index = at
		sn.ns = append(sn.ns, &nv)
		var views []*ServiceView
		for _, s := range slices.Sorted(maps.Keys(old.services)) {
			sv := old.services[s].view.Load()
			views = append(views, &ServiceView{Service: sv.Service, list: sv.list, Index: at})
		}
		sn.svcs = append(sn.svcs, views)
	}
	_, err = sn.WriteTo(w)
	return err
}

// A backup file is a catalog snapshot in a checksummed envelope:
//
//	magic "SWYBAK" | version u16 | body length u64 | body | CRC-32C of body u32
//
// all big-endian. The body is a snapshot as Snapshot.WriteTo writes it.
const (
	backupMagic   = "SWYBAK"
	backupVersion = 1
	// MaxBackupBytes bounds the body of a backup read back.
	MaxBackupBytes = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteBackup writes the snapshot sn as a backup file.
func WriteBackup(w io.Writer, sn *Snapshot) error {
	var body bytes.Buffer
	if _, err := sn.WriteTo(&body); err != nil {
		return err
	}
	hdr := make([]byte, 0, 16)
	hdr = append(hdr, backupMagic...)
	hdr = binary.BigEndian.AppendUint16(hdr, backupVersion)
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(body.Len()))
	sum := binary.BigEndian.AppendUint32(nil, crc32.Checksum(body.Bytes(), castagnoli))
	for _, b := range [][]byte{hdr, body.Bytes(), sum} {
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("store: write backup: %w", err)
		}
	}
	return nil
}

// ReadBackup reads a backup file whole and returns its snapshot, checked:
// a file that is not a backup, is cut short, has trailing bytes or does
// not match its checksum is refused with ErrBadSnapshot, and so is a
// snapshot that does not read whole.
func ReadBackup(r io.Reader) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("store: backup: %w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
	}
	hdr := make([]byte, 16)
	if n, err := io.ReadFull(r, hdr); err != nil {
		if n >= 6 && string(hdr[:6]) != backupMagic || n < 6 && n > 0 {
			return nil, bad("not a Switchyard backup (it does not start with %q)", backupMagic)
		}
		return nil, bad("cut short in its header (%d bytes)", n)
	}
	if string(hdr[:6]) != backupMagic {
		return nil, bad("not a Switchyard backup (it does not start with %q)", backupMagic)
	}
	if v := binary.BigEndian.Uint16(hdr[6:]); v != backupVersion {
		return nil, bad("format version %d, this server reads version %d", v, backupVersion)
	}
	size := binary.BigEndian.Uint64(hdr[8:])
	if size > MaxBackupBytes {
		return nil, bad("body of %d bytes, more than %d", size, MaxBackupBytes)
	}
	// Read as the bytes come, not by the size the header claims: a short
	// file that says it is huge costs nothing.
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, r, int64(size)+4)
	if err != nil {
		if err != io.EOF {
			return nil, fmt.Errorf("store: backup: %w", err)
		}
		return nil, bad("cut short: %d of %d bytes", n, size+4)
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return nil, bad("bytes after the checksum")
	}
	all := buf.Bytes()
	body, sum := all[:size], binary.BigEndian.Uint32(all[size:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, bad("checksum mismatch (file says %08x, content is %08x): the file is corrupt", sum, got)
	}
	if _, _, err := readSnapshot(bytes.NewReader(body)); err != nil {
		return nil, err
	}
	return body, nil
}
