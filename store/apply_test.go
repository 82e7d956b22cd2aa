package store

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestNewStore(t *testing.T) {
	s := New()
	if got := s.Index(); got != 0 {
		t.Errorf("Index() = %d, want 0", got)
	}
	idx, list, _ := s.Namespaces()
	if want := []Namespace{{Name: DefaultNamespace}}; !reflect.DeepEqual(list, want) {
		t.Errorf("Namespaces() = %+v, want %+v", list, want)
	}
	// The index of a list is never 0, so that a blocking query with the
	// index it got back actually blocks.
	if idx != 1 {
		t.Errorf("Namespaces() index = %d, want 1", idx)
	}
	if _, err := s.Service(DefaultNamespace, "web"); !errors.Is(err, ErrServiceNotFound) {
		t.Errorf("Service(default, web) error = %v, want ErrServiceNotFound", err)
	}
	if _, err := s.Service("prod", "web"); !errors.Is(err, ErrNamespaceNotFound) {
		t.Errorf("Service(prod, web) error = %v, want ErrNamespaceNotFound", err)
	}
	if _, _, err := s.Services("prod"); !errors.Is(err, ErrNamespaceNotFound) {
		t.Errorf("Services(prod) error = %v, want ErrNamespaceNotFound", err)
	}
	if idx, list := s.Servers(); idx != 0 || len(list) != 0 {
		t.Errorf("Servers() = %d, %v, want 0 and none", idx, list)
	}
	if got := s.Stats(); got != (Stats{Namespaces: 1}) {
		t.Errorf("Stats() = %+v", got)
	}
}

func TestRegisterCreatesServiceWithDefaults(t *testing.T) {
	s := New()
	spec := persistent("10.0.0.1", 8080)
	spec.Tags = []string{"v1", "canary"}
	spec.Metadata = map[string]string{"version": "1.2.3"}
	res := mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "web-1", spec))

	want := spec
	want.ID, want.Namespace, want.Service = "web-1", DefaultNamespace, "web"
	want.Check.Type = CheckNone
	want.Healthy = true // a registration is proof of life
	want.RegisteredAt, want.UpdatedAt = at(5), at(5)
	want.CreateIndex, want.ModifyIndex = 5, 5

	got, ok := res.(*Instance)
	if !ok || !reflect.DeepEqual(*got, want) {
		t.Fatalf("Apply result = %#v, want *Instance %+v", res, want)
	}
	v := mustService(t, s, DefaultNamespace, "web")
	wantSvc := Service{Namespace: DefaultNamespace, Name: "web", ServiceSettings: DefaultServiceSettings(), CreateIndex: 5, ModifyIndex: 5}
	if v.Service != wantSvc {
		t.Errorf("service = %+v, want %+v", v.Service, wantSvc)
	}
	if v.Index != 5 {
		t.Errorf("view index = %d, want 5", v.Index)
	}
	if v.Len() != 1 || !reflect.DeepEqual(*v.Instances()[0], want) {
		t.Fatalf("instances = %+v, want [%+v]", v.Instances(), want)
	}
	if v.Instance("web-1") != v.Instances()[0] {
		t.Errorf("Instance(web-1) does not find the instance")
	}
	if v.Healthy() != 1 {
		t.Errorf("Healthy() = %d, want 1", v.Healthy())
	}
	if nv := mustNamespace(t, s, DefaultNamespace); nv.Index != 5 {
		t.Errorf("namespace view index = %d, want 5 (a service was created)", nv.Index)
	}
	if s.Index() != 5 {
		t.Errorf("Index() = %d, want 5", s.Index())
	}
	if got := s.Stats(); got != (Stats{Namespaces: 1, Services: 1, Instances: 1}) {
		t.Errorf("Stats() = %+v", got)
	}
}

func TestRegisterDoesNotAliasCommand(t *testing.T) {
	s := New()
	c := registerCmd(1, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80))
	c.Instance.Tags = []string{"a"}
	c.Instance.Metadata = map[string]string{"k": "v"}
	mustApply(t, s, 1, c)

	// The command belongs to the caller (and to the Raft log): changing it
	// afterwards must not reach into the immutable view.
	c.Instance.Tags[0] = "changed"
	c.Instance.Metadata["k"] = "changed"
	c.Instance.Port = 9999
	in := mustService(t, s, DefaultNamespace, "web").Instance("web-1")
	if in.Tags[0] != "a" || in.Metadata["k"] != "v" || in.Port != 80 {
		t.Fatalf("view changed with the command: %+v", in)
	}
}

func TestRegisterTakesIdentityFromCommand(t *testing.T) {
	s := New()
	spec := persistent("10.0.0.1", 80)
	spec.ID, spec.Namespace, spec.Service = "other", "elsewhere", "other-svc"
	spec.Healthy = false
	mustApply(t, s, 1, registerCmd(1, DefaultNamespace, "web", "web-1", spec))
	in := mustService(t, s, DefaultNamespace, "web").Instance("web-1")
	if in == nil || in.ID != "web-1" || in.Namespace != DefaultNamespace || in.Service != "web" || !in.Healthy {
		t.Fatalf("instance = %+v, want identity from the command and healthy", in)
	}
}

func TestRegisterIdenticalIsANoop(t *testing.T) {
	s := New()
	spec := persistent("10.0.0.1", 8080)
	spec.Tags = []string{"a", "b"}
	spec.Metadata = map[string]string{"k": "v"}
	mustApply(t, s, 1, registerCmd(1, DefaultNamespace, "web", "web-1", spec))
	before := mustService(t, s, DefaultNamespace, "web")
	nsBefore := mustNamespace(t, s, DefaultNamespace)
	stateBefore := captureState(t, s)

	// Same spec, later time, later index; the check type spelled out this
	// time (it is what the default would be anyway) and fresh copies of
	// the tags and metadata.
	again := spec
	again.Check.Type = CheckNone
	again.Tags = []string{"a", "b"}
	again.Metadata = map[string]string{"k": "v"}
	res := mustApply(t, s, 7, registerCmd(7, DefaultNamespace, "web", "web-1", again))

	after := mustService(t, s, DefaultNamespace, "web")
	if after != before {
		t.Fatalf("view replaced by an identical registration")
	}
	if isClosed(before.WatchCh()) {
		t.Fatalf("watch channel closed by an identical registration")
	}
	if isClosed(nsBefore.WatchCh()) {
		t.Fatalf("namespace watch channel closed by an identical registration")
	}
	if res != before.Instances()[0] {
		t.Errorf("result = %+v, want the stored instance %+v", res, before.Instances()[0])
	}
	in := after.Instances()[0]
	if after.Index != 1 || in.ModifyIndex != 1 || !in.UpdatedAt.Equal(at(1)) {
		t.Errorf("index or time moved: view %d, instance %+v", after.Index, in)
	}
	// Only the applied position moves.
	want := stateBefore
	want.Index = 7
	assertState(t, "after identical registration", captureState(t, s), want)
}

func TestRegisterUpdate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Instance)
	}{
		{name: "address", edit: func(i *Instance) { i.Address = "10.0.0.2" }},
		{name: "port", edit: func(i *Instance) { i.Port = 8081 }},
		{name: "weight", edit: func(i *Instance) { i.Weight = 0 }},
		{name: "enabled", edit: func(i *Instance) { i.Enabled = false }},
		{name: "locality", edit: func(i *Instance) { i.Locality.Unit = "u2" }},
		{name: "tag added", edit: func(i *Instance) { i.Tags = append(i.Tags, "c") }},
		{name: "tag changed", edit: func(i *Instance) { i.Tags = []string{"a", "x"} }},
		{name: "tags reordered", edit: func(i *Instance) { i.Tags = []string{"b", "a"} }},
		{name: "tags removed", edit: func(i *Instance) { i.Tags = nil }},
		{name: "metadata value", edit: func(i *Instance) { i.Metadata = map[string]string{"k": "w"} }},
		{name: "metadata key", edit: func(i *Instance) { i.Metadata = map[string]string{"j": "v"} }},
		{name: "metadata added", edit: func(i *Instance) { i.Metadata = map[string]string{"k": "v", "j": "v"} }},
		{name: "check", edit: func(i *Instance) { i.Check = Check{Type: CheckTCP, Target: "10.0.0.1:8080"} }},
		{name: "check interval", edit: func(i *Instance) { i.Check.Interval = Duration(time.Second) }},
		{name: "ephemeral", edit: func(i *Instance) { i.Ephemeral = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			spec := persistent("10.0.0.1", 8080)
			spec.Tags = []string{"a", "b"}
			spec.Metadata = map[string]string{"k": "v"}
			spec.Locality = Locality{Region: "eu", Datacenter: "dc1", Unit: "u1"}
			mustApply(t, s, 3, registerCmd(3, DefaultNamespace, "web", "web-1", spec))
			// A neighbour, to check the update keeps the order and the others.
			mustApply(t, s, 4, registerCmd(4, DefaultNamespace, "web", "web-2", persistent("10.0.0.9", 1)))
			before := mustService(t, s, DefaultNamespace, "web")
			nsBefore := mustNamespace(t, s, DefaultNamespace)

			changed := spec
			changed.Tags = append([]string(nil), spec.Tags...)
			tt.edit(&changed)
			res := mustApply(t, s, 9, registerCmd(9, DefaultNamespace, "web", "web-1", changed))

			after := mustService(t, s, DefaultNamespace, "web")
			if !isClosed(before.WatchCh()) {
				t.Errorf("watch channel not closed by a change")
			}
			if isClosed(after.WatchCh()) {
				t.Errorf("new view's watch channel already closed")
			}
			// The namespace's service list shows instance counts.
			if !isClosed(nsBefore.WatchCh()) || mustNamespace(t, s, DefaultNamespace).Index != 9 {
				t.Errorf("an instance change did not move the namespace view")
			}
			if after.Index != 9 {
				t.Errorf("view index = %d, want 9", after.Index)
			}
			if after.Len() != 2 || after.Instances()[0].ID != "web-1" || after.Instances()[1] != before.Instances()[1] {
				t.Fatalf("instances = %+v, want web-1 (new) then web-2 (same pointer)", after.Instances())
			}
			want := changed
			want.ID, want.Namespace, want.Service, want.Healthy = "web-1", DefaultNamespace, "web", true
			if err := want.Normalize(); err != nil {
				t.Fatal(err)
			}
			want.CreateIndex, want.RegisteredAt = 3, at(3)
			want.ModifyIndex, want.UpdatedAt = 9, at(9)
			if got := after.Instances()[0]; !reflect.DeepEqual(*got, want) {
				t.Errorf("instance\n got %+v\nwant %+v", *got, want)
			}
			if got, ok := res.(*Instance); !ok || got != after.Instances()[0] {
				t.Errorf("result %+v is not the stored instance", res)
			}
			// The old view is immutable.
			if before.Instances()[0].ModifyIndex != 3 || before.Index != 4 {
				t.Errorf("old view changed: %+v", before.Instances()[0])
			}
			if after.Service != before.Service {
				t.Errorf("service settings changed by a registration: %+v", after.Service)
			}
		})
	}
}

func TestRegisterRejected(t *testing.T) {
	tests := []struct {
		name    string
		cmd     *Command
		wantErr error
	}{
		{name: "unknown namespace", cmd: registerCmd(10, "prod", "web", "web-1", persistent("10.0.0.1", 80)), wantErr: ErrNamespaceNotFound},
		{name: "bad port", cmd: registerCmd(10, DefaultNamespace, "api", "api-1", persistent("10.0.0.1", 0)), wantErr: ErrInvalid},
		{name: "bad address into existing service", cmd: registerCmd(10, DefaultNamespace, "web", "web-9", persistent("1.2.3", 80)), wantErr: ErrInvalid},
		{name: "bad service name", cmd: registerCmd(10, DefaultNamespace, "Web", "web-1", persistent("10.0.0.1", 80)), wantErr: ErrInvalid},
		{name: "bad id", cmd: registerCmd(10, DefaultNamespace, "web", "web_1", persistent("10.0.0.1", 80)), wantErr: ErrInvalid},
		{name: "change to invalid", cmd: registerCmd(10, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 70000)), wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			mustApply(t, s, 1, registerCmd(1, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
			before := captureState(t, s)
			view := mustService(t, s, DefaultNamespace, "web")
			nsView := mustNamespace(t, s, DefaultNamespace)

			res, err := s.Apply(10, tt.cmd)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			want := before
			want.Index = 10 // the applied position moves even for a rejected command
			assertState(t, "after rejected register", captureState(t, s), want)
			if isClosed(view.WatchCh()) || isClosed(nsView.WatchCh()) {
				t.Errorf("a rejected command closed a watch channel")
			}
		})
	}
}

func TestDeregister(t *testing.T) {
	s := New()
	for i, id := range []string{"a", "b", "c"} {
		idx := uint64(i + 1)
		mustApply(t, s, idx, registerCmd(idx, DefaultNamespace, "web", id, persistent("10.0.0.1", 80+i)))
	}
	before := mustService(t, s, DefaultNamespace, "web")
	if res := mustApply(t, s, 4, deregisterCmd(DefaultNamespace, "web", "b")); res != nil {
		t.Errorf("result = %+v, want nil", res)
	}
	after := mustService(t, s, DefaultNamespace, "web")
	if !isClosed(before.WatchCh()) {
		t.Errorf("watch channel not closed by a deregistration")
	}
	if after.Index != 4 {
		t.Errorf("view index = %d, want 4", after.Index)
	}
	if ids := instanceIDs(after); !reflect.DeepEqual(ids, []string{"a", "c"}) {
		t.Errorf("instances = %v, want [a c]", ids)
	}
	if after.Instance("b") != nil {
		t.Errorf("Instance(b) still found")
	}
	if before.Len() != 3 {
		t.Errorf("old view changed: %v", instanceIDs(before))
	}

	// Deregistering the last instances leaves an empty service.
	mustApply(t, s, 5, deregisterCmd(DefaultNamespace, "web", "a"))
	mustApply(t, s, 6, deregisterCmd(DefaultNamespace, "web", "c"))
	v := mustService(t, s, DefaultNamespace, "web")
	if v.Len() != 0 || v.Index != 6 {
		t.Errorf("service after deregistering all = %+v (index %d)", instanceIDs(v), v.Index)
	}
}

func TestDeregisterRejected(t *testing.T) {
	tests := []struct {
		name    string
		cmd     *Command
		wantErr error
	}{
		{name: "unknown instance", cmd: deregisterCmd(DefaultNamespace, "web", "web-9"), wantErr: ErrInstanceNotFound},
		{name: "unknown service", cmd: deregisterCmd(DefaultNamespace, "api", "web-1"), wantErr: ErrServiceNotFound},
		{name: "unknown namespace", cmd: deregisterCmd("prod", "web", "web-1"), wantErr: ErrNamespaceNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			mustApply(t, s, 1, registerCmd(1, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
			before := captureState(t, s)
			view := mustService(t, s, DefaultNamespace, "web")
			_, err := s.Apply(2, tt.cmd)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			want := before
			want.Index = 2
			assertState(t, "after rejected deregister", captureState(t, s), want)
			if isClosed(view.WatchCh()) {
				t.Errorf("a rejected deregister closed the watch channel")
			}
		})
	}
}

func TestInstancesSortedByID(t *testing.T) {
	s := New()
	ids := []string{"m", "c", "z", "a", "q", "b", "a1", "0", "m-2"}
	for i, id := range ids {
		idx := uint64(i + 1)
		mustApply(t, s, idx, registerCmd(idx, DefaultNamespace, "web", id, persistent("10.0.0.1", 1000+i)))
	}
	v := mustService(t, s, DefaultNamespace, "web")
	want := []string{"0", "a", "a1", "b", "c", "m", "m-2", "q", "z"}
	if got := instanceIDs(v); !reflect.DeepEqual(got, want) {
		t.Fatalf("instances = %v, want %v", got, want)
	}
	for i, id := range ids {
		in := v.Instance(id)
		if in == nil || in.ID != id || in.Port != 1000+i {
			t.Errorf("Instance(%q) = %+v", id, in)
		}
	}
	for _, id := range []string{"", "00", "a0", "zz", "n"} {
		if in := v.Instance(id); in != nil {
			t.Errorf("Instance(%q) = %+v, want nil", id, in)
		}
	}
}

func instanceIDs(v *ServiceView) []string {
	ids := []string{}
	for _, in := range v.Instances() {
		ids = append(ids, in.ID)
	}
	return ids
}

func TestPutNamespace(t *testing.T) {
	s := New()
	res := mustApply(t, s, 2, putNamespaceCmd("prod", NamespaceSettings{Description: "production"}))
	want := Namespace{Name: "prod", NamespaceSettings: NamespaceSettings{Description: "production"}, CreateIndex: 2, ModifyIndex: 2}
	if got, ok := res.(*Namespace); !ok || *got != want {
		t.Fatalf("result = %#v, want %+v", res, want)
	}
	nv := mustNamespace(t, s, "prod")
	if nv.Namespace != want || nv.Index != 2 {
		t.Fatalf("view = %+v (index %d), want %+v", nv.Namespace, nv.Index, want)
	}
	mustApply(t, s, 3, putNamespaceCmd("staging", NamespaceSettings{Fallback: "prod"}))
	mustApply(t, s, 4, putNamespaceCmd("dev", NamespaceSettings{Fallback: "staging"}))

	idx, list, _ := s.Namespaces()
	names := []string{}
	for _, n := range list {
		names = append(names, n.Name)
	}
	if want := []string{"default", "dev", "prod", "staging"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Namespaces() = %v, want %v (sorted)", names, want)
	}
	if idx != 4 {
		t.Errorf("Namespaces() index = %d, want 4", idx)
	}

	// An identical put changes nothing.
	stagingView := mustNamespace(t, s, "staging")
	before := captureState(t, s)
	res = mustApply(t, s, 5, putNamespaceCmd("staging", NamespaceSettings{Fallback: "prod"}))
	if got, ok := res.(*Namespace); !ok || got.ModifyIndex != 3 {
		t.Errorf("identical put result = %#v, want the stored namespace", res)
	}
	if mustNamespace(t, s, "staging") != stagingView || isClosed(stagingView.WatchCh()) {
		t.Errorf("identical put replaced the namespace view")
	}
	want5 := before
	want5.Index = 5
	assertState(t, "after identical put-namespace", captureState(t, s), want5)

	// A change moves ModifyIndex and keeps CreateIndex.
	mustApply(t, s, 6, putNamespaceCmd("staging", NamespaceSettings{Fallback: DefaultNamespace, Description: "qa"}))
	got := mustNamespace(t, s, "staging")
	wantStaging := Namespace{Name: "staging", NamespaceSettings: NamespaceSettings{Fallback: DefaultNamespace, Description: "qa"}, CreateIndex: 3, ModifyIndex: 6}
	if got.Namespace != wantStaging || got.Index != 6 {
		t.Errorf("after update = %+v (index %d), want %+v", got.Namespace, got.Index, wantStaging)
	}
	if !isClosed(stagingView.WatchCh()) {
		t.Errorf("namespace watch channel not closed by a settings change")
	}
	if idx, _, _ := s.Namespaces(); idx != 6 {
		t.Errorf("Namespaces() index = %d, want 6", idx)
	}

	// dev still falls back to staging, which now falls back to default.
	if dev := mustNamespace(t, s, "dev"); dev.Namespace.Fallback != "staging" {
		t.Errorf("dev = %+v", dev.Namespace)
	}
}

func TestPutNamespaceKeepsServices(t *testing.T) {
	s := New()
	mustApply(t, s, 1, putNamespaceCmd("prod", NamespaceSettings{}))
	mustApply(t, s, 2, registerCmd(2, "prod", "web", "web-1", persistent("10.0.0.1", 80)))
	svc := mustService(t, s, "prod", "web")
	mustApply(t, s, 3, putNamespaceCmd("prod", NamespaceSettings{Description: "changed"}))
	if got := mustService(t, s, "prod", "web"); got != svc || isClosed(svc.WatchCh()) {
		t.Errorf("a namespace settings change replaced the service view")
	}
	_, views, err := s.Services("prod")
	if err != nil || len(views) != 1 || views[0] != svc {
		t.Errorf("Services(prod) = %v, %v", views, err)
	}
}

func TestPutNamespaceRejected(t *testing.T) {
	tests := []struct {
		name    string
		cmd     *Command
		wantErr error
	}{
		{name: "missing fallback", cmd: putNamespaceCmd("qa", NamespaceSettings{Fallback: "nowhere"}), wantErr: ErrNamespaceNotFound},
		{name: "fallback to itself", cmd: putNamespaceCmd("qa", NamespaceSettings{Fallback: "qa"}), wantErr: ErrInvalid},
		{name: "direct cycle", cmd: putNamespaceCmd("prod", NamespaceSettings{Fallback: "staging"}), wantErr: ErrInvalid},
		{name: "long cycle", cmd: putNamespaceCmd("prod", NamespaceSettings{Fallback: "dev"}), wantErr: ErrInvalid},
		{name: "existing namespace to itself", cmd: putNamespaceCmd("staging", NamespaceSettings{Fallback: "staging"}), wantErr: ErrInvalid},
		{name: "bad name", cmd: putNamespaceCmd("Prod2", NamespaceSettings{}), wantErr: ErrInvalid},
		{name: "empty name", cmd: putNamespaceCmd("", NamespaceSettings{}), wantErr: ErrInvalid},
		{name: "bad fallback name", cmd: putNamespaceCmd("qa", NamespaceSettings{Fallback: "Prod"}), wantErr: ErrInvalid},
		{name: "description too long", cmd: putNamespaceCmd("qa", NamespaceSettings{Description: string(make([]byte, 1025))}), wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			// dev -> staging -> prod
			mustApply(t, s, 1, putNamespaceCmd("prod", NamespaceSettings{}))
			mustApply(t, s, 2, putNamespaceCmd("staging", NamespaceSettings{Fallback: "prod"}))
			mustApply(t, s, 3, putNamespaceCmd("dev", NamespaceSettings{Fallback: "staging"}))
			before := captureState(t, s)
			_, _, nsCh := s.Namespaces()

			res, err := s.Apply(4, tt.cmd)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			want := before
			want.Index = 4
			assertState(t, "after rejected put-namespace", captureState(t, s), want)
			if isClosed(nsCh) {
				t.Errorf("a rejected command closed the namespaces channel")
			}
		})
	}
}

func TestDeleteNamespace(t *testing.T) {
	s := New()
	mustApply(t, s, 1, putNamespaceCmd("prod", NamespaceSettings{}))
	mustApply(t, s, 2, putNamespaceCmd("staging", NamespaceSettings{Fallback: "prod"}))
	mustApply(t, s, 3, registerCmd(3, "staging", "web", "web-1", persistent("10.0.0.1", 80)))

	reject := func(index uint64, ns string, wantErr error) {
		t.Helper()
		before := captureState(t, s)
		if _, err := s.Apply(index, deleteNamespaceCmd(ns)); !errors.Is(err, wantErr) {
			t.Fatalf("delete %q: error = %v, want %v", ns, err, wantErr)
		}
		want := before
		want.Index = index
		assertState(t, "after rejected delete-namespace", captureState(t, s), want)
	}
	reject(4, DefaultNamespace, ErrInvalid)
	reject(5, "nowhere", ErrNamespaceNotFound)
	reject(6, "staging", ErrNamespaceInUse) // it holds a service
	reject(7, "prod", ErrNamespaceInUse)    // staging falls back to it

	// Emptied of services, staging can go; then prod is nobody's fallback.
	mustApply(t, s, 8, deleteServiceCmd("staging", "web"))
	staging := mustNamespace(t, s, "staging")
	_, _, nsCh := s.Namespaces()
	mustApply(t, s, 9, deleteNamespaceCmd("staging"))
	if !isClosed(staging.WatchCh()) {
		t.Errorf("deleted namespace's watch channel not closed")
	}
	if !isClosed(nsCh) {
		t.Errorf("namespaces channel not closed by a deletion")
	}
	if _, err := s.Namespace("staging"); !errors.Is(err, ErrNamespaceNotFound) {
		t.Errorf("Namespace(staging) after delete: %v", err)
	}
	if idx, list, _ := s.Namespaces(); idx != 9 || len(list) != 2 {
		t.Errorf("Namespaces() = %d, %+v, want index 9 and two namespaces", idx, list)
	}
	mustApply(t, s, 10, deleteNamespaceCmd("prod"))
	if _, list, _ := s.Namespaces(); !reflect.DeepEqual(list, []Namespace{{Name: DefaultNamespace}}) {
		t.Errorf("Namespaces() = %+v, want only default", list)
	}

	// A deleted name can be created again, from scratch.
	mustApply(t, s, 11, putNamespaceCmd("staging", NamespaceSettings{}))
	if nv := mustNamespace(t, s, "staging"); nv.Namespace.CreateIndex != 11 {
		t.Errorf("recreated namespace = %+v", nv.Namespace)
	}
	if _, err := s.Service("staging", "web"); !errors.Is(err, ErrServiceNotFound) {
		t.Errorf("recreated namespace kept an old service: %v", err)
	}
}

func TestPutService(t *testing.T) {
	s := New()
	custom := ServiceSettings{ProtectThreshold: 0.3, MinHealthyRatio: 0.7, Balancer: "round_robin", DNSTTL: Duration(30 * time.Second)}

	// put-service creates the service with the given settings.
	res := mustApply(t, s, 2, putServiceCmd(DefaultNamespace, "api", custom))
	want := Service{Namespace: DefaultNamespace, Name: "api", ServiceSettings: custom, CreateIndex: 2, ModifyIndex: 2}
	if got, ok := res.(*Service); !ok || *got != want {
		t.Fatalf("result = %#v, want %+v", res, want)
	}
	v := mustService(t, s, DefaultNamespace, "api")
	if v.Service != want || v.Index != 2 || v.Len() != 0 {
		t.Fatalf("view = %+v (index %d, %d instances)", v.Service, v.Index, v.Len())
	}
	if nv := mustNamespace(t, s, DefaultNamespace); nv.Index != 2 {
		t.Errorf("namespace index = %d, want 2", nv.Index)
	}

	// An identical put changes nothing.
	mustApply(t, s, 3, registerCmd(3, DefaultNamespace, "api", "api-1", persistent("10.0.0.1", 80)))
	v = mustService(t, s, DefaultNamespace, "api")
	nv := mustNamespace(t, s, DefaultNamespace)
	res = mustApply(t, s, 4, putServiceCmd(DefaultNamespace, "api", custom))
	if got, ok := res.(*Service); !ok || *got != want {
		t.Errorf("identical put result = %#v, want %+v", res, want)
	}
	if mustService(t, s, DefaultNamespace, "api") != v || isClosed(v.WatchCh()) {
		t.Errorf("identical put-service replaced the service view")
	}
	if mustNamespace(t, s, DefaultNamespace) != nv || isClosed(nv.WatchCh()) {
		t.Errorf("identical put-service replaced the namespace view")
	}

	// A change moves ModifyIndex, keeps CreateIndex and the instances, and
	// moves the namespace view (its list shows settings).
	changed := custom
	changed.Balancer = "least_loaded"
	mustApply(t, s, 5, putServiceCmd(DefaultNamespace, "api", changed))
	after := mustService(t, s, DefaultNamespace, "api")
	wantAfter := Service{Namespace: DefaultNamespace, Name: "api", ServiceSettings: changed, CreateIndex: 2, ModifyIndex: 5}
	if after.Service != wantAfter || after.Index != 5 {
		t.Errorf("after change = %+v (index %d), want %+v", after.Service, after.Index, wantAfter)
	}
	if after.Len() != 1 || after.Instances()[0] != v.Instances()[0] {
		t.Errorf("instances not kept: %v", instanceIDs(after))
	}
	if !isClosed(v.WatchCh()) || !isClosed(nv.WatchCh()) {
		t.Errorf("a settings change did not close the service and namespace channels")
	}
	if got := mustNamespace(t, s, DefaultNamespace).Index; got != 5 {
		t.Errorf("namespace index = %d, want 5", got)
	}

	// put-service on a service created by a register replaces the defaults.
	mustApply(t, s, 6, registerCmd(6, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	mustApply(t, s, 7, putServiceCmd(DefaultNamespace, "web", custom))
	if got := mustService(t, s, DefaultNamespace, "web").Service; got.ServiceSettings != custom || got.CreateIndex != 6 || got.ModifyIndex != 7 {
		t.Errorf("web = %+v", got)
	}

	// put-service with the default settings still creates the service.
	mustApply(t, s, 8, putServiceCmd(DefaultNamespace, "db", DefaultServiceSettings()))
	if got := mustService(t, s, DefaultNamespace, "db"); got.Service.CreateIndex != 8 || got.Index != 8 {
		t.Errorf("db = %+v (index %d)", got.Service, got.Index)
	}
}

func TestPutServiceRejected(t *testing.T) {
	bad := DefaultServiceSettings()
	bad.Balancer = "random"
	tests := []struct {
		name    string
		cmd     *Command
		wantErr error
	}{
		{name: "unknown namespace", cmd: putServiceCmd("prod", "web", DefaultServiceSettings()), wantErr: ErrNamespaceNotFound},
		{name: "bad settings", cmd: putServiceCmd(DefaultNamespace, "web", bad), wantErr: ErrInvalid},
		{name: "bad settings new service", cmd: putServiceCmd(DefaultNamespace, "api", bad), wantErr: ErrInvalid},
		{name: "bad name", cmd: putServiceCmd(DefaultNamespace, "Api", DefaultServiceSettings()), wantErr: ErrInvalid},
		{name: "empty name", cmd: putServiceCmd(DefaultNamespace, "", DefaultServiceSettings()), wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			mustApply(t, s, 1, registerCmd(1, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
			before := captureState(t, s)
			if _, err := s.Apply(2, tt.cmd); !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			want := before
			want.Index = 2
			assertState(t, "after rejected put-service", captureState(t, s), want)
		})
	}
}

func TestDeleteService(t *testing.T) {
	s := New()
	mustApply(t, s, 1, registerCmd(1, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	mustApply(t, s, 2, registerCmd(2, DefaultNamespace, "api", "api-1", persistent("10.0.0.1", 81)))
	web := mustService(t, s, DefaultNamespace, "web")
	api := mustService(t, s, DefaultNamespace, "api")
	nv := mustNamespace(t, s, DefaultNamespace)

	if res := mustApply(t, s, 3, deleteServiceCmd(DefaultNamespace, "web")); res != nil {
		t.Errorf("result = %+v, want nil", res)
	}
	if _, err := s.Service(DefaultNamespace, "web"); !errors.Is(err, ErrServiceNotFound) {
		t.Errorf("Service(web) after delete: %v", err)
	}
	if !isClosed(web.WatchCh()) || !isClosed(nv.WatchCh()) {
		t.Errorf("delete did not close the service and namespace channels")
	}
	if isClosed(api.WatchCh()) || mustService(t, s, DefaultNamespace, "api") != api {
		t.Errorf("deleting web touched api")
	}
	nv2, views, err := s.Services(DefaultNamespace)
	if err != nil || nv2.Index != 3 || len(views) != 1 || views[0] != api {
		t.Errorf("Services(default) = %+v, %v, %v", nv2, views, err)
	}
	if got := s.Stats(); got != (Stats{Namespaces: 1, Services: 1, Instances: 1}) {
		t.Errorf("Stats() = %+v", got)
	}

	// Deleting again, or in an unknown namespace, is rejected and changes nothing.
	before := captureState(t, s)
	if _, err := s.Apply(4, deleteServiceCmd(DefaultNamespace, "web")); !errors.Is(err, ErrServiceNotFound) {
		t.Errorf("second delete: %v, want ErrServiceNotFound", err)
	}
	if _, err := s.Apply(5, deleteServiceCmd("prod", "web")); !errors.Is(err, ErrNamespaceNotFound) {
		t.Errorf("delete in unknown namespace: %v, want ErrNamespaceNotFound", err)
	}
	want := before
	want.Index = 5
	assertState(t, "after rejected delete-service", captureState(t, s), want)

	// Re-registering creates a new service from scratch.
	mustApply(t, s, 6, registerCmd(6, DefaultNamespace, "web", "web-2", persistent("10.0.0.2", 80)))
	v := mustService(t, s, DefaultNamespace, "web")
	if v.Service.CreateIndex != 6 || !reflect.DeepEqual(instanceIDs(v), []string{"web-2"}) {
		t.Errorf("recreated web = %+v %v", v.Service, instanceIDs(v))
	}
}

func TestServers(t *testing.T) {
	s := New()
	s1 := Server{ID: "s1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8500", Locality: Locality{Region: "eu"}}
	s2 := Server{ID: "s2", RaftAddr: "10.0.0.2:7000", HTTPAddr: "10.0.0.2:8500"}
	s0 := Server{ID: "s0", RaftAddr: "10.0.0.3:7000", HTTPAddr: "10.0.0.3:8500"}
	if res := mustApply(t, s, 1, putServerCmd(s2)); res != s2 {
		t.Errorf("result = %#v, want %+v", res, s2)
	}
	mustApply(t, s, 2, putServerCmd(s1))
	mustApply(t, s, 3, putServerCmd(s0))
	idx, list := s.Servers()
	if want := []Server{s0, s1, s2}; idx != 3 || !reflect.DeepEqual(list, want) {
		t.Fatalf("Servers() = %d, %+v, want 3, %+v", idx, list, want)
	}

	// Identical put: no change, index stays, the catalog channel stays open.
	_, _, ch := s.Namespaces()
	if res := mustApply(t, s, 4, putServerCmd(s1)); res != s1 {
		t.Errorf("identical put result = %#v", res)
	}
	if idx, _ := s.Servers(); idx != 3 || isClosed(ch) {
		t.Errorf("identical put-server moved the index to %d or closed the channel", idx)
	}

	// Update.
	s1b := s1
	s1b.HTTPAddr = "10.0.0.1:9500"
	mustApply(t, s, 5, putServerCmd(s1b))
	if idx, list := s.Servers(); idx != 5 || !reflect.DeepEqual(list, []Server{s0, s1b, s2}) {
		t.Errorf("after update Servers() = %d, %+v", idx, list)
	}

	// Remove; removing an unknown server is not an error and changes nothing.
	if res := mustApply(t, s, 6, removeServerCmd("s0")); res != nil {
		t.Errorf("remove result = %#v", res)
	}
	if idx, list := s.Servers(); idx != 6 || !reflect.DeepEqual(list, []Server{s1b, s2}) {
		t.Errorf("after remove Servers() = %d, %+v", idx, list)
	}
	before := captureState(t, s)
	mustApply(t, s, 7, removeServerCmd("s0"))
	want := before
	want.Index = 7
	assertState(t, "after removing an unknown server", captureState(t, s), want)

	// An empty id is rejected.
	if _, err := s.Apply(8, putServerCmd(Server{RaftAddr: "x:1"})); !errors.Is(err, ErrInvalid) {
		t.Errorf("put server with empty id: %v, want ErrInvalid", err)
	}
	want.Index = 8
	assertState(t, "after rejected put-server", captureState(t, s), want)
}

func TestIndexAdvances(t *testing.T) {
	s := New()
	steps := []struct {
		index uint64
		cmd   *Command
		ok    bool
	}{
		{3, registerCmd(3, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)), true},
		{4, deregisterCmd(DefaultNamespace, "web", "nope"), false},
		{5, registerCmd(5, "nowhere", "web", "web-1", persistent("10.0.0.1", 80)), false},
		{6, putNamespaceCmd("a", NamespaceSettings{Fallback: "missing"}), false},
		{7, deleteNamespaceCmd(DefaultNamespace), false},
		{8, &Command{Type: CommandType(42)}, false},
		{9, registerCmd(9, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)), true}, // identical
	}
	for _, st := range steps {
		_, err := s.Apply(st.index, st.cmd)
		if (err == nil) != st.ok {
			t.Fatalf("apply %s at %d: error %v, want ok=%v", st.cmd.Type, st.index, err, st.ok)
		}
		if got := s.Index(); got != st.index {
			t.Fatalf("after %s at %d: Index() = %d", st.cmd.Type, st.index, got)
		}
	}
	// The applied position never goes backwards.
	mustApply(t, s, 2, putNamespaceCmd("late", NamespaceSettings{}))
	if got := s.Index(); got != 9 {
		t.Errorf("Index() = %d after applying index 2, want 9", got)
	}
}

func TestApplyUnknownCommand(t *testing.T) {
	s := New()
	before := captureState(t, s)
	_, err := s.Apply(1, &Command{Type: CommandType(42)})
	if !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("error = %v, want ErrUnknownCommand", err)
	}
	want := before
	want.Index = 1
	assertState(t, "after unknown command", captureState(t, s), want)
}

func TestMemo(t *testing.T) {
	s := New()
	mustApply(t, s, 1, registerCmd(1, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	v := mustService(t, s, DefaultNamespace, "web")
	builds := 0
	build := func() any { builds++; return builds }
	if got := v.Memo("k", build); got != 1 {
		t.Fatalf("first Memo = %v", got)
	}
	if got := v.Memo("k", build); got != 1 || builds != 1 {
		t.Fatalf("second Memo = %v after %d builds, want the cached 1", got, builds)
	}
	if got := v.Memo("other", build); got != 2 {
		t.Fatalf("Memo(other) = %v, want a fresh build", got)
	}
	// A new view starts with no memo.
	mustApply(t, s, 2, registerCmd(2, DefaultNamespace, "web", "web-2", persistent("10.0.0.2", 80)))
	if got := mustService(t, s, DefaultNamespace, "web").Memo("k", build); got != 3 {
		t.Fatalf("Memo on a new view = %v, want a fresh build", got)
	}
}

// A patch changes weight and traffic only: health, liveness and the
// registration stay; a stale modify_index is a conflict.
func TestPatchInstanceKeepsHealth(t *testing.T) {
	s := New()
	mustApply(t, s, 1, registerCmd(1, "default", "web", "w1", persistent("10.0.0.1", 80)))
	mustApply(t, s, 2, &Command{Type: CommandSetHealth, Time: at(2), Health: []HealthChange{{Namespace: "default", Service: "web", ID: "w1", Healthy: false}}})
	w, off := 7, false
	res := mustApply(t, s, 3, &Command{Type: CommandPatchInstance, Time: at(3), Namespace: "default", Service: "web", ID: "w1", IfIndex: 2,
		Patch: &InstancePatch{Weight: &w}}).(*Instance)
	if res.Weight != 7 || res.Healthy || !res.Enabled || res.ModifyIndex != 3 || !res.UpdatedAt.Equal(at(3)) || !res.RegisteredAt.Equal(at(1)) {
		t.Fatalf("after a weight patch: %+v", res)
	}
	if _, err := s.Apply(4, &Command{Type: CommandPatchInstance, Namespace: "default", Service: "web", ID: "w1", IfIndex: 2,
		Patch: &InstancePatch{Enabled: &off}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("patch with a stale modify_index = %v, want ErrConflict", err)
	}
	big := MaxWeight + 1
	if _, err := s.Apply(5, &Command{Type: CommandPatchInstance, Namespace: "default", Service: "web", ID: "w1",
		Patch: &InstancePatch{Weight: &big}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("patch with weight %d = %v, want ErrInvalid", big, err)
	}
	if _, err := s.Apply(6, &Command{Type: CommandPatchInstance, Namespace: "default", Service: "web", ID: "nope",
		Patch: &InstancePatch{Enabled: &off}}); !errors.Is(err, ErrInstanceNotFound) {
		t.Fatalf("patch of a missing instance = %v", err)
	}
	res = mustApply(t, s, 7, &Command{Type: CommandPatchInstance, Time: at(7), Namespace: "default", Service: "web", ID: "w1",
		Patch: &InstancePatch{Enabled: &off}}).(*Instance)
	if res.Enabled || res.Healthy || res.Weight != 7 {
		t.Fatalf("after disabling: %+v", res)
	}
}
