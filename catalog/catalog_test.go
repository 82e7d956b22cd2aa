package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/health"
	"github.com/switchyard-io/switchyard/store"
)

// node applies commands to a store in order, as a single server's Raft
// log would; the catalog's behaviour through real servers is tested in
// server/ (TestEveryDoorObeysTheCatalogsRules).
type node struct {
	mu      sync.Mutex
	st      *store.Store
	idx     uint64
	applied []*store.Command
	ready   bool
}

func newNode() *node { return &node{st: store.New(), ready: true} }

func (n *node) Store() *store.Store                  { return n.st }
func (n *node) Ready() bool                          { return n.ready }
func (n *node) ConsistentRead(context.Context) error { return nil }
func (n *node) Apply(_ context.Context, c *store.Command) (uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.idx++
	n.applied = append(n.applied, c)
	c.Time = time.Unix(1_700_000_000, 0)
	_, err := n.st.Apply(n.idx, c)
	return n.idx, err
}

func newCatalog(t *testing.T, cfg Config) (*Catalog, *node) {
	t.Helper()
	n := newNode()
	c, err := New(cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	return c, n
}

func instance(id string) *store.Instance {
	return &store.Instance{Namespace: "default", Service: "web", ID: id, Address: "10.0.0.1", Port: 80,
		Weight: store.DefaultWeight, Enabled: true, Ephemeral: true}
}

// Register returns the instance as the store holds it (its indexes and
// health set by the write), and records the registration as a sign of life.
func TestRegisterReturnsTheStoredInstance(t *testing.T) {
	live := health.NewLiveness(nil)
	c, _ := newCatalog(t, Config{Liveness: live})
	in, idx, err := c.Register(context.Background(), instance("w1"))
	if err != nil {
		t.Fatal(err)
	}
	if idx == 0 || in.CreateIndex != idx || in.ModifyIndex != idx || !in.Healthy || in.RegisteredAt.IsZero() {
		t.Fatalf("returned %+v at index %d: not the stored instance", in, idx)
	}
	v, _ := c.Service("default", "web")
	if v.Instance("w1") != in {
		t.Fatal("the returned instance is not the one in the service's view")
	}
	if _, ok := live.LastSeen(health.Key{Namespace: "default", Service: "web", ID: "w1"}); !ok {
		t.Fatal("an ephemeral registration was not heard as a sign of life")
	}
	if _, ok := c.LastHeard("default", "web", "w1"); !ok {
		t.Fatal("LastHeard does not see it")
	}
}

// The rules refuse before anything reaches the log.
func TestRulesRefuseBeforeTheLog(t *testing.T) {
	c, n := newCatalog(t, Config{MaxInstancesPerService: 1, MaxMetadataBytes: 10})
	big := instance("w1")
	big.Metadata = map[string]string{"key": "0123456789"}
	bad := instance("w1")
	bad.Port = 0
	for _, tc := range []struct {
		in   *store.Instance
		want error
		says string
	}{
		{big, store.ErrInvalid, "--max-metadata-bytes"},
		{bad, store.ErrInvalid, "port 0"},
	} {
		if _, _, err := c.Register(context.Background(), tc.in); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("register: %v, want %v naming %q", err, tc.want, tc.says)
		}
	}
	if len(n.applied) != 0 {
		t.Fatalf("refused registrations reached the log: %d commands", len(n.applied))
	}
	if _, _, err := c.Register(context.Background(), instance("w1")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Register(context.Background(), instance("w2")); !errors.Is(err, ErrTooManyInstances) {
		t.Fatalf("second instance of a full service: %v", err)
	}
	if _, _, err := c.Register(context.Background(), instance("w1")); err != nil {
		t.Fatalf("registering w1 again in a full service: %v", err)
	}
	if len(n.applied) != 2 {
		t.Fatalf("%d commands in the log, want the two registrations of w1", len(n.applied))
	}
}

// A heartbeat is answered from the replica: refused while it has not
// caught up, for an unknown instance, and for a persistent one.
func TestHeartbeat(t *testing.T) {
	c, n := newCatalog(t, Config{})
	p := instance("p1")
	p.Ephemeral = false
	p.Check = store.Check{Type: store.CheckTCP, Target: "10.0.0.1:80"}
	for _, in := range []*store.Instance{instance("e1"), p} {
		if _, _, err := c.Register(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if _, in, err := c.Heartbeat("default", "web", "e1"); err != nil || in.ID != "e1" {
		t.Fatalf("heartbeat of e1: %v %v", in, err)
	}
	if _, _, err := c.Heartbeat("default", "web", "p1"); !errors.Is(err, ErrNotEphemeral) {
		t.Errorf("heartbeat of a persistent instance: %v", err)
	}
	if _, _, err := c.Heartbeat("default", "web", "nope"); !errors.Is(err, store.ErrInstanceNotFound) || !strings.Contains(err.Error(), "register it again") {
		t.Errorf("heartbeat of an unknown instance: %v", err)
	}
	n.ready = false
	if _, _, err := c.Heartbeat("default", "web", "e1"); !errors.Is(err, ErrNotReady) {
		t.Errorf("heartbeat on a server not caught up: %v", err)
	}
}

// A heartbeat the server could not pass on to the judge is refused with
// the reason ReachesJudge gives, and not recorded; one it can is.
func TestHeartbeatOnlyWhereItReachesTheJudge(t *testing.T) {
	live := health.NewLiveness(nil)
	var unreachable error
	c, _ := newCatalog(t, Config{Liveness: live, ReachesJudge: func() error { return unreachable }})
	if _, _, err := c.Register(context.Background(), instance("e1")); err != nil {
		t.Fatal(err)
	}
	k := health.Key{Namespace: "default", Service: "web", ID: "e1"}
	registered, _ := live.LastSeen(k)
	heard := live.HeardTotal()
	unreachable = fmt.Errorf("%w: the leader is not in this server's gossip pool", ErrNotReady)
	if _, _, err := c.Heartbeat("default", "web", "e1"); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "gossip pool") {
		t.Errorf("heartbeat that cannot reach the judge: %v, want ErrNotReady with its reason", err)
	}
	if last, _ := live.LastSeen(k); !last.Equal(registered) || live.HeardTotal() != heard {
		t.Errorf("a refused heartbeat was recorded: last seen %v (registered %v), heard %d (was %d)", last, registered, live.HeardTotal(), heard)
	}
	unreachable = nil
	if _, _, err := c.Heartbeat("default", "web", "e1"); err != nil {
		t.Fatalf("heartbeat that reaches the judge: %v", err)
	}
	if live.HeardTotal() != heard+1 {
		t.Errorf("a heartbeat taken was not recorded: heard %d, want %d", live.HeardTotal(), heard+1)
	}
}

// Settings: the update sees the current settings, the result is validated
// before the door's own hook runs, and nothing invalid is written.
func TestPutSettings(t *testing.T) {
	c, n := newCatalog(t, Config{})
	allowCalled := false
	_, _, err := c.PutNamespace(context.Background(), "staging", func(cur store.NamespaceSettings) (store.NamespaceSettings, error) {
		cur.Fallback = "Not_A_Name"
		return cur, nil
	}, func(cur, next store.NamespaceSettings) error { allowCalled = true; return nil })
	if !errors.Is(err, store.ErrInvalid) || allowCalled || len(n.applied) != 0 {
		t.Fatalf("invalid fallback: %v (allow called: %v, %d commands)", err, allowCalled, len(n.applied))
	}
	ns, _, err := c.PutNamespace(context.Background(), "staging", func(cur store.NamespaceSettings) (store.NamespaceSettings, error) {
		cur.Description = "for tests"
		return cur, nil
	}, nil)
	if err != nil || ns.Name != "staging" || ns.Description != "for tests" {
		t.Fatalf("put namespace: %+v %v", ns, err)
	}
	svc, _, err := c.PutService(context.Background(), "staging", "api", func(cur store.ServiceSettings) (store.ServiceSettings, error) {
		if cur != store.DefaultServiceSettings() {
			t.Errorf("a new service's current settings are %+v, not the defaults", cur)
		}
		cur.ProtectThreshold = 0.5
		return cur, nil
	})
	if err != nil || svc.ProtectThreshold != 0.5 || svc.Name != "api" {
		t.Fatalf("put service: %+v %v", svc, err)
	}
	before := len(n.applied)
	if _, _, err := c.PutService(context.Background(), "staging", "api", func(cur store.ServiceSettings) (store.ServiceSettings, error) {
		if cur.ProtectThreshold != 0.5 {
			t.Errorf("the update saw %+v, not the stored settings", cur)
		}
		cur.MinHealthyRatio = 2
		return cur, nil
	}); !errors.Is(err, store.ErrInvalid) || len(n.applied) != before {
		t.Fatalf("min_healthy_ratio 2: %v, %d new commands", err, len(n.applied)-before)
	}
}
