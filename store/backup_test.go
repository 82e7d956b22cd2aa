package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func backupOf(t *testing.T, s *Store) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteBackup(&b, s.Snapshot()); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestBackupRoundTripAndRefusals(t *testing.T) {
	s := New()
	mustApply(t, s, 2, putNamespaceCmd("prod", NamespaceSettings{Fallback: "default"}))
	mustApply(t, s, 3, registerCmd(3, "prod", "web", "web-1", persistent("10.0.0.1", 80)))
	mustApply(t, s, 4, registerCmd(4, "default", "db", "db-1", persistent("10.0.0.2", 5432)))
	file := backupOf(t, s)

	body, err := ReadBackup(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	restored := New()
	if err := restored.Restore(bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if got, want := backupOf(t, restored), file; !bytes.Equal(got, want) {
		t.Fatalf("restored catalog differs:\n%s\n%s", got, want)
	}

	corrupt := bytes.Clone(file)
	corrupt[len(corrupt)/2] ^= 0x20
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"a flipped bit", corrupt, "checksum mismatch"},
		{"another file", []byte("PK\x03\x04 this is a zip file, not a backup"), "not a Switchyard backup"},
		{"empty", nil, "cut short in its header"},
		{"cut short", file[:len(file)-10], "cut short"},
		{"claims a huge body", append([]byte("SWYBAK\x00\x01\x00\x00\x00\x00\x3f\xff\xff\xff"), "tiny"...), "cut short: 4 of"},
		{"trailing bytes", append(bytes.Clone(file), '\n'), "bytes after the checksum"},
		{"newer version", append([]byte("SWYBAK\x00\x02"), file[8:]...), "format version 2"},
	} {
		_, err := ReadBackup(bytes.NewReader(c.file))
		if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadSnapshot mentioning %q", c.name, err, c.want)
		}
	}
}

func TestRebaseKeepsTheClusterAndWakesEveryWatcher(t *testing.T) {
	old := New()
	mustApply(t, old, 2, putServerCmd(Server{ID: "old-1", RaftAddr: "10.0.0.1:7401", HTTPAddr: "10.0.0.1:7400"}))
	mustApply(t, old, 3, registerCmd(3, "default", "web", "web-1", persistent("10.0.0.1", 80)))
	body, err := ReadBackup(bytes.NewReader(backupOf(t, old)))
	if err != nil {
		t.Fatal(err)
	}

	cur := New()
	mustApply(t, cur, 2, putServerCmd(Server{ID: "new-1", RaftAddr: "10.1.0.1:7401", HTTPAddr: "10.1.0.1:7400"}))
	for i := uint64(3); i < 50; i++ {
		mustApply(t, cur, i, registerCmd(i, "default", "web", "web-9", persistent("10.1.0.9", int(i))))
	}
	watched := mustService(t, cur, "default", "web")
	var out bytes.Buffer
	if err := Rebase(bytes.NewReader(body), &out, 60, cur); err != nil {
		t.Fatal(err)
	}
	if err := cur.Restore(&out); err != nil {
		t.Fatal(err)
	}
	v := mustService(t, cur, "default", "web")
	if v.Index != 60 || v.Len() != 1 || v.Instances()[0].ID != "web-1" || cur.Index() != 60 {
		t.Fatalf("restored view index %d, instances %v, store index %d", v.Index, v.Instances(), cur.Index())
	}
	if v.Index <= watched.Index {
		t.Fatalf("a watcher at index %d would not wake for index %d", watched.Index, v.Index)
	}
	if _, servers := cur.Servers(); len(servers) != 1 || servers[0].ID != "new-1" {
		t.Fatalf("servers %v, want the running cluster's", servers)
	}
	if err := Rebase(strings.NewReader("nonsense"), &out, 61, cur); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("rebase of nonsense: %v", err)
	}
}
