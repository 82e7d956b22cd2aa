package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
	switchxds "github.com/switchyard-io/switchyard/xds"
)

const xdsMaxNames = switchxds.MaxNames

// backend is a real gRPC server that answers any unary call with its name.
func backend(t *testing.T, name string) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
		var in wrapperspb.StringValue
		if err := st.RecvMsg(&in); err != nil {
			return err
		}
		return st.SendMsg(wrapperspb.String(name))
	}))
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

// xdsClient dials target through grpc-go's own xDS resolver and balancer,
// bootstrapped to the xDS server at addr as a node running in loc.
func xdsClient(t *testing.T, addr, target string, loc store.Locality) *grpc.ClientConn {
	t.Helper()
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": "passthrough:///%s", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "test-client", "locality": {"region": %q, "zone": %q, "sub_zone": %q}}
	}`, addr, loc.Region, loc.Datacenter, loc.Unit)
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(target, grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// who calls through cc and returns the name of the backend that answered.
func who(cc *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out wrapperspb.StringValue
	err := cc.Invoke(ctx, "/switchyard.test.Who/Name", wrapperspb.String("?"), &out)
	return out.GetValue(), err
}

// allFrom makes n calls and fails unless every one was answered by want.
func allFrom(cc *grpc.ClientConn, n int, want string) error {
	for k := range n {
		got, err := who(cc)
		if err != nil {
			return fmt.Errorf("call %d: %w", k, err)
		}
		if got != want {
			return fmt.Errorf("call %d answered by %q, want %q", k, got, want)
		}
	}
	return nil
}

// A proxyless gRPC client (grpc-go's xds:/// resolver and balancers) calls
// a real gRPC service through the registry's xDS server and walks every
// level with it: it reaches the same unit's instance, leaves it for the
// datacenter when its heartbeats stop (health, not a write), follows a
// deregistration to the region's other datacenter, spills to the next
// region when that datacenter is drained, and keeps calling from its last
// answer once the xDS server is gone.
func TestXDSProxylessGRPC(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	caller := store.Locality{Region: "eu", Datacenter: "eu-1", Unit: "u1"}
	fleet := []struct {
		id  string
		loc store.Locality
	}{
		{"near", caller},
		{"same-dc", store.Locality{Region: "eu", Datacenter: "eu-1", Unit: "u2"}},
		{"region", store.Locality{Region: "eu", Datacenter: "eu-2", Unit: "u1"}},
		{"far", store.Locality{Region: "us", Datacenter: "us-1", Unit: "u1"}},
	}
	for _, b := range fleet {
		host, port := backend(t, b.id)
		body := wire.RegisterRequest{Address: host, Port: port, Ephemeral: new(bool), Locality: b.loc}
		if b.id == "near" { // lives by its heartbeats
			body.Ephemeral = nil
			body.Check = store.Check{TTL: store.Duration(time.Second), DeregisterAfter: store.Duration(time.Hour)}
		}
		if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/who/instances/"+b.id, body, nil); err != nil {
			t.Fatal(err)
		}
	}
	stopBeats := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopBeats:
				return
			case <-tick.C:
				_ = c.do(s, http.MethodPut, "/v1/namespaces/default/services/who/instances/near/heartbeat", nil, nil)
			}
		}
	}()
	cc := xdsClient(t, s.XDSAddr(), "xds:///who.default", caller)
	eventually(t, 20*time.Second, "calls answered by the same unit", func() error { return allFrom(cc, 20, "near") })

	close(stopBeats)
	<-beating
	eventually(t, 10*time.Second, "calls leave the silent instance for the datacenter", func() error { return allFrom(cc, 20, "same-dc") })

	if err := c.do(s, http.MethodDelete, "/v1/namespaces/default/services/who/instances/same-dc", nil, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "calls follow the deregistration to the region", func() error { return allFrom(cc, 20, "region") })

	// Draining the region's datacenter (its instance disabled, as an
	// operator does): the next region takes over.
	if err := c.do(s, http.MethodPatch, "/v1/namespaces/default/services/who/instances/region", map[string]any{"enabled": false}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "calls spill to the next region", func() error { return allFrom(cc, 20, "far") })

	addr := s.XDSAddr()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("the xDS port still answers after the kill")
	}
	// Calls for two seconds after the xDS server is gone, long past the
	// client noticing its stream broke.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if err := allFrom(cc, 5, "far"); err != nil {
			t.Fatalf("with the xDS server gone: %v", err)
		}
	}
}

// ads opens a raw ADS stream (state of the world) with token secret.
func adsStream(t *testing.T, addr, secret string) discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if secret != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-switchyard-token", secret)
	}
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// sendRecv sends req on st and returns the next answer, or the status the
// stream ended with. A server that ends the stream at once (a refusal)
// can do so before the request is sent: Send then reports io.EOF, and the
// status is Recv's to tell.
func sendRecv(st discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient, req *discoverygrpc.DiscoveryRequest) (*discoverygrpc.DiscoveryResponse, error) {
	if err := st.Send(req); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return st.Recv()
}

// edsEndpoints asks the xDS server at addr for the endpoints of name once
// and counts them.
func edsEndpoints(t *testing.T, addr, name string) int {
	t.Helper()
	cla, err := edsAssignment(t, addr, name)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range cla.GetEndpoints() {
		n += len(l.GetLbEndpoints())
	}
	return n
}

// edsAssignment asks the xDS server at addr for the endpoints of name once:
// the first answer, or the status the stream ended with.
func edsAssignment(t *testing.T, addr, name string) (*endpointv3.ClusterLoadAssignment, error) {
	t.Helper()
	return edsWithin(t, addr, name, 20*time.Second)
}

// edsWithin is edsAssignment giving up after d (DeadlineExceeded).
func edsWithin(t *testing.T, addr, name string, d time.Duration) (*endpointv3.ClusterLoadAssignment, error) {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	r, err := sendRecv(st, &discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{name}})
	if err != nil {
		return nil, err
	}
	if len(r.GetResources()) != 1 {
		return nil, fmt.Errorf("%d resources for %s, want 1", len(r.GetResources()), name)
	}
	var cla endpointv3.ClusterLoadAssignment
	if err := r.GetResources()[0].UnmarshalTo(&cla); err != nil {
		t.Fatal(err)
	}
	return &cla, nil
}

// addresses lists an assignment's endpoint addresses.
func addresses(cla *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			out = append(out, e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
		}
	}
	return out
}

// adsAnswer opens a stream to addr with creds and returns the first
// answer to a request for every cluster.
func adsAnswer(addr string, creds credentials.TransportCredentials) (*discoverygrpc.DiscoveryResponse, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	return sendRecv(st, &discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
}

func clusterNames(t *testing.T, r *discoverygrpc.DiscoveryResponse) []string {
	t.Helper()
	var names []string
	for _, a := range r.GetResources() {
		var c clusterv3.Cluster
		if err := a.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		names = append(names, c.GetName())
	}
	slices.Sort(names)
	return names
}

// xDS honours tokens as the API does: an unknown token ends the stream as
// unauthenticated, a stream sees only the services its token may read,
// whether it names them or asks for every cluster, and a stream whose token
// is revoked is ended.
func TestXDSTokens(t *testing.T) {
	a := startACL(t)
	for _, svc := range []string{"pay", "web"} {
		body := wire.RegisterRequest{Address: "10.0.0.1", Port: 80, Ephemeral: new(bool)}
		a.must(t, http.MethodPut, "/v1/namespaces/default/services/"+svc+"/instances/i1", body)
	}
	reader := a.token(t, "read:default/web")

	st := adsStream(t, a.s.XDSAddr(), "not-a-token")
	if _, err := sendRecv(st, &discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unknown token: %v, want Unauthenticated", err)
	}

	for _, tc := range []struct {
		what  string
		names []string
	}{{"every cluster (wildcard)", nil}, {"both named", []string{"pay.default", "web.default"}}} {
		st := adsStream(t, a.s.XDSAddr(), reader.Secret)
		if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResourceNames: tc.names}); err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if got := clusterNames(t, r); !slices.Equal(got, []string{"web.default"}) {
			t.Errorf("%s with read:default/web: clusters %v, want only web.default", tc.what, got)
		}
	}
	admin := adsStream(t, a.s.XDSAddr(), a.admin)
	if err := admin.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	r, err := admin.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := clusterNames(t, r); !slices.Equal(got, []string{"pay.default", "web.default"}) {
		t.Errorf("admin, every cluster: %v", got)
	}

	// A stream whose token is revoked is ended, not left reading.
	st = adsStream(t, a.s.XDSAddr(), reader.Secret)
	if _, err := sendRecv(st, &discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	a.must(t, http.MethodDelete, "/v1/acl/tokens/"+reader.AccessorID, nil)
	revoked := time.Now()
	if _, err := st.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("stream of a revoked token: %v, want Unauthenticated", err)
	}
	if d := time.Since(revoked); d > 3*time.Second {
		t.Errorf("stream of a revoked token ended %v after the revocation, want within a few seconds", d)
	}
}

// An incremental (delta) stream is sent a resource once, then only what
// changed: a new instance sends the service's endpoints again, nothing is
// sent for a change to another service, and a service that goes away is
// named as removed.
func TestXDSDelta(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	reg := func(svc, id, addr string) {
		t.Helper()
		body := wire.RegisterRequest{Address: addr, Port: 80, Ephemeral: new(bool)}
		if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/"+svc+"/instances/"+id, body, nil); err != nil {
			t.Fatal(err)
		}
	}
	reg("web", "w1", "10.0.0.1")
	reg("other", "o1", "10.0.1.1")
	cc, err := grpc.NewClient("passthrough:///"+s.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType,
		ResourceNamesSubscribe: []string{"web.default", "missing.default"}}); err != nil {
		t.Fatal(err)
	}
	recv := func() *discoverygrpc.DeltaDiscoveryResponse {
		t.Helper()
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		// ACK, as a client does.
		if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: r.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	endpoints := func(r *discoverygrpc.DeltaDiscoveryResponse) map[string]int {
		out := map[string]int{}
		for _, res := range r.GetResources() {
			var cla endpointv3.ClusterLoadAssignment
			if err := res.GetResource().UnmarshalTo(&cla); err != nil {
				t.Fatal(err)
			}
			for _, l := range cla.GetEndpoints() {
				out[res.GetName()] += len(l.GetLbEndpoints())
			}
		}
		return out
	}
	if got := endpoints(recv()); len(got) != 1 || got["web.default"] != 1 {
		t.Fatalf("first answer: endpoints %v, want web.default with 1", got)
	}
	reg("other", "o2", "10.0.1.2") // not subscribed: nothing to send
	reg("web", "w2", "10.0.0.2")
	if got := endpoints(recv()); len(got) != 1 || got["web.default"] != 2 {
		t.Fatalf("after a second web instance: %v, want web.default with 2 (and nothing else)", got)
	}
	if err := c.do(s, http.MethodDelete, "/v1/namespaces/default/services/web/instances/w1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := endpoints(recv()); got["web.default"] != 1 {
		t.Fatalf("after a deregistration: %v, want web.default with 1", got)
	}
	if err := c.do(s, http.MethodDelete, "/v1/namespaces/default/services/web", nil, nil); err != nil {
		t.Fatal(err)
	}
	if r := recv(); !slices.Equal(r.GetRemovedResources(), []string{"web.default"}) || len(r.GetResources()) > 0 {
		t.Fatalf("after the service's deletion: removed %v, resources %d; want web.default removed", r.GetRemovedResources(), len(r.GetResources()))
	}
}

// An answer a client refuses (a NACK) is not sent again as it is: the next
// answer comes when the catalog changes it.
func TestXDSRefusedAnswerWaitsForAChange(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	reg := func(id, addr string) {
		t.Helper()
		body := wire.RegisterRequest{Address: addr, Port: 80, Ephemeral: new(bool)}
		if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/web/instances/"+id, body, nil); err != nil {
			t.Fatal(err)
		}
	}
	reg("w1", "10.0.0.1")
	st := adsStream(t, s.XDSAddr(), "")
	req := &discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"web.default"}}
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	nack := &discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"web.default"},
		ResponseNonce: first.GetNonce(), ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "refused for the test"}}
	if err := st.Send(nack); err != nil {
		t.Fatal(err)
	}
	reg("w2", "10.0.0.2")
	next, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if next.GetVersionInfo() == first.GetVersionInfo() {
		t.Fatalf("the refused answer (version %s) was sent again", first.GetVersionInfo())
	}
	var cla endpointv3.ClusterLoadAssignment
	if len(next.GetResources()) != 1 || next.GetResources()[0].UnmarshalTo(&cla) != nil || len(cla.GetEndpoints()) != 1 ||
		len(cla.GetEndpoints()[0].GetLbEndpoints()) != 2 {
		t.Fatalf("after the change: %v", next.GetResources())
	}
}

// Namespace fallback applies to xDS as to lookups: a service a namespace
// lacks, or has no usable instance of, is served from its fallback; once
// the namespace has its own instance, that one.
func TestXDSNamespaceFallback(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	if err := c.do(s, http.MethodPut, "/v1/namespaces/staging", map[string]any{"fallback": "default"}, nil); err != nil {
		t.Fatal(err)
	}
	body := wire.RegisterRequest{Address: "10.0.0.1", Port: 80, Ephemeral: new(bool)}
	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/pay/instances/p-1", body, nil); err != nil {
		t.Fatal(err)
	}
	addrs := func() []string {
		st := adsStream(t, s.XDSAddr(), "")
		if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"pay.staging"}}); err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range r.GetResources() {
			var cla endpointv3.ClusterLoadAssignment
			if err := a.UnmarshalTo(&cla); err != nil {
				t.Fatal(err)
			}
			if cla.GetClusterName() != "pay.staging" {
				t.Fatalf("assignment named %q, want the name asked for", cla.GetClusterName())
			}
			for _, l := range cla.GetEndpoints() {
				for _, e := range l.GetLbEndpoints() {
					out = append(out, e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
				}
			}
		}
		return out
	}
	if got := addrs(); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Fatalf("pay.staging from the fallback: %v, want default's 10.0.0.1", got)
	}
	body.Address = "10.9.0.1"
	if err := c.do(s, http.MethodPut, "/v1/namespaces/staging/services/pay/instances/s-1", body, nil); err != nil {
		t.Fatal(err)
	}
	if got := addrs(); !slices.Equal(got, []string{"10.9.0.1"}) {
		t.Fatalf("pay.staging with its own instance: %v, want 10.9.0.1", got)
	}
}

// A subscription that cannot be served ends the stream with the reason: a
// type the server does not offer, or more names than it takes at once.
func TestXDSRefusesWhatItCannotServe(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	many := make([]string, xdsMaxNames+1)
	for k := range many {
		many[k] = fmt.Sprintf("s%d.default", k)
	}
	for _, req := range []*discoverygrpc.DiscoveryRequest{
		{TypeUrl: "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"},
		{TypeUrl: resourcev3.EndpointType, ResourceNames: many},
	} {
		st := adsStream(t, s.XDSAddr(), "")
		if _, err := sendRecv(st, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s with %d names: %v, want InvalidArgument", req.TypeUrl, len(req.ResourceNames), err)
		}
	}
}

// The xDS port reports its streams, answers, refused answers and refused
// streams in /metrics, and caps one client's connections as the HTTP port
// does (--limit-connections-per-client): a connection over the cap is
// closed at once.
func TestXDSMetricsAndConnectionCap(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) {
		cfg.API.Limits.ConnectionsPerClient = 2
		cfg.API.Limits.LimitLoopback = true
	})
	s := c.servers[0]
	body := wire.RegisterRequest{Address: "10.0.0.1", Port: 80, Ephemeral: new(bool)}
	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/web/instances/i1", body, nil); err != nil {
		t.Fatal(err)
	}
	eds := &discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"web.default"}}
	st := adsStream(t, s.XDSAddr(), "") // the first connection
	r, err := sendRecv(st, eds)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.metric(t, s, `switchyard_xds_streams{variant="sotw"}`); got != "1" {
		t.Errorf("streams open: %s, want 1", got)
	}
	if got := c.metric(t, s, `switchyard_xds_pushes_total{type="endpoint"}`); got != "1" {
		t.Errorf("endpoint answers: %s, want 1", got)
	}
	// The client refuses the answer (NACK).
	nack := &discoverygrpc.DiscoveryRequest{TypeUrl: eds.TypeUrl, ResourceNames: eds.ResourceNames, ResponseNonce: r.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "cannot use it"}}
	if err := st.Send(nack); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the NACK counted", func() error {
		if got := c.metric(t, s, "switchyard_xds_nacks_total"); got != "1" {
			return fmt.Errorf("nacks %s, want 1", got)
		}
		return nil
	})
	// A second connection, whose stream asks what is not served.
	bad := &discoverygrpc.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"}
	if _, err := sendRecv(adsStream(t, s.XDSAddr(), ""), bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unserved type: %v, want InvalidArgument", err)
	}
	if got := c.metric(t, s, `switchyard_xds_streams_refused_total{code="InvalidArgument"}`); got != "1" {
		t.Errorf("streams refused as InvalidArgument: %s, want 1", got)
	}
	// A third connection from the same client is over the cap: closed
	// before the stream opens, or as it does.
	cc, err := grpc.NewClient("passthrough:///"+s.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	third, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err == nil {
		_, err = sendRecv(third, eds)
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a third connection: %v, want it closed (Unavailable)", err)
	}
	// The first stream is still served.
	if got := c.metric(t, s, `switchyard_xds_streams{variant="sotw"}`); got != "1" {
		t.Errorf("streams open after the refusals: %s, want 1", got)
	}
}
