package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// t0 is the leader's clock in these tests. A UTC time built with time.Date
// carries no monotonic reading, so it survives a JSON round trip unchanged
// under reflect.DeepEqual.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// at returns the leader time of the command applied at index i, so that each
// write carries a distinct, predictable timestamp.
func at(i uint64) time.Time { return t0.Add(time.Duration(i) * time.Second) }

// persistent returns a valid persistent instance spec.
func persistent(addr string, port int) Instance {
	return Instance{Address: addr, Port: port, Weight: DefaultWeight, Enabled: true}
}

func registerCmd(index uint64, ns, svc, id string, in Instance) *Command {
	return &Command{Type: CommandRegister, Time: at(index), Namespace: ns, Service: svc, ID: id, Instance: &in}
}

func deregisterCmd(ns, svc, id string) *Command {
	return &Command{Type: CommandDeregister, Namespace: ns, Service: svc, ID: id}
}

func putServiceCmd(ns, svc string, set ServiceSettings) *Command {
	return &Command{Type: CommandPutService, Namespace: ns, Service: svc, ServiceSettings: &set}
}

func deleteServiceCmd(ns, svc string) *Command {
	return &Command{Type: CommandDeleteService, Namespace: ns, Service: svc}
}

func putNamespaceCmd(ns string, set NamespaceSettings) *Command {
	return &Command{Type: CommandPutNamespace, Namespace: ns, NamespaceSettings: &set}
}

func deleteNamespaceCmd(ns string) *Command {
	return &Command{Type: CommandDeleteNamespace, Namespace: ns}
}

func putServerCmd(srv Server) *Command {
	return &Command{Type: CommandPutServer, Server: &srv}
}

func removeServerCmd(id string) *Command {
	return &Command{Type: CommandRemoveServer, ID: id}
}

// mustApply applies c and fails the test if the store rejects it.
func mustApply(t testing.TB, s *Store, index uint64, c *Command) any {
	t.Helper()
	res, err := s.Apply(index, c)
	if err != nil {
		t.Fatalf("apply %s at %d: %v", c.Type, index, err)
	}
	return res
}

// mustService returns the view of a service that must exist.
func mustService(t testing.TB, s *Store, ns, svc string) *ServiceView {
	t.Helper()
	v, err := s.Service(ns, svc)
	if err != nil {
		t.Fatalf("Service(%q, %q): %v", ns, svc, err)
	}
	return v
}

// mustNamespace returns the view of a namespace that must exist.
func mustNamespace(t testing.TB, s *Store, ns string) *NamespaceView {
	t.Helper()
	v, err := s.Namespace(ns)
	if err != nil {
		t.Fatalf("Namespace(%q): %v", ns, err)
	}
	return v
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// svcState is everything the read API shows of one service.
type svcState struct {
	Service   Service
	Index     uint64
	Instances []Instance
}

// nsState is everything the read API shows of one namespace.
type nsState struct {
	Namespace Namespace
	Index     uint64
	Services  []svcState
}

// storeState is everything visible through the read API, as plain values, so
// two stores (or one store at two moments) compare with reflect.DeepEqual.
type storeState struct {
	Index           uint64
	NamespacesIndex uint64
	Namespaces      []Namespace
	Detail          []nsState
	ServersIndex    uint64
	Servers         []Server
	Stats           Stats
}

func captureState(t testing.TB, s *Store) storeState {
	t.Helper()
	st := storeState{Index: s.Index(), Stats: s.Stats()}
	st.NamespacesIndex, st.Namespaces, _ = s.Namespaces()
	for _, ns := range st.Namespaces {
		nv, views, err := s.Services(ns.Name)
		if err != nil {
			t.Fatalf("Services(%q): %v", ns.Name, err)
		}
		if nv.Namespace != ns {
			t.Fatalf("Services(%q) namespace %+v, Namespaces() says %+v", ns.Name, nv.Namespace, ns)
		}
		n := nsState{Namespace: nv.Namespace, Index: nv.Index}
		for _, v := range views {
			// Service and Services must serve the same view.
			if one := mustService(t, s, ns.Name, v.Service.Name); one != v {
				t.Fatalf("Service(%q, %q) and Services(%q) disagree", ns.Name, v.Service.Name, ns.Name)
			}
			sv := svcState{Service: v.Service, Index: v.Index}
			for _, in := range v.Instances() {
				sv.Instances = append(sv.Instances, *in)
			}
			n.Services = append(n.Services, sv)
		}
		st.Detail = append(st.Detail, n)
	}
	st.ServersIndex, st.Servers = s.Servers()
	return st
}

// assertState fails the test if two captured states differ, printing both.
func assertState(t testing.TB, what string, got, want storeState) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: store state differs\n got: %s\nwant: %s", what, dump(got), dump(want))
	}
}

func dump(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}
