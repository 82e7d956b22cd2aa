package api

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/route"
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
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.fail(c, fmt.Errorf("%w: healthy=%q: use true or false", ErrBadRequest, v))
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

// FormatLocality writes a locality as near= takes it (see
// store.Locality.Path).
func FormatLocality(l store.Locality) string { return l.Path() }

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

// selected is the outcome of a selection query.
type selected struct {
	ns, svc   string
	caller    store.Locality
	res       route.Result
	protected bool
}

// selectionQuery runs route.Lookup as a blocking query: the answer's
// index is the highest of every view the lookup read, and it wakes when any
// of them changes. A lookup served through a namespace's fallbacks reads
// several views; the goroutines that merge their channels end when done
// closes (see blockSelection), so a wait that times out leaves none behind.
func (s *Server) selectionQuery(done <-chan struct{}, ns, svc string, caller store.Locality, out *selected) store.QueryFunc {
	return func() (uint64, <-chan struct{}, error) {
		res, err := route.Lookup(s.cat, route.Query{Namespace: ns, Service: svc, Caller: caller, Topology: s.cfg.Topology})
		*out = selected{ns: ns, svc: svc, caller: caller, res: res}
		if err == nil {
			out.protected = res.Chosen.Selection.Protected
		}
		var watch <-chan struct{}
		if len(res.Watches) > 0 {
			watch = anyOf(done, res.Watches)
		}
		return res.Index, watch, err
	}
}

// blockSelection answers a selection into out as a blocking query (see
// block), and ends the goroutines its wait started before it returns.
func (s *Server) blockSelection(c *gin.Context, caller store.Locality, out *selected) bool {
	done := make(chan struct{})
	defer close(done)
	_, ok := s.block(c, s.selectionQuery(done, c.Param("ns"), c.Param("svc"), caller, out))
	return ok
}

// bodyKey memoises an answer served by the asked namespace itself.
type bodyKey struct{ caller store.Locality }

// body encodes the answer; one served by the asked namespace alone is
// encoded once per view and caller.
func (r *selected) body() []byte {
	build := func() []byte { return mustJSON(r.response(r.res.Chosen.Selection.Candidates)) }
	if !r.memoable() {
		return build()
	}
	return r.res.Served.Memo(bodyKey{r.caller}, func() any { return build() }).([]byte)
}

// memoable: the answer depends on the served view alone (no fallback, no
// other view read at a later index), so it may be memoised on that view.
func (r *selected) memoable() bool {
	v := r.res.Served
	return v.Service.Namespace == r.ns && r.res.Index == v.Index
}

// response is the selection's answer carrying cands: all its candidates
// (body), or those a delta sends.
func (r *selected) response(cands []route.Candidate) wire.InstancesResponse {
	v, sel := r.res.Served, r.res.Chosen.Selection
	caller := r.caller
	out := wire.InstancesResponse{Namespace: r.ns, Service: r.svc, Settings: v.Service.ServiceSettings, Index: r.res.Index,
		Near: &caller, ServedBy: v.Service.Namespace, Protected: sel.Protected,
		Instances: make([]wire.Instance, len(cands))}
	for _, l := range sel.Levels {
		out.Levels = append(out.Levels, l.Name())
	}
	for k, c := range cands {
		out.Instances[k] = wire.Instance{Instance: c.Instance, Level: c.Level.Name()}
	}
	return out
}

// anyOf returns a channel closed when any of chs closes. The goroutines it
// starts end when it closes or when done closes: a view that never changes
// again must not keep a goroutine of a query that stopped waiting on it.
func anyOf(done <-chan struct{}, chs []<-chan struct{}) <-chan struct{} {
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
			case <-done:
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
		s.fail(c, fmt.Errorf("%w: balancer=%q: use one of %s", ErrBadRequest, balancer, strings.Join(route.Balancers, ", ")))
		return
	}
	key := c.Query("key")
	noKey := fmt.Errorf("%w: balancer consistent_hash needs key= (a session or user id)", ErrBadRequest)
	if balancer == route.ConsistentHash && key == "" {
		s.fail(c, noKey)
		return
	}
	var r selected
	if !s.blockSelection(c, q.caller, &r) {
		return
	}
	if balancer == "" {
		balancer = r.res.Served.Service.Balancer
	}
	if balancer == route.ConsistentHash && key == "" {
		s.fail(c, noKey)
		return
	}
	cand, err := r.res.Chosen.Picker.Pick(route.PickOptions{Balancer: balancer, Rand: rand.Uint64, Key: key})
	if err != nil {
		s.fail(c, fmt.Errorf("%w: %s/%s has no instance that may take traffic from near=%q (none healthy, enabled and weighted in its namespace or fallbacks)",
			ErrNoInstance, r.ns, r.svc, FormatLocality(q.caller)))
		return
	}
	if r.protected {
		c.Header(HeaderProtected, "1")
	}
	caller := q.caller
	c.JSON(http.StatusOK, wire.PickResponse{Namespace: r.ns, Service: r.svc, ServedBy: r.res.Served.Service.Namespace,
		Near: &caller, Balancer: balancer, Protected: r.protected,
		Instance: wire.Instance{Instance: cand.Instance, Level: cand.Level.Name()}})
}

func isBalancer(b string) bool {
	for _, x := range route.Balancers {
		if x == b {
			return true
		}
	}
	return false
}
