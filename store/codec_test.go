package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// fill sets every field reachable from v to a distinct non-zero value, so
// a field the binary layout forgets shows up as a difference.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 3 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, n)
			fill(e, n)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), n)
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1_700_000_000+int64(*n), int64(*n)).UTC()))
			return
		}
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	default:
		panic(fmt.Sprintf("fill: no rule for %s", v.Type()))
	}
}

func filledInstance() *Instance {
	in := &Instance{}
	n := 0
	fill(reflect.ValueOf(in).Elem(), &n)
	return in
}

// TestBinaryCodecKeepsEveryField fills every field of an instance, round
// trips it through the binary body and through JSON, and wants both to
// give it back whole. A field added to Instance, Check or Locality and not
// to the layout fails here.
func TestBinaryCodecKeepsEveryField(t *testing.T) {
	when := time.Date(2026, 11, 26, 6, 30, 0, 123456789, time.UTC)
	cmds := []*Command{
		{Type: CommandRegister, Time: when, Namespace: "prod", Service: "web", ID: "web-1", IfIndex: 7, Instance: filledInstance()},
		{Type: CommandDeregister, Time: when, Namespace: "prod", Service: "web", ID: "web-1", IfIndex: 42},
		{Type: CommandRegister, Namespace: "n", Service: "s", ID: "i", Instance: &Instance{}},
	}
	for _, c := range cmds {
		bin, err := c.EncodeFormat(EntryFormatBinary)
		if err != nil {
			t.Fatal(err)
		}
		if len(bin) < 2 || bin[0] != byte(c.Type) || bin[1] != binaryMarker {
			t.Fatalf("%s: not a binary body: % x", c.Type, bin[:min(len(bin), 8)])
		}
		got, err := DecodeCommand(bin)
		if err != nil {
			t.Fatalf("%s: decode binary: %v", c.Type, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("%s: binary round trip changed the command\n got %s\nwant %s", c.Type, dump(got), dump(c))
		}
		js, err := DecodeCommand(mustEncode(t, c))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(canonicalCommand(js), canonicalCommand(got)) {
			t.Fatalf("%s: the binary body decodes unlike the JSON one\nbinary %s\n  JSON %s", c.Type, dump(got), dump(js))
		}
		again, _ := got.EncodeFormat(EntryFormatBinary)
		if !bytes.Equal(again, bin) {
			t.Fatalf("%s: encoding is not stable", c.Type)
		}
	}

	// A new Command field needs a decision: carried by the binary layout,
	// or a reason for binaryShape to send the command as JSON.
	var names []string
	for f := range reflect.TypeFor[Command]().Fields() {
		names = append(names, f.Name)
	}
	want := []string{"Type", "Time", "Namespace", "Service", "ID", "Instance", "ServiceSettings", "NamespaceSettings",
		"Server", "IfIndex", "Health", "SelfPreservation", "Token", "Patch"}
	if !slices.Equal(names, want) {
		t.Fatalf("Command's fields are %v; the binary layout (codec.go) was written for %v", names, want)
	}
}

// TestBinaryCodecOnlyWhereItFits: every other command, a register carrying
// another command's field, and any command in format 1 stay JSON.
func TestBinaryCodecOnlyWhereItFits(t *testing.T) {
	for name, c := range sampleCommands() {
		bin, err := c.EncodeFormat(EntryFormatBinary)
		if err != nil {
			t.Fatal(err)
		}
		js, err := c.EncodeFormat(EntryFormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		if js[1] != '{' {
			t.Fatalf("%s in format 1: body starts with %q", name, js[1])
		}
		wantBinary := c.Type == CommandRegister || c.Type == CommandDeregister
		if (bin[1] == binaryMarker) != wantBinary {
			t.Fatalf("%s in format 2: binary is %v, want %v", name, bin[1] == binaryMarker, wantBinary)
		}
	}
	odd := &Command{Type: CommandRegister, Namespace: "n", Service: "s", ID: "i", Instance: &Instance{},
		Patch: &InstancePatch{Weight: new(int)}}
	if b, _ := odd.EncodeFormat(EntryFormatBinary); b[1] != '{' {
		t.Fatal("a register with a patch went binary: the patch would be lost")
	}
}

// TestBinaryCodecRefusesMalformed: every truncation, trailing bytes and
// every non-canonical form is an error naming ErrInvalid, never a panic or
// a half-read command.
func TestBinaryCodecRefusesMalformed(t *testing.T) {
	c := &Command{Type: CommandRegister, Time: time.Unix(1_800_000_000, 5).UTC(), Namespace: "prod", Service: "web",
		ID: "web-1", Instance: &Instance{Address: "10.0.0.1", Port: 80, Enabled: true,
			Metadata: map[string]string{"a": "1", "b": "2"}, Tags: []string{"x"}}}
	good, _ := c.EncodeFormat(EntryFormatBinary)
	if _, err := DecodeCommand(good); err != nil {
		t.Fatal(err)
	}
	for n := 2; n < len(good); n++ {
		if got, err := DecodeCommand(good[:n]); err == nil || !errors.Is(err, ErrInvalid) {
			t.Fatalf("truncated to %d of %d bytes: %v, %v", n, len(good), got, err)
		}
	}
	bad := map[string][]byte{
		"trailing byte":         append(slices.Clone(good), 0),
		"binary put-service":    append([]byte{byte(CommandPutService), binaryMarker}, good[2:]...),
		"unsorted metadata":     bytes.Replace(good, []byte("\x01a\x011\x01b"), []byte("\x01b\x011\x01a"), 1),
		"huge tag count":        bytes.Replace(good, []byte("\x01\x01x"), []byte("\xff\x01x"), 1),
		"time with a 2 marker":  append([]byte{byte(CommandDeregister), binaryMarker, 2}, good[3:]...),
		"a second's nanosecond": binaryDeregister(t, []byte{1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03}),
		"zero time as a time":   binaryDeregister(t, append(binary.AppendVarint([]byte{1}, time.Time{}.Unix()), 0)),
	}
	for name, b := range bad {
		if bytes.Equal(b, good) {
			t.Fatalf("%s: the corruption did not change the entry", name)
		}
		if got, err := DecodeCommand(b); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, %v; want an ErrInvalid error", name, got, err)
		}
	}
}

// binaryDeregister is a deregister body whose time is the given bytes.
func binaryDeregister(t *testing.T, timeBytes []byte) []byte {
	t.Helper()
	w := writer{b: []byte{byte(CommandDeregister), binaryMarker}, ok: true}
	w.b = append(w.b, timeBytes...)
	w.string("prod")
	w.string("web")
	w.string("web-1")
	return append(w.b, 0)
}

func BenchmarkDecodeCommand(b *testing.B) {
	c := sampleCommands()["register"]
	for _, f := range []struct {
		name   string
		format int
	}{{"json", EntryFormatJSON}, {"binary", EntryFormatBinary}} {
		enc, err := c.EncodeFormat(f.format)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("encode/"+f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.EncodeFormat(f.format); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("decode/"+f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeCommand(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzEncodeFormat: whatever a command holds, what EncodeFormat writes
// decodes. An entry no replica can decode stops every replica, so a string
// that is not UTF-8 or a number beyond int32 must not reach a binary body.
func FuzzEncodeFormat(f *testing.F) {
	f.Add("default", "web", "web-1", "10.0.0.1", "k", "v", "tag", 80, 100, false)
	f.Add("\xff", "web", "web-1", "10.0.0.1", "k", "v", "tag", 80, 100, true)
	f.Add("default", "web", "web-1", "10.0.0.1", "k\xfe", "v", "t\xc3", 1<<40, -1<<40, false)
	f.Fuzz(func(t *testing.T, ns, svc, id, addr, key, val, tag string, port, weight int, deregister bool) {
		c := &Command{Type: CommandRegister, Time: time.Unix(1_800_000_000, 0).UTC(), Namespace: ns, Service: svc, ID: id,
			Instance: &Instance{Address: addr, Port: port, Weight: weight, Tags: []string{tag}, Metadata: map[string]string{key: val},
				Check: Check{Type: tag, FailuresBeforeUnhealthy: port}}}
		if deregister {
			c = &Command{Type: CommandDeregister, Namespace: ns, Service: svc, ID: id}
		}
		b, err := c.EncodeFormat(EntryFormatBinary)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if _, err := DecodeCommand(b); err != nil {
			t.Fatalf("EncodeFormat wrote an entry that does not decode: %v\n% x", err, b)
		}
	})
}

// TestDecodedStringsOwnTheirBytes: a decoded command's strings share one
// arena of their own, not the entry's buffer, which Raft may reuse: after
// the encoded bytes are overwritten the command is unchanged. And the
// arena keeps a register command to a handful of allocations.
func TestDecodedStringsOwnTheirBytes(t *testing.T) {
	for name, c := range sampleCommands() {
		enc, err := c.EncodeFormat(EntryFormatBinary)
		if err != nil || len(enc) < 2 || enc[1] != binaryMarker {
			continue // no binary form
		}
		got, err := DecodeCommand(slices.Clone(enc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := DecodeCommand(slices.Clone(enc))
		if err != nil {
			t.Fatal(err)
		}
		buf := slices.Clone(enc)
		scribbled, err := DecodeCommand(buf)
		if err != nil {
			t.Fatal(err)
		}
		for k := range buf {
			buf[k] = 'X'
		}
		if !reflect.DeepEqual(scribbled, want) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the decoded command changed with the bytes it came from:\n got %+v\nwant %+v", name, scribbled, want)
		}
	}
	enc, err := sampleCommands()["register"].EncodeFormat(EntryFormatBinary)
	if err != nil {
		t.Fatal(err)
	}
	// The command, its instance, the arena, tags, metadata map (and its
	// table): at most 8, where a string each made 20.
	if n := testing.AllocsPerRun(100, func() { _, _ = DecodeCommand(enc) }); n > 8 {
		t.Errorf("decoding a register command: %.0f allocations, want at most 8", n)
	}
}
