package wire

import (
	"errors"
	"slices"
	"testing"

	"github.com/switchyard-io/switchyard/store"
)

func at(id, level string, port int) Instance {
	return Instance{Instance: &store.Instance{ID: id, Port: port}, Level: level}
}

func show(r *InstancesResponse) []string {
	var out []string
	for _, in := range r.Instances {
		out = append(out, in.Level+":"+in.ID)
	}
	return out
}

func TestApplyDelta(t *testing.T) {
	sel := &InstancesResponse{Namespace: "default", Service: "web", Index: 5, Levels: []string{"unit", "region"},
		Instances: []Instance{at("b", "unit", 1), at("d", "unit", 1), at("a", "region", 1), at("c", "region", 1)}}
	list := &InstancesResponse{Namespace: "default", Service: "web", Index: 5,
		Instances: []Instance{at("a", "", 1), at("c", "", 1), at("e", "", 1)}}
	for _, c := range []struct {
		name string
		full *InstancesResponse
		d    InstancesResponse
		want []string
	}{
		{"nothing changed", sel, InstancesResponse{Delta: true, Levels: sel.Levels, Instances: []Instance{}},
			[]string{"unit:b", "unit:d", "region:a", "region:c"}},
		{"added at each end and between", sel, InstancesResponse{Delta: true, Levels: sel.Levels,
			Instances: []Instance{at("a0", "unit", 2), at("c1", "unit", 2), at("z", "region", 2)}},
			[]string{"unit:a0", "unit:b", "unit:c1", "unit:d", "region:a", "region:c", "region:z"}},
		{"changed in place and moved to another level", sel, InstancesResponse{Delta: true, Levels: sel.Levels,
			Instances: []Instance{at("d", "unit", 2), at("b", "region", 2)}},
			[]string{"unit:d", "region:a", "region:b", "region:c"}},
		{"removed, with ids it never held", sel, InstancesResponse{Delta: true, Levels: sel.Levels,
			Instances: []Instance{}, Removed: []string{"a", "d", "x"}},
			[]string{"unit:b", "region:c"}},
		{"upserts out of order are put in order", sel, InstancesResponse{Delta: true, Levels: sel.Levels,
			Instances: []Instance{at("z", "region", 2), at("e", "unit", 2), at("0", "region", 2)}, Removed: []string{"b"}},
			[]string{"unit:d", "unit:e", "region:0", "region:a", "region:c", "region:z"}},
		{"plain listing", list, InstancesResponse{Delta: true, Instances: []Instance{at("b", "", 2), at("f", "", 2)}, Removed: []string{"e"}},
			[]string{":a", ":b", ":c", ":f"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.d.Namespace, c.d.Service, c.d.Index = "default", "web", 9
			before := show(c.full)
			got, err := c.full.ApplyDelta(&c.d)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(show(got), c.want) || got.Index != 9 || got.Delta || got.Removed != nil {
				t.Fatalf("got %v (index %d, delta %v, removed %v), want %v", show(got), got.Index, got.Delta, got.Removed, c.want)
			}
			if !slices.Equal(show(c.full), before) {
				t.Fatalf("the full answer changed: %v, was %v", show(c.full), before)
			}
			for _, in := range got.Instances {
				if p := in.Port; p == 2 != slices.ContainsFunc(c.d.Instances, func(u Instance) bool { return u.ID == in.ID }) {
					t.Fatalf("%s: port %d, the delta's instance was not taken (or an old one was)", in.ID, p)
				}
			}
		})
	}
	for _, c := range []struct {
		name string
		full *InstancesResponse
		d    InstancesResponse
	}{
		{"not a delta", sel, InstancesResponse{Namespace: "default", Service: "web"}},
		{"to a delta", &InstancesResponse{Namespace: "default", Service: "web", Delta: true}, InstancesResponse{Namespace: "default", Service: "web", Delta: true}},
		{"another service", sel, InstancesResponse{Namespace: "default", Service: "api", Delta: true}},
		{"unknown level", sel, InstancesResponse{Namespace: "default", Service: "web", Delta: true, Levels: sel.Levels,
			Instances: []Instance{at("q", "anywhere", 2)}}},
		{"levels that no longer name the old ones", sel, InstancesResponse{Namespace: "default", Service: "web", Delta: true,
			Levels: []string{"unit"}, Instances: []Instance{}}},
		{"an id twice", sel, InstancesResponse{Namespace: "default", Service: "web", Delta: true, Levels: sel.Levels,
			Instances: []Instance{at("q", "unit", 2), at("q", "unit", 3)}}},
		{"an instance without fields", sel, InstancesResponse{Namespace: "default", Service: "web", Delta: true, Levels: sel.Levels,
			Instances: []Instance{{Level: "unit"}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.full.ApplyDelta(&c.d); !errors.Is(err, ErrBadDelta) {
				t.Fatalf("err %v, want ErrBadDelta", err)
			}
		})
	}
}
