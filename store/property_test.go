package store

import (
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"time"
)

// model is a deliberately plain implementation of the catalog's instance and
// service rules: maps, no views, no sorting until asked.
type model struct {
	namespaces map[string]*modelNS
}

type modelNS struct {
	index    uint64 // last service create, delete or settings change
	services map[string]*modelService
}

type modelService struct {
	svc       Service
	index     uint64
	instances map[string]Instance
}

func newModel() *model {
	return &model{namespaces: map[string]*modelNS{
		DefaultNamespace: {services: map[string]*modelService{}},
	}}
}

// service returns the service, creating it with default settings if asked.
func (m *model) service(index uint64, ns, svc string, create bool) (*modelService, error) {
	n := m.namespaces[ns]
	if n == nil {
		return nil, ErrNamespaceNotFound
	}
	if s := n.services[svc]; s != nil {
		return s, nil
	}
	if !create {
		return nil, ErrServiceNotFound
	}
	s := &modelService{
		svc:       Service{Namespace: ns, Name: svc, ServiceSettings: DefaultServiceSettings(), CreateIndex: index, ModifyIndex: index},
		index:     index,
		instances: map[string]Instance{},
	}
	n.services[svc] = s
	n.index = index
	return s, nil
}

// register mirrors a registration. Specs from propertySpec are valid except
// for port 0, and their check type is left for the store to default.
func (m *model) register(index uint64, c *Command) error {
	if c.Instance.Port == 0 {
		return ErrInvalid
	}
	s, err := m.service(index, c.Namespace, c.Service, true)
	if err != nil {
		return err
	}
	want := *c.Instance
	want.ID, want.Namespace, want.Service, want.Healthy = c.ID, c.Namespace, c.Service, true
	want.Check.Type = CheckNone
	if want.Ephemeral {
		want.Check.Type = CheckTTL
	}
	prev, found := s.instances[c.ID]
	if found {
		// Same spec: nothing happens at all.
		cmp := prev
		cmp.CreateIndex, cmp.ModifyIndex, cmp.RegisteredAt, cmp.UpdatedAt = 0, 0, time.Time{}, time.Time{}
		if reflect.DeepEqual(cmp, want) {
			return nil
		}
		want.CreateIndex, want.RegisteredAt = prev.CreateIndex, prev.RegisteredAt
	} else {
		want.CreateIndex, want.RegisteredAt = index, c.Time
	}
	want.ModifyIndex, want.UpdatedAt = index, c.Time
	s.instances[c.ID] = want
	s.index = index
	m.namespaces[c.Namespace].index = index
	return nil
}

func (m *model) deregister(index uint64, c *Command) error {
	s, err := m.service(index, c.Namespace, c.Service, false)
	if err != nil {
		return err
	}
	if _, ok := s.instances[c.ID]; !ok {
		return ErrInstanceNotFound
	}
	delete(s.instances, c.ID)
	s.index = index
	m.namespaces[c.Namespace].index = index
	return nil
}

func (m *model) putService(index uint64, c *Command) error {
	s, err := m.service(index, c.Namespace, c.Service, true)
	if err != nil {
		return err
	}
	if s.svc.ServiceSettings == *c.ServiceSettings && s.svc.CreateIndex != index {
		return nil
	}
	s.svc.ServiceSettings, s.svc.ModifyIndex = *c.ServiceSettings, index
	s.index = index
	m.namespaces[c.Namespace].index = index
	return nil
}

func (m *model) deleteService(index uint64, c *Command) error {
	n := m.namespaces[c.Namespace]
	if n == nil {
		return ErrNamespaceNotFound
	}
	if n.services[c.Service] == nil {
		return ErrServiceNotFound
	}
	delete(n.services, c.Service)
	n.index = index
	return nil
}

func (m *model) apply(index uint64, c *Command) error {
	switch c.Type {
	case CommandRegister:
		return m.register(index, c)
	case CommandDeregister:
		return m.deregister(index, c)
	case CommandPutService:
		return m.putService(index, c)
	case CommandDeleteService:
		return m.deleteService(index, c)
	}
	panic("model: unexpected command " + c.Type.String())
}

// propertyOp draws a random command over a small space of namespaces,
// services, ids and specs, so that re-registrations of identical specs,
// updates, misses and re-creations all happen often.
func propertyOp(r *rand.Rand, index uint64) *Command {
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	ns := pick(DefaultNamespace, DefaultNamespace, "prod", "prod", "ghost")
	svc := pick("web", "api", "db")
	id := pick("a", "b", "c", "d", "e", "f", "g")
	switch n := r.Intn(100); {
	case n < 55:
		return registerCmd(index, ns, svc, id, propertySpec(r))
	case n < 80:
		return deregisterCmd(ns, svc, id)
	case n < 96:
		settings := []ServiceSettings{
			DefaultServiceSettings(),
			{ProtectThreshold: 0.5, MinHealthyRatio: 0.5, Balancer: "round_robin", DNSTTL: Duration(time.Second)},
			{Balancer: "least_loaded"},
		}
		return putServiceCmd(ns, svc, settings[r.Intn(len(settings))])
	default:
		return deleteServiceCmd(ns, svc)
	}
}

func propertySpec(r *rand.Rand) Instance {
	if r.Intn(2) == 0 {
		// The common case in production: a restart re-registers as before.
		return persistent("10.0.0.1", 8080)
	}
	in := persistent(fmt.Sprintf("10.0.0.%d", 1+r.Intn(2)), []int{80, 8080, 8080, 8080, 0}[r.Intn(5)])
	in.Weight = []int{0, DefaultWeight, DefaultWeight}[r.Intn(3)]
	in.Ephemeral = r.Intn(4) == 0
	switch r.Intn(3) {
	case 1:
		in.Tags = []string{"x"}
	case 2:
		in.Tags = []string{"x", "y"}
	}
	if r.Intn(3) == 0 {
		in.Metadata = map[string]string{"k": fmt.Sprint(r.Intn(2))}
	}
	return in
}

func TestPropertyStoreMatchesModel(t *testing.T) {
	const steps = 3000
	r := rand.New(rand.NewSource(20240501))
	s, m := New(), newModel()
	mustApply(t, s, 1, putNamespaceCmd("prod", NamespaceSettings{}))
	m.namespaces["prod"] = &modelNS{index: 1, services: map[string]*modelService{}}

	counts := map[string]int{}
	for k := 0; k < steps; k++ {
		index := uint64(k + 2)
		c := propertyOp(r, index)

		// Keep the views from before the step to check which watches fire.
		prevViews := map[string]*ServiceView{}
		prevNS := map[string]*NamespaceView{}
		for ns := range m.namespaces {
			nv, views, err := s.Services(ns)
			if err != nil {
				t.Fatal(err)
			}
			prevNS[ns] = nv
			for _, v := range views {
				prevViews[ns+"/"+v.Service.Name] = v
			}
		}

		_, gotErr := s.Apply(index, c)
		wantErr := m.apply(index, c)
		if (gotErr == nil) != (wantErr == nil) || (wantErr != nil && !errors.Is(gotErr, wantErr)) {
			t.Fatalf("step %d: %s %s/%s %q: store error %v, model error %v", k, c.Type, c.Namespace, c.Service, c.ID, gotErr, wantErr)
		}
		if s.Index() != index {
			t.Fatalf("step %d: Index() = %d, want %d", k, s.Index(), index)
		}
		counts[fmt.Sprintf("%s ok=%v", c.Type, gotErr == nil)]++
		if c.Type == CommandRegister && gotErr == nil {
			if v, err := s.Service(c.Namespace, c.Service); err == nil && v == prevViews[c.Namespace+"/"+c.Service] {
				counts["register unchanged"]++
			}
		}

		checkAgainstModel(t, k, s, m, prevViews, prevNS)
	}

	// The random walk covered the interesting outcomes.
	for _, want := range []string{"register ok=true", "register ok=false", "deregister ok=true", "deregister ok=false",
		"register unchanged", "put-service ok=true", "put-service ok=false", "delete-service ok=true", "delete-service ok=false"} {
		if counts[want] < 20 {
			t.Errorf("only %d steps of %q; the walk does not exercise it", counts[want], want)
		}
	}
	t.Logf("outcomes: %v", counts)
}

// checkAgainstModel compares every namespace and service of the store with the
// model, and checks that exactly the views whose index moved were replaced and
// had their channels closed.
func checkAgainstModel(t *testing.T, step int, s *Store, m *model, prevViews map[string]*ServiceView, prevNS map[string]*NamespaceView) {
	t.Helper()
	for _, ns := range slices.Sorted(maps.Keys(m.namespaces)) {
		mn := m.namespaces[ns]
		nv, views, err := s.Services(ns)
		if err != nil {
			t.Fatalf("step %d: Services(%q): %v", step, ns, err)
		}
		if nv.Index != mn.index {
			t.Fatalf("step %d: namespace %q index %d, model %d", step, ns, nv.Index, mn.index)
		}
		if old := prevNS[ns]; (old != nv) != isClosed(old.WatchCh()) {
			t.Fatalf("step %d: namespace %q view replaced=%v but channel closed=%v", step, ns, old != nv, isClosed(old.WatchCh()))
		}

		names := []string{}
		for _, v := range views {
			names = append(names, v.Service.Name)
		}
		if want := slices.Sorted(maps.Keys(mn.services)); !slices.Equal(names, want) {
			t.Fatalf("step %d: services of %q = %v, model %v", step, ns, names, want)
		}
		for _, v := range views {
			ms := mn.services[v.Service.Name]
			if v.Service != ms.svc || v.Index != ms.index {
				t.Fatalf("step %d: service %+v at %d, model %+v at %d", step, v.Service, v.Index, ms.svc, ms.index)
			}
			ids := slices.Sorted(maps.Keys(ms.instances))
			if got := instanceIDs(v); !slices.Equal(got, ids) {
				t.Fatalf("step %d: %s/%s instances %v, model %v", step, ns, v.Service.Name, got, ids)
			}
			for k, id := range ids {
				if want := ms.instances[id]; !reflect.DeepEqual(*v.Instances()[k], want) {
					t.Fatalf("step %d: %s/%s instance\n got %+v\nwant %+v", step, ns, v.Service.Name, *v.Instances()[k], want)
				}
			}
			// A view is replaced, and its channel closed, exactly when the
			// service changed.
			if old := prevViews[ns+"/"+v.Service.Name]; old != nil {
				changed := old.Index != v.Index || old.Service.CreateIndex != v.Service.CreateIndex
				if (old != v) != changed || isClosed(old.WatchCh()) != changed {
					t.Fatalf("step %d: %s/%s changed=%v but view replaced=%v, channel closed=%v",
						step, ns, v.Service.Name, changed, old != v, isClosed(old.WatchCh()))
				}
			}
		}
		// Deleted services had their channels closed.
		for key, old := range prevViews {
			if old.Service.Namespace == ns && mn.services[old.Service.Name] == nil && !isClosed(old.WatchCh()) {
				t.Fatalf("step %d: deleted service %s kept its channel open", step, key)
			}
		}
	}
}
