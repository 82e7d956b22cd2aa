package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"sync"
)

// SnapshotVersion is the format version written in a snapshot's header.
const SnapshotVersion = 1

// snapRecord is one line of a snapshot: exactly one field is set. The first
// record is a header and the last an end marker carrying the record count,
// so a truncated stream is rejected rather than half-loaded.
type snapRecord struct {
	Header    *snapHeader `json:"header,omitempty"`
	Namespace *snapNS     `json:"namespace,omitempty"`
	Service   *snapSvc    `json:"service,omitempty"`
	Instance  *Instance   `json:"instance,omitempty"`
	Server    *Server     `json:"server,omitempty"`
	// SelfPreservation is written only once the mode has ever been set.
	SelfPreservation *SelfPreservation `json:"self_preservation,omitempty"`
	// ACL is written once access control holds anything, before its tokens.
	ACL   *snapACL `json:"acl,omitempty"`
	Token *Token   `json:"token,omitempty"`
	End   *snapEnd `json:"end,omitempty"`
}

type snapHeader struct {
	Format       string `json:"format"`
	Version      int    `json:"version"`
	Index        uint64 `json:"index"`
	NSIndex      uint64 `json:"ns_index"`
	ServersIndex uint64 `json:"servers_index"`
}

type snapNS struct {
	Namespace
	ViewIndex uint64 `json:"view_index"`
}

type snapSvc struct {
	Service
	ViewIndex uint64 `json:"view_index"`
}

type snapEnd struct {
	Records int `json:"records"`
}

// Snapshot is a point-in-time capture of the whole catalog. Taking it is
// cheap (views are immutable); writing it may run concurrently with writes.
type Snapshot struct {
	index uint64
	root  *catalog
	ns    []*NamespaceView
	svcs  [][]*ServiceView
}

// Snapshot captures the catalog. Call it between applies (the FSM does).
func (s *Store) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	root := s.root.Load()
	snap := &Snapshot{index: s.index.Load(), root: root}
	names := slices.Sorted(maps.Keys(root.namespaces))
	for _, n := range names {
		nv := root.namespaces[n].view.Load()
		snap.ns = append(snap.ns, nv)
		svcNames := slices.Sorted(maps.Keys(nv.services))
		views := make([]*ServiceView, 0, len(svcNames))
		for _, sn := range svcNames {
			views = append(views, nv.services[sn].view.Load())
		}
		snap.svcs = append(snap.svcs, views)
	}
	return snap
}

// Index is the log index the snapshot was taken at.
func (sn *Snapshot) Index() uint64 { return sn.index }

// WriteTo writes the snapshot as JSON lines.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: bufio.NewWriterSize(w, 64<<10)}
	enc := json.NewEncoder(cw)
	n := 0
	var line []byte
	put := func(r snapRecord) error {
		n++
		return enc.Encode(r)
	}
	err := put(snapRecord{Header: &snapHeader{Format: "switchyard-catalog", Version: SnapshotVersion,
		Index: sn.index, NSIndex: sn.root.nsIndex, ServersIndex: sn.root.serversIndex}})
	for k, nv := range sn.ns {
		if err != nil {
			break
		}
		err = put(snapRecord{Namespace: &snapNS{Namespace: nv.Namespace, ViewIndex: nv.Index}})
		for _, sv := range sn.svcs[k] {
			if err != nil {
				break
			}
			err = put(snapRecord{Service: &snapSvc{Service: sv.Service, ViewIndex: sv.Index}})
			for in := range sv.All {
				if err != nil {
					break
				}
				// The bulk of a snapshot: written without reflection, the
				// bytes encoding/json would write (TestSnapshotBytesAsEncodingJSON).
				n++
				line = append(in.AppendJSON(append(line[:0], `{"instance":`...)), '}', '\n')
				_, err = cw.Write(line)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(sn.root.servers)) {
		if err != nil {
			break
		}
		srv := sn.root.servers[id]
		err = put(snapRecord{Server: &srv})
	}
	if sp := sn.root.selfPres; err == nil && sp != (SelfPreservation{}) {
		err = put(snapRecord{SelfPreservation: &sp})
	}
	if a := sn.root.acl; err == nil && (a.bootstrapped || len(a.tokens) > 0) {
		err = put(snapRecord{ACL: &snapACL{Index: a.index, Bootstrapped: a.bootstrapped}})
		for _, id := range slices.Sorted(maps.Keys(a.tokens)) {
			if err != nil {
				break
			}
			err = put(snapRecord{Token: a.tokens[id]})
		}
	}
	if err == nil {
		err = enc.Encode(snapRecord{End: &snapEnd{Records: n}})
	}
	if err == nil {
		err = cw.w.(*bufio.Writer).Flush()
	}
	if err != nil {
		return cw.n, fmt.Errorf("store: write snapshot: %w", err)
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ErrBadSnapshot: a snapshot that cannot be read whole. Nothing is loaded.
var ErrBadSnapshot = errors.New("bad snapshot")

// Restore replaces the whole catalog with the snapshot read from r. The new
// catalog is built aside and swapped in only when the snapshot has been read
// whole; then AbandonCh is closed so blocking queries re-run. On error the
// store is unchanged.
func (s *Store) Restore(r io.Reader) error {
	root, index, err := readSnapshot(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.root.Swap(root)
	s.index.Store(index)
	ch := make(chan struct{})
	prev := s.abandon.Swap(&ch)
	close(*prev)
	close(old.changed)
	return nil
}

func readSnapshot(r io.Reader) (*catalog, uint64, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("store: restore: %w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
	}
	next, stop := decodeRecords(bufio.NewReaderSize(r, 64<<10))
	defer stop()
	first, err := next()
	if err != nil {
		return nil, 0, fmt.Errorf("store: restore: %w: header: %w", ErrBadSnapshot, err)
	}
	h := first.Header
	if h == nil || h.Format != "switchyard-catalog" {
		return nil, 0, bad("not a catalog snapshot")
	}
	if h.Version != SnapshotVersion {
		return nil, 0, bad("version %d, this server reads version %d", h.Version, SnapshotVersion)
	}
	c := &catalog{namespaces: map[string]*nsEntry{}, servers: map[string]Server{},
		nsIndex: h.NSIndex, serversIndex: h.ServersIndex, acl: emptyACL, changed: make(chan struct{})}
	var sawACL bool
	// A snapshot keeps no removals: a restored view can tell changes only
	// from the snapshot's own index on. Immutable, so shared by all.
	restored := &changeLog{horizon: h.Index}
	var (
		curNS    *NamespaceView
		curSvc   *ServiceView
		records  = 1
		finished bool
	)
	for !finished {
		rec, err := next()
		if err != nil {
			return nil, 0, fmt.Errorf("store: restore: %w: record %d: %w", ErrBadSnapshot, records+1, err)
		}
		switch {
		case rec.End != nil:
			if rec.End.Records != records {
				return nil, 0, bad("end marker counts %d records, read %d", rec.End.Records, records)
			}
			finished = true
			continue
		case rec.Namespace != nil:
			if c.namespaces[rec.Namespace.Name] != nil {
				return nil, 0, bad("namespace %q twice", rec.Namespace.Name)
			}
			curNS = &NamespaceView{Namespace: rec.Namespace.Namespace, Index: rec.Namespace.ViewIndex,
				services: map[string]*svcEntry{}, changed: make(chan struct{})}
			e := &nsEntry{}
			e.view.Store(curNS)
			c.namespaces[rec.Namespace.Name] = e
			curSvc = nil
		case rec.Service != nil:
			if curNS == nil || rec.Service.Namespace != curNS.Namespace.Name {
				return nil, 0, bad("service %q outside its namespace", rec.Service.Name)
			}
			if curNS.services[rec.Service.Name] != nil {
				return nil, 0, bad("service %q twice in namespace %q", rec.Service.Name, rec.Service.Namespace)
			}
			curSvc = &ServiceView{Service: rec.Service.Service, Index: rec.Service.ViewIndex, changes: restored,
				changed: make(chan struct{})}
			se := &svcEntry{}
			se.view.Store(curSvc)
			curNS.services[rec.Service.Name] = se
		case rec.Instance != nil:
			in := rec.Instance
			if curSvc == nil || in.Namespace != curSvc.Service.Namespace || in.Service != curSvc.Service.Name {
				return nil, 0, bad("instance %q outside its service", in.ID)
			}
			if last := curSvc.list.last(); last != nil && last.ID >= in.ID {
				return nil, 0, bad("instance %q out of order", in.ID)
			}
			curSvc.list.push(in)
		case rec.Server != nil:
			if _, dup := c.servers[rec.Server.ID]; dup {
				return nil, 0, bad("server %q twice", rec.Server.ID)
			}
			c.servers[rec.Server.ID] = *rec.Server
		case rec.SelfPreservation != nil:
			c.selfPres = *rec.SelfPreservation
		case rec.ACL != nil:
			if sawACL {
				return nil, 0, bad("access control header twice")
			}
			sawACL = true
			c.acl = &acl{tokens: map[string]*Token{}, byHash: map[string]*Token{}, index: rec.ACL.Index, bootstrapped: rec.ACL.Bootstrapped}
		case rec.Token != nil:
			tok := rec.Token
			if !sawACL {
				return nil, 0, bad("token %s before the access control header", tok.AccessorID)
			}
			if err := tok.validate(); err != nil {
				return nil, 0, bad("token %s: %v", tok.AccessorID, err)
			}
			if c.acl.tokens[tok.AccessorID] != nil || (tok.SecretHash != "" && c.acl.byHash[tok.SecretHash] != nil) {
				return nil, 0, bad("token %s twice", tok.AccessorID)
			}
			c.acl.tokens[tok.AccessorID] = tok
			if tok.SecretHash != "" {
				c.acl.byHash[tok.SecretHash] = tok
			}
		default:
			return nil, 0, bad("record %d is empty", records+1)
		}
		records++
	}
	if c.namespaces[DefaultNamespace] == nil {
		return nil, 0, bad("namespace %q missing", DefaultNamespace)
	}
	if _, err := next(); err != io.EOF {
		return nil, 0, bad("data after the end marker")
	}
	// Fallbacks must name namespaces of this snapshot, without cycles, or
	// a later put-namespace would walk off the chain.
	for name, e := range c.namespaces {
		seen := map[string]bool{name: true}
		for p := e.view.Load().Namespace.Fallback; p != ""; {
			pe := c.namespaces[p]
			if pe == nil {
				return nil, 0, bad("namespace %q falls back to missing namespace %q", name, p)
			}
			if seen[p] {
				return nil, 0, bad("namespace %q: fallback cycle through %q", name, p)
			}
			seen[p] = true
			p = pe.view.Load().Namespace.Fallback
		}
	}
	return c, h.Index, nil
}

// decodeRecords reads the records that follow a snapshot's header, one per
// line (the file is JSON lines: newlines inside strings are escaped, so a
// line break ends a record). Lines are cut here, which costs little, and
// decoded into snapRecords by one worker per CPU, in chunks, then handed
// back in order: decoding is most of a restore's time, and a new or
// restarted server waits for it. Blank lines are skipped; a line holding
// more than one value is an error. next returns io.EOF at the end of the
// stream; stop ends the workers early.
func decodeRecords(r *bufio.Reader) (next func() (snapRecord, error), stop func()) {
	const chunkSize = 256
	type chunk struct {
		lines   [][]byte
		recs    []snapRecord
		errs    []error
		readErr error // after the lines: io.EOF at the end of the stream
		done    chan struct{}
	}
	workers := max(runtime.GOMAXPROCS(0), 1)
	inOrder := make(chan *chunk, 2*workers)
	work := make(chan *chunk, 2*workers)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				c.recs, c.errs = make([]snapRecord, len(c.lines)), make([]error, len(c.lines))
				for k, line := range c.lines {
					c.errs[k] = decodeRecord(line, &c.recs[k])
				}
				close(c.done)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		defer close(inOrder)
		for {
			c := &chunk{done: make(chan struct{})}
			for len(c.lines) < chunkSize {
				line, err := r.ReadBytes('\n')
				// A line cut short by a read error is that error's,
				// not a record's; the last line may lack its newline.
				if (err == nil || err == io.EOF) && len(bytes.TrimSpace(line)) > 0 {
					c.lines = append(c.lines, line)
				}
				if err != nil {
					c.readErr = err
					break
				}
			}
			// To a worker first: a chunk the consumer may wait for has
			// always been handed to one.
			for _, ch := range []chan *chunk{work, inOrder} {
				select {
				case ch <- c:
				case <-quit:
					return
				}
			}
			if c.readErr != nil {
				return
			}
		}
	}()
	var (
		cur *chunk
		k   int
	)
	next = func() (snapRecord, error) {
		for cur == nil || k == len(cur.lines) {
			if cur != nil && cur.readErr != nil {
				return snapRecord{}, cur.readErr
			}
			c, ok := <-inOrder
			if !ok {
				return snapRecord{}, io.ErrUnexpectedEOF
			}
			<-c.done
			cur, k = c, 0
		}
		k++
		return cur.recs[k-1], cur.errs[k-1]
	}
	stop = func() {
		close(quit)
		// Drain what the reader queued, so the workers finish and exit.
		for c := range inOrder {
			<-c.done
		}
		wg.Wait()
	}
	return next, stop
}

// decodeRecord decodes one line of a snapshot: exactly one record, with no
// field the record does not know.
func decodeRecord(line []byte, rec *snapRecord) error {
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(rec); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("%w (a snapshot holds one record per line)", err)
		}
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("more than one value on the line (a snapshot holds one record per line)")
	}
	return nil
}
