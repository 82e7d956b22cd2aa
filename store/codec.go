package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Entry formats. A log entry is a type byte and a body; the body is JSON in
// format 1. Format 2 adds a binary body for the two commands that carry
// nearly all the load, register and deregister, marked by binaryMarker
// right after the type byte (a JSON body starts with '{'). Decoding the
// binary body costs about a twentieth of decoding the JSON one, and every
// server decodes every entry.
//
// Every version decodes both. The raft package chooses the format it
// writes: binary bodies only once every server of the Raft configuration
// has announced a protocol that reads them (Server.Protocol), so a rolling
// upgrade never hands an older server an entry it cannot read. Going back
// to a version that reads only format 1 after that is not supported.
const (
	EntryFormatJSON   = 1
	EntryFormatBinary = 2
)

// binaryMarker follows the type byte of a binary body. Format 2, layout 1;
// a later layout takes a new marker (and a new entry format).
const binaryMarker = 0x01

var errShort = errors.New("entry ends early")

// EncodeFormat renders the command in the given entry format: register and
// deregister commands get a binary body in EntryFormatBinary, everything
// else (and every command in EntryFormatJSON) a JSON one. A command whose
// binary body decodeBinary would refuse (a string that is not UTF-8, a
// number beyond int32) goes as JSON too, which replaces invalid bytes the
// way every version does: an entry no replica could decode would stop them
// all.
func (c *Command) EncodeFormat(format int) ([]byte, error) {
	if format >= EntryFormatBinary && c.binaryShape() {
		w := writer{b: make([]byte, 0, 256), ok: true}
		c.writeBinary(&w)
		if w.ok {
			return w.b, nil
		}
	}
	return c.Encode()
}

// binaryShape reports whether the command is one the binary layout holds
// whole: a register or deregister with no field of another command type.
func (c *Command) binaryShape() bool {
	if c.ServiceSettings != nil || c.NamespaceSettings != nil || c.Server != nil || c.Health != nil ||
		c.SelfPreservation != nil || c.Token != nil || c.Patch != nil {
		return false
	}
	switch c.Type {
	case CommandRegister:
		return c.Instance != nil
	case CommandDeregister:
		return c.Instance == nil
	}
	return false
}

// writeBinary writes: type, marker, time, namespace, service, id,
// if_index, then for a register the instance (see writeInstance).
func (c *Command) writeBinary(w *writer) {
	w.b = append(w.b, byte(c.Type), binaryMarker)
	w.time(c.Time)
	w.string(c.Namespace)
	w.string(c.Service)
	w.string(c.ID)
	w.uvarint(c.IfIndex)
	if c.Type == CommandRegister {
		w.instance(c.Instance)
	}
}

const (
	flagEnabled = 1 << iota
	flagEphemeral
	flagHealthy
	flagsKnown = flagEnabled | flagEphemeral | flagHealthy
)

// writer builds a binary body, the mirror of reader; ok turns false once it
// wrote something reader refuses.
type writer struct {
	b  []byte
	ok bool
}

func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }

// int writes a number that must fit an int32 (reader.int).
func (w *writer) int(n int) {
	if n < math.MinInt32 || n > math.MaxInt32 {
		w.ok = false
	}
	w.varint(int64(n))
}

func (w *writer) string(s string) {
	if !utf8.ValidString(s) {
		w.ok = false
	}
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// time writes 0 for the zero time, else 1, the Unix seconds and the
// nanoseconds. Times decode in UTC, as the leader stamps them.
func (w *writer) time(t time.Time) {
	if t.IsZero() {
		w.b = append(w.b, 0)
		return
	}
	w.b = append(w.b, 1)
	w.varint(t.Unix())
	w.uvarint(uint64(t.Nanosecond()))
}

func (w *writer) instance(in *Instance) {
	w.string(in.ID)
	w.string(in.Namespace)
	w.string(in.Service)
	w.string(in.Address)
	w.int(in.Port)
	w.int(in.Weight)
	var flags byte
	if in.Enabled {
		flags |= flagEnabled
	}
	if in.Ephemeral {
		flags |= flagEphemeral
	}
	if in.Healthy {
		flags |= flagHealthy
	}
	w.b = append(w.b, flags)
	w.string(in.Locality.Region)
	w.string(in.Locality.Datacenter)
	w.string(in.Locality.Unit)
	w.uvarint(uint64(len(in.Tags)))
	for _, t := range in.Tags {
		w.string(t)
	}
	// Keys sorted, so one instance has one encoding.
	w.uvarint(uint64(len(in.Metadata)))
	var buf [16]string // most instances have few keys: no allocation
	keys := buf[:0]
	for k := range in.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w.string(k)
		w.string(in.Metadata[k])
	}
	ch := &in.Check
	w.string(ch.Type)
	w.string(ch.Target)
	w.varint(int64(ch.Interval))
	w.varint(int64(ch.Timeout))
	w.varint(int64(ch.TTL))
	w.varint(int64(ch.DeregisterAfter))
	w.int(ch.FailuresBeforeUnhealthy)
	w.int(ch.SuccessesBeforeHealthy)
	w.time(in.HealthChangedAt)
	w.time(in.RegisteredAt)
	w.time(in.UpdatedAt)
	w.uvarint(in.CreateIndex)
	w.uvarint(in.ModifyIndex)
}

// decodeBinary parses a binary body (b starts with the type byte and the
// marker). It rejects what appendBinary would not write: trailing bytes,
// strings that are not UTF-8, unknown flags, unsorted or repeated metadata keys, out-of-range numbers.
func decodeBinary(b []byte) (*Command, error) {
	// The strings of a command are disjoint parts of its body: an arena of
	// the body's length holds them all, in one allocation instead of one
	// each (a register command has eight or more).
	r := reader{b: b[2:], arena: make([]byte, 0, len(b))}
	c := &Command{Type: CommandType(b[0])}
	c.Time = r.time()
	c.Namespace = r.string()
	c.Service = r.string()
	c.ID = r.string()
	c.IfIndex = r.uvarint()
	switch c.Type {
	case CommandRegister:
		c.Instance = r.instance()
	case CommandDeregister:
	default:
		return nil, fmt.Errorf("%w: no binary form for %s", ErrInvalid, c.Type)
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the command", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: binary %s: %w", ErrInvalid, c.Type, r.err)
	}
	return c, nil
}

// reader consumes a binary body; the first error sticks and later reads
// return zero values.
type reader struct {
	b   []byte
	err error
	// arena holds the bytes of the strings read: each string points into
	// it. Bytes once appended are never written again, so a string's bytes
	// never change; should an append outgrow the capacity, the strings
	// made before keep the old array, as immutable as ever.
	arena []byte
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	if n != uvarintSize(v) {
		r.fail(errors.New("number not in its shortest form"))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	u := r.uvarint() // zig-zag, as binary.Varint
	return int64(u>>1) ^ -int64(u&1)
}

// uvarintSize is the length of v's shortest uvarint.
func uvarintSize(v uint64) int {
	return max(1, (bits.Len64(v)+6)/7)
}

// int reads a varint that must fit an int32 (ports, weights, counts of
// check results), so it means the same on every platform.
func (r *reader) int() int {
	v := r.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail(fmt.Errorf("number %d out of range", v))
		return 0
	}
	return int(v)
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail(errShort)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errShort)
		return ""
	}
	if !utf8.Valid(r.b[:n]) {
		// JSON bodies cannot carry such a string (encoding/json replaces
		// invalid bytes), so neither may a binary one.
		r.fail(errors.New("string is not UTF-8"))
		return ""
	}
	var s string
	if n > 0 {
		start := len(r.arena)
		r.arena = append(r.arena, r.b[:n]...)
		s = unsafe.String(&r.arena[start], int(n))
	}
	r.b = r.b[n:]
	return s
}

// count reads a number of elements, each at least one byte long.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errShort)
		return 0
	}
	return int(n)
}

func (r *reader) time() time.Time {
	switch r.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec, nsec := r.varint(), r.uvarint()
		if nsec >= 1e9 {
			r.fail(fmt.Errorf("time with %d nanoseconds", nsec))
			return time.Time{}
		}
		t := time.Unix(sec, int64(nsec)).UTC()
		if t.IsZero() {
			r.fail(errors.New("zero time written as a time"))
		}
		return t
	}
	r.fail(errors.New("bad time"))
	return time.Time{}
}

func (r *reader) duration() Duration { return Duration(r.varint()) }

func (r *reader) instance() *Instance {
	in := &Instance{}
	in.ID = r.string()
	in.Namespace = r.string()
	in.Service = r.string()
	in.Address = r.string()
	in.Port = r.int()
	in.Weight = r.int()
	flags := r.byte()
	if flags&^flagsKnown != 0 {
		r.fail(fmt.Errorf("unknown instance flags %#x", flags))
	}
	in.Enabled, in.Ephemeral, in.Healthy = flags&flagEnabled != 0, flags&flagEphemeral != 0, flags&flagHealthy != 0
	in.Locality = Locality{Region: r.string(), Datacenter: r.string(), Unit: r.string()}
	if n := r.count(); n > 0 {
		in.Tags = make([]string, 0, min(n, 64))
		for range n {
			if r.err != nil {
				break
			}
			in.Tags = append(in.Tags, r.string())
		}
	}
	if n := r.count(); n > 0 {
		in.Metadata = make(map[string]string, min(n, 64))
		prev := ""
		for i := range n {
			if r.err != nil {
				break
			}
			k, v := r.string(), r.string()
			if i > 0 && k <= prev {
				r.fail(fmt.Errorf("metadata key %q out of order", k))
				break
			}
			in.Metadata[k], prev = v, k
		}
	}
	in.Check = Check{Type: r.string(), Target: r.string(), Interval: r.duration(), Timeout: r.duration(),
		TTL: r.duration(), DeregisterAfter: r.duration(), FailuresBeforeUnhealthy: r.int(), SuccessesBeforeHealthy: r.int()}
	in.HealthChangedAt = r.time()
	in.RegisteredAt = r.time()
	in.UpdatedAt = r.time()
	in.CreateIndex = r.uvarint()
	in.ModifyIndex = r.uvarint()
	return in
}
