package grpcresolver_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/client/grpcresolver"
	"github.com/switchyard-io/switchyard/internal/testlog"
	"github.com/switchyard-io/switchyard/server"
	"github.com/switchyard-io/switchyard/store"
)

// backend is a real gRPC server that counts the calls it serves.
type backend struct {
	addr  string
	calls atomic.Int64
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String()}
	s := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		b.calls.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return b
}

// A grpc-go client dialing switchyard:///greeter spreads its calls over
// three real gRPC servers by their registry weights, and stops calling one
// within 2 s of its deregistration.
func TestGRPCResolver(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.ACL.Enabled = false
	cfg.NodeID, cfg.DataDir, cfg.Bootstrap = "r1", t.TempDir(), true
	cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr, cfg.DNS.Addr, cfg.XDS.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "", ""
	cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	cfg.MinQuorum = 1
	cfg.Logger = testlog.New(t, slog.LevelWarn)
	srv, err := server.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Kill() })
	for !srv.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	api, err := client.NewAPI("http://"+srv.HTTPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	backends := []*backend{startBackend(t), startBackend(t), startBackend(t)}
	// register (re-)registers backend k as g-k with weights[k].
	register := func(weights []int) {
		for k, b := range backends {
			host, port, _ := net.SplitHostPort(b.addr)
			p, _ := strconv.Atoi(port)
			w := weights[k]
			f := false
			if _, err := api.Register(ctx, store.DefaultNamespace, "greeter", fmt.Sprintf("g-%d", k),
				client.Registration{Address: host, Port: p, Weight: &w, Ephemeral: &f}); err != nil {
				t.Fatal(err)
			}
		}
	}
	weights := []int{100, 200, 700}
	register(weights)

	rb := grpcresolver.NewBuilder(client.Config{Servers: []string{srv.HTTPAddr()}, Wait: 5 * time.Second})
	t.Cleanup(func() { rb.Close() })
	conn, err := grpc.NewClient("switchyard:///greeter?ns=default", grpc.WithResolvers(rb),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	call := func() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until all three are connected, then measure.
	deadline := time.Now().Add(10 * time.Second)
	for backends[0].calls.Load() == 0 || backends[1].calls.Load() == 0 || backends[2].calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not every backend called: %d %d %d", backends[0].calls.Load(), backends[1].calls.Load(), backends[2].calls.Load())
		}
		call()
	}
	var before [3]int64
	for k, b := range backends {
		before[k] = b.calls.Load()
	}
	const n = 3000
	for range n {
		call()
	}
	for k, b := range backends {
		share := float64(b.calls.Load()-before[k]) / n
		want := float64(weights[k]) / 1000
		if math.Abs(share-want) > 0.04 {
			t.Errorf("backend %d (weight %d): %.3f of the calls, want %.3f ± 0.04", k, weights[k], share, want)
		}
	}

	// Weights change in the registry: the calls follow within 5 s, over the
	// same connections.
	weights = []int{700, 200, 100}
	register(weights)
	changed := time.Now()
	for {
		base := backends[0].calls.Load()
		for range 1000 {
			call()
		}
		share := float64(backends[0].calls.Load()-base) / 1000
		if math.Abs(share-0.7) <= 0.06 {
			t.Logf("calls follow the new weights %v after the change (backend 0: %.3f)", time.Since(changed).Round(time.Millisecond), share)
			break
		}
		if time.Since(changed) > 5*time.Second {
			t.Fatalf("5 s after its weight went from 100 to 700, backend 0 gets %.3f of the calls, want 0.7", share)
		}
	}

	// Deregister g-2: within 2 s no call reaches it.
	if err := api.Deregister(ctx, store.DefaultNamespace, "greeter", "g-2"); err != nil {
		t.Fatal(err)
	}
	dereg := time.Now()
	for {
		base := backends[2].calls.Load()
		for range 50 {
			call()
		}
		if backends[2].calls.Load() == base {
			t.Logf("no call to the deregistered backend %v after its deregistration", time.Since(dereg).Round(time.Millisecond))
			break
		}
		if time.Since(dereg) > 2*time.Second {
			t.Fatal("the deregistered backend still gets calls 2 s later")
		}
	}
}
