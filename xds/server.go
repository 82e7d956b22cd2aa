// Package xds serves the catalog over the xDS protocol (ADS, state of the
// world and incremental), so that Envoy and proxyless gRPC clients find
// instances the way a lookup does: nearest first, with spill-over decided by
// the registry. envoyproxy/go-control-plane speaks the protocol; this
// package is the cache behind it, reading the server's own replica of the
// catalog, so every server (read servers too) answers from local state.
package xds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// connectTimeout is the clusters' connect timeout (Envoy's; gRPC ignores it).
const connectTimeout = 5 * time.Second

// MaxNames bounds the resources one subscription may name: a client asking
// for more is refused (InvalidArgument) rather than served a slice.
const MaxNames = 10000

// Catalog is what the server reads; *catalog.Catalog provides it.
type Catalog interface {
	route.Catalog
	Namespaces() (uint64, []store.Namespace, <-chan struct{})
	// AbandonCh closes when a restore replaces every view.
	AbandonCh() <-chan struct{}
	Services(ns string) (*store.NamespaceView, []*store.ServiceView, error)
}

// Config configures a Server.
type Config struct {
	Catalog  Catalog
	Topology route.Topology // nil: other regions by name
	// Token returns the token whose rules apply to a stream that presented
	// secret ("" when it presented none: the anonymous token), and false
	// when no token has that secret. Nil: access control is off, every
	// client reads everything.
	Token func(secret string) (*store.Token, bool)
	// Ready closes once this server has caught up with the leader: until
	// then a stream is held open and answered nothing, so that a client is
	// never sent a stale catalog, and does not fall back to another server
	// only to come back (a refused stream would send it there). Nil:
	// always ready.
	Ready  <-chan struct{}
	Logger *slog.Logger
}

// tokenRecheck is how often an open stream looks its token up again: a
// token revoked or changed ends the stream (Unauthenticated) within it.
var tokenRecheck = time.Second

// Server is the xDS server: register it on a gRPC server.
type Server struct {
	discoverygrpc.UnimplementedAggregatedDiscoveryServiceServer
	cfg Config
	log *slog.Logger

	open    [2]atomic.Int64  // streams open: state of the world, incremental
	pushes  [4]atomic.Uint64 // answers sent, by type (as served)
	nacks   atomic.Uint64    // answers clients refused
	refused [2]atomic.Uint64 // streams ended by the server, by refusedCodes
}

// refusedCodes are the codes a stream is refused or ended with, counted in
// Stats.Refused.
var refusedCodes = [2]codes.Code{codes.Unauthenticated, codes.InvalidArgument}

// Stats are the server's counters, for metrics.
type Stats struct {
	// Streams open, by protocol variant ("sotw", "delta").
	Streams map[string]int64
	// Pushes are the answers sent, by resource type ("listener", "route",
	// "cluster", "endpoint").
	Pushes map[string]uint64
	// Nacks are answers a client refused.
	Nacks uint64
	// Refused are streams refused or ended by the server, by gRPC code
	// (unknown or revoked token, a request it cannot serve).
	Refused map[string]uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{Streams: map[string]int64{"sotw": s.open[0].Load(), "delta": s.open[1].Load()},
		Pushes: map[string]uint64{}, Nacks: s.nacks.Load(), Refused: map[string]uint64{}}
	for k, name := range servedNames {
		st.Pushes[name] = s.pushes[k].Load()
	}
	for k, c := range refusedCodes {
		st.Refused[c.String()] = s.refused[k].Load()
	}
	return st
}

// pushed counts an answer of type typeURL sent.
func (s *Server) pushed(typeURL string) {
	if k := slices.Index(served, typeURL); k >= 0 {
		s.pushes[k].Add(1)
	}
}

// counted counts the stream's end when the server ended it.
func (s *Server) counted(err error) error {
	if k := slices.Index(refusedCodes[:], status.Code(err)); k >= 0 && err != nil {
		s.refused[k].Add(1)
	}
	return err
}

// New returns a Server reading cfg.Catalog.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: cfg.Logger}
}

// Register serves ADS (both protocol variants) on g.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s)
}

// HeaderToken is the gRPC metadata key a client sends its token in (Envoy:
// initial_metadata of the ADS cluster); "authorization: Bearer …" works too.
const HeaderToken = "x-switchyard-token"

// StreamAggregatedResources serves a state-of-the-world ADS stream.
func (s *Server) StreamAggregatedResources(st discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return s.serve(st.Context(), &s.open[0], func(ctx context.Context, v *view) error {
		return serverv3.NewServer(ctx, v, nil).StreamAggregatedResources(st)
	})
}

// DeltaAggregatedResources serves an incremental ADS stream.
func (s *Server) DeltaAggregatedResources(st discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return s.serve(st.Context(), &s.open[1], func(ctx context.Context, v *view) error {
		return serverv3.NewServer(ctx, v, nil).DeltaAggregatedResources(st)
	})
}

// errTokenChanged ends a stream whose token was revoked or changed.
var errTokenChanged = status.Error(codes.Unauthenticated,
	"the stream's token was revoked or its rules changed; open a new stream (with a valid token)")

// serve runs one stream, counted in open: run serves the protocol over
// the client's view of the catalog until the stream ends, or until ctx,
// which ends when the stream's token is revoked or changed, does.
func (s *Server) serve(ctx context.Context, open *atomic.Int64, run func(context.Context, *view) error) error {
	v, err := s.stream(ctx)
	if err != nil {
		return s.counted(err)
	}
	open.Add(1)
	defer open.Add(-1)
	if s.cfg.Token == nil {
		return s.counted(ended(ctx, run(ctx, v)))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(tokenRecheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if tok, ok := s.cfg.Token(v.secret); !ok || tok != v.token {
				cancel(errTokenChanged)
				return
			}
		}
	}()
	err = run(ctx, v)
	if errors.Is(context.Cause(ctx), errTokenChanged) {
		err = errTokenChanged
	}
	return s.counted(ended(ctx, err))
}

// ended is the status a stream ends with. go-control-plane returns nil
// when the stream's context ends, which a client would read as a clean end
// (io.EOF) racing its own deadline: a stream cut short by its deadline or
// its client says so.
func ended(ctx context.Context, err error) error {
	if err == nil && ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return err
}

// stream is one client's view of the catalog: its token decides what it
// may read. go-control-plane runs the protocol over it.
func (s *Server) stream(ctx context.Context) (*view, error) {
	v := &view{s: s, ctx: ctx}
	if s.cfg.Token == nil {
		return v, nil
	}
	v.secret = tokenOf(ctx)
	tok, ok := s.cfg.Token(v.secret)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "the token is not known to this cluster (mistyped, revoked, or from another cluster)")
	}
	v.token = tok
	return v, nil
}

// tokenOf is the secret a stream presented, "" for none.
func tokenOf(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if t := md.Get(HeaderToken); len(t) > 0 {
		return t[0]
	}
	for _, a := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}

// view implements go-control-plane's cache for one stream.
type view struct {
	s      *Server
	ctx    context.Context
	token  *store.Token // nil: access control off
	secret string       // the token's secret, as presented
}

// item is one resource as sent: its name, its version (a hash of its
// bytes, so a client that has it is not sent it again) and its bytes.
type item struct {
	name, version string
	res           *anypb.Any
}

// build returns the resources of type typeURL for the names asked
// (wildcard: every one the client may read), nearest-first for caller, and
// the channels that close when any of them may have changed.
func (v *view) build(typeURL string, names []string, wildcard bool, caller store.Locality) ([]item, []<-chan struct{}, error) {
	cat := v.s.cfg.Catalog
	_, _, nsCh := cat.Namespaces()
	watches := []<-chan struct{}{cat.AbandonCh(), nsCh}
	if wildcard {
		// Only clusters are offered to a wildcard subscription (Envoy's
		// CDS): listeners here are gRPC's API listeners, which Envoy
		// refuses, and routes and endpoints are only ever named.
		if typeURL != resourcev3.ClusterType {
			return nil, watches, nil
		}
		names = names[:0:0]
		_, nss, _ := cat.Namespaces()
		for _, n := range nss {
			nv, svcs, err := cat.Services(n.Name)
			if err != nil {
				continue
			}
			watches = append(watches, nv.WatchCh())
			for _, sv := range svcs {
				names = append(names, Name(n.Name, sv.Service.Name))
			}
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	items := make([]item, 0, len(names))
	for _, name := range names {
		ns, svc, ok := parseName(name)
		if !ok || (v.token != nil && !v.token.Allows(store.AccessRead, ns, svc)) {
			continue // as if it did not exist: a name learns nothing
		}
		r, err := route.Lookup(cat, route.Query{Namespace: ns, Service: svc, Caller: caller, Topology: v.s.cfg.Topology})
		watches = append(watches, r.Watches...)
		if err != nil {
			continue
		}
		it, err := v.resource(typeURL, name, r, caller)
		if err != nil {
			return nil, nil, err
		}
		items = append(items, it)
	}
	return items, watches, nil
}

type edsKey struct {
	name   string
	caller store.Locality
}

// resource is one resource of a service the lookup r found. Endpoints
// depend on the caller and the instances and are kept on the served view
// per caller; the others depend on the name alone.
func (v *view) resource(typeURL, name string, r route.Result, caller store.Locality) (item, error) {
	var m proto.Message
	switch typeURL {
	case resourcev3.ListenerType:
		l, err := listener(name)
		if err != nil {
			return item{}, err
		}
		m = l
	case resourcev3.RouteType:
		m = routeConfig(name)
	case resourcev3.ClusterType:
		m = cluster(name)
	case resourcev3.EndpointType:
		sv := r.Served
		it := store.MemoKeyed(sv, edsKey{name, caller}, route.MaxCachedPerView, func() item {
			tiers := route.Tiers(route.Input{Caller: caller, Settings: sv.Service.ServiceSettings,
				Instances: sv.Instances(), Topology: v.s.cfg.Topology})
			it, err := marshal(name, assignment(name, tiers))
			if err != nil {
				return item{}
			}
			return it
		})
		if it.res == nil {
			return item{}, fmt.Errorf("xds: encode endpoints of %s", name)
		}
		return it, nil
	default:
		return item{}, status.Errorf(codes.InvalidArgument, "resource type %q is not served (listeners, routes, clusters and endpoints are)", typeURL)
	}
	return marshal(name, m)
}

// marshal encodes m deterministically and names its version after its
// bytes.
func marshal(name string, m proto.Message) (item, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return item{}, err
	}
	h := fnv.New64a()
	h.Write(b)
	return item{name: name, version: hex.EncodeToString(h.Sum(nil)),
		res: &anypb.Any{TypeUrl: resourcev3.APITypePrefix + string(m.ProtoReflect().Descriptor().FullName()), Value: b}}, nil
}

// callerOf is where a client runs, from its xDS node's locality.
func callerOf(n *corev3.Node) store.Locality {
	l := n.GetLocality()
	return store.Locality{Region: l.GetRegion(), Datacenter: l.GetZone(), Unit: l.GetSubZone()}
}

// setVersion is the version of a state-of-the-world answer: the hash of
// its resources' names and versions.
func setVersion(items []item) string {
	h := sha256.New()
	for _, it := range items {
		h.Write([]byte(it.name))
		h.Write([]byte{0})
		h.Write([]byte(it.version))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// served are the resource types a client may ask for.
var served = []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType}

// servedNames are the served types' short names, in the same order, for
// metrics.
var servedNames = []string{"listener", "route", "cluster", "endpoint"}

// refuse says why a subscription cannot be served, before any watch
// starts: an error here ends the client's stream with its status. The
// bound is on the names a client gives; a wildcard of clusters is the
// catalog's own size.
func refuse(typeURL string, names int) error {
	if !slices.Contains(served, typeURL) {
		return status.Errorf(codes.InvalidArgument, "resource type %q is not served (listeners, routes, clusters and endpoints are)", typeURL)
	}
	if names > MaxNames {
		return status.Errorf(codes.InvalidArgument, "%d resources asked at once; at most %d", names, MaxNames)
	}
	return nil
}

// CreateWatch answers a state-of-the-world request once the answer differs
// from the version the client has (at once for a new or changed
// subscription), or after a change makes it differ.
func (v *view) CreateWatch(req *cache.Request, sub cache.Subscription, out chan cache.Response) (func(), error) {
	names := make([]string, 0, len(sub.SubscribedResources()))
	for n := range sub.SubscribedResources() {
		names = append(names, n)
	}
	typeURL, wildcard, caller, have := req.GetTypeUrl(), sub.IsWildcard(), callerOf(req.GetNode()), req.GetVersionInfo()
	if err := refuse(typeURL, len(names)); err != nil {
		return nil, err
	}
	// After a refusal (NACK) the client still holds version have; the
	// answer it refused is the last one sent, which is not sent again
	// until the catalog changes it.
	refused := ""
	if req.GetErrorDetail() != nil {
		for _, ver := range sub.ReturnedResources() {
			refused = ver
			break
		}
		v.s.nacks.Add(1)
		v.s.log.Warn("an xDS client refused an answer", "node", req.GetNode().GetId(), "type", typeURL,
			"holds", have, "refused", refused, "error", req.GetErrorDetail().GetMessage())
	}
	return v.watch(func(stop <-chan struct{}) error {
		for {
			items, watches, err := v.build(typeURL, names, wildcard, caller)
			if err != nil {
				return err
			}
			ver := setVersion(items)
			if ver != have && ver != refused {
				res := make([]*anypb.Any, len(items))
				returned := make(map[string]string, len(items))
				for k, it := range items {
					res[k] = it.res
					returned[it.name] = ver
				}
				out <- &cache.PassthroughResponse{Request: req, ReturnedResources: returned,
					DiscoveryResponse: &discoverygrpc.DiscoveryResponse{VersionInfo: ver, Resources: res, TypeUrl: typeURL}}
				v.s.pushed(typeURL)
				return nil
			}
			if !waitAny(stop, watches) {
				return nil
			}
		}
	})
}

// CreateDeltaWatch answers an incremental request with the resources whose
// versions differ from what the client has, and the names it has that are
// gone, once there are any.
func (v *view) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	names := make([]string, 0, len(sub.SubscribedResources()))
	for n := range sub.SubscribedResources() {
		names = append(names, n)
	}
	typeURL, wildcard, caller := req.GetTypeUrl(), sub.IsWildcard(), callerOf(req.GetNode())
	if err := refuse(typeURL, len(names)); err != nil {
		return nil, err
	}
	if req.GetErrorDetail() != nil {
		v.s.nacks.Add(1)
		v.s.log.Warn("an xDS client refused an answer", "node", req.GetNode().GetId(), "type", typeURL,
			"error", req.GetErrorDetail().GetMessage())
	}
	had := sub.ReturnedResources()
	return v.watch(func(stop <-chan struct{}) error {
		for {
			items, watches, err := v.build(typeURL, names, wildcard, caller)
			if err != nil {
				return err
			}
			next := make(map[string]string, len(items))
			var res []*discoverygrpc.Resource
			for _, it := range items {
				next[it.name] = it.version
				if had[it.name] != it.version {
					res = append(res, &discoverygrpc.Resource{Name: it.name, Version: it.version, Resource: it.res})
				}
			}
			var removed []string
			for n := range had {
				if _, ok := next[n]; !ok {
					removed = append(removed, n)
				}
			}
			slices.Sort(removed)
			if len(res) > 0 || len(removed) > 0 {
				out <- &cache.DeltaPassthroughResponse{DeltaRequest: req, NextVersionMap: next,
					DeltaDiscoveryResponse: &discoverygrpc.DeltaDiscoveryResponse{
						SystemVersionInfo: setVersion(items), Resources: res, RemovedResources: removed, TypeUrl: typeURL}}
				v.s.pushed(typeURL)
				return nil
			}
			if !waitAny(stop, watches) {
				return nil
			}
		}
	})
}

// watch runs answer in a goroutine of its own until it answers, fails or
// is cancelled. A failure ends the client's stream.
func (v *view) watch(answer func(stop <-chan struct{}) error) (func(), error) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if ready := v.s.cfg.Ready; ready != nil {
			select {
			case <-ready:
			case <-stop:
				return
			}
		}
		if err := answer(stop); err != nil {
			v.s.log.Warn("xds: cannot answer a request", "err", err)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stop) })
		<-done
	}, nil
}

// waitAny waits until one of chs closes (true) or stop closes (false).
// A subscription may name thousands of services: one select over all of
// them, without a goroutine each.
func waitAny(stop <-chan struct{}, chs []<-chan struct{}) bool {
	cases := make([]reflect.SelectCase, 0, 1+len(chs))
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(stop)})
	for _, ch := range chs {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	k, _, _ := reflect.Select(cases)
	return k != 0
}

// Fetch is the REST variant, which this server does not offer.
func (v *view) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("xds: fetch over REST is not served; use ADS")
}
