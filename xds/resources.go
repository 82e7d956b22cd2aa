package xds

import (
	"math"
	"net"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// Resource names. One name stands for a service in a namespace in every
// resource type: "{service}.{namespace}", as a gRPC target
// xds:///web.default and an Envoy cluster name carry it. Both parts are DNS
// labels, so the first dot splits them.

// Name is the resource name of service svc in namespace ns.
func Name(ns, svc string) string { return svc + "." + ns }

// parseName splits a resource name; ok is false for anything that names no
// service a registry could hold (a client's typo, an xdstp:// name).
func parseName(name string) (ns, svc string, ok bool) {
	svc, ns, ok = strings.Cut(name, ".")
	if !ok || store.ValidateName("service", svc) != nil || store.ValidateName("namespace", ns) != nil {
		return "", "", false
	}
	return ns, svc, true
}

// ads is the config source every resource points at: the same stream.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

// listener is the API listener a proxyless gRPC client asks for first: an
// HTTP connection manager whose routes come from RDS (resource name) and
// whose last filter is the router, as gRPC requires.
func listener(name string) (*listenerv3.Listener, error) {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: ads(), RouteConfigName: name}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: hcm}}, nil
}

// routeConfig sends every call on the listener to the service's cluster.
// Its one virtual host takes any authority: the resource is the service's
// alone, so a target with a port (xds:///web.default:8080) resolves too.
func routeConfig(name string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: name, Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}},
		}},
	}}}
}

// cluster is the service's cluster, its endpoints from EDS. Failing over
// between priorities is the registry's to decide (see assignment): Envoy's
// panic mode, which would send traffic to unhealthy hosts below 50 %
// healthy, is off (protection is the registry's protect threshold), and
// locality weights are honoured.
func cluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		ConnectTimeout:       durationpb.New(connectTimeout),
		CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
			HealthyPanicThreshold: &typev3.Percent{Value: 0},
			LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
				LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}},
		},
	}
}

// overprovisioning tells Envoy to count a priority as whole while any of
// it is healthy: how much of the nearer levels must be healthy before
// traffic spills is min_healthy_ratio, applied by the registry when it
// builds the priorities, and Envoy's own spill-over (at 1.4 by default)
// would second-guess it. gRPC ignores the field.
const overprovisioning = 1 << 20

// assignment is the service's endpoints for one caller, one priority per
// tier (route.Tiers): priority 0 is what a lookup from the caller's
// locality answers, the next ones the levels beyond it, nearest first.
// Localities map one to one: region → region, datacenter → zone, unit →
// sub_zone. A locality's weight is its usable instances' weights (at least
// 1); usable instances are HEALTHY, the others UNHEALTHY (clients skip
// them), so a locality with half its weight unhealthy draws half the
// traffic it would. An
// address given by two instances is sent once, for the nearer (an xDS
// client refuses an assignment that repeats one).
func assignment(name string, tiers []route.Tier) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name,
		Policy: &endpointv3.ClusterLoadAssignment_Policy{OverprovisioningFactor: wrapperspb.UInt32(overprovisioning)}}
	seen := map[string]bool{}
	prio := uint32(0)
	for _, t := range tiers {
		var group []*endpointv3.LocalityLbEndpoints
		at := map[store.Locality]int{}
		var weights []uint64
		for k, i := range t.Instances {
			addr := net.JoinHostPort(i.Address, strconv.Itoa(i.Port))
			if seen[addr] {
				continue
			}
			seen[addr] = true
			g, ok := at[i.Locality]
			if !ok {
				g = len(group)
				at[i.Locality] = g
				group = append(group, &endpointv3.LocalityLbEndpoints{Priority: prio, Locality: &corev3.Locality{
					Region: i.Locality.Region, Zone: i.Locality.Datacenter, SubZone: i.Locality.Unit}})
				weights = append(weights, 0)
			}
			hs := corev3.HealthStatus_UNHEALTHY
			if t.Usable[k] {
				hs = corev3.HealthStatus_HEALTHY
			}
			group[g].LbEndpoints = append(group[g].LbEndpoints, &endpointv3.LbEndpoint{
				HealthStatus:        hs,
				LoadBalancingWeight: wrapperspb.UInt32(uint32(i.Weight)),
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Hostname: i.ID,
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: i.Address, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(i.Port)}}}},
				}},
			})
			if t.Usable[k] {
				weights[g] += uint64(i.Weight)
			}
		}
		if len(group) == 0 {
			continue // every address already sent: no empty priority
		}
		setWeights(group, weights)
		cla.Endpoints = append(cla.Endpoints, group...)
		prio++
	}
	return cla
}

// setWeights gives each locality its weight, scaled down when a priority's
// sum would pass what a client accepts (2³²−1), each at least 1 (a
// locality without a weight is dropped by gRPC).
func setWeights(group []*endpointv3.LocalityLbEndpoints, weights []uint64) {
	var sum uint64
	for _, w := range weights {
		sum += w
	}
	scale := 1.0
	if sum > math.MaxUint32/2 {
		scale = float64(math.MaxUint32/2) / float64(sum)
	}
	for g, w := range weights {
		group[g].LoadBalancingWeight = wrapperspb.UInt32(uint32(max(1, float64(w)*scale)))
	}
}
