package store

import "testing"

// watchFixture is a store with two namespaces and three services:
// default/web (web-1), default/api (api-1), prod/web (web-1).
func watchFixture(t *testing.T) *Store {
	t.Helper()
	s := New()
	mustApply(t, s, 1, putNamespaceCmd("prod", NamespaceSettings{}))
	mustApply(t, s, 2, registerCmd(2, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	mustApply(t, s, 3, registerCmd(3, DefaultNamespace, "api", "api-1", persistent("10.0.0.2", 80)))
	mustApply(t, s, 4, registerCmd(4, "prod", "web", "web-1", persistent("10.0.1.1", 80)))
	return s
}

func TestServiceWatch(t *testing.T) {
	changed := ServiceSettings{MinHealthyRatio: 0.9, Balancer: "round_robin"}
	tests := []struct {
		name      string
		cmd       *Command
		wantClose bool // whether default/web's channel closes
	}{
		{name: "new instance of the service", cmd: registerCmd(10, DefaultNamespace, "web", "web-2", persistent("10.0.0.3", 80)), wantClose: true},
		{name: "changed instance of the service", cmd: registerCmd(10, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 81)), wantClose: true},
		{name: "deregistration from the service", cmd: deregisterCmd(DefaultNamespace, "web", "web-1"), wantClose: true},
		{name: "settings of the service", cmd: putServiceCmd(DefaultNamespace, "web", changed), wantClose: true},
		{name: "deletion of the service", cmd: deleteServiceCmd(DefaultNamespace, "web"), wantClose: true},

		{name: "identical registration", cmd: registerCmd(10, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80))},
		{name: "identical settings", cmd: putServiceCmd(DefaultNamespace, "web", DefaultServiceSettings())},
		{name: "rejected deregistration", cmd: deregisterCmd(DefaultNamespace, "web", "web-9")},
		{name: "registration in another service", cmd: registerCmd(10, DefaultNamespace, "api", "api-2", persistent("10.0.0.4", 80))},
		{name: "deregistration in another service", cmd: deregisterCmd(DefaultNamespace, "api", "api-1")},
		{name: "settings of another service", cmd: putServiceCmd(DefaultNamespace, "api", changed)},
		{name: "deletion of another service", cmd: deleteServiceCmd(DefaultNamespace, "api")},
		{name: "new service", cmd: registerCmd(10, DefaultNamespace, "db", "db-1", persistent("10.0.0.5", 80))},
		{name: "same service name in another namespace", cmd: registerCmd(10, "prod", "web", "web-2", persistent("10.0.1.2", 80))},
		{name: "namespace settings", cmd: putNamespaceCmd(DefaultNamespace, NamespaceSettings{Description: "d"})},
		{name: "new namespace", cmd: putNamespaceCmd("qa", NamespaceSettings{})},
		{name: "server", cmd: putServerCmd(Server{ID: "s1"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := watchFixture(t)
			v := mustService(t, s, DefaultNamespace, "web")
			if isClosed(v.WatchCh()) {
				t.Fatalf("fresh view's channel is closed")
			}
			_, _ = s.Apply(10, tt.cmd)
			if got := isClosed(v.WatchCh()); got != tt.wantClose {
				t.Fatalf("default/web channel closed = %v, want %v", got, tt.wantClose)
			}
			if !tt.wantClose {
				// No wake-up means no new answer either.
				if now, err := s.Service(DefaultNamespace, "web"); err != nil || now != v {
					t.Fatalf("view replaced without closing the channel: %v", err)
				}
			}
		})
	}
}

func TestNamespaceWatch(t *testing.T) {
	tests := []struct {
		name      string
		cmd       *Command
		wantClose bool // whether default's namespace view channel closes
	}{
		{name: "service created by a registration", cmd: registerCmd(10, DefaultNamespace, "db", "db-1", persistent("10.0.0.5", 80)), wantClose: true},
		{name: "service created by put-service", cmd: putServiceCmd(DefaultNamespace, "db", DefaultServiceSettings()), wantClose: true},
		{name: "service settings changed", cmd: putServiceCmd(DefaultNamespace, "web", ServiceSettings{Balancer: "round_robin"}), wantClose: true},
		{name: "service deleted", cmd: deleteServiceCmd(DefaultNamespace, "api"), wantClose: true},
		{name: "namespace settings changed", cmd: putNamespaceCmd(DefaultNamespace, NamespaceSettings{Description: "d"}), wantClose: true},

		// The service list shows instance counts.
		{name: "instance registered in existing service", cmd: registerCmd(10, DefaultNamespace, "web", "web-2", persistent("10.0.0.3", 80)), wantClose: true},
		{name: "instance deregistered", cmd: deregisterCmd(DefaultNamespace, "web", "web-1"), wantClose: true},
		{name: "identical service settings", cmd: putServiceCmd(DefaultNamespace, "web", DefaultServiceSettings())},
		{name: "identical namespace settings", cmd: putNamespaceCmd(DefaultNamespace, NamespaceSettings{})},
		{name: "service created in another namespace", cmd: registerCmd(10, "prod", "db", "db-1", persistent("10.0.1.5", 80))},
		{name: "rejected registration", cmd: registerCmd(10, DefaultNamespace, "db", "db-1", persistent("10.0.0.5", 0))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := watchFixture(t)
			nv := mustNamespace(t, s, DefaultNamespace)
			_, _ = s.Apply(10, tt.cmd)
			if got := isClosed(nv.WatchCh()); got != tt.wantClose {
				t.Fatalf("default namespace channel closed = %v, want %v", got, tt.wantClose)
			}
			now := mustNamespace(t, s, DefaultNamespace)
			if tt.wantClose && now.Index != 10 {
				t.Errorf("namespace view index = %d, want 10", now.Index)
			}
			if !tt.wantClose && now != nv {
				t.Errorf("view replaced without closing the channel")
			}
		})
	}
}

func TestNamespacesWatch(t *testing.T) {
	tests := []struct {
		name      string
		cmd       *Command
		wantClose bool
	}{
		{name: "namespace created", cmd: putNamespaceCmd("qa", NamespaceSettings{}), wantClose: true},
		{name: "namespace deleted", cmd: deleteNamespaceCmd("prod"), wantClose: true},
		{name: "rejected namespace", cmd: putNamespaceCmd("qa", NamespaceSettings{Fallback: "nowhere"})},
		{name: "registration", cmd: registerCmd(10, DefaultNamespace, "web", "web-2", persistent("10.0.0.3", 80))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			mustApply(t, s, 1, putNamespaceCmd("prod", NamespaceSettings{}))
			mustApply(t, s, 2, registerCmd(2, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
			_, _, ch := s.Namespaces()
			_, _ = s.Apply(10, tt.cmd)
			if got := isClosed(ch); got != tt.wantClose {
				t.Fatalf("namespaces channel closed = %v, want %v", got, tt.wantClose)
			}
		})
	}
}
