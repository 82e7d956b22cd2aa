package route

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// applyCandidates is the plain way to apply a delta: drop every id it
// names, add its candidates, sort by level, then id.
func applyCandidates(old, up []Candidate, removed []string) []Candidate {
	drop := map[string]bool{}
	for _, id := range removed {
		drop[id] = true
	}
	for _, c := range up {
		drop[c.Instance.ID] = true
	}
	var out []Candidate
	for _, c := range old {
		if !drop[c.Instance.ID] {
			out = append(out, c)
		}
	}
	out = append(out, up...)
	slices.SortFunc(out, func(a, b Candidate) int {
		if a.Level != b.Level {
			return cmp.Compare(a.Level, b.Level)
		}
		return strings.Compare(a.Instance.ID, b.Instance.ID)
	})
	return out
}

// switchTopology is a Topology the test changes between steps.
type switchTopology struct{ t RTTTable }

func (s *switchTopology) RTT(a, b string) (time.Duration, bool) { return s.t.RTT(a, b) }

// deltaCoverage counts the kinds of answers a delta was checked against,
// so that the test fails if its random catalogs stop making them.
type deltaCoverage struct {
	checked, scopeChanged, refused                                  int
	fallback, protected, spilled, otherRegion, withRemoved, withUps int
}

// TestDeltaRebuildsEveryLaterSelection: random catalogs of three
// namespaces (qa falls back to dev, dev to default), random writes
// (registrations at random localities, removals, health flips, weight and
// traffic switches, settings that move spill-over and protection, a
// fallback's service deleted and created again), RTTs that reorder the
// other regions, and callers at several places. For every lookup, each
// earlier answer to the same question with the same Scope, with Delta
// applied since that answer's served index, must be exactly the new
// selection (the same instances at the same levels in the same order); and
// Delta must refuse exactly when the served view cannot tell its changes
// since then.
func TestDeltaRebuildsEveryLaterSelection(t *testing.T) {
	var cov deltaCoverage
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) { deltaSequence(t, seed, &cov) })
	}
	t.Logf("%+v", cov)
	for what, n := range map[string]int{"checked": cov.checked, "scope changed": cov.scopeChanged,
		"served by a fallback": cov.fallback, "protected": cov.protected, "spilled over": cov.spilled,
		"another region's level": cov.otherRegion, "removals": cov.withRemoved, "upserts": cov.withUps} {
		if n == 0 {
			t.Errorf("no delta checked with %s: the random catalogs no longer exercise it", what)
		}
	}
}

func deltaSequence(t *testing.T, seed uint64, cov *deltaCoverage) {
	rng := rand.New(rand.NewPCG(seed, 11))
	s := store.New()
	index := uint64(0)
	apply := func(cmds ...*store.Command) {
		index++
		for _, c := range cmds {
			if c.Time.IsZero() {
				c.Time = time.Unix(int64(index), 0)
			}
		}
		s.ApplyBatch(index, cmds)
	}
	apply(&store.Command{Type: store.CommandPutNamespace, Namespace: "dev", NamespaceSettings: &store.NamespaceSettings{Fallback: "default"}})
	apply(&store.Command{Type: store.CommandPutNamespace, Namespace: "qa", NamespaceSettings: &store.NamespaceSettings{Fallback: "dev"}})
	topo := &switchTopology{t: RTTTable{"eu-1": {"us-1": 80 * time.Millisecond, "ap-1": 150 * time.Millisecond}}}
	namespaces := []string{"default", "dev", "qa"}
	localities := []store.Locality{
		{Region: "eu", Datacenter: "eu-1", Unit: "a"}, {Region: "eu", Datacenter: "eu-1", Unit: "b"},
		{Region: "eu", Datacenter: "eu-2", Unit: "a"}, {Region: "us", Datacenter: "us-1", Unit: "a"},
		{Region: "ap", Datacenter: "ap-1", Unit: "a"}, {Region: "sa", Datacenter: "sa-1", Unit: "a"}, {},
	}
	callers := []store.Locality{{Region: "eu", Datacenter: "eu-1", Unit: "a"}, {Region: "us", Datacenter: "us-1"}, {}, {Region: "eu"}}

	type answer struct {
		scope string
		base  uint64
		cands []Candidate
	}
	history := map[Query][]answer{}
	for step := range 300 {
		var cmds []*store.Command
		for range 1 + rng.IntN(3) {
			ns := namespaces[rng.IntN(3)]
			id := fmt.Sprintf("i-%02d", rng.IntN(30))
			switch k := rng.IntN(20); {
			case k < 7:
				in := store.Instance{Address: "10.0.0.1", Port: 80, Weight: []int{0, 1, 100, 100}[rng.IntN(4)],
					Enabled: rng.IntN(8) > 0, Locality: localities[rng.IntN(len(localities))]}
				cmds = append(cmds, &store.Command{Type: store.CommandRegister, Namespace: ns, Service: "svc", ID: id, Instance: &in})
			case k < 10:
				cmds = append(cmds, &store.Command{Type: store.CommandDeregister, Namespace: ns, Service: "svc", ID: id})
			case k < 16:
				cmds = append(cmds, &store.Command{Type: store.CommandSetHealth,
					Health: []store.HealthChange{{Namespace: ns, Service: "svc", ID: id, Healthy: rng.IntN(3) == 0}}})
			case k < 17:
				en := rng.IntN(4) > 0
				w := []int{0, 50, 100}[rng.IntN(3)]
				cmds = append(cmds, &store.Command{Type: store.CommandPatchInstance, Namespace: ns, Service: "svc", ID: id,
					Patch: &store.InstancePatch{Weight: &w, Enabled: &en}})
			case k < 19:
				set := store.DefaultServiceSettings()
				set.MinHealthyRatio = []float64{0, 0.5, 0.75, 1}[rng.IntN(4)]
				set.ProtectThreshold = []float64{0, 0, 0.3, 0.6}[rng.IntN(4)]
				cmds = append(cmds, &store.Command{Type: store.CommandPutService, Namespace: ns, Service: "svc", ServiceSettings: &set})
			default:
				if ns != "default" {
					cmds = append(cmds, &store.Command{Type: store.CommandDeleteService, Namespace: ns, Service: "svc"})
				}
			}
		}
		apply(cmds...)
		if step%25 == 24 {
			// Reorder the other regions: us and ap swap, sa becomes known.
			topo.t = RTTTable{"eu-1": {"us-1": time.Duration(50+rng.IntN(200)) * time.Millisecond,
				"ap-1": time.Duration(50+rng.IntN(200)) * time.Millisecond, "sa-1": 120 * time.Millisecond}}
		}
		for _, ns := range namespaces {
			for _, caller := range callers {
				q := Query{Namespace: ns, Service: "svc", Caller: caller, Topology: topo, NoWatch: true}
				res, err := Lookup(s, q)
				if err != nil {
					continue
				}
				now := answer{scope: res.Scope(q), base: res.Served.Index, cands: slices.Clone(res.Chosen.Selection.Candidates)}
				past := history[q]
				for k, old := range past {
					if k < len(past)-12 && k%10 != 0 {
						continue // the last twelve answers, and every tenth before them
					}
					if old.scope != now.scope {
						cov.scopeChanged++
						continue
					}
					up, removed, ok := Delta(res, old.base)
					if ok != (old.base >= res.Served.Horizon()) {
						t.Fatalf("step %d %s near %v: Delta since %d ok=%v, the served view's horizon is %d", step, ns, caller, old.base, ok, res.Served.Horizon())
					}
					if !ok {
						cov.refused++
						continue
					}
					got := applyCandidates(old.cands, up, removed)
					if !slices.Equal(got, now.cands) {
						t.Fatalf("step %d %s near %v since %d: the delta (up %v, removed %v) gives\n%v\nthe selection is\n%v",
							step, ns, caller, old.base, candidateIDs(up), removed, candidateIDs(got), candidateIDs(now.cands))
					}
					cov.checked++
					sel := &res.Chosen.Selection
					if res.Served.Service.Namespace != ns {
						cov.fallback++
					}
					if sel.Protected {
						cov.protected++
					}
					if len(sel.Levels) > 1 {
						cov.spilled++
					}
					if slices.ContainsFunc(sel.Regions, func(r string) bool { return r != "" }) {
						cov.otherRegion++
					}
					if len(removed) > 0 {
						cov.withRemoved++
					}
					if len(up) > 0 {
						cov.withUps++
					}
				}
				history[q] = append(past, now)
			}
		}
	}
}

func candidateIDs(cs []Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Level.Name()+":"+c.Instance.ID)
	}
	return out
}

// Delta refuses an answer older than what the served view remembers:
// more removals since than it keeps.
func TestDeltaRefusedPastTheHorizon(t *testing.T) {
	s := store.New()
	index := uint64(0)
	reg := func(id string) {
		index++
		in := store.Instance{Address: "10.0.0.1", Port: 80, Weight: 100, Enabled: true}
		s.Apply(index, &store.Command{Type: store.CommandRegister, Namespace: "default", Service: "svc", ID: id, Instance: &in, Time: time.Unix(1, 0)})
	}
	reg("keep")
	q := Query{Namespace: "default", Service: "svc"}
	old, err := Lookup(s, q)
	if err != nil {
		t.Fatal(err)
	}
	for i := range store.MinRemovalsKept + 1 {
		id := fmt.Sprintf("gone-%03d", i)
		reg(id)
		index++
		s.Apply(index, &store.Command{Type: store.CommandDeregister, Namespace: "default", Service: "svc", ID: id})
	}
	now, err := Lookup(s, q)
	if err != nil {
		t.Fatal(err)
	}
	if old.Scope(q) != now.Scope(q) {
		t.Fatal("the scope changed: the test needs the same one")
	}
	if _, _, ok := Delta(now, old.Served.Index); ok {
		t.Fatalf("Delta answered since %d, behind the horizon %d", old.Served.Index, now.Served.Horizon())
	}
	if up, removed, ok := Delta(now, now.Served.Horizon()); !ok || len(up) != 0 || len(removed) == 0 {
		t.Fatalf("since the horizon: up %v removed %v ok %v", candidateIDs(up), removed, ok)
	}
}

// Scope tells apart what decides membership: the same question and
// selection give the same scope; another caller, tag, serving namespace,
// protection, set of levels, or region behind a level gives another.
func TestScopeSeparates(t *testing.T) {
	v := &store.ServiceView{Service: store.Service{Namespace: "default", Name: "svc", CreateIndex: 3}}
	q := Query{Namespace: "default", Service: "svc", Caller: store.Locality{Region: "eu", Datacenter: "eu-1"}}
	base := Result{Served: v, Chosen: &Chosen{Selection: Selection{Levels: []Level{LevelDatacenter, LevelRegion + 1},
		Regions: []string{"", "us"}}}}
	variant := func(f func(*Query, *Result)) string {
		q2, r2 := q, base
		sel := base.Chosen.Selection
		sel.Levels, sel.Regions = slices.Clone(sel.Levels), slices.Clone(sel.Regions)
		r2.Chosen = &Chosen{Selection: sel}
		f(&q2, &r2)
		return r2.Scope(q2)
	}
	same := variant(func(*Query, *Result) {})
	if same != base.Scope(q) {
		t.Fatal("the same question and selection gave two scopes")
	}
	for name, f := range map[string]func(*Query, *Result){
		"caller": func(q *Query, _ *Result) { q.Caller.Unit = "a" },
		"tag":    func(q *Query, _ *Result) { q.Tag = "v2" },
		"asked":  func(q *Query, _ *Result) { q.Namespace = "dev" },
		"served": func(_ *Query, r *Result) {
			r.Served = &store.ServiceView{Service: store.Service{Namespace: "prod", Name: "svc", CreateIndex: 3}}
		},
		"recreated": func(_ *Query, r *Result) {
			r.Served = &store.ServiceView{Service: store.Service{Namespace: "default", Name: "svc", CreateIndex: 9}}
		},
		"protected": func(_ *Query, r *Result) { r.Chosen.Selection.Protected = true },
		"levels":    func(_ *Query, r *Result) { r.Chosen.Selection.Levels = r.Chosen.Selection.Levels[:1] },
		"region":    func(_ *Query, r *Result) { r.Chosen.Selection.Regions[1] = "ap" },
		// Field boundaries: "eu"+"-1" is not "eu-"+"1".
		"boundary": func(q *Query, _ *Result) { q.Caller.Region, q.Caller.Datacenter = "eu-", "1" },
	} {
		if variant(f) == same {
			t.Errorf("%s: the scope did not change", name)
		}
	}
}

// Find finds every candidate at its level, and nothing else.
func TestSelectionFind(t *testing.T) {
	caller := store.Locality{Region: "eu", Datacenter: "eu-a", Unit: "a1"}
	all := fleet()
	all[0].Healthy, all[1].Healthy = false, false // the unit spills over to the datacenter and region
	sel := Select(Input{Caller: caller, Settings: settings, Instances: all, Topology: rtt})
	if len(sel.Levels) < 2 {
		t.Fatalf("levels %v: want a spill-over", levelNames(sel))
	}
	for _, c := range sel.Candidates {
		got, ok := sel.Find(c.Instance.ID)
		if !ok || got != c {
			t.Errorf("Find(%s) = %v %v, want %v", c.Instance.ID, got, ok, c)
		}
	}
	for _, id := range []string{"eu-a1-1", "us-1", "nowhere-1", "absent"} {
		if c, ok := sel.Find(id); ok {
			t.Errorf("Find(%s) found %v, which is no candidate", id, c)
		}
	}
}
