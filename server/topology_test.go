package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

func TestTopologyFromGossipAndStatic(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.Locality = store.Locality{Region: "r-" + cfg.NodeID, Datacenter: "dc-" + cfg.NodeID}
	})
	topo := &topology{s: c.servers[0]}
	eventually(t, 5*time.Second, "RTT to the other datacenters from gossip", func() error {
		for _, dc := range []string{"dc-s2", "dc-s3"} {
			if d, ok := topo.RTT("dc-s1", dc); !ok || d <= 0 {
				return fmt.Errorf("RTT dc-s1 → %s: %v %v", dc, d, ok)
			}
		}
		return nil
	})
	if _, ok := topo.RTT("dc-s2", "dc-s3"); ok {
		t.Error("RTT between two other datacenters claimed known")
	}
	if d, ok := topo.RTT("dc-s1", "dc-s1"); !ok || d != 0 {
		t.Errorf("RTT to itself: %v %v", d, ok)
	}
	static, err := ParseRTTTable("eu-west-1:b=80ms, eu-west-1:c=120ms")
	if err != nil || static["eu-west-1"]["b"] != 80*time.Millisecond {
		t.Fatalf("hyphenated datacenter: %v %v", static, err)
	}
	static, err = ParseRTTTable("a:b=80ms, a:c=120ms")
	if err != nil {
		t.Fatal(err)
	}
	topo = &topology{s: c.servers[0], static: static}
	if d, ok := topo.RTT("b", "a"); !ok || d != 80*time.Millisecond {
		t.Errorf("static b→a: %v %v", d, ok)
	}
	if _, ok := topo.RTT("dc-s1", ""); ok {
		t.Error("RTT to an unnamed datacenter claimed known")
	}
	for _, bad := range []string{"a:b", "a=80ms", "a:b=soon", ":b=1ms", "a:b=-1ms", "a-b=1ms", "A:b=1ms", "a:b_c=1ms"} {
		if _, err := ParseRTTTable(bad); err == nil {
			t.Errorf("ParseRTTTable(%q) accepted", bad)
		}
	}
}

// GET /v1/cluster/rtt gives the whole matrix from any server: its own row
// from its gossip, the other datacenters' rows from one of their servers.
func TestRTTMatrixBetweenDatacenters(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) {
		cfg.Locality = store.Locality{Region: "r1", Datacenter: "dc-" + strings.TrimPrefix(cfg.NodeID, "s")}
	})
	dcs := []string{"dc-1", "dc-2", "dc-3"}
	eventually(t, 10*time.Second, "a full RTT matrix on s1", func() error {
		var m wire.RTTMatrix
		if err := c.do(c.servers[0], http.MethodGet, "/v1/cluster/rtt", nil, &m); err != nil {
			return err
		}
		if !slices.Equal(m.Datacenters, dcs) {
			return fmt.Errorf("datacenters %v", m.Datacenters)
		}
		for _, from := range dcs {
			for _, to := range dcs {
				v, ok := m.RTTMs[from][to]
				switch {
				case !ok:
					return fmt.Errorf("no RTT from %s to %s: %v", from, to, m.RTTMs)
				case from == to && v != 0, from != to && (v <= 0 || v > 1000):
					return fmt.Errorf("RTT from %s to %s is %v ms", from, to, v)
				}
			}
		}
		return nil
	})
}
