package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// buildCatalog returns a store exercising every part of a snapshot:
// namespaces with a fallback chain and descriptions, services with custom
// settings, instances with tags, metadata, locality and checks, an emptied
// service, a deleted service, servers, and rejected commands so that the
// store index is ahead of every view index.
func buildCatalog(t testing.TB) *Store {
	t.Helper()
	s := New()
	var i uint64
	next := func() uint64 { i++; return i }
	apply := func(c *Command) { t.Helper(); mustApply(t, s, next(), c) }

	apply(putNamespaceCmd("prod", NamespaceSettings{Description: "production"}))
	apply(putNamespaceCmd("staging", NamespaceSettings{Fallback: "prod", Description: "pre-production"}))
	apply(putNamespaceCmd("dev", NamespaceSettings{Fallback: "staging"}))
	apply(putNamespaceCmd(DefaultNamespace, NamespaceSettings{Description: "the default"}))

	apply(putServiceCmd("prod", "web", ServiceSettings{ProtectThreshold: 0.25, MinHealthyRatio: 0.8,
		Balancer: "consistent_hash", DNSTTL: Duration(30 * time.Second)}))
	apply(putServiceCmd("staging", "web", ServiceSettings{Balancer: "round_robin", DNSTTL: Duration(1500 * time.Millisecond)}))

	web := func(n int) Instance {
		in := persistent(fmt.Sprintf("10.0.%d.%d", n/250, n%250+1), 8000+n)
		in.Weight = 10 * n
		in.Enabled = n%3 != 0
		in.Locality = Locality{Region: "eu", Datacenter: fmt.Sprintf("eu-%d", n%2), Unit: fmt.Sprintf("u%d", n%4)}
		in.Tags = []string{"v2", fmt.Sprintf("shard-%d", n)}
		in.Metadata = map[string]string{"version": "2.1.0", "owner": "team-web", "n": fmt.Sprint(n)}
		in.Check = Check{Type: CheckHTTP, Target: fmt.Sprintf("http://10.0.0.%d:%d/health", n, 8000+n),
			Interval: Duration(10 * time.Second), Timeout: Duration(2 * time.Second),
			DeregisterAfter: Duration(time.Hour), FailuresBeforeUnhealthy: 3, SuccessesBeforeHealthy: 2}
		return in
	}
	for n := 1; n <= 6; n++ {
		idx := next()
		mustApply(t, s, idx, registerCmd(idx, "prod", "web", fmt.Sprintf("web-%d", n), web(n)))
	}
	// An update, so CreateIndex != ModifyIndex and RegisteredAt != UpdatedAt.
	changed := web(2)
	changed.Weight = 7
	idx := next()
	mustApply(t, s, idx, registerCmd(idx, "prod", "web", "web-2", changed))
	apply(deregisterCmd("prod", "web", "web-5"))

	eph := Instance{Address: "api-1.staging.internal", Port: 9090, Weight: DefaultWeight, Enabled: true, Ephemeral: true,
		Check: Check{TTL: Duration(15 * time.Second), DeregisterAfter: Duration(2 * time.Minute)}}
	idx = next()
	mustApply(t, s, idx, registerCmd(idx, "staging", "api", "api-1", eph))
	ipv6 := persistent("2001:db8::7", 443)
	ipv6.Check = Check{Type: CheckGRPC, Target: "[2001:db8::7]:443"}
	idx = next()
	mustApply(t, s, idx, registerCmd(idx, "staging", "api", "api-0", ipv6))
	idx = next()
	mustApply(t, s, idx, registerCmd(idx, "staging", "web", "web-1", persistent("10.1.0.1", 80)))
	idx = next()
	mustApply(t, s, idx, registerCmd(idx, DefaultNamespace, "legacy", "legacy-1", persistent("legacy.example.com", 8080)))

	// A service emptied of instances and one deleted outright.
	idx = next()
	mustApply(t, s, idx, registerCmd(idx, "dev", "scratch", "s-1", persistent("10.2.0.1", 80)))
	apply(deregisterCmd("dev", "scratch", "s-1"))
	idx = next()
	mustApply(t, s, idx, registerCmd(idx, "dev", "gone", "g-1", persistent("10.2.0.2", 80)))
	apply(deleteServiceCmd("dev", "gone"))

	apply(putServerCmd(Server{ID: "s2", RaftAddr: "10.9.0.2:7000", HTTPAddr: "10.9.0.2:8500", Locality: Locality{Region: "eu", Datacenter: "eu-1"}}))
	apply(putServerCmd(Server{ID: "s1", RaftAddr: "10.9.0.1:7000", HTTPAddr: "10.9.0.1:8500", Locality: Locality{Region: "eu", Datacenter: "eu-0"}}))
	apply(putServerCmd(Server{ID: "s3", RaftAddr: "10.9.0.3:7000", HTTPAddr: "10.9.0.3:8500"}))
	apply(removeServerCmd("s3"))

	// Rejected commands still move the applied index.
	if _, err := s.Apply(next(), deregisterCmd("prod", "web", "nope")); !errors.Is(err, ErrInstanceNotFound) {
		t.Fatalf("expected a rejected deregister, got %v", err)
	}
	if _, err := s.Apply(next(), putNamespaceCmd("qa", NamespaceSettings{Fallback: "nowhere"})); !errors.Is(err, ErrNamespaceNotFound) {
		t.Fatalf("expected a rejected put-namespace, got %v", err)
	}
	return s
}

func writeSnapshot(t testing.TB, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.Snapshot().WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := buildCatalog(t)
	want := captureState(t, src)

	// Sanity: the catalog is as rich as the test means it to be.
	if want.Stats != (Stats{Namespaces: 4, Services: 5, Instances: 9}) {
		t.Fatalf("catalog stats = %+v", want.Stats)
	}
	if len(want.Servers) != 2 || want.ServersIndex == 0 || want.Index <= want.NamespacesIndex {
		t.Fatalf("catalog = %s", dump(want))
	}

	snap := src.Snapshot()
	if snap.Index() != src.Index() {
		t.Fatalf("Snapshot().Index() = %d, want %d", snap.Index(), src.Index())
	}
	data := writeSnapshot(t, src)

	dst := New()
	abandon := dst.AbandonCh()
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	assertState(t, "restored store", captureState(t, dst), want)
	// The restored lists count the instances the servers probe.
	sawProbed := false
	_, namespaces, _ := dst.Namespaces()
	for _, ns := range namespaces {
		_, views, err := dst.Services(ns.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range views {
			n := 0
			for _, in := range v.Instances() {
				if !in.Ephemeral && in.Check.Probed() {
					n++
				}
			}
			if v.Probed() != n {
				t.Errorf("restored %s/%s: Probed() = %d, want %d", ns.Name, v.Service.Name, v.Probed(), n)
			}
			sawProbed = sawProbed || n > 0
		}
	}
	if !sawProbed {
		t.Error("the catalog has no probed instance: the count goes untested")
	}
	if !isClosed(abandon) {
		t.Errorf("Restore did not close the old AbandonCh")
	}
	if isClosed(dst.AbandonCh()) {
		t.Errorf("the new AbandonCh is already closed")
	}

	// The restored store is live: writes work and watches fire.
	v := mustService(t, dst, "prod", "web")
	mustApply(t, dst, dst.Index()+1, deregisterCmd("prod", "web", "web-1"))
	if !isClosed(v.WatchCh()) {
		t.Errorf("restored view's channel did not close on a write")
	}
	if _, err := dst.Apply(dst.Index()+1, putNamespaceCmd("prod", NamespaceSettings{Fallback: "dev"})); !errors.Is(err, ErrInvalid) {
		t.Errorf("restored fallback chain does not refuse a cycle: %v", err)
	}

	// Writing the restored store again gives the same bytes.
	again := New()
	if err := again.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if data2 := writeSnapshot(t, again); !bytes.Equal(data, data2) {
		t.Errorf("snapshot of a restored store differs:\n%s\n---\n%s", data, data2)
	}
}

func TestRestoreReplacesExistingCatalog(t *testing.T) {
	src := New()
	mustApply(t, src, 3, registerCmd(3, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	want := captureState(t, src)
	data := writeSnapshot(t, src)

	dst := buildCatalog(t) // more data and a higher index than src
	_, _, nsCh := dst.Namespaces()
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	assertState(t, "restored over an existing catalog", captureState(t, dst), want)
	if dst.Index() != 3 {
		t.Errorf("Index() = %d, want the snapshot's 3 even though it is lower", dst.Index())
	}
	if !isClosed(nsCh) {
		t.Errorf("Restore did not close the old catalog's channel")
	}
	if _, err := dst.Namespace("prod"); !errors.Is(err, ErrNamespaceNotFound) {
		t.Errorf("namespace from the old catalog survived the restore: %v", err)
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	s := buildCatalog(t)
	want := captureState(t, s)
	snap := s.Snapshot()

	// Writes after Snapshot, some of them while WriteTo runs, do not leak
	// into it.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		base := s.Index()
		for k := uint64(1); k <= 50; k++ {
			idx := base + k
			id := fmt.Sprintf("late-%d", k)
			if _, err := s.Apply(idx, registerCmd(idx, "prod", "web", id, persistent("10.9.9.9", int(k)))); err != nil {
				t.Error(err)
				return
			}
		}
		if _, err := s.Apply(base+51, putNamespaceCmd("late", NamespaceSettings{})); err != nil {
			t.Error(err)
		}
		if _, err := s.Apply(base+52, putServerCmd(Server{ID: "late"})); err != nil {
			t.Error(err)
		}
	}()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	dst := New()
	if err := dst.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	assertState(t, "snapshot taken before the writes", captureState(t, dst), want)
}

// badSnapshot is an invalid snapshot and a piece of the error it must get,
// so each case is refused for the reason it was built for.
type badSnapshot struct {
	data    []byte
	wantErr string
}

// badSnapshots derives invalid snapshots from a valid one.
func badSnapshots(t *testing.T, data []byte) map[string]badSnapshot {
	t.Helper()
	lines := strings.SplitAfter(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	last := len(lines) - 1
	header, end, body := lines[0], lines[last], lines[1:last]
	endLine := func(n int) string { return fmt.Sprintf(`{"end":{"records":%d}}`, n) + "\n" }
	if end != endLine(len(lines)-1) {
		t.Fatalf("unexpected end marker %q", end)
	}
	// join concatenates lines and pieces of lines.
	join := func(parts ...any) []byte {
		var b strings.Builder
		for _, p := range parts {
			switch p := p.(type) {
			case string:
				b.WriteString(p)
			case []string:
				b.WriteString(strings.Join(p, ""))
			default:
				panic(fmt.Sprintf("join: %T", p))
			}
		}
		return []byte(b.String())
	}
	replace := func(old, new string) []byte {
		t.Helper()
		if !strings.Contains(string(data), old) {
			t.Fatalf("snapshot has no %q", old)
		}
		return []byte(strings.Replace(string(data), old, new, 1))
	}
	// Two consecutive instance lines, to break their order.
	pair := -1
	for k := 1; k < last-1; k++ {
		if strings.HasPrefix(lines[k], `{"instance":`) && strings.HasPrefix(lines[k+1], `{"instance":`) {
			pair = k
			break
		}
	}
	// A service line directly followed by an instance line.
	svcThenIn := -1
	for k := 1; k < last-1; k++ {
		if strings.HasPrefix(lines[k], `{"service":`) && strings.HasPrefix(lines[k+1], `{"instance":`) {
			svcThenIn = k
			break
		}
	}
	if pair < 0 || svcThenIn < 0 || !strings.HasPrefix(lines[1], `{"namespace":{"name":"default"`) {
		t.Fatalf("snapshot lacks the shape these cases need:\n%s", data)
	}
	minimal := `{"header":{"format":"switchyard-catalog","version":1,"index":1,"ns_index":0,"servers_index":0}}` + "\n"

	return map[string]badSnapshot{
		"empty":                        {nil, "header"},
		"whitespace":                   {[]byte("  \n"), "header"},
		"garbage":                      {[]byte("this is not a snapshot"), "header"},
		"binary garbage":               {[]byte{0x00, 0xff, 0x13, 0x37, 0x80}, "header"},
		"json array":                   {[]byte("[1,2,3]"), "header"},
		"json null":                    {[]byte("null"), "not a catalog snapshot"},
		"json string":                  {[]byte(`"switchyard-catalog"`), "header"},
		"header only":                  {join(header), "record 2"},
		"no end marker":                {join(lines[:last]), fmt.Sprintf("record %d", last+1)},
		"wrong version":                {replace(`"version":1`, `"version":2`), "version 2"},
		"version zero":                 {replace(`"version":1,`, ``), "version 0"},
		"version as string":            {replace(`"version":1`, `"version":"1"`), "header"},
		"wrong format":                 {replace(`"format":"switchyard-catalog"`, `"format":"other-catalog"`), "not a catalog snapshot"},
		"no header":                    {join(body, end), "not a catalog snapshot"},
		"header twice":                 {join(header, lines), "record 2 is empty"},
		"unknown field":                {replace(`{"header":{`, `{"header":{"extra":1,`), "unknown field"},
		"unknown record":               {join(header, `{"other":{}}`+"\n", body, end), "unknown field"},
		"empty record":                 {join(header, "{}\n", body, end), "record 2 is empty"},
		"null record":                  {join(header, "null\n", body, end), "record 2 is empty"},
		"end count too high":           {join(lines[:last], endLine(last+1)), "end marker counts"},
		"end count too low":            {join(lines[:last], endLine(last-1)), "end marker counts"},
		"record dropped":               {join(lines[:3], lines[4:]), "end marker counts"},
		"end then records":             {join(header, end, body, end), "end marker counts"},
		"records after end":            {join(lines, `{"server":{"id":"x"}}`+"\n"), "after the end marker"},
		"text after end":               {join(lines, "trailing\n"), "after the end marker"},
		"second snapshot after end":    {join(lines, lines), "after the end marker"},
		"default namespace missing":    {join(minimal, endLine(1)), `namespace "default" missing`},
		"namespace twice":              {join(lines[:2], lines[1:last], endLine(last+1)), "twice"},
		"service before any namespace": {join(header, lines[svcThenIn], body, endLine(last+1)), "outside its namespace"},
		"instance before its service": {join(lines[:svcThenIn], lines[svcThenIn+1], lines[svcThenIn], lines[svcThenIn+2:]),
			"outside its service"},
		"instances out of order": {join(lines[:pair], lines[pair+1], lines[pair], lines[pair+2:]), "out of order"},
		"instance twice":         {join(lines[:pair+1], lines[pair:last], endLine(last+1)), "out of order"},
	}
}

func TestRestoreBadSnapshot(t *testing.T) {
	data := writeSnapshot(t, buildCatalog(t))
	for name, bad := range badSnapshots(t, data) {
		t.Run(name, func(t *testing.T) {
			err := restoreMustFail(t, bytes.NewReader(bad.data))
			if !strings.Contains(err.Error(), bad.wantErr) {
				t.Fatalf("Restore error %q does not mention %q", err, bad.wantErr)
			}
		})
	}
}

func TestRestoreTruncated(t *testing.T) {
	// A cut anywhere before the end marker's closing brace must be refused.
	// The final byte is the encoder's newline: cutting it loses nothing.
	cuts := func(data []byte, every bool) []int {
		var out []int
		for cut := 0; cut < len(data)-1; cut++ {
			atLine := data[cut] == '\n' || (cut > 0 && data[cut-1] == '\n')
			if every || atLine || cut%101 == 0 {
				out = append(out, cut)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		every bool
	}{
		// Every byte of a small catalog with each kind of record...
		{"small catalog", writeSnapshot(t, fuzzStore(t)), true},
		// ...and every record boundary of a large one.
		{"large catalog", writeSnapshot(t, buildCatalog(t)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One target takes every attempt: refused restores must not add
			// up to a change either.
			target := newRestoreTarget(t)
			for _, cut := range cuts(tc.data, tc.every) {
				target.mustFail(t, fmt.Sprintf("cut at %d of %d bytes", cut, len(tc.data)), bytes.NewReader(tc.data[:cut]))
			}
			s := New()
			if err := s.Restore(bytes.NewReader(tc.data[:len(tc.data)-1])); err != nil {
				t.Fatalf("Restore without the final newline: %v", err)
			}
		})
	}
}

func TestRestoreReadError(t *testing.T) {
	data := writeSnapshot(t, buildCatalog(t))
	boom := errors.New("disk on fire")
	readers := map[string]io.Reader{
		"error at once": iotest.ErrReader(boom),
		"error midway":  io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotest.ErrReader(boom)),
		"error before the end marker": io.MultiReader(bytes.NewReader(data[:bytes.LastIndex(data, []byte(`{"end"`))]),
			iotest.ErrReader(boom)),
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			err := restoreMustFail(t, r)
			if !strings.Contains(err.Error(), boom.Error()) {
				t.Errorf("error %q does not say what went wrong", err)
			}
		})
	}
	t.Run("one byte at a time", func(t *testing.T) {
		s := New()
		if err := s.Restore(iotest.OneByteReader(bytes.NewReader(data))); err != nil {
			t.Fatalf("Restore: %v", err)
		}
	})
}

// restoreTarget is a store holding a catalog, and what it looked like, for
// checking that refused restores leave it alone.
type restoreTarget struct {
	s       *Store
	before  storeState
	view    *ServiceView
	abandon <-chan struct{}
	nsCh    <-chan struct{}
}

func newRestoreTarget(t *testing.T) *restoreTarget {
	t.Helper()
	s := New()
	mustApply(t, s, 1, putNamespaceCmd("prod", NamespaceSettings{}))
	mustApply(t, s, 2, registerCmd(2, "prod", "web", "web-1", persistent("10.0.0.1", 80)))
	mustApply(t, s, 3, putServerCmd(Server{ID: "s1"}))
	rt := &restoreTarget{s: s, before: captureState(t, s), view: mustService(t, s, "prod", "web"), abandon: s.AbandonCh()}
	_, _, rt.nsCh = s.Namespaces()
	return rt
}

// mustFail restores from r, checks that the restore is refused with
// ErrBadSnapshot and changed nothing, and returns the error. what says which
// input it was.
func (rt *restoreTarget) mustFail(t *testing.T, what string, r io.Reader) error {
	t.Helper()
	err := rt.s.Restore(r)
	if !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("%s: Restore error = %v, want ErrBadSnapshot", what, err)
	}
	assertState(t, what+": after a refused restore", captureState(t, rt.s), rt.before)
	if mustService(t, rt.s, "prod", "web") != rt.view {
		t.Fatalf("%s: refused restore replaced a view", what)
	}
	if isClosed(rt.abandon) || isClosed(rt.nsCh) || isClosed(rt.view.WatchCh()) {
		t.Fatalf("%s: refused restore closed a channel", what)
	}
	if rt.s.AbandonCh() != rt.abandon {
		t.Fatalf("%s: refused restore replaced AbandonCh", what)
	}
	return err
}

// restoreMustFail checks a refused restore into a fresh target.
func restoreMustFail(t *testing.T, r io.Reader) error {
	t.Helper()
	return newRestoreTarget(t).mustFail(t, "restore", r)
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestSnapshotWriteError(t *testing.T) {
	s := buildCatalog(t)
	size := len(writeSnapshot(t, s))
	for _, after := range []int{0, 10, size / 2, size - 1} {
		t.Run(fmt.Sprintf("fail after %d", after), func(t *testing.T) {
			if _, err := s.Snapshot().WriteTo(&failWriter{after: after}); err == nil {
				t.Fatalf("WriteTo succeeded on a writer that failed after %d of %d bytes", after, size)
			}
		})
	}
}

func TestRestoreEmptyCatalog(t *testing.T) {
	data := writeSnapshot(t, New())
	dst := buildCatalog(t)
	if err := dst.Restore(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	assertState(t, "restored empty catalog", captureState(t, dst), captureState(t, New()))
}

func TestRestoredViewsAreIndependent(t *testing.T) {
	// Two stores restored from one snapshot share nothing: a write to one
	// does not show in the other.
	data := writeSnapshot(t, buildCatalog(t))
	a, b := New(), New()
	for _, s := range []*Store{a, b} {
		if err := s.Restore(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	want := captureState(t, b)
	mustApply(t, a, a.Index()+1, deleteServiceCmd("staging", "web"))
	mustApply(t, a, a.Index()+1, registerCmd(a.Index()+1, "prod", "web", "web-9", persistent("10.0.0.9", 80)))
	assertState(t, "untouched restored store", captureState(t, b), want)
	if reflect.DeepEqual(captureState(t, a), want) {
		t.Fatalf("writes to the other store had no effect")
	}
}

// TestSnapshotBytesAsEncodingJSON: every line of a snapshot is what
// encoding/json writes for its record, instances included (they are
// written without reflection, Instance.AppendJSON), so the format does not
// depend on which writer wrote it.
func TestSnapshotBytesAsEncodingJSON(t *testing.T) {
	s := buildCatalog(t)
	// Instances with every kind of string and field encoding/json escapes.
	r := rand.New(rand.NewPCG(3, 4))
	idx := s.Index()
	for k := range 300 {
		in := randInstance(r)
		in.Namespace, in.Service, in.ID = DefaultNamespace, "odd", fmt.Sprintf("i-%03d", k)
		in.Check = Check{Type: CheckTTL}
		in.Address, in.Port, in.Weight, in.Locality = fmt.Sprintf("10.1.%d.%d", k/250, k%250+1), 8080, 100, Locality{}
		if err := in.Normalize(); err != nil {
			continue // a value the store refuses is no snapshot's business
		}
		idx++
		if _, err := s.Apply(idx, &Command{Type: CommandRegister, Namespace: in.Namespace, Service: in.Service, ID: in.ID,
			Time: time.Unix(1_700_000_000, 0), Instance: in}); err != nil {
			continue
		}
	}
	lines := bytes.SplitAfter(writeSnapshot(t, s), []byte("\n"))
	instances := 0
	for _, line := range lines {
		if len(line) == 0 {
			continue
		}
		var rec snapRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		// The record as stored (decoding may have changed invalid UTF-8),
		// as encoding/json writes it.
		if rec.Instance != nil {
			instances++
			v, err := s.Service(rec.Instance.Namespace, rec.Instance.Service)
			if err != nil {
				t.Fatal(err)
			}
			rec.Instance = v.Instance(rec.Instance.ID)
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(rec); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(line, want.Bytes()) {
			t.Fatalf("snapshot line\n%s\nencoding/json writes\n%s", line, want.Bytes())
		}
	}
	if instances < 100 {
		t.Fatalf("only %d instance lines: the test registered too few to say anything", instances)
	}
}

// A snapshot is JSON lines: blank lines and a last line without its newline
// are fine; two records on a line, or one record over two lines, are
// refused with a message that says why.
func TestRestoreOneRecordPerLine(t *testing.T) {
	data := writeSnapshot(t, buildCatalog(t))
	lines := bytes.SplitAfter(data, []byte("\n"))
	spaced := bytes.Join(lines, []byte("\n  \n"))
	if err := New().Restore(bytes.NewReader(spaced)); err != nil {
		t.Fatalf("blank lines between records: %v", err)
	}
	if err := New().Restore(bytes.NewReader(bytes.TrimRight(data, "\n"))); err != nil {
		t.Fatalf("no newline after the end marker: %v", err)
	}
	joined := slices.Clone(data)
	i := bytes.IndexByte(joined, '\n')
	joined[i] = ' ' // the header and the first namespace on one line
	split := slices.Clone(data)
	j := bytes.Index(split, []byte(`,"service":`))
	split = slices.Concat(split[:j+1], []byte("\n"), split[j+1:]) // a record over two lines
	for name, bad := range map[string][]byte{"two records on a line": joined, "a record over two lines": split} {
		err := New().Restore(bytes.NewReader(bad))
		if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), "one record per line") {
			t.Errorf("%s: %v, want a bad snapshot that says a snapshot holds one record per line", name, err)
		}
	}
}
