package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ as well as in the f.Add
// calls below: the files keep interesting inputs found by earlier runs.

// junkCommands are hand-made entries that are not valid commands, or only
// just valid.
func junkCommands() [][]byte {
	return [][]byte{
		nil,
		{byte(CommandRegister)},
		{byte(IgnorableFlag | 3), '{', '}'},
		{0},
		{9, '{', '}'},
		append([]byte{byte(CommandRegister)}, `{"ns":"default","svc":"web","id":"w"}`...),
		append([]byte{byte(CommandRegister)}, `{"instance":{"port":-1,"check":{"ttl":1e300}}}`...),
		append([]byte{byte(CommandRegister)}, `{"time":"2024-05-01T12:00:00+05:30","instance":{"tags":[],"metadata":{}}}`...),
		append([]byte{byte(CommandPutService)}, `{"service_settings":{"dns_ttl":"-1h"}}`...),
		append([]byte{byte(CommandPutNamespace)}, `{"ns":"a","namespace_settings":{"fallback":"a"}}`...),
		append([]byte{byte(CommandPutServer)}, `{"server":{}}`...),
		append([]byte{byte(CommandDeregister)}, `{"ns":`...),
		append([]byte{byte(CommandDeleteService)}, `null`...),
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, name := range slices.Sorted(maps.Keys(sampleCommands())) {
		f.Add(mustEncode(f, sampleCommands()[name]))
		if bin, _ := sampleCommands()[name].EncodeFormat(EntryFormatBinary); bin[1] == binaryMarker {
			f.Add(bin)
		}
	}
	for _, b := range junkCommands() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if c != nil {
				t.Fatalf("DecodeCommand returned a command and an error: %v", err)
			}
			if len(b) > 0 && isKnownType(CommandType(b[0])) && errors.Is(err, ErrUnknownCommand) {
				t.Fatalf("a known type reported unknown: %v", err)
			}
			return
		}
		if c == nil {
			if len(b) == 0 || isKnownType(CommandType(b[0])) || CommandType(b[0])&IgnorableFlag == 0 {
				t.Fatalf("DecodeCommand(%q) = nil, nil, but the entry is not an ignorable unknown type", b)
			}
			return
		}
		if c.Type != CommandType(b[0]) {
			t.Fatalf("decoded type %s from first byte %d", c.Type, b[0])
		}

		// A binary body that decodes is the one encoding of its command.
		if len(b) > 1 && b[1] == binaryMarker {
			if again, err := c.EncodeFormat(EntryFormatBinary); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("binary body does not re-encode to itself (%v):\n% x\n% x", err, b, again)
			}
		}

		// What decodes re-encodes, and decodes to the same command.
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("a decoded command does not encode: %v\n%+v", err, c)
		}
		c2, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("a re-encoded command does not decode: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(canonicalCommand(c), canonicalCommand(c2)) {
			t.Fatalf("round trip changed the command\n got %s\nwant %s", dump(c2), dump(c))
		}
		if enc2 := mustEncode(t, c2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}

		// Every decoded command can be applied without a panic; Apply may
		// reject it, and a rejected command changes nothing but the index.
		s := fuzzStore(t)
		before := captureState(t, s)
		res, err := s.Apply(100, c)
		if err != nil {
			if res != nil {
				t.Fatalf("Apply returned a result with its error: %v", err)
			}
			want := before
			want.Index = 100
			assertState(t, "after a rejected command", captureState(t, s), want)
			return
		}
		if c.Type == CommandRegister {
			v, err := s.Service(c.Namespace, c.Service)
			if err != nil || v.Instance(c.ID) == nil {
				t.Fatalf("registered %q but cannot read it back: %v", c.ID, err)
			}
			if !slices.IsSortedFunc(v.Instances(), func(a, b *Instance) int { return cmpString(a.ID, b.ID) }) {
				t.Fatalf("instances out of order: %v", instanceIDs(v))
			}
		}
	})
}

func isKnownType(t CommandType) bool {
	return t >= CommandRegister && t <= CommandRemoveServer
}

// canonicalCommand returns a deep copy of c in which what JSON cannot tell
// apart is made equal: a time's *Location (UTC may decode as Local when the
// machine runs in UTC; the offset itself is checked by comparing encodings)
// and empty versus nil tags and metadata.
func canonicalCommand(c *Command) Command {
	out := *c
	out.Time = out.Time.UTC()
	if c.Instance != nil {
		in := *c.Instance
		in.RegisteredAt, in.UpdatedAt = in.RegisteredAt.UTC(), in.UpdatedAt.UTC()
		if len(in.Tags) == 0 {
			in.Tags = nil
		}
		if len(in.Metadata) == 0 {
			in.Metadata = nil
		}
		out.Instance = &in
	}
	return out
}

// fuzzStore is a small catalog for fuzzed commands to land in.
func fuzzStore(t testing.TB) *Store {
	t.Helper()
	s := New()
	mustApply(t, s, 1, putNamespaceCmd("prod", NamespaceSettings{}))
	mustApply(t, s, 2, putNamespaceCmd("staging", NamespaceSettings{Fallback: "prod"}))
	mustApply(t, s, 3, registerCmd(3, "prod", "web", "web-1", persistent("10.0.0.1", 80)))
	mustApply(t, s, 4, registerCmd(4, DefaultNamespace, "web", "web-1", persistent("10.0.0.2", 80)))
	mustApply(t, s, 5, putServerCmd(Server{ID: "s1"}))
	return s
}

func FuzzRestore(f *testing.F) {
	full := writeSnapshot(f, buildCatalog(f))
	f.Add(full)
	f.Add(writeSnapshot(f, New()))
	f.Add(writeSnapshot(f, fuzzStore(f)))
	f.Add(full[:len(full)/2])
	f.Add(bytes.Replace(full, []byte(`"version":1`), []byte(`"version":2`), 1))
	f.Add([]byte("garbage"))
	f.Add([]byte{})
	f.Add([]byte(`{"header":{"format":"switchyard-catalog","version":1}}` + "\n" + `{"end":{"records":1}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzStore(t)
		before := captureState(t, s)
		abandon := s.AbandonCh()

		err := s.Restore(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore error %v does not wrap ErrBadSnapshot", err)
			}
			assertState(t, "after a refused restore", captureState(t, s), before)
			if isClosed(abandon) || s.AbandonCh() != abandon {
				t.Fatalf("a refused restore touched AbandonCh")
			}
			return
		}
		if !isClosed(abandon) {
			t.Fatalf("a restore did not close AbandonCh")
		}
		if _, err := s.Namespace(DefaultNamespace); err != nil {
			t.Fatalf("restored catalog has no default namespace: %v", err)
		}

		// What was restored writes out and restores to the same catalog.
		got := captureState(t, s)
		again := New()
		if err := again.Restore(bytes.NewReader(writeSnapshot(t, s))); err != nil {
			t.Fatalf("snapshot of a restored catalog does not restore: %v", err)
		}
		if a, b := canonicalJSON(t, got), canonicalJSON(t, captureState(t, again)); a != b {
			t.Fatalf("restore of a restored catalog differs\n got %s\nwant %s", b, a)
		}
	})
}

// canonicalJSON renders a store state as JSON, which forgets what the
// snapshot format cannot keep (a time's *Location, empty versus nil tags).
func canonicalJSON(t *testing.T, st storeState) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("encode state: %v", err)
	}
	return string(b)
}
