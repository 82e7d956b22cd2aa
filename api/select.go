package api

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/disaster"
	"github.com/switchyard-io/switchyard/store"
)

// lookupQuery is what a lookup asks for.
type lookupQuery struct {
	// selection: healthy=true or near= was given, so the answer is the
	// instances that may receive the caller's traffic.
	selection bool
	caller    store.Locality
}

// lookupQuery reads healthy= and near=. Without near= the caller is taken
// to run where this server runs.
func (s *Server) lookupQuery(c *gin.Context) (lookupQuery, bool) {
	q := lookupQuery{caller: s.cfg.Locality}
	if v := c.Query("healthy"); v != "" {
		b, err := parseBool("healthy", v)
		if err != nil {
			s.fail(c, err)
			return q, false
		}
		q.selection = b
	}
	if v, ok := c.GetQuery("near"); ok {
		l, err := ParseLocality(v)
		if err != nil {
			s.fail(c, err)
			return q, false
		}
		q.selection, q.caller = true, l
	}
	return q, true
}

func parseBool(name, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "1", "t":
		return true, nil
	case "false", "0", "f":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s=%q: use true or false", ErrBadRequest, name, v)
}

// ParseLocality reads "region/datacenter/unit"; trailing parts may be left
// out ("eu", "eu/eu-west-1"), and "" means no locality.
func ParseLocality(s string) (store.Locality, error) {
	var l store.Locality
	if s == "" {
		return l, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) > 3 {
		return l, fmt.Errorf("%w: near=%q: use region/datacenter/unit", ErrBadRequest, s)
	}
	for k, p := range parts {
		if err := store.ValidateName([]string{"near region", "near datacenter", "near unit"}[k], p); err != nil {
			return l, fmt.Errorf("%w: near=%q: %v", ErrBadRequest, s, err)
		}
	}
	l.Region = parts[0]
	if len(parts) > 1 {
		l.Datacenter = parts[1]
	}
	if len(parts) > 2 {
		l.Unit = parts[2]
	}
	return l, nil
}

// selKey memoises a view's selection for one caller locality.
type selKey struct{ caller store.Locality }

// viewSelection is a view's selection for one caller, with its picker and,
// once asked for, the encoded answer.
type viewSelection struct {
	sel    disaster.Selection
	picker *disaster.Picker
	once   sync.Once
	body   []byte
}

func (s *Server) viewSelection(v *store.ServiceView, caller store.Locality) *viewSelection {
	return v.Memo(selKey{caller}, func() any {
		sel := disaster.Select(disaster.Input{Caller: caller, Settings: v.Service.ServiceSettings,
			Instances: v.Instances, Topology: s.cfg.Topology})
		return &viewSelection{sel: sel, picker: disaster.NewPicker(sel)}
	}).(*viewSelection)
}

// selected is the outcome of a selection query: the view that served (nil
// when no namespace of the chain had a usable instance), and the request's
// namespace and service for the answer.
type selected struct {
	ns, svc   string
	caller    store.Locality
	index     uint64
	served    *store.ServiceView
	vs        *viewSelection
	protected bool
}

// maxFallback bounds a fallback chain walk (cycles are refused at write
// time; this guards the walk anyway).
const maxFallback = 16

// selectionQuery finds the instances that may receive the caller's
// traffic: those of ns/svc chosen by disaster.Select, or, when it has no
// usable instance (no such service, or nothing left after selection), those
// of the first namespace of ns's fallback chain that has. The answer's
// index is the highest of every view it looked at, and it wakes when any of
// them changes.
func (s *Server) selectionQuery(ns, svc string, caller store.Locality, out *selected) store.QueryFunc {
	return func() (uint64, <-chan struct{}, error) {
		st := s.node.Store()
		*out = selected{ns: ns, svc: svc, caller: caller}
		var watches []<-chan struct{}
		cur := ns
		for hop := 0; cur != "" && hop < maxFallback; hop++ {
			nv, err := st.Namespace(cur)
			if err != nil {
				if hop == 0 {
					return 0, nil, err
				}
				break // a fallback deleted meanwhile: the chain ends here
			}
			v, err := st.Service(cur, svc)
			if err == nil {
				vs := s.viewSelection(v, caller)
				out.index = max(out.index, v.Index)
				watches = append(watches, v.WatchCh())
				if len(vs.sel.Candidates) > 0 {
					out.served, out.vs, out.protected = v, vs, vs.sel.Protected
					break
				}
				if out.served == nil {
					// Nothing usable here; remember the first view so that
					// an empty answer still names the asked service.
					out.served, out.vs = v, vs
				}
			} else {
				out.index = max(out.index, nv.Index)
				watches = append(watches, nv.WatchCh())
			}
			cur = nv.Namespace.Fallback
		}
		if out.served == nil {
			return out.index, anyOf(watches), fmt.Errorf("service %q in namespace %q or its fallbacks: %w", svc, ns, store.ErrServiceNotFound)
		}
		if len(out.vs.sel.Candidates) == 0 {
			// Nobody in the chain could serve: answer the asked
			// namespace's (empty) selection.
			out.protected = out.vs.sel.Protected
		}
		return out.index, anyOf(watches), nil
	}
}

// body encodes the answer; an answer served by the asked namespace alone
// is encoded once per view and caller.
func (r *selected) body() []byte {
	build := func() []byte {
		v, sel := r.served, r.vs.sel
		caller := r.caller
		out := InstancesResponse{Namespace: r.ns, Service: r.svc, Settings: v.Service.ServiceSettings, Index: r.index,
			Near: &caller, ServedBy: v.Service.Namespace, Protected: sel.Protected,
			Instances: make([]wire.Instance, len(sel.Candidates))}
		for _, l := range sel.Levels {
			out.Levels = append(out.Levels, l.Name())
		}
		for k, c := range sel.Candidates {
			out.Instances[k] = wire.Instance{Instance: c.Instance, Level: c.Level.Name()}
		}
		return mustJSON(out)
	}
	if r.served.Service.Namespace != r.ns || r.index != r.served.Index {
		return build()
	}
	r.vs.once.Do(func() { r.vs.body = build() })
	return r.vs.body
}

// anyOf returns a channel closed when any of chs closes. The goroutines it
// starts end when it closes, or at most when the next write to the catalog
// closes one of the channels.
func anyOf(chs []<-chan struct{}) <-chan struct{} {
	if len(chs) == 1 {
		return chs[0]
	}
	out := make(chan struct{})
	var once sync.Once
	for _, ch := range chs {
		go func() {
			select {
			case <-ch:
				once.Do(func() { close(out) })
			case <-out:
			}
		}()
	}
	return out
}

// pick answers one instance for the caller, chosen by the service's
// balancer or balancer=, among the instances a selection would return.
func (s *Server) pick(c *gin.Context) {
	q, ok := s.lookupQuery(c)
	if !ok {
		return
	}
	balancer := c.Query("balancer")
	if balancer != "" && !isBalancer(balancer) {
		s.fail(c, fmt.Errorf("%w: balancer=%q: use one of %s", ErrBadRequest, balancer, strings.Join(disaster.Balancers, ", ")))
		return
	}
	key := c.Query("key")
	var r selected
	if _, ok := s.block(c, s.selectionQuery(c.Param("ns"), c.Param("svc"), q.caller, &r)); !ok {
		return
	}
	if balancer == "" {
		balancer = r.served.Service.Balancer
	}
	if balancer == disaster.ConsistentHash && key == "" {
		s.fail(c, fmt.Errorf("%w: balancer consistent_hash needs key= (a session or user id)", ErrBadRequest))
		return
	}
	cand, err := r.vs.picker.Pick(disaster.PickOptions{Balancer: balancer, Rand: rand.Uint64, Key: key})
	if err != nil {
		s.fail(c, fmt.Errorf("%w: %s/%s has no instance that may take traffic from %s (none healthy, enabled and weighted in its namespace or fallbacks)",
			ErrNoInstance, r.ns, r.svc, q.caller))
		return
	}
	if r.protected {
		c.Header(HeaderProtected, "1")
	}
	caller := q.caller
	c.JSON(http.StatusOK, wire.PickResponse{Namespace: r.ns, Service: r.svc, ServedBy: r.served.Service.Namespace,
		Near: &caller, Balancer: balancer, Protected: r.protected,
		Instance: wire.Instance{Instance: cand.Instance, Level: cand.Level.Name()}})
}

func isBalancer(b string) bool {
	for _, x := range disaster.Balancers {
		if x == b {
			return true
		}
	}
	return false
}
