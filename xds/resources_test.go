package xds

import (
	"fmt"
	"math"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name, ns, svc string
		ok            bool
	}{
		{"web.default", "default", "web", true},
		{"pay-api.team-a", "team-a", "pay-api", true},
		{"web", "", "", false},
		{"web.default.extra", "", "", false}, // a namespace is one DNS label
		{"Web.default", "", "", false},
		{".default", "", "", false},
		{"xdstp://authority/envoy.config.cluster.v3.Cluster/web", "", "", false},
	} {
		ns, svc, ok := parseName(tc.name)
		if ok != tc.ok || ns != tc.ns || svc != tc.svc {
			t.Errorf("parseName(%q) = %q, %q, %v; want %q, %q, %v", tc.name, ns, svc, ok, tc.ns, tc.svc, tc.ok)
		}
	}
	if ns, svc, ok := parseName(Name("default", "web")); !ok || ns != "default" || svc != "web" {
		t.Errorf("Name does not round-trip: %q %q %v", ns, svc, ok)
	}
}

// The assignment keeps what an xDS client insists on: priorities from 0
// without a gap, one locality per (region, zone, sub_zone) per priority
// with a weight, no address twice (the nearer kept), usable instances
// HEALTHY and the others UNHEALTHY.
func TestAssignment(t *testing.T) {
	eu1a := store.Locality{Region: "eu", Datacenter: "eu-1", Unit: "a"}
	eu1b := store.Locality{Region: "eu", Datacenter: "eu-1", Unit: "b"}
	us := store.Locality{Region: "us", Datacenter: "us-1", Unit: "a"}
	in := func(id, addr string, l store.Locality, w int) *store.Instance {
		return &store.Instance{ID: id, Address: addr, Port: 80, Locality: l, Weight: w, Enabled: true}
	}
	tiers := []route.Tier{
		{Instances: []*store.Instance{in("a1", "10.0.0.1", eu1a, 100), in("a2", "10.0.0.2", eu1a, 50), in("b1", "10.0.0.3", eu1b, 10)},
			Usable: []bool{true, false, true}},
		// Every address of this tier was in the first: no priority for it.
		{Instances: []*store.Instance{in("dup", "10.0.0.1", eu1b, 100)}, Usable: []bool{true}},
		{Instances: []*store.Instance{in("u1", "10.1.0.1", us, 7)}, Usable: []bool{false}},
	}
	cla := assignment("web.default", tiers)
	if cla.GetClusterName() != "web.default" {
		t.Fatalf("cluster name %q", cla.GetClusterName())
	}
	if err := cla.ValidateAll(); err != nil {
		t.Fatalf("the assignment breaks the xDS schema: %v", err)
	}
	type got struct {
		prio     uint32
		region   string
		zone     string
		sub      string
		weight   uint32
		healthy  int
		unusable int
		weights  string // each endpoint's, in order
	}
	var gs []got
	for _, l := range cla.GetEndpoints() {
		g := got{prio: l.GetPriority(), region: l.GetLocality().GetRegion(), zone: l.GetLocality().GetZone(), sub: l.GetLocality().GetSubZone(),
			weight: l.GetLoadBalancingWeight().GetValue()}
		for _, e := range l.GetLbEndpoints() {
			if e.GetHealthStatus() == corev3.HealthStatus_HEALTHY {
				g.healthy++
			} else {
				g.unusable++
			}
			g.weights += fmt.Sprintf("%d ", e.GetLoadBalancingWeight().GetValue())
		}
		gs = append(gs, g)
	}
	// A locality weighs what its usable instances weigh; one with none
	// weighs 1, the least a client keeps.
	want := []got{{0, "eu", "eu-1", "a", 100, 1, 1, "100 50 "}, {0, "eu", "eu-1", "b", 10, 1, 0, "10 "}, {1, "us", "us-1", "a", 1, 0, 1, "7 "}}
	if len(gs) != len(want) {
		t.Fatalf("localities %+v, want %+v", gs, want)
	}
	for k := range want {
		if gs[k] != want[k] {
			t.Errorf("locality %d: %+v, want %+v", k, gs[k], want[k])
		}
	}
	if f := cla.GetPolicy().GetOverprovisioningFactor().GetValue(); f != overprovisioning {
		t.Errorf("overprovisioning factor %d", f)
	}
}

// Locality weights that would pass what a client accepts per priority are
// scaled down, none to zero.
func TestAssignmentWeightsBounded(t *testing.T) {
	var ins []*store.Instance
	var usable []bool
	for k := range 600 {
		l := store.Locality{Region: "eu", Datacenter: "eu-1", Unit: string(rune('a' + k%26))}
		ins = append(ins, &store.Instance{ID: "i", Address: "10.0.0.1", Port: 1000 + k, Locality: l, Weight: store.MaxWeight, Enabled: true})
		usable = append(usable, true)
	}
	ins = append(ins, &store.Instance{ID: "small", Address: "10.0.0.2", Port: 1, Locality: store.Locality{Region: "eu", Datacenter: "eu-2"}, Weight: 1, Enabled: true})
	usable = append(usable, true)
	cla := assignment("web.default", []route.Tier{{Instances: ins, Usable: usable}})
	var sum uint64
	for _, l := range cla.GetEndpoints() {
		w := l.GetLoadBalancingWeight().GetValue()
		if w == 0 {
			t.Fatalf("locality %v has weight 0", l.GetLocality())
		}
		sum += uint64(w)
	}
	if sum > math.MaxUint32 {
		t.Fatalf("priority 0 weights sum to %d", sum)
	}
}

// What no watch may start with is refused with the status a client reads:
// an unknown type, or more names than MaxNames.
func TestRefuse(t *testing.T) {
	for _, tc := range []struct {
		typeURL string
		names   int
		want    string
	}{
		{resourcev3.ClusterType, MaxNames, ""},
		{resourcev3.EndpointType, MaxNames + 1, "at most 10000"},
		{"type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig", 1, "not served"},
	} {
		err := refuse(tc.typeURL, tc.names)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s, %d names: %v", tc.typeURL, tc.names, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || status.Code(err) != codes.InvalidArgument):
			t.Errorf("%s, %d names: %v, want InvalidArgument containing %q", tc.typeURL, tc.names, err, tc.want)
		}
	}
}

// Every resource the server sends passes the xDS schema's own validation
// (the rules Envoy applies to what it is sent), and names what it should.
func TestResourcesValidate(t *testing.T) {
	name := Name("default", "web")
	l, err := listener(name)
	if err != nil {
		t.Fatal(err)
	}
	for what, r := range map[string]interface{ ValidateAll() error }{
		"listener": l, "route": routeConfig(name), "cluster": cluster(name),
	} {
		if err := r.ValidateAll(); err != nil {
			t.Errorf("%s breaks the xDS schema: %v", what, err)
		}
	}
	if got := cluster(name).GetEdsClusterConfig().GetEdsConfig().GetAds(); got == nil {
		t.Error("the cluster does not take its endpoints over ADS")
	}
	if got := routeConfig(name).GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster(); got != name {
		t.Errorf("the route sends to cluster %q, want %q", got, name)
	}
}
