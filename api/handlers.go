package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
)

func (s *Server) health(c *gin.Context) {
	id, _ := s.node.Leader()
	h := wire.Health{Live: true, Ready: s.node.Ready(), Leader: id, AppliedIndex: s.node.Store().Index(),
		SelfPreservation: s.node.Store().SelfPreservation()}
	status := http.StatusOK
	if !h.Ready {
		status = http.StatusServiceUnavailable
	}
	setIndex(c, h.AppliedIndex)
	c.JSON(status, h)
}

func (s *Server) leader(c *gin.Context) {
	id, addr := s.node.Leader()
	if id == "" {
		s.fail(c, fmt.Errorf("%w: no leader is known to this server right now", raft.ErrNoLeader))
		return
	}
	li := wire.LeaderInfo{ID: id, RaftAddr: addr}
	idx, servers := s.node.Store().Servers()
	setIndex(c, idx)
	for _, srv := range servers {
		if srv.ID == id {
			li.HTTPAddr = srv.HTTPAddr
		}
	}
	c.JSON(http.StatusOK, li)
}

func (s *Server) members(c *gin.Context) {
	ms, err := s.node.Members()
	if err != nil {
		s.fail(c, err)
		return
	}
	var gms []gossip.Member
	if s.cfg.Gossip != nil {
		gms = s.cfg.Gossip.Members()
	}
	idx, _ := s.node.Store().Servers()
	setIndex(c, idx)
	c.JSON(http.StatusOK, wire.MembersResponse{Members: mergeMembers(ms, gms, s.cfg.Gossip != nil)})
}

// mergeMembers joins the Raft configuration and the gossip pool by server
// id: every server of either appears once, sorted by id.
func mergeMembers(rms []raft.Member, gms []gossip.Member, haveGossip bool) []wire.Member {
	byID := map[string]*wire.Member{}
	for _, m := range rms {
		status := "unknown"
		if !haveGossip {
			status = ""
		}
		byID[m.ID] = &wire.Member{ID: m.ID, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr, Locality: m.Locality, Role: m.Role,
			ServerRole: m.ServerRole, Protocol: m.Protocol, Status: status}
	}
	for _, g := range gms {
		w := byID[g.Name]
		if w == nil {
			w = &wire.Member{ID: g.Name, RaftAddr: g.Meta.RaftAddr, HTTPAddr: g.Meta.HTTPAddr, Role: "none", ServerRole: store.ServerRole(g.Meta.Role),
				Locality: store.Locality{Region: g.Meta.Region, Datacenter: g.Meta.Datacenter, Unit: g.Meta.Unit}}
			byID[g.Name] = w
		}
		// A Raft member's HTTP address is the one it recorded in the
		// catalog itself, never gossip's word (registry keyring sends
		// secrets there).
		w.GossipAddr, w.Status, w.Self = g.Addr, string(g.Status), g.Self
		if !g.Since.IsZero() {
			w.StatusSince = g.Since.UTC().Format(time.RFC3339Nano)
		}
		w.RTTMs = float64(g.RTT.Microseconds()) / 1000
	}
	out := make([]wire.Member, 0, len(byID))
	for _, w := range byID {
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b wire.Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// endSelfPreservation lets an operator end self-preservation: the
// instances still silent are then removed as their deregister_after
// passes. Ending a mode that is not active changes nothing.
func (s *Server) endSelfPreservation(c *gin.Context) {
	// Decide from an up-to-date catalog: a server behind the leader could
	// answer "not active" while it is, or end a mode heartbeats ended.
	if !s.ready(c) {
		return
	}
	if err := s.node.ConsistentRead(c.Request.Context()); err != nil {
		s.fail(c, err)
		return
	}
	sp := s.node.Store().SelfPreservation()
	if sp.Active {
		next := sp
		next.Active, next.EndedAt, next.EndedBy = false, time.Now().UTC(), "operator"
		if _, ok := s.write(c, &store.Command{Type: store.CommandSetSelfPreservation, SelfPreservation: &next}); !ok {
			return
		}
		s.logger.Warn("self-preservation ended by an operator", "remote", s.clientIP(c))
	}
	c.JSON(http.StatusOK, s.node.Store().SelfPreservation())
}

func (s *Server) join(c *gin.Context) {
	b, ok := s.body(c)
	if !ok {
		return
	}
	var req wire.JoinRequest
	if err := decodeStrict(b, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.node.Join(c.Request.Context(), req.ID, req.RaftAddr); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, req)
}

func (s *Server) listNamespaces(c *gin.Context) {
	var out []store.Namespace
	_, ok := s.block(c, func() (uint64, <-chan struct{}, error) {
		idx, nss, ch := s.cat.Namespaces()
		out = nss
		return idx, ch, nil
	})
	if ok {
		shown := make([]store.Namespace, 0, len(out))
		for _, n := range out {
			if s.AllowedSome(c, store.AccessRead, n.Name) {
				shown = append(shown, n)
			}
		}
		c.JSON(http.StatusOK, wire.NamespacesResponse{Namespaces: shown})
	}
}

func (s *Server) getNamespace(c *gin.Context) {
	var nv *store.NamespaceView
	_, ok := s.block(c, func() (uint64, <-chan struct{}, error) {
		v, err := s.cat.Namespace(c.Param("ns"))
		if err != nil {
			return 0, nil, err
		}
		nv = v
		return v.Index, v.WatchCh(), nil
	})
	if ok {
		c.JSON(http.StatusOK, nv.Namespace)
	}
}

func (s *Server) putNamespace(c *gin.Context) {
	b, ok := s.body(c)
	if !ok {
		return
	}
	name := c.Param("ns")
	ns, idx, err := s.cat.PutNamespace(c.Request.Context(), name, func(cur store.NamespaceSettings) (store.NamespaceSettings, error) {
		return DecodeNamespaceSettings(cur, b)
	}, func(cur, next store.NamespaceSettings) error {
		// A lookup that falls back serves the fallback's instances to
		// whoever may read this namespace: only a token that may read all
		// of the fallback may set it.
		if next.Fallback != "" && next.Fallback != cur.Fallback {
			return s.Authorize(c, store.AccessRead, next.Fallback, "")
		}
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	setIndex(c, idx)
	c.JSON(http.StatusOK, ns)
}

func (s *Server) deleteNamespace(c *gin.Context) {
	if s.wrote(c)(s.cat.DeleteNamespace(c.Request.Context(), c.Param("ns"))) {
		c.JSON(http.StatusOK, gin.H{"deleted": c.Param("ns")})
	}
}

func (s *Server) listServices(c *gin.Context) {
	var views []*store.ServiceView
	_, ok := s.block(c, func() (uint64, <-chan struct{}, error) {
		nv, svcs, err := s.cat.Services(c.Param("ns"))
		if err != nil {
			return 0, nil, err
		}
		views = svcs
		return nv.Index, nv.WatchCh(), nil
	})
	if !ok {
		return
	}
	out := wire.ServicesResponse{Namespace: c.Param("ns"), Services: make([]wire.ServiceSummary, 0, len(views))}
	for _, v := range views {
		if !s.Allowed(c, store.AccessRead, v.Service.Namespace, v.Service.Name) {
			continue
		}
		sum := wire.ServiceSummary{Service: v.Service, Instances: v.Len(), Healthy: v.Healthy(), Protected: v.Protected(),
			Datacenters: map[string]wire.Count{}}
		for _, in := range v.Instances() {
			n := sum.Datacenters[in.Locality.Datacenter]
			n.Instances++
			if in.Healthy {
				n.Healthy++
			}
			sum.Datacenters[in.Locality.Datacenter] = n
		}
		out.Services = append(out.Services, sum)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) serviceQuery(c *gin.Context, out **store.ServiceView) store.QueryFunc {
	return func() (uint64, <-chan struct{}, error) {
		v, err := s.cat.Service(c.Param("ns"), c.Param("svc"))
		if err != nil {
			return 0, nil, err
		}
		*out = v
		return v.Index, v.WatchCh(), nil
	}
}

func (s *Server) getService(c *gin.Context) {
	var v *store.ServiceView
	if _, ok := s.block(c, s.serviceQuery(c, &v)); ok {
		c.JSON(http.StatusOK, v.Service)
	}
}

func (s *Server) putService(c *gin.Context) {
	b, ok := s.body(c)
	if !ok {
		return
	}
	svc, idx, err := s.cat.PutService(c.Request.Context(), c.Param("ns"), c.Param("svc"), func(cur store.ServiceSettings) (store.ServiceSettings, error) {
		return DecodeServiceSettings(cur, b)
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	setIndex(c, idx)
	c.JSON(http.StatusOK, svc)
}

func (s *Server) deleteService(c *gin.Context) {
	if s.wrote(c)(s.cat.DeleteService(c.Request.Context(), c.Param("ns"), c.Param("svc"))) {
		c.JSON(http.StatusOK, gin.H{"deleted": c.Param("svc")})
	}
}

type listKey struct{}

// encodeInstances renders a view's full instance list once per view: views
// are immutable, so every later lookup of the same version writes cached
// bytes.
func encodeInstances(v *store.ServiceView) []byte {
	return v.Memo(listKey{}, func() any { return mustJSON(listResponse(v, v.Instances())) }).([]byte)
}

// listResponse is a plain listing of v carrying ins: all its instances,
// or those a delta sends.
func listResponse(v *store.ServiceView, ins []*store.Instance) wire.InstancesResponse {
	out := wire.InstancesResponse{Namespace: v.Service.Namespace, Service: v.Service.Name,
		Settings: v.Service.ServiceSettings, Index: v.Index, Instances: make([]wire.Instance, len(ins))}
	for k, in := range ins {
		out.Instances[k].Instance = in
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every field is a plain value: this cannot happen.
		panic(fmt.Sprintf("api: encode: %v", err))
	}
	return b
}

// HeaderProtected marks an answer widened by the protect threshold.
const HeaderProtected = "X-Switchyard-Protected"

// listInstances lists a service's instances. Without healthy=true or near=
// it is the catalog's full list; with either, it is a selection: the
// instances that may receive the caller's traffic, nearest first (see
// selectInstances).
//
// With delta=, the answer carries a delta token (HeaderDeltaToken); with a
// token, it may hold only the changes since that token's answer (see
// delta.go).
func (s *Server) listInstances(c *gin.Context) {
	q, ok := s.lookupQuery(c)
	if !ok {
		return
	}
	dq, err := parseDelta(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !q.selection {
		var v *store.ServiceView
		if _, ok := s.block(c, s.serviceQuery(c, &v)); ok {
			if dq.want {
				answerList(c, v, dq)
				return
			}
			c.Data(http.StatusOK, "application/json; charset=utf-8", encodeInstances(v))
		}
		return
	}
	var r selected
	if !s.blockSelection(c, q.caller, &r) {
		return
	}
	if r.protected {
		c.Header(HeaderProtected, "1")
	}
	if dq.want {
		r.answer(c, dq)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", r.body())
}

func (s *Server) getInstance(c *gin.Context) {
	var v *store.ServiceView
	if _, ok := s.block(c, s.serviceQuery(c, &v)); !ok {
		return
	}
	in := v.Instance(c.Param("id"))
	if in == nil {
		s.fail(c, fmt.Errorf("instance %q in %s/%s: %w", c.Param("id"), c.Param("ns"), c.Param("svc"), store.ErrInstanceNotFound))
		return
	}
	writeInstance(c, in)
}

// instanceBufs holds the buffers writeInstance encodes into.
var instanceBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeInstance answers 200 with the instance, as c.JSON would but
// without reflection (store.Instance.AppendJSON).
func writeInstance(c *gin.Context, in *store.Instance) {
	bp := instanceBufs.Get().(*[]byte)
	b := in.AppendJSON((*bp)[:0])
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
	if cap(b) <= 64<<10 {
		*bp = b
		instanceBufs.Put(bp)
	}
}

func (s *Server) register(c *gin.Context) {
	b, ok := s.body(c)
	if !ok {
		return
	}
	in, err := DecodeRegister(c.Param("ns"), c.Param("svc"), c.Param("id"), b)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerInstance(c)(s.cat.Register(c.Request.Context(), in))
}

// answerInstance answers a write with the instance as stored.
func (s *Server) answerInstance(c *gin.Context) func(*store.Instance, uint64, error) {
	return func(in *store.Instance, idx uint64, err error) {
		if idx > 0 {
			setIndex(c, idx)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		writeInstance(c, in)
	}
}

// wrote answers a failed write and sets the index of a successful one; it
// reports whether the write succeeded.
func (s *Server) wrote(c *gin.Context) func(uint64, error) bool {
	return func(idx uint64, err error) bool {
		if err != nil {
			s.fail(c, err)
			return false
		}
		setIndex(c, idx)
		return true
	}
}

// patchInstance changes an instance's weight or traffic switch without
// re-registering it: its health, check state and liveness stay.
func (s *Server) patchInstance(c *gin.Context) {
	b, ok := s.body(c)
	if !ok {
		return
	}
	var req wire.PatchRequest
	if err := decodeStrict(b, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Weight == nil && req.Enabled == nil {
		s.fail(c, fmt.Errorf("%w: give weight or enabled (or both)", ErrBadRequest))
		return
	}
	s.answerInstance(c)(s.cat.Patch(c.Request.Context(), c.Param("ns"), c.Param("svc"), c.Param("id"),
		store.InstancePatch{Weight: req.Weight, Enabled: req.Enabled}, req.IfIndex))
}

func (s *Server) deregister(c *gin.Context) {
	id := c.Param("id")
	if s.wrote(c)(s.cat.Deregister(c.Request.Context(), c.Param("ns"), c.Param("svc"), id)) {
		c.JSON(http.StatusOK, gin.H{"deregistered": id})
	}
}

// checkStatus answers what the health check of an instance last saw.
func (s *Server) checkStatus(c *gin.Context) {
	ns, svc, id := c.Param("ns"), c.Param("svc"), c.Param("id")
	v, in, err := s.cat.Local(ns, svc, id, "")
	if err != nil {
		s.fail(c, err)
		return
	}
	out := wire.CheckStatus{Namespace: ns, Service: svc, ID: id, Type: in.Check.Type, Target: in.Check.Target, Healthy: in.Healthy}
	if s.cfg.Checks != nil {
		if err := s.cfg.Checks.CheckStatus(c.Request.Context(), in, &out); err != nil {
			s.fail(c, err)
			return
		}
	}
	if !s.seesProbeDetail(c) {
		// A probe's output says how the network answered (refused, timed
		// out, which error page): with it, anyone who may register a check
		// could map the network the servers sit in. The verdict and a
		// short reason are what an instance's owner needs.
		out.Output, out.DurationMs = "", 0
	}
	setIndex(c, v.Index)
	c.JSON(http.StatusOK, out)
}

func (s *Server) heartbeat(c *gin.Context) {
	v, in, err := s.cat.Heartbeat(c.Param("ns"), c.Param("svc"), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	setIndex(c, v.Index)
	// healthy is the catalog's verdict; an instance back from silence turns
	// healthy on every server within the judge's next round.
	c.JSON(http.StatusOK, wire.HeartbeatResponse{ID: in.ID, Healthy: in.Healthy})
}
