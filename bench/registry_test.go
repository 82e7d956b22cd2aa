package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
	"github.com/switchyard-io/switchyard/xds"
)

// testRegistry is a real registry server in this process: a Raft node on
// disk (raft.Open) and the HTTP API over it (api.New), serving HTTP on
// 127.0.0.1:0, without gossip.
type testRegistry struct {
	URL     string
	XDS     string // its xDS server's address
	Node    *raft.Node
	Handler http.Handler
}

// startRegistry starts one node with `registry dev`'s settings.
func startRegistry(tb testing.TB) *testRegistry {
	tb.Helper()
	return startCluster(tb, 1)[0]
}

// startCluster starts n nodes with `registry server`'s default settings:
// the first bootstraps, the others join it. It returns once every node is
// ready.
func startCluster(tb testing.TB, n int) []*testRegistry {
	tb.Helper()
	dir := tb.TempDir()
	var regs []*testRegistry
	for i := 0; i < n; i++ {
		rc := raft.DefaultConfig()
		rc.ID = fmt.Sprintf("n%d", i+1)
		rc.DataDir = filepath.Join(dir, rc.ID)
		rc.RaftAddr = "127.0.0.1:0"
		rc.Bootstrap = i == 0
		if n == 1 {
			// As `registry dev`: one voter need not wait for anyone.
			rc.HeartbeatTimeout = 100 * time.Millisecond
			rc.ElectionTimeout = 100 * time.Millisecond
			rc.LeaderLeaseTimeout = 100 * time.Millisecond
		}
		reg := startNode(tb, rc)
		regs = append(regs, reg)
		if i == 0 {
			continue
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := regs[0].Node.Join(ctx, rc.ID, reg.Node.RaftAddr())
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("join %s: %v", rc.ID, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range regs {
		for !r.Node.Ready() {
			if time.Now().After(deadline) {
				tb.Fatalf("%s not ready after 30s", r.Node.ID())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return regs
}

func startNode(tb testing.TB, rc raft.Config) *testRegistry {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	rc.HTTPAddr = ln.Addr().String()
	node, err := raft.Open(rc, store.New())
	if err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	srv, err := api.New(api.DefaultConfig(), node)
	if err != nil {
		node.Shutdown()
		ln.Close()
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			tb.Errorf("serve: %v", err)
		}
	}()
	xln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	g := grpc.NewServer()
	xds.New(xds.Config{Catalog: srv.Catalog()}).Register(g)
	go func() { _ = g.Serve(xln) }()
	tb.Cleanup(func() {
		g.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
		if err := node.Shutdown(); err != nil {
			tb.Errorf("%s shutdown: %v", rc.ID, err)
		}
	})
	return &testRegistry{URL: "http://" + ln.Addr().String(), XDS: xln.Addr().String(), Node: node, Handler: srv.Handler()}
}
