package route

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

func inst(id, region, dc, unit string, weight int, healthy bool) *store.Instance {
	return &store.Instance{ID: id, Address: "10.0.0.1", Port: 80, Weight: weight, Enabled: true, Healthy: healthy,
		Locality: store.Locality{Region: region, Datacenter: dc, Unit: unit}}
}

func ids(sel Selection) []string {
	var out []string
	for _, c := range sel.Candidates {
		out = append(out, c.Instance.ID)
	}
	return out
}

func levelNames(sel Selection) []string {
	var out []string
	for _, l := range sel.Levels {
		out = append(out, l.Name())
	}
	return out
}

var settings = store.DefaultServiceSettings() // min_healthy_ratio 0.5, no protect threshold

// A fleet over three regions: eu (dc eu-a with units a1/a2, dc eu-b), us, ap.
func fleet() []*store.Instance {
	return []*store.Instance{
		inst("eu-a1-1", "eu", "eu-a", "a1", 100, true),
		inst("eu-a1-2", "eu", "eu-a", "a1", 100, true),
		inst("eu-a2-1", "eu", "eu-a", "a2", 100, true),
		inst("eu-b-1", "eu", "eu-b", "b1", 100, true),
		inst("us-1", "us", "us-e", "u1", 100, true),
		inst("ap-1", "ap", "ap-s", "p1", 100, true),
		inst("nowhere-1", "", "", "", 100, true),
	}
}

var rtt = RTTTable{"eu-a": {"us-e": 80 * time.Millisecond, "ap-s": 160 * time.Millisecond}}

func TestSelectNearestLevelServesAlone(t *testing.T) {
	caller := store.Locality{Region: "eu", Datacenter: "eu-a", Unit: "a1"}
	sel := Select(Input{Caller: caller, Settings: settings, Instances: fleet(), Topology: rtt})
	if got := ids(sel); !slices.Equal(got, []string{"eu-a1-1", "eu-a1-2"}) {
		t.Fatalf("candidates %v, want the caller's unit", got)
	}
	if got := levelNames(sel); !slices.Equal(got, []string{"unit"}) || sel.Protected || sel.TotalWeight != 200 {
		t.Fatalf("levels %v protected %v total %d", got, sel.Protected, sel.TotalWeight)
	}
}

func TestSelectSpillsOverLevelByLevel(t *testing.T) {
	caller := store.Locality{Region: "eu", Datacenter: "eu-a", Unit: "a1"}
	for _, c := range []struct {
		name   string
		down   []string
		want   []string
		levels []string
	}{
		{"half the unit down still serves (ratio 0.5)", []string{"eu-a1-1"},
			[]string{"eu-a1-2"}, []string{"unit"}},
		{"unit gone: datacenter joins", []string{"eu-a1-1", "eu-a1-2"},
			[]string{"eu-a2-1"}, []string{"unit", "datacenter"}},
		{"datacenter gone: region joins", []string{"eu-a1-1", "eu-a1-2", "eu-a2-1"},
			[]string{"eu-b-1"}, []string{"unit", "datacenter", "region"}},
		{"region gone: the nearest region by RTT (us, 80 ms) before ap (160 ms)", []string{"eu-a1-1", "eu-a1-2", "eu-a2-1", "eu-b-1"},
			[]string{"us-1"}, []string{"unit", "datacenter", "region", "region+1"}},
		{"us gone too: ap", []string{"eu-a1-1", "eu-a1-2", "eu-a2-1", "eu-b-1", "us-1"},
			[]string{"ap-1"}, []string{"unit", "datacenter", "region", "region+1", "region+2"}},
		{"everything with a locality gone: anywhere", []string{"eu-a1-1", "eu-a1-2", "eu-a2-1", "eu-b-1", "us-1", "ap-1"},
			[]string{"nowhere-1"}, []string{"unit", "datacenter", "region", "region+1", "region+2", "anywhere"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			all := fleet()
			for _, i := range all {
				if slices.Contains(c.down, i.ID) {
					i.Healthy = false
				}
			}
			sel := Select(Input{Caller: caller, Settings: settings, Instances: all, Topology: rtt})
			if got := ids(sel); !slices.Equal(got, c.want) {
				t.Errorf("candidates %v, want %v", got, c.want)
			}
			if got := levelNames(sel); !slices.Equal(got, c.levels) {
				t.Errorf("levels %v, want %v", got, c.levels)
			}
		})
	}
}

func TestSelectMinHealthyRatio(t *testing.T) {
	// Four in the caller's datacenter, one healthy: 0.25 < 0.5, so the
	// region joins; with min_healthy_ratio 0.2 the datacenter serves alone.
	var all []*store.Instance
	for k := range 4 {
		all = append(all, inst(fmt.Sprintf("a-%d", k), "eu", "eu-a", "", 100, k == 0))
	}
	all = append(all, inst("b-0", "eu", "eu-b", "", 100, true))
	caller := store.Locality{Region: "eu", Datacenter: "eu-a"}
	sel := Select(Input{Caller: caller, Settings: settings, Instances: all})
	if got := ids(sel); !slices.Equal(got, []string{"a-0", "b-0"}) {
		t.Fatalf("ratio 0.5: %v", got)
	}
	s := settings
	s.MinHealthyRatio = 0.2
	if got := ids(Select(Input{Caller: caller, Settings: s, Instances: all})); !slices.Equal(got, []string{"a-0"}) {
		t.Fatalf("ratio 0.2: %v", got)
	}
	// Ratio 0: a level serves alone as long as one instance is healthy.
	s.MinHealthyRatio = 0
	for _, i := range all[1:4] {
		i.Healthy = false
	}
	if got := ids(Select(Input{Caller: caller, Settings: s, Instances: all})); !slices.Equal(got, []string{"a-0"}) {
		t.Fatalf("ratio 0: %v", got)
	}
}

func TestSelectNeverDisabledOrDrained(t *testing.T) {
	all := fleet()
	all[0].Enabled = false
	all[1].Weight = 0
	caller := store.Locality{Region: "eu", Datacenter: "eu-a", Unit: "a1"}
	sel := Select(Input{Caller: caller, Settings: settings, Instances: all, Topology: rtt})
	// The unit has no serving instance left, so it is no level at all; the
	// datacenter serves.
	if got := ids(sel); !slices.Equal(got, []string{"eu-a2-1"}) {
		t.Fatalf("candidates %v", got)
	}
	// Even under protection.
	s := settings
	s.ProtectThreshold = 1
	for _, i := range all {
		i.Healthy = false
	}
	sel = Select(Input{Caller: caller, Settings: s, Instances: all, Topology: rtt})
	for _, c := range sel.Candidates {
		if !c.Instance.Enabled || c.Instance.Weight == 0 {
			t.Fatalf("%s (enabled %v, weight %d) is a candidate", c.Instance.ID, c.Instance.Enabled, c.Instance.Weight)
		}
	}
}

func TestSelectProtectThresholdOnTheChosenScope(t *testing.T) {
	// Nothing is healthy anywhere: the scope is everything; with a protect
	// threshold every enabled serving instance is a candidate.
	all := fleet()
	for _, i := range all {
		i.Healthy = false
	}
	caller := store.Locality{Region: "eu", Datacenter: "eu-a", Unit: "a1"}
	if sel := Select(Input{Caller: caller, Settings: settings, Instances: all, Topology: rtt}); len(sel.Candidates) != 0 || sel.Protected {
		t.Fatalf("no threshold: %v protected=%v", ids(sel), sel.Protected)
	}
	s := settings
	s.ProtectThreshold = 0.5
	sel := Select(Input{Caller: caller, Settings: s, Instances: all, Topology: rtt})
	if !sel.Protected || len(sel.Candidates) != len(all) {
		t.Fatalf("protected %v, %d candidates", sel.Protected, len(sel.Candidates))
	}
	// The caller's unit (2 instances) is down, so the rest of its
	// datacenter joins (1 of 1 healthy: it serves). The protect threshold
	// of 0.6 applies to that scope, unit and datacenter: 1 of 3 healthy,
	// so all three are candidates.
	all = fleet()
	all[0].Healthy, all[1].Healthy = false, false
	s.MinHealthyRatio, s.ProtectThreshold = 0.5, 0.6
	sel = Select(Input{Caller: caller, Settings: s, Instances: all, Topology: rtt})
	if !sel.Protected || !slices.Equal(ids(sel), []string{"eu-a1-1", "eu-a1-2", "eu-a2-1"}) {
		t.Fatalf("protected %v, candidates %v", sel.Protected, ids(sel))
	}
}

func TestSelectWithoutLocality(t *testing.T) {
	// A caller that says nothing about where it runs: one level, everyone.
	sel := Select(Input{Settings: settings, Instances: fleet()})
	if len(sel.Candidates) != 7 || !slices.Equal(levelNames(sel), []string{"anywhere"}) {
		t.Fatalf("%v %v", ids(sel), levelNames(sel))
	}
	// Regions without RTT are ordered by name.
	caller := store.Locality{Region: "eu", Datacenter: "eu-a", Unit: "a1"}
	all := fleet()
	for _, i := range all[:4] {
		i.Healthy = false
	}
	sel = Select(Input{Caller: caller, Settings: settings, Instances: all})
	if got := ids(sel); !slices.Equal(got, []string{"ap-1"}) {
		t.Fatalf("without RTT the first other region is ap (by name): %v", got)
	}
}

func TestSelectEmpty(t *testing.T) {
	sel := Select(Input{Settings: settings})
	if len(sel.Candidates) != 0 || sel.Protected || len(sel.Levels) != 0 {
		t.Fatalf("%+v", sel)
	}
	if _, err := NewPicker(sel).Pick(PickOptions{Rand: func() uint64 { return 1 }}); err != ErrNoCandidate {
		t.Fatalf("pick from nothing: %v", err)
	}
}
