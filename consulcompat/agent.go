package consulcompat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/store"
)

func (s *Server) agentSelf(c *gin.Context) {
	_, raftAddr := s.node.Leader()
	c.JSON(http.StatusOK, gin.H{
		"Config": gin.H{"Datacenter": s.cfg.Locality.Datacenter, "NodeName": s.cfg.NodeName, "NodeID": "",
			"Server": true, "Revision": "", "Version": "1.20.0", "PrimaryDatacenter": s.cfg.Locality.Datacenter},
		"Member": gin.H{"Name": s.cfg.NodeName, "Addr": hostOf(c.Request.Host), "Port": 0,
			"Tags": gin.H{"role": "consul", "dc": s.cfg.Locality.Datacenter, "leader_addr": raftAddr}, "Status": 1},
		"Meta": gin.H{"region": s.cfg.Locality.Region, "unit": s.cfg.Locality.Unit},
	})
}

func hostOf(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i > 0 && !strings.HasSuffix(hostport, "]") {
		return strings.Trim(hostport[:i], "[]")
	}
	return hostport
}

// agentServices: the instances registered through this server's agent
// endpoints.
func (s *Server) agentServices(c *gin.Context) {
	ns, ok := s.namespaceFor(c, store.AccessRead)
	if !ok {
		return
	}
	_, svcs, err := s.readableServices(c, ns)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := map[string]agentService{}
	for _, sv := range svcs {
		for _, in := range sv.Instances() {
			if in.Metadata[metaNode] == s.cfg.NodeName {
				out[in.ID] = s.view(in).service()
			}
		}
	}
	c.JSON(http.StatusOK, out)
}

// registration is Consul's AgentServiceRegistration, as far as it maps.
type registration struct {
	ID, Name          string
	Tags              []string
	Port              int
	Address           string
	Meta              map[string]string
	Weights           *weights
	EnableTagOverride bool
	Check             *checkDef
	Checks            []*checkDef
	Kind              string
	Proxy, Connect    json.RawMessage
	Namespace         string
	Locality          *struct{ Region, Zone string }
}

type checkDef struct {
	CheckID, Name                   string
	TTL, HTTP, TCP, GRPC            string
	Interval, Timeout               string
	DeregisterCriticalServiceAfter  string
	Status                          string
	SuccessBeforePassing            int
	FailuresBeforeCritical          int
	Args                            []string
	ScriptArgs                      []string
	DockerContainerID, Shell        string
	H2PING, UDP, OSService          string
	AliasNode, AliasService         string
	Method, Body                    string
	Header                          map[string][]string
	TLSSkipVerify, GRPCUseTLS       bool
	TCPUseTLS, H2PingUseTLS         bool
	FailuresBeforeWarning           int
	Notes, ServiceID, TLSServerName string
}

func duration(what, v string) (store.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, badRequest("Invalid %s %q: use a duration such as 10s", what, v)
	}
	return store.Duration(d), nil
}

// toInstance maps a registration to an instance (without namespace): the
// translation of Consul's shape, and the refusal of what does not map.
func (s *Server) toInstance(c *gin.Context, r *registration) (string, *store.Instance, error) {
	switch {
	case r.Name == "":
		return "", nil, badRequest("Missing service name")
	case r.Kind != "" || len(r.Proxy) > 0 && string(r.Proxy) != "null" || len(r.Connect) > 0 && string(r.Connect) != "null":
		return "", nil, badRequest("Connect proxies and service kinds are not supported by Switchyard")
	}
	id := r.ID
	if id == "" {
		id = r.Name
	}
	// Names, port, address, tags and metadata are validated by the catalog,
	// as for every door.
	in := &store.Instance{ID: id, Service: r.Name, Address: r.Address, Port: r.Port, Weight: store.DefaultWeight, Enabled: true,
		Tags: r.Tags, Metadata: map[string]string{}, Locality: s.cfg.Locality}
	if in.Address == "" {
		in.Address = c.RemoteIP() // Consul takes the agent's address: here the caller's
	}
	if r.Weights != nil && r.Weights.Passing > 0 {
		in.Weight = r.Weights.Passing
	}
	if r.Locality != nil {
		if r.Locality.Region != "" {
			in.Locality.Region = r.Locality.Region
		}
		if r.Locality.Zone != "" {
			in.Locality.Unit = r.Locality.Zone
		}
	}
	for k, v := range r.Meta {
		if strings.HasPrefix(k, metaPrefix) {
			return "", nil, badRequest("Meta key %q is reserved (prefix %s)", k, metaPrefix)
		}
		in.Metadata[k] = v
	}
	in.Metadata[metaNode] = s.cfg.NodeName
	checks := r.Checks
	if r.Check != nil {
		checks = append([]*checkDef{r.Check}, checks...)
	}
	for _, d := range checks {
		if d == nil {
			return "", nil, badRequest("A check is null")
		}
		if d.GRPCUseTLS || d.TCPUseTLS {
			return "", nil, badRequest("gRPC and TCP checks over TLS are not supported")
		}
	}
	switch len(checks) {
	case 0:
		in.Check = store.Check{Type: store.CheckNone}
	case 1:
		if err := mapCheck(checks[0], in); err != nil {
			return "", nil, err
		}
	default:
		return "", nil, badRequest("%d checks given: a Switchyard instance has one check", len(checks))
	}
	return id, in, nil
}

func mapCheck(d *checkDef, in *store.Instance) error {
	switch {
	case len(d.Args) > 0 || len(d.ScriptArgs) > 0 || d.Shell != "" || d.DockerContainerID != "":
		return badRequest("Script and Docker checks are not supported: use TTL, HTTP, TCP or gRPC")
	case d.H2PING != "" || d.UDP != "" || d.OSService != "" || d.AliasNode != "" || d.AliasService != "":
		return badRequest("H2PING, UDP, OS service and alias checks are not supported: use TTL, HTTP, TCP or gRPC")
	case d.Method != "" && d.Method != http.MethodGet, d.Body != "", len(d.Header) > 0:
		return badRequest("HTTP checks with a method other than GET, a body or headers are not supported")
	}
	var err error
	ch := &in.Check
	if ch.DeregisterAfter, err = duration("DeregisterCriticalServiceAfter", d.DeregisterCriticalServiceAfter); err != nil {
		return err
	}
	if ch.Interval, err = duration("Interval", d.Interval); err != nil {
		return err
	}
	if ch.Timeout, err = duration("Timeout", d.Timeout); err != nil {
		return err
	}
	ch.SuccessesBeforeHealthy, ch.FailuresBeforeUnhealthy = d.SuccessBeforePassing, d.FailuresBeforeCritical
	kinds := 0
	for _, v := range []string{d.TTL, d.HTTP, d.TCP, d.GRPC} {
		if v != "" {
			kinds++
		}
	}
	if kinds != 1 {
		return badRequest("A check needs exactly one of TTL, HTTP, TCP or GRPC")
	}
	switch {
	case d.TTL != "":
		in.Ephemeral = true
		ch.Type = store.CheckTTL
		if ch.TTL, err = duration("TTL", d.TTL); err != nil {
			return err
		}
		ch.Interval, ch.Timeout = 0, 0
	case d.HTTP != "":
		ch.Type, ch.Target = store.CheckHTTP, d.HTTP
	case d.TCP != "":
		ch.Type, ch.Target = store.CheckTCP, d.TCP
	case d.GRPC != "":
		ch.Type, ch.Target = store.CheckGRPC, d.GRPC
	}
	if d.CheckID != "" {
		in.Metadata[metaCheckID] = d.CheckID
	}
	if d.Name != "" {
		in.Metadata[metaCheck] = d.Name
	}
	return nil
}

func (s *Server) agentRegister(c *gin.Context) {
	body, err := s.body(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var r registration
	if err := json.Unmarshal(body, &r); err != nil {
		s.fail(c, badRequest("Request decode failed: %v", err))
		return
	}
	ns := c.Query("ns")
	if ns == "" {
		ns = c.Query("namespace")
	}
	if ns == "" {
		ns = r.Namespace
	}
	if ns == "" {
		ns = s.cfg.Namespace
	}
	if !s.authorize(c, store.AccessWrite, ns, r.Name) {
		return
	}
	if _, err := s.cat.Namespace(ns); err != nil {
		s.fail(c, notFound("namespace %q not found (create it with PUT /v1/namespaces/%s)", ns, ns))
		return
	}
	id, in, err := s.toInstance(c, &r)
	if err != nil {
		s.fail(c, err)
		return
	}
	in.Namespace = ns
	// Consul's service ids are unique on an agent; here within what the
	// caller may read in a namespace. A service it may not read may hold
	// the same id: the two coexist (an instance is named by service and
	// id), and the refusal would tell the caller that service's name.
	if prev, err := s.readableWithID(c, ns, id, r.Name); err != nil {
		s.fail(c, err)
		return
	} else if prev != nil {
		s.fail(c, badRequest("Service ID %q is already registered for service %q: deregister it first", id, prev.Service))
		return
	}
	if _, _, err := s.cat.Register(c.Request.Context(), in); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusOK)
}

// body reads the request body, at most MaxBodyBytes of it (the native
// API's limit).
func (s *Server) body(c *gin.Context) ([]byte, error) {
	limit := s.cfg.MaxBodyBytes
	if c.Request.ContentLength > limit {
		return nil, fmt.Errorf("%w: Request body is %d bytes, the limit is %d (--max-body-bytes)", api.ErrBodyTooLarge, c.Request.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(c.Request.Body, limit+1))
	if err != nil {
		return nil, badRequest("Request decode failed: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: Request body is over the limit of %d bytes (--max-body-bytes)", api.ErrBodyTooLarge, limit)
	}
	return b, nil
}

// readableWithID returns an instance with id in a service of ns other than
// svc that the caller may read, or nil.
func (s *Server) readableWithID(c *gin.Context, ns, id, svc string) (*store.Instance, error) {
	_, svcs, err := s.cat.Services(ns)
	if err != nil {
		return nil, err
	}
	for _, sv := range svcs {
		if sv.Service.Name == svc || !s.allowed(c, store.AccessRead, ns, sv.Service.Name) {
			continue
		}
		if in := sv.Instance(id); in != nil {
			return in, nil
		}
	}
	return nil, nil
}

func (s *Server) agentDeregister(c *gin.Context) {
	ns, ok := s.namespaceFor(c, store.AccessWrite)
	if !ok {
		return
	}
	in, err := s.fresh(c, func() (*store.Instance, error) { return s.findInstance(c, store.AccessWrite, ns, c.Param("id")) })
	if err != nil {
		s.fail(c, err)
		return
	}
	if !s.authorize(c, store.AccessWrite, ns, in.Service) {
		return
	}
	_, err = s.cat.Deregister(c.Request.Context(), ns, in.Service, in.ID)
	if err != nil && !errors.Is(err, store.ErrInstanceNotFound) {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusOK)
}

// agentMaintenance: enable=true takes the instance out of traffic (Enabled
// false), enable=false puts it back.
func (s *Server) agentMaintenance(c *gin.Context) {
	ns, ok := s.namespaceFor(c, store.AccessWrite)
	if !ok {
		return
	}
	v, ok := c.GetQuery("enable")
	enable, perr := strconv.ParseBool(v)
	if !ok || perr != nil {
		s.fail(c, badRequest("Missing or invalid enable=%q: use true or false", v))
		return
	}
	in, err := s.fresh(c, func() (*store.Instance, error) { return s.findInstance(c, store.AccessWrite, ns, c.Param("id")) })
	if err != nil {
		s.fail(c, err)
		return
	}
	if !s.authorize(c, store.AccessWrite, ns, in.Service) {
		return
	}
	next := *in
	next.Metadata = map[string]string{}
	for k, val := range in.Metadata {
		if k != metaReason {
			next.Metadata[k] = val
		}
	}
	next.Enabled = !enable
	if r := c.Query("reason"); enable && r != "" {
		next.Metadata[metaReason] = r
	}
	if _, _, err := s.cat.Register(c.Request.Context(), &next); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusOK)
}

// checkTTL answers pass, warn, fail and update (state ""): passing and
// warning count as a heartbeat; critical marks the instance unhealthy at
// once, until the next pass.
func (s *Server) checkTTL(state string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ns, ok := s.namespaceFor(c, store.AccessWrite)
		if !ok {
			return
		}
		state := state
		if state == "" {
			var u struct{ Status, Output string }
			b, err := s.body(c)
			if err != nil {
				s.fail(c, err)
				return
			}
			if err := json.Unmarshal(b, &u); err != nil {
				s.fail(c, badRequest("Request decode failed: %v", err))
				return
			}
			state = u.Status
			if state != statePassing && state != stateWarning && state != stateCritical {
				s.fail(c, badRequest("Invalid check status: %q", u.Status))
				return
			}
		}
		in, err := s.fresh(c, func() (*store.Instance, error) {
			return s.findCheck(c, store.AccessWrite, ns, strings.TrimPrefix(c.Param("check"), "/"))
		})
		if err != nil {
			s.fail(c, err)
			return
		}
		if !s.authorize(c, store.AccessWrite, ns, in.Service) {
			return
		}
		if !in.Ephemeral || in.Check.Type != store.CheckTTL {
			s.fail(c, badRequest("Check %q is not a TTL check", checkID(in)))
			return
		}
		if state == stateCritical {
			if _, err := s.cat.SetHealth(c.Request.Context(), ns, in.Service, in.ID, false); err != nil {
				s.fail(c, err)
				return
			}
			c.Status(http.StatusOK)
			return
		}
		if _, _, err := s.cat.Heartbeat(ns, in.Service, in.ID); err != nil {
			s.fail(c, err)
			return
		}
		c.Status(http.StatusOK)
	}
}
