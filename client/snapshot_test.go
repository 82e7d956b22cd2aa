package client

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

func sampleSnapshot() *snapshot {
	in := &store.Instance{ID: "o-1", Namespace: "default", Service: "orders", Address: "10.0.0.1", Port: 80, Weight: 100, Enabled: true, Healthy: true}
	return &snapshot{WrittenAt: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Namespace: "default",
		Services: map[string]*snapshotEntry{"orders": {Index: 7, ServedBy: "default", Instances: []wire.Instance{{Instance: in, Level: "anywhere"}}}}}
}

func TestSnapshotRoundTripAndAtomicWrite(t *testing.T) {
	dir := t.TempDir()
	if s, err := readSnapshot(dir); s != nil || err != nil {
		t.Fatalf("no file: %v %v", s, err)
	}
	if err := writeSnapshot(dir, sampleSnapshot()); err != nil {
		t.Fatal(err)
	}
	got, err := readSnapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := got.Services["orders"]
	if e == nil || e.Index != 7 || len(e.Instances) != 1 || e.Instances[0].Address != "10.0.0.1" || !got.WrittenAt.Equal(sampleSnapshot().WrittenAt) {
		t.Fatalf("read back %+v", got)
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != SnapshotFile {
		t.Fatalf("directory holds %v", entries)
	}
}

// Every kind of damage is rejected whole, with ErrBadSnapshot.
func TestSnapshotRejectsDamage(t *testing.T) {
	good, err := encodeSnapshot(sampleSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		return b
	}
	otherVersion := bytes.Clone(good)
	otherVersion[9] = 2
	for name, b := range map[string][]byte{
		"empty":                 {},
		"foreign":               []byte("not a snapshot at all, just text"),
		"bit flip in payload":   flip(len(good) - 5),
		"bit flip in checksum":  flip(15),
		"bit flip in length":    flip(12),
		"truncated":             good[:len(good)-1],
		"truncated header":      good[:10],
		"unknown version":       otherVersion,
		"trailing garbage":      append(bytes.Clone(good), 'x'),
		"valid frame, bad json": mustFrame(t, []byte(`{"services":{"x":null}}`)),
		"unknown field":         mustFrame(t, []byte(`{"surprise":1}`)),
	} {
		if _, err := decodeSnapshot(b); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
		}
	}
	// Through a client: a damaged file is logged and ignored, never loaded
	// in part.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SnapshotFile), flip(len(good)-5), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.snap != nil {
		t.Fatal("a damaged snapshot was loaded")
	}
}

// mustFrame wraps payload in a valid header (right length and checksum).
func mustFrame(t *testing.T, payload []byte) []byte {
	t.Helper()
	b, err := encodeSnapshot(&snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	b = b[:snapshotHeader]
	b = append(b, payload...)
	putHeader(b, payload)
	return b
}

func FuzzDecodeSnapshot(f *testing.F) {
	good, _ := encodeSnapshot(sampleSnapshot())
	f.Add(good)
	f.Add(good[:snapshotHeader])
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("error %v does not wrap ErrBadSnapshot", err)
			}
			return
		}
		// What decodes re-encodes to something that decodes the same.
		again, err := encodeSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeSnapshot(again); err != nil {
			t.Fatalf("re-encoded snapshot rejected: %v", err)
		}
	})
}

// A watcher that subscribes while an answer is published gets its channel
// back at once, holding an answer, however the two interleave. The first
// answer used to be sent after the lock: a publish in between filled the
// channel's one slot, and with no later publish to drain it, the send
// blocked forever (Watch never returned). Each round races one subscribe
// against one publish, then waits for both. That window was a few
// instructions wide, so a run rarely hit it; the rounds are a stress of the
// property, and the fix makes the window impossible by construction.
func TestSubscribeWhilePublishing(t *testing.T) {
	st := &serviceState{name: "web"}
	st.cur.Store(&view{answer: Answer{Service: "web"}})
	const rounds = 20000
	done := make(chan error, 1)
	go func() {
		for i := range rounds {
			published := make(chan struct{})
			go func() {
				st.cur.Store(&view{answer: Answer{Service: "web", ServedBy: strconv.Itoa(i)}})
				st.publish()
				close(published)
			}()
			ch := st.subscribe()
			<-published
			a := <-ch
			st.unsubscribe(ch)
			if a.Service != "web" {
				done <- fmt.Errorf("round %d: the channel held %+v", i, a)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("subscribe blocked: a publish filled the new channel before its first answer went in")
	}
}
