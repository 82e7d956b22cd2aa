package consulcompat

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/store"
)

func (s *Server) statusLeader(c *gin.Context) {
	_, addr := s.node.Leader()
	c.JSON(http.StatusOK, addr)
}

func (s *Server) statusPeers(c *gin.Context) {
	ms, err := s.node.Members()
	if err != nil {
		s.fail(c, err)
		return
	}
	out := []string{}
	for _, m := range ms {
		if m.Role != "nonvoter" {
			out = append(out, m.RaftAddr)
		}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) catalogDatacenters(c *gin.Context) {
	dcs := []string{s.cfg.Locality.Datacenter}
	if ms, err := s.node.Members(); err == nil {
		for _, m := range ms {
			if d := m.Locality.Datacenter; d != "" && !slices.Contains(dcs, d) {
				dcs = append(dcs, d)
			}
		}
	}
	sort.Strings(dcs[1:]) // this server's datacenter first, as Consul's nearest
	c.JSON(http.StatusOK, dcs)
}

// serviceQuery reads one service; an unknown service is an empty one that
// wakes the query when the namespace changes (it may appear).
func (s *Server) serviceQuery(ns, svc string, each func(v view)) (uint64, <-chan struct{}, error) {
	nv, err := s.cat.Namespace(ns)
	if err != nil {
		return 0, nil, err
	}
	sv, err := s.cat.Service(ns, svc)
	if errors.Is(err, store.ErrServiceNotFound) {
		return nv.Index, nv.WatchCh(), nil
	}
	if err != nil {
		return 0, nil, err
	}
	for _, in := range sv.Instances() {
		each(s.view(in))
	}
	return sv.Index, sv.WatchCh(), nil
}

// filters are the parameters common to the service endpoints.
type filters struct {
	tags   []string
	dc     string
	expr   *filterExpr
	passed bool
}

// scope reads the namespace and the filters of a service read, answering
// the error itself when either is bad.
func (s *Server) scope(c *gin.Context) (string, filters, bool) {
	ns, err := s.namespace(c)
	if err == nil {
		var f filters
		if f, err = s.filters(c); err == nil {
			return ns, f, true
		}
	}
	s.fail(c, err)
	return "", filters{}, false
}

func (s *Server) filters(c *gin.Context) (filters, error) {
	f := filters{tags: c.QueryArray("tag"), dc: c.Query("dc")}
	if len(c.QueryArray("node-meta")) > 0 {
		return f, badRequest("node-meta is not supported: filter on Node.Meta with filter= instead")
	}
	if v, ok := c.GetQuery("passing"); ok {
		f.passed = v == "" || v == "true" || v == "1"
		if !f.passed && v != "false" && v != "0" {
			return f, badRequest("Invalid passing=%q: use true or false", v)
		}
	}
	if v := c.Query("filter"); v != "" {
		e, err := parseFilter(v)
		if err != nil {
			return f, badRequest("Failed to create boolean expression evaluator: %v", err)
		}
		f.expr = e
	}
	return f, nil
}

func (f filters) keep(v view, checks []healthCheck) bool {
	if f.dc != "" && v.dc != f.dc {
		return false
	}
	if !hasTags(v.in, f.tags) {
		return false
	}
	if f.passed && !passing(checks) {
		return false
	}
	return f.expr == nil || f.expr.match(v, checks)
}

// cacheKey names an answer by the normalised query: the route, the
// namespace, and the parameters that shape that route's answer in one
// canonical form (params, each built by the handler from what it parsed).
// Parameters the route does not use, unknown ones, and index, wait, stale
// or consistent are not part of it, so that the same question asked in
// another spelling is one entry, and junk added to a query makes no new
// one.
func (s *Server) cacheKey(c *gin.Context, ns string, params ...string) string {
	var b strings.Builder
	b.WriteString(c.FullPath())
	b.WriteByte(' ')
	b.WriteString(ns)
	for _, p := range params {
		if p != "" {
			b.WriteByte(' ')
			b.WriteString(p)
		}
	}
	if s.cfg.Auth != nil {
		// Lists show what the token may read: one answer per token.
		b.WriteString(" token=")
		b.WriteString(s.cfg.Auth.Accessor(c))
	}
	return b.String()
}

// key renders the filters in one canonical form: tags sorted and without
// repeats, passing as a flag, the filter's clauses in one spelling and
// order.
func (f filters) key() string {
	var b strings.Builder
	tags := slices.Clone(f.tags)
	slices.Sort(tags)
	for _, t := range slices.Compact(tags) {
		b.WriteString("tag=")
		b.WriteString(strconv.Quote(t))
		b.WriteByte('&')
	}
	if f.dc != "" {
		b.WriteString("dc=")
		b.WriteString(strconv.Quote(f.dc))
		b.WriteByte('&')
	}
	if f.passed {
		b.WriteString("passing&")
	}
	if f.expr != nil {
		b.WriteString("filter=")
		b.WriteString(f.expr.canonical())
	}
	return b.String()
}

// serviceParam reads a route's service name; a name the catalog could not
// hold is refused before it costs a lookup or a remembered answer.
func (s *Server) serviceParam(c *gin.Context) (string, bool) {
	svc := c.Param("svc")
	if err := store.ValidateName("service", svc); err != nil {
		s.fail(c, badRequest("Invalid service name %q: Switchyard names are DNS labels (lowercase letters, digits, hyphen, at most 63)", truncate(svc)))
		return "", false
	}
	return svc, true
}

// maxNodeName bounds a node name (a server's id or an instance's address:
// a host name has at most 253 bytes).
const maxNodeName = 255

// truncate shortens a caller's string for an error message.
func truncate(v string) string {
	if len(v) > 64 {
		return v[:64] + "…"
	}
	return v
}

func (s *Server) catalogServices(c *gin.Context) {
	ns, f, ok := s.scope(c)
	if !ok {
		return
	}
	// Only dc and filter shape this answer.
	key := s.cacheKey(c, ns, filters{dc: f.dc, expr: f.expr}.key())
	s.read(c, key, func() (any, uint64, <-chan struct{}, error) {
		nv, svcs, err := s.readableServices(c, ns)
		if err != nil {
			return nil, 0, nil, err
		}
		out := map[string][]string{}
		for _, sv := range svcs {
			var tags []string
			seen := false
			for _, in := range sv.Instances() {
				v := s.view(in)
				if f.dc != "" && v.dc != f.dc || f.expr != nil && !f.expr.match(v, v.checks()) {
					continue
				}
				seen = true
				for _, t := range in.Tags {
					if !slices.Contains(tags, t) {
						tags = append(tags, t)
					}
				}
			}
			if seen {
				sort.Strings(tags)
				out[sv.Service.Name] = append([]string{}, tags...)
			}
		}
		return out, nv.Index, nv.WatchCh(), nil
	})
}

func (s *Server) catalogService(c *gin.Context) {
	svc, ok := s.serviceParam(c)
	if !ok {
		return
	}
	ns, f, ok := s.scope(c)
	if !ok || !s.authorize(c, store.AccessRead, ns, svc) {
		return
	}
	s.read(c, s.cacheKey(c, ns, svc, f.key()), func() (any, uint64, <-chan struct{}, error) {
		out := []catalogService{}
		idx, ch, err := s.serviceQuery(ns, svc, func(v view) {
			if f.keep(v, v.checks()) {
				out = append(out, v.catalog())
			}
		})
		return out, idx, ch, err
	})
}

func (s *Server) healthService(c *gin.Context) {
	svc, ok := s.serviceParam(c)
	if !ok {
		return
	}
	ns, f, ok := s.scope(c)
	if !ok || !s.authorize(c, store.AccessRead, ns, svc) {
		return
	}
	near := c.Query("near")
	if len(near) > maxNodeName {
		s.fail(c, badRequest("Invalid near=%q: a node name has at most %d bytes", truncate(near), maxNodeName))
		return
	}
	key := s.cacheKey(c, ns, svc, f.key())
	if near != "" {
		key += " near=" + strconv.Quote(near)
	}
	s.read(c, key, func() (any, uint64, <-chan struct{}, error) {
		out := []serviceEntry{}
		idx, ch, err := s.serviceQuery(ns, svc, func(v view) {
			checks := v.checks()
			if f.keep(v, checks) {
				out = append(out, serviceEntry{Node: v.node(), Service: v.service(), Checks: checks})
			}
		})
		if near != "" {
			s.sortNear(out, near)
		}
		return out, idx, ch, err
	})
}

// sortNear orders entries nearest first to the agent (near=_agent) or to a
// node's locality: same unit, same datacenter, same region, the rest.
func (s *Server) sortNear(out []serviceEntry, near string) {
	origin := s.cfg.Locality
	if near != "_agent" {
		found := false
		for _, e := range out {
			if e.Node.Node == near {
				origin = store.Locality{Region: e.Node.Meta["region"], Datacenter: e.Node.Datacenter, Unit: e.Node.Meta["unit"]}
				found = true
				break
			}
		}
		if !found {
			return // Consul ignores an unknown node too
		}
	}
	rank := func(e serviceEntry) int {
		l := store.Locality{Region: e.Node.Meta["region"], Datacenter: e.Node.Datacenter, Unit: e.Node.Meta["unit"]}
		switch {
		case l.Datacenter == origin.Datacenter && l.Unit != "" && l.Unit == origin.Unit:
			return 0
		case l.Datacenter == origin.Datacenter:
			return 1
		case l.Region != "" && l.Region == origin.Region:
			return 2
		}
		return 3
	}
	slices.SortStableFunc(out, func(a, b serviceEntry) int { return rank(a) - rank(b) })
}

func (s *Server) healthChecks(c *gin.Context) {
	svc, ok := s.serviceParam(c)
	if !ok {
		return
	}
	ns, f, ok := s.scope(c)
	if !ok || !s.authorize(c, store.AccessRead, ns, svc) {
		return
	}
	s.read(c, s.cacheKey(c, ns, svc, f.key()), func() (any, uint64, <-chan struct{}, error) {
		out := []healthCheck{}
		idx, ch, err := s.serviceQuery(ns, svc, func(v view) {
			checks := v.checks()
			if f.keep(v, checks) {
				out = append(out, checks...)
			}
		})
		return out, idx, ch, err
	})
}

func (s *Server) healthState(c *gin.Context) {
	state := c.Param("state")
	if !slices.Contains([]string{"any", statePassing, stateWarning, stateCritical}, state) {
		s.fail(c, badRequest("Invalid state %q: use any, passing, warning or critical", state))
		return
	}
	ns, ok := s.namespaceFor(c, store.AccessRead)
	if !ok {
		return
	}
	s.read(c, s.cacheKey(c, ns, state), func() (any, uint64, <-chan struct{}, error) {
		nv, svcs, err := s.readableServices(c, ns)
		if err != nil {
			return nil, 0, nil, err
		}
		out := []healthCheck{}
		for _, sv := range svcs {
			for _, in := range sv.Instances() {
				for _, ch := range s.view(in).checks() {
					if state == "any" || ch.Status == state {
						out = append(out, ch)
					}
				}
			}
		}
		return out, nv.Index, nv.WatchCh(), nil
	})
}

func (s *Server) catalogNodes(c *gin.Context) {
	ns, ok := s.namespaceFor(c, store.AccessRead)
	if !ok {
		return
	}
	dc := c.Query("dc")
	key := s.cacheKey(c, ns)
	if dc != "" {
		key += " dc=" + strconv.Quote(dc)
	}
	s.read(c, key, func() (any, uint64, <-chan struct{}, error) {
		nv, svcs, err := s.readableServices(c, ns)
		if err != nil {
			return nil, 0, nil, err
		}
		byName := map[string]node{}
		for _, sv := range svcs {
			for _, in := range sv.Instances() {
				v := s.view(in)
				if dc != "" && v.dc != dc {
					continue
				}
				n := v.node()
				if cur, ok := byName[n.Node]; ok {
					n.CreateIndex, n.ModifyIndex = min(cur.CreateIndex, n.CreateIndex), max(cur.ModifyIndex, n.ModifyIndex)
				}
				byName[n.Node] = n
			}
		}
		out := make([]node, 0, len(byName))
		for _, n := range byName {
			out = append(out, n)
		}
		slices.SortFunc(out, func(a, b node) int { return strings.Compare(a.Node, b.Node) })
		return out, nv.Index, nv.WatchCh(), nil
	})
}

func (s *Server) catalogNode(c *gin.Context) {
	ns, ok := s.namespaceFor(c, store.AccessRead)
	if !ok {
		return
	}
	name := c.Param("node")
	if name == "" || len(name) > maxNodeName {
		s.fail(c, badRequest("Invalid node name %q: a node name has 1 to %d bytes", truncate(name), maxNodeName))
		return
	}
	s.read(c, s.cacheKey(c, ns, strconv.Quote(name)), func() (any, uint64, <-chan struct{}, error) {
		nv, svcs, err := s.readableServices(c, ns)
		if err != nil {
			return nil, 0, nil, err
		}
		var out *struct {
			Node     node
			Services map[string]agentService
		}
		for _, sv := range svcs {
			for _, in := range sv.Instances() {
				v := s.view(in)
				if v.nodeName() != name {
					continue
				}
				if out == nil {
					out = &struct {
						Node     node
						Services map[string]agentService
					}{Node: v.node(), Services: map[string]agentService{}}
				}
				out.Services[in.ID] = v.service()
			}
		}
		return out, nv.Index, nv.WatchCh(), nil
	})
}

// fresh retries a lookup after a consistent read when this server's
// replica does not know the name yet (registered through another server
// an instant ago).
func (s *Server) fresh(c *gin.Context, find func() (*store.Instance, error)) (*store.Instance, error) {
	in, err := find()
	if isNotFound(err) {
		if cerr := s.cat.ConsistentRead(c.Request.Context()); cerr == nil {
			return find()
		}
	}
	return in, err
}

// errUnknownID is the answer to an id that resolves to nothing the caller
// may act on: unknown, or held only by services outside its token's scope.
// Both read the same, so the answer does not tell a writer of one service
// which ids (and which service names) another holds.
func errUnknownID(id string) error { return notFound("Unknown service ID %q", id) }

func errUnknownCheck(id string) error {
	return notFound("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id)
}

// findInstance finds an instance by id among the services of ns the caller
// may have access on (Consul's agent endpoints name a service instance by
// its id alone). Two services may hold the same id (the native API allows
// it, and tenants never see each other's): an id that resolves to more
// than one instance in the caller's scope is refused rather than guessed.
func (s *Server) findInstance(c *gin.Context, access store.Access, ns, id string) (*store.Instance, error) {
	return s.resolveID(c, access, ns, id, func(sv *store.ServiceView) []*store.Instance {
		if in := sv.Instance(id); in != nil {
			return []*store.Instance{in}
		}
		return nil
	}, errUnknownID(id))
}

// findCheck finds the instance whose check has id checkID, as findInstance
// does.
func (s *Server) findCheck(c *gin.Context, access store.Access, ns, id string) (*store.Instance, error) {
	if id == "" {
		return nil, badRequest("Missing check ID")
	}
	if sid, ok := strings.CutPrefix(id, "service:"); ok {
		if in, err := s.findInstance(c, access, ns, sid); err == nil || !isNotFound(err) {
			return in, err
		}
	}
	return s.resolveID(c, access, ns, id, func(sv *store.ServiceView) []*store.Instance {
		var out []*store.Instance
		for _, in := range sv.Instances() {
			if in.Metadata[metaCheckID] == id {
				out = append(out, in)
			}
		}
		return out
	}, errUnknownCheck(id))
}

// resolveID collects what match finds in the services of ns the caller may
// have access on; services outside its scope are not looked at, so what
// they hold cannot change the answer.
func (s *Server) resolveID(c *gin.Context, access store.Access, ns, id string, match func(*store.ServiceView) []*store.Instance, unknown error) (*store.Instance, error) {
	_, svcs, err := s.cat.Services(ns)
	if err != nil {
		return nil, err
	}
	var found []*store.Instance
	for _, sv := range svcs {
		if !s.allowed(c, access, ns, sv.Service.Name) {
			continue
		}
		found = append(found, match(sv)...)
	}
	switch len(found) {
	case 0:
		return nil, unknown
	case 1:
		return found[0], nil
	}
	names := make([]string, 0, len(found))
	for _, in := range found {
		names = append(names, strconv.Quote(in.Service))
	}
	slices.Sort(names)
	return nil, &httpError{http.StatusConflict, fmt.Sprintf("ID %q names %d instances (of services %s) in namespace %q: "+
		"act on each through the native API (/v1/namespaces/%s/services/{service}/instances/{id})",
		id, len(found), strings.Join(slices.Compact(names), ", "), ns, ns)}
}

func isNotFound(err error) bool {
	var he *httpError
	return errors.As(err, &he) && he.status == http.StatusNotFound
}
