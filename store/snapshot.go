package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
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
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	dec.DisallowUnknownFields()
	var first snapRecord
	if err := dec.Decode(&first); err != nil {
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
		var rec snapRecord
		if err := dec.Decode(&rec); err != nil {
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
	if _, err := dec.Token(); err != io.EOF {
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
