package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	srvapi "github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/internal/testlog"
	"github.com/switchyard-io/switchyard/server"
	"github.com/switchyard-io/switchyard/store"
)

// cluster is three real servers in this process, on loopback.
type cluster struct {
	t       *testing.T
	dir     string
	mu      sync.Mutex
	servers []*server.Server
	cfgs    []server.Config
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir()}
	for i := range 3 {
		cfg := server.DefaultConfig()
		cfg.ACL.Enabled = false
		cfg.NodeID = fmt.Sprintf("s%d", i+1)
		cfg.DataDir = filepath.Join(c.dir, cfg.NodeID)
		cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr, cfg.DNS.Addr, cfg.XDS.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "", ""
		cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = 400*time.Millisecond, 400*time.Millisecond, 300*time.Millisecond
		cfg.Gossip = gossip.LocalConfig()
		cfg.FlushInterval, cfg.JudgeInterval, cfg.ReconcileInterval = 100*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
		cfg.BootstrapExpect = 3
		cfg.Logger = testlog.New(t, slog.LevelWarn)
		if i > 0 {
			cfg.Join = []string{c.servers[0].Pool().Addr()}
		}
		s, err := server.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Kill() })
		// Restarts reuse the addresses.
		cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr = s.HTTPAddr(), s.Node().RaftAddr(), s.Pool().Addr()
		c.servers = append(c.servers, s)
		c.cfgs = append(c.cfgs, cfg)
	}
	c.waitLeader()
	return c
}

func (c *cluster) waitLeader() {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ready := true
		for _, s := range c.servers {
			if id, _ := s.Node().Leader(); id == "" || !s.Ready() {
				ready = false
			}
		}
		if ready {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader with every server ready")
}

func (c *cluster) addrs() []string {
	var out []string
	for _, cfg := range c.cfgs {
		out = append(out, cfg.HTTPAddr)
	}
	return out
}

func (c *cluster) killAll() {
	for _, s := range c.servers {
		_ = s.Kill()
	}
}

func (c *cluster) restartAll() {
	c.t.Helper()
	for i, cfg := range c.cfgs {
		cfg.BootstrapExpect = 0
		cfg.Join = nil
		for j, o := range c.cfgs {
			if j != i {
				cfg.Join = append(cfg.Join, o.GossipAddr)
			}
		}
		s, err := server.Start(cfg)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { _ = s.Kill() })
		c.servers[i] = s
	}
	c.waitLeader()
}

func persistentAt(addr string) client.Registration {
	f := false
	return client.Registration{Address: addr, Port: 8080, Ephemeral: &f}
}

func (c *cluster) register(t *testing.T, svc, id, addr string) {
	t.Helper()
	a, err := client.NewAPI("http://"+c.cfgs[0].HTTPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Register(context.Background(), store.DefaultNamespace, svc, id, persistentAt(addr)); err != nil {
		t.Fatal(err)
	}
}

// Every server dies: lookups keep answering from memory; a new client
// started meanwhile answers from the disk snapshot; the servers come back
// and a change reaches the client within a second.
func TestLookupsSurviveTheRegistry(t *testing.T) {
	c := startCluster(t)
	for k := range 5 {
		c.register(t, "orders", fmt.Sprintf("o-%d", k), fmt.Sprintf("10.0.0.%d", k+1))
	}
	cache := t.TempDir()
	cl, err := client.New(client.Config{Servers: c.addrs(), CacheDir: cache, Wait: 2 * time.Second,
		SnapshotEvery: 50 * time.Millisecond, Logger: testlog.New(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	// The watched server may be a moment behind the one that took the
	// registrations.
	var a client.Answer
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		a, err = cl.Lookup(ctx, "orders")
		if err == nil && a.Source == client.SourceLive && len(a.Instances) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live lookup: %d instances from %s, %v", len(a.Instances), a.Source, err)
		}
	}
	// The snapshot follows the live answer.
	time.Sleep(300 * time.Millisecond)

	c.killAll()
	start := time.Now()
	for k := range 10000 {
		a, err := cl.Lookup(ctx, "orders")
		if err != nil || len(a.Instances) != 5 {
			t.Fatalf("lookup %d after the servers died: %d instances, %v", k, len(a.Instances), err)
		}
		if k == 9999 && a.Source != client.SourceMemory {
			t.Fatalf("source %s, want memory", a.Source)
		}
		if _, err := cl.Pick(ctx, "orders", client.PickOptions{}); err != nil {
			t.Fatalf("pick %d: %v", k, err)
		}
		// Spread over 30 s.
		if wait := start.Add(time.Duration(k+1) * 3 * time.Millisecond); time.Until(wait) > 0 {
			time.Sleep(time.Until(wait))
		}
	}

	// A new client, every server down: the disk snapshot answers.
	cl2, err := client.New(client.Config{Servers: c.addrs(), CacheDir: cache, Logger: testlog.New(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	a, err = cl2.Lookup(lctx, "orders")
	cancel()
	if err != nil || a.Source != client.SourceSnapshot || len(a.Instances) != 5 || a.Age < 20*time.Second {
		t.Fatalf("snapshot lookup: source %s, %d instances, age %v, %v", a.Source, len(a.Instances), a.Age, err)
	}

	// The servers come back: a change reaches the first client within 1 s
	// of being acknowledged.
	c.restartAll()
	c.register(t, "orders", "o-new", "10.0.0.99")
	acked := time.Now()
	for {
		a, _ := cl.Lookup(ctx, "orders")
		if len(a.Instances) == 6 && a.Source == client.SourceLive {
			t.Logf("change reached the client %v after its acknowledgement", time.Since(acked).Round(time.Millisecond))
			break
		}
		if time.Since(acked) > time.Second {
			t.Fatalf("after 1 s: %d instances from %s", len(a.Instances), a.Source)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The server an instance heartbeats to dies: heartbeats move to another
// server and the instance stays healthy.
func TestHeartbeatsFailOver(t *testing.T) {
	c := startCluster(t)
	cl, err := client.New(client.Config{Servers: c.addrs(), Logger: testlog.New(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	reg := client.Registration{Address: "10.5.0.1", Port: 8080,
		Check: store.Check{TTL: store.Duration(2 * time.Second), DeregisterAfter: store.Duration(time.Hour)}}
	r, err := cl.Register(ctx, "api", "a-1", reg)
	if err != nil {
		t.Fatal(err)
	}
	_ = r
	// Kill the first server in the client's list: the registration and
	// the first heartbeats went there.
	if err := c.servers[0].Kill(); err != nil {
		t.Fatal(err)
	}
	a, err := client.NewAPI("http://"+c.cfgs[1].HTTPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(8 * time.Second) // four TTLs
	for time.Now().Before(deadline) {
		res, err := a.Lookup(ctx, store.DefaultNamespace, "api", client.LookupOptions{})
		if err == nil {
			if len(res.Instances) != 1 || !res.Instances[0].Healthy {
				t.Fatalf("instance after its server died: %+v", res.Instances)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Close deregisters it (graceful offline).
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lookup(ctx, store.DefaultNamespace, "api", client.LookupOptions{}); err == nil {
		res, _ := a.Lookup(ctx, store.DefaultNamespace, "api", client.LookupOptions{})
		if len(res.Instances) != 0 {
			t.Fatalf("instance still registered after Close: %+v", res.Instances)
		}
	}
}

// Watch delivers changes; the manual failover file overrides the live view
// while it names the service.
func TestWatchAndPinnedFailover(t *testing.T) {
	c := startCluster(t)
	c.register(t, "cart", "c-1", "10.1.0.1")
	cache := t.TempDir()
	cl, err := client.New(client.Config{Servers: c.addrs(), CacheDir: cache, Logger: testlog.New(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := cl.Watch(ctx, "cart")
	// Every answer arrives; wait for the second instance.
	c.register(t, "cart", "c-2", "10.1.0.2")
	acked := time.Now()
	timeout := time.After(5 * time.Second)
	for done := false; !done; {
		select {
		case a := <-w:
			done = len(a.Instances) == 2
		case <-timeout:
			t.Fatal("Watch did not deliver the second instance")
		}
	}
	t.Logf("Watch delivered the change %v after its acknowledgement", time.Since(acked).Round(time.Millisecond))

	pin := `{"services": {"cart": [{"id": "dr-1", "address": "192.0.2.10", "port": 9000, "weight": 50}]}}`
	if err := os.WriteFile(filepath.Join(cache, client.PinFile), []byte(pin), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually := func(what string, cond func(client.Answer) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			a, err := cl.Lookup(ctx, "cart")
			if err == nil && cond(a) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v %v", what, a, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	eventually("pinned answer", func(a client.Answer) bool {
		return a.Source == client.SourcePinned && len(a.Instances) == 1 && a.Instances[0].Address == "192.0.2.10"
	})
	if in, err := cl.Pick(ctx, "cart", client.PickOptions{}); err != nil || in.ID != "dr-1" {
		t.Fatalf("pinned pick: %+v %v", in, err)
	}
	if err := os.Remove(filepath.Join(cache, client.PinFile)); err != nil {
		t.Fatal(err)
	}
	eventually("live again", func(a client.Answer) bool { return a.Source == client.SourceLive && len(a.Instances) == 2 })
}

func startOne(t *testing.T, tune ...func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.ACL.Enabled = false
	for _, f := range tune {
		f(&cfg)
	}
	cfg.NodeID, cfg.DataDir, cfg.Bootstrap = "one", t.TempDir(), true
	cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr, cfg.DNS.Addr, cfg.XDS.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "", ""
	cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	cfg.MinQuorum = 1
	cfg.JudgeInterval = 100 * time.Millisecond
	cfg.ReconcileInterval = 100 * time.Millisecond
	cfg.Logger = testlog.New(t, slog.LevelWarn)
	s, err := server.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	for !s.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// A server that forgot an instance gets it registered again at the next
// heartbeat; an answer that turns empty does not empty the client's view
// unless the service is deleted; Static answers when nothing else can.
func TestReRegisterEmptyProtectionAndStatic(t *testing.T) {
	s := startOne(t)
	ctx := context.Background()
	api, _ := client.NewAPI("http://"+s.HTTPAddr(), nil)
	cl, err := client.New(client.Config{Servers: []string{s.HTTPAddr()}, Logger: testlog.New(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	reg := client.Registration{Address: "10.6.0.1", Port: 8080, Check: store.Check{TTL: store.Duration(300 * time.Millisecond)}}
	if _, err := cl.Register(ctx, "web", "w-1", reg); err != nil {
		t.Fatal(err)
	}
	if err := api.Deregister(ctx, store.DefaultNamespace, "web", "w-1"); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	wait("instance not registered again after the server forgot it", func() bool {
		res, err := api.Lookup(ctx, store.DefaultNamespace, "web", client.LookupOptions{})
		return err == nil && len(res.Instances) == 1
	})

	// Empty-answer protection.
	f := false
	for _, id := range []string{"d-1", "d-2"} {
		if _, err := api.Register(ctx, store.DefaultNamespace, "db", id, client.Registration{Address: "10.6.1.1", Port: 5432, Ephemeral: &f}); err != nil {
			t.Fatal(err)
		}
	}
	wait("db not seen", func() bool { a, err := cl.Lookup(ctx, "db"); return err == nil && len(a.Instances) == 2 })
	for _, id := range []string{"d-1", "d-2"} {
		if err := api.Deregister(ctx, store.DefaultNamespace, "db", id); err != nil {
			t.Fatal(err)
		}
	}
	// The last non-empty answer the watcher saw (both, or d-2 alone)
	// stays, although the servers now answer empty. The watcher has had
	// the empty answer long before 300 ms (it is checked below that it
	// does follow the service's deletion).
	time.Sleep(300 * time.Millisecond)
	if a, err := cl.Lookup(ctx, "db"); err != nil || len(a.Instances) == 0 {
		t.Fatalf("empty answer replaced the view: %d instances, %v", len(a.Instances), err)
	}
	if err := api.DeleteService(ctx, store.DefaultNamespace, "db"); err != nil {
		t.Fatal(err)
	}
	wait("a deleted service still answers", func() bool {
		_, err := cl.Lookup(ctx, "db")
		return errors.Is(err, client.ErrNoAnswer)
	})

	// Static, with no server at all.
	st, err := client.New(client.Config{Static: map[string][]wire.Instance{"legacy": {{Instance: &store.Instance{ID: "l-1", Address: "10.9.9.9", Port: 80, Weight: 1, Enabled: true}}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if a, err := st.Lookup(ctx, "legacy"); err != nil || a.Source != client.SourceStatic || len(a.Instances) != 1 {
		t.Fatalf("static: %+v %v", a, err)
	}
	if in, err := st.Pick(ctx, "legacy", client.PickOptions{}); err != nil || in.ID != "l-1" {
		t.Fatalf("static pick: %+v %v", in, err)
	}
}

// With access control on, the client sends Config.Token: a write token
// registers and heartbeats its instance, a read token looks it up, and a
// client without one is refused.
func TestSDKSendsItsToken(t *testing.T) {
	admin := srvapi.NewSecret()
	s := startOne(t, func(c *server.Config) { c.ACL = server.ACLConfig{Enabled: true, BootstrapSecret: admin} })
	ctx := context.Background()
	base, _ := client.NewAPI("http://"+s.HTTPAddr(), nil)
	adm := base.WithToken(admin)
	var writer, reader *wire.Token
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if writer, err = adm.CreateToken(ctx, "echo", []string{"write:default/echo"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create token with the bootstrap secret: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	reader, err := adm.CreateToken(ctx, "callers", []string{"read:default/echo"})
	if err != nil {
		t.Fatal(err)
	}

	anon, err := client.New(client.Config{Servers: []string{s.HTTPAddr()}, Logger: testlog.New(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Register(ctx, "echo", "e1", client.Registration{Address: "127.0.0.1", Port: 9000}); !client.IsDenied(err) {
		t.Fatalf("register without a token = %v, want a 401", err)
	}

	w, err := client.New(client.Config{Servers: []string{s.HTTPAddr()}, Token: writer.Secret, Logger: testlog.New(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Register(ctx, "echo", "e1", client.Registration{Address: "127.0.0.1", Port: 9000}); err != nil {
		t.Fatalf("register with a write token: %v", err)
	}
	if _, err := w.Register(ctx, "other", "o1", client.Registration{Address: "127.0.0.1", Port: 9001}); !client.IsDenied(err) {
		t.Fatalf("register another service with echo's token = %v, want 403", err)
	}

	r, err := client.New(client.Config{Servers: []string{s.HTTPAddr()}, Token: reader.Secret, Logger: testlog.New(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, err := r.Lookup(ctx, "echo")
	if err != nil || a.Source != client.SourceLive || len(a.Instances) != 1 || a.Instances[0].ID != "e1" {
		t.Fatalf("lookup with a read token: %+v %v", a, err)
	}
}
