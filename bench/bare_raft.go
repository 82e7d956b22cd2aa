package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
)

// The bare replicated PUT handler is the registrations' second baseline:
// what this machine gives any write that three processes must each sync to
// disk before it is answered. Three `bare-raft` children run hashicorp/raft
// with raft-boltdb (the registry's default log store, synced appends) and
// group commit (BatchApplyCh), each behind a net/http PUT handler that reads
// the body, applies it as one log entry and answers the registry's own
// answer bytes. Its state machine keeps nothing. A registration does all of
// that plus the catalog's own work, so the registry's rate over this one is
// how much of the machine's replicated-write bound it reaches, and this
// one's rate over the bare PUT handler's is the bound itself.

// bareRaftNode is one child of a bare replicated cluster.
type bareRaftNode struct {
	url  string
	pid  int
	stop func()
}

// startBareRaft starts three bare-raft children in dir answering PUTs with
// a's body and headers, waits for a leader, and returns the leader's URL,
// the children's pids and a function that stops them all.
func startBareRaft(ctx context.Context, dir, logStore string, a childAnswer) (string, []int, func(), error) {
	const n = 3
	ports := make([]int, n)
	peers := make([]string, n)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return "", nil, nil, err
		}
		ports[i] = p
		peers[i] = fmt.Sprintf("b%d=127.0.0.1:%d", i+1, p)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, nil, fmt.Errorf("bare raft: %w", err)
	}
	answer := filepath.Join(dir, "answer.json")
	raw, err := json.Marshal(a)
	if err != nil {
		return "", nil, nil, err
	}
	if err := os.WriteFile(answer, raw, 0o600); err != nil {
		return "", nil, nil, fmt.Errorf("bare raft: %w", err)
	}
	var nodes []bareRaftNode
	stopAll := func() {
		for _, nd := range nodes {
			nd.stop()
		}
		os.RemoveAll(dir)
	}
	for i := range n {
		nd, err := startBareRaftChild(filepath.Join(dir, fmt.Sprintf("b%d", i+1)), fmt.Sprintf("b%d", i+1),
			ports[i], strings.Join(peers, ","), answer, logStore)
		if err != nil {
			stopAll()
			return "", nil, nil, err
		}
		nodes = append(nodes, nd)
	}
	pids := make([]int, len(nodes))
	for i, nd := range nodes {
		pids[i] = nd.pid
	}
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, nd := range nodes {
			resp, err := hc.Get(nd.url + "/leader")
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nd.url, pids, stopAll, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopAll()
	return "", nil, nil, errors.New("bare raft: no leader after 20s")
}

// startBareRaftChild starts one bare-raft child and waits for its URL.
func startBareRaftChild(dir, id string, raftPort int, peers, answer, logStore string) (bareRaftNode, error) {
	u, pid, stop, err := startChild("bare-raft", "--dir", dir, "--id", id, "--raft-port", strconv.Itoa(raftPort),
		"--peers", peers, "--answer", answer, "--log-store", logStore)
	if err != nil {
		return bareRaftNode{}, fmt.Errorf("bare raft %s: %w", id, err)
	}
	return bareRaftNode{url: u, pid: pid, stop: stop}, nil
}

// countingFSM is the bare cluster's state machine: it counts entries.
type countingFSM struct{ n atomic.Int64 }

func (f *countingFSM) Apply(*hraft.Log) any { f.n.Add(1); return nil }

func (f *countingFSM) Snapshot() (hraft.FSMSnapshot, error) { return countSnapshot{}, nil }

func (f *countingFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

type countSnapshot struct{}

func (countSnapshot) Persist(sink hraft.SnapshotSink) error { return sink.Close() }
func (countSnapshot) Release()                              {}

// bareLogStore is a Raft log and stable store that closes.
type bareLogStore interface {
	hraft.LogStore
	hraft.StableStore
	io.Closer
}

func openBareLogStore(dir, kind string) (bareLogStore, error) {
	switch kind {
	case "bolt":
		return raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	case "wal":
		d := filepath.Join(dir, "wal")
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		return wal.Open(d)
	}
	return nil, fmt.Errorf("--log-store %q: use bolt or wal", kind)
}

// runBareRaft is a bare-raft child: one node of the bare replicated
// cluster, with its PUT handler on 127.0.0.1:0. It prints its URL and exits
// when its stdin closes.
func runBareRaft(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("registry-bench bare-raft", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "data folder")
	id := fs.String("id", "", "this node's ID")
	port := fs.Int("raft-port", 0, "Raft port on 127.0.0.1")
	peersFlag := fs.String("peers", "", "id=addr,… of all three nodes, this one included")
	answerFile := fs.String("answer", "", "JSON file of the answer to every PUT")
	logStore := fs.String("log-store", "bolt", "bolt (raft-boltdb) or wal (raft-wal), as the registry's --raft-log-store")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*answerFile)
	if err != nil {
		return err
	}
	var a childAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("%s: %w", *answerFile, err)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	var servers []hraft.Server
	for _, p := range strings.Split(*peersFlag, ",") {
		pid, addr, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("--peers: %q is not id=addr", p)
		}
		servers = append(servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(pid), Address: hraft.ServerAddress(addr)})
	}
	logs, err := openBareLogStore(*dir, *logStore)
	if err != nil {
		return err
	}
	defer logs.Close()
	cached, err := hraft.NewLogCache(4096, logs)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	transport, err := hraft.NewTCPTransport(addr, nil, 8, 10*time.Second, io.Discard)
	if err != nil {
		return err
	}
	defer transport.Close()
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(*id)
	rc.BatchApplyCh = true
	rc.LogOutput = io.Discard
	// The registry's own timings (raft.DefaultConfig).
	rc.HeartbeatTimeout, rc.ElectionTimeout = time.Second, time.Second
	rc.LeaderLeaseTimeout, rc.CommitTimeout = 500*time.Millisecond, 5*time.Millisecond
	r, err := hraft.NewRaft(rc, &countingFSM{}, cached, logs, hraft.NewDiscardSnapshotStore(), transport)
	if err != nil {
		return err
	}
	defer r.Shutdown()
	if err := r.BootstrapCluster(hraft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/leader" {
			if r.State() != hraft.Leader {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := r.Apply(body, 10*time.Second).Error(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		hd := w.Header()
		for k, v := range a.Header {
			if k != "Date" && k != "Content-Length" {
				hd[k] = v
			}
		}
		hd["Content-Length"] = []string{strconv.Itoa(len(a.Body))}
		_, _ = w.Write(a.Body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	fmt.Fprintf(stdout, "bare-raft listening http://%s\n", ln.Addr())
	untilStdinCloses(ctx)
	return nil
}
