package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
)

// serverOptions are the flags of `registry server` (and, with other
// defaults, `registry dev`).
type serverOptions struct {
	nodeID     string
	dataDir    string
	httpAddr   string
	raftAddr   string
	advertise  string
	bootstrap  bool
	join       string
	region     string
	datacenter string
	unit       string
	logLevel   string
	logFormat  string

	heartbeatTimeout time.Duration
	electionTimeout  time.Duration
	commitTimeout    time.Duration

	enableDebug bool

	dev bool
}

func (o *serverOptions) flags(fs *flag.FlagSet, dev bool) {
	if dev {
		fs.StringVar(&o.dataDir, "data-dir", "", "data directory (default: a temporary folder removed at exit)")
		fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:7400", "HTTP API address")
		fs.StringVar(&o.raftAddr, "raft-addr", "127.0.0.1:0", "Raft address (port 0: any free port)")
		fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
		fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
		fs.BoolVar(&o.enableDebug, "enable-debug", false, "serve Go profiling at /debug/pprof/ on the HTTP address")
		return
	}
	fs.StringVar(&o.nodeID, "node-id", "", "this server's id, a DNS label, stable across restarts (required)")
	fs.StringVar(&o.dataDir, "data-dir", "", "data directory for the Raft log and snapshots (required)")
	fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:7400", "HTTP API address")
	fs.StringVar(&o.raftAddr, "raft-addr", "127.0.0.1:7401", "Raft address (also carries forwarded writes)")
	fs.StringVar(&o.advertise, "advertise-raft-addr", "", "Raft address other servers dial (default: --raft-addr)")
	fs.BoolVar(&o.bootstrap, "bootstrap", false, "start a new cluster with this server as its first voter")
	fs.StringVar(&o.join, "join", "", "HTTP address of any cluster member to join (e.g. 127.0.0.1:7410)")
	fs.StringVar(&o.region, "region", "", "this server's region")
	fs.StringVar(&o.datacenter, "datacenter", "", "this server's datacenter")
	fs.StringVar(&o.unit, "unit", "", "this server's unit")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&o.enableDebug, "enable-debug", false, "serve Go profiling at /debug/pprof/ on the HTTP address (anyone who reaches it can profile the server)")
	def := raft.DefaultConfig()
	fs.DurationVar(&o.heartbeatTimeout, "raft-heartbeat-timeout", def.HeartbeatTimeout, "follower: time without the leader before an election")
	fs.DurationVar(&o.electionTimeout, "raft-election-timeout", def.ElectionTimeout, "candidate: time before a new election")
	fs.DurationVar(&o.commitTimeout, "raft-commit-timeout", def.CommitTimeout,
		"leader: idle interval at which followers learn the commit index (lower: faster writes via followers; higher: less idle CPU)")
	fs.String("config", "", "JSON config file whose keys are flag names (flags and REGISTRY_* variables win)")
}

func ffOptions() []ff.Option {
	return []ff.Option{
		ff.WithEnvVarPrefix("REGISTRY"),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(ff.JSONParser),
	}
}

func serverCommand(stdout io.Writer) *ffcli.Command {
	var o serverOptions
	fs := flag.NewFlagSet("registry server", flag.ContinueOnError)
	o.flags(fs, false)
	return &ffcli.Command{
		Name:       "server",
		ShortUsage: "registry server --node-id ID --data-dir D [--http-addr A] [--raft-addr A] [--bootstrap | --join ADDR]",
		ShortHelp:  "run a cluster member",
		LongHelp: "Runs one registry server. The first server of a new cluster starts with --bootstrap;\n" +
			"the others start with --join and the HTTP address of any member. A restarted server\n" +
			"needs neither: it finds its cluster in its data directory.\n" +
			"Every flag can also be set in a JSON file given by --config, or as REGISTRY_<FLAG>\n" +
			"(REGISTRY_NODE_ID, REGISTRY_DATA_DIR, ...).",
		FlagSet: fs,
		Options: ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q", args)
			}
			return runServer(ctx, o, stdout)
		},
	}
}

func devCommand(stdout io.Writer) *ffcli.Command {
	o := serverOptions{dev: true}
	fs := flag.NewFlagSet("registry dev", flag.ContinueOnError)
	o.flags(fs, true)
	return &ffcli.Command{
		Name:       "dev",
		ShortUsage: "registry dev [--data-dir D] [--http-addr 127.0.0.1:7400]",
		ShortHelp:  "run one embedded node for development",
		LongHelp:   "Runs a single-node registry, ready in well under 2 s. Without --data-dir its data\nlives in a temporary folder removed at exit.",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix("REGISTRY")},
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q", args)
			}
			o.nodeID = "dev"
			o.bootstrap = true
			o.region, o.datacenter, o.unit = "local", "local", "local"
			return runServer(ctx, o, stdout)
		},
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

func runServer(ctx context.Context, o serverOptions, stdout io.Writer) error {
	logger, err := newLogger(os.Stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	removedAtExit := ""
	if o.dataDir == "" {
		if !o.dev {
			return errors.New("--data-dir is required")
		}
		dir, err := os.MkdirTemp("", "switchyard-dev-")
		if err != nil {
			return fmt.Errorf("temporary data dir: %w", err)
		}
		defer os.RemoveAll(dir)
		o.dataDir = dir
		removedAtExit = ", removed at exit"
	}
	if o.bootstrap && o.join != "" {
		return errors.New("--bootstrap and --join exclude each other: bootstrap the first server, join the others")
	}

	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	defer ln.Close()

	rc := raft.DefaultConfig()
	rc.ID = o.nodeID
	rc.DataDir = o.dataDir
	rc.RaftAddr = o.raftAddr
	rc.AdvertiseAddr = o.advertise
	rc.HTTPAddr = ln.Addr().String()
	rc.Bootstrap = o.bootstrap
	rc.Locality = store.Locality{Region: o.region, Datacenter: o.datacenter, Unit: o.unit}
	rc.Logger = logger
	if !o.dev {
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.CommitTimeout = o.heartbeatTimeout, o.electionTimeout, o.commitTimeout
		rc.LeaderLeaseTimeout = min(rc.LeaderLeaseTimeout, rc.HeartbeatTimeout)
	}
	if o.dev {
		// One voter: elections need not wait for anyone.
		rc.HeartbeatTimeout = 100 * time.Millisecond
		rc.ElectionTimeout = 100 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
	}
	node, err := raft.Open(rc, store.New())
	if err != nil {
		return err
	}
	defer node.Shutdown()

	ac := api.DefaultConfig()
	ac.Logger = logger
	srv, err := api.New(ac, node)
	if err != nil {
		return err
	}
	handler := srv.Handler()
	if o.enableDebug {
		handler = withPprof(handler)
		logger.Warn("profiling enabled at /debug/pprof/")
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	logger.Info("HTTP API listening", "addr", ln.Addr().String())

	if o.join != "" && node.HadState() {
		logger.Info("data directory holds cluster state; not joining again", "join", o.join)
	} else if o.join != "" {
		if err := joinCluster(ctx, logger, o.join, o.nodeID, node.RaftAddr()); err != nil {
			return err
		}
	}
	readyErr := make(chan error, 1)
	go func() { readyErr <- waitReady(ctx, node) }()

	for {
		select {
		case err := <-serveErr:
			return fmt.Errorf("HTTP server: %w", err)
		case err := <-readyErr:
			if err != nil {
				readyErr = nil
				continue
			}
			readyErr = nil
			if o.dev {
				fmt.Fprintf(stdout, "Switchyard dev server ready: http://%s (data in %s%s)\n", ln.Addr(), o.dataDir, removedAtExit)
			} else {
				fmt.Fprintf(stdout, "Switchyard server %s ready: http://%s, raft %s\n", o.nodeID, ln.Addr(), node.RaftAddr())
			}
		case <-ctx.Done():
			logger.Info("shutting down")
			srv.StopWaiting()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = hs.Shutdown(sctx)
			cancel()
			return node.Shutdown()
		}
	}
}

func waitReady(ctx context.Context, node *raft.Node) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !node.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// joinCluster asks a member to add this server, retrying while the member
// is unreachable or has no leader.
func joinCluster(ctx context.Context, logger *slog.Logger, addr, id, raftAddr string) error {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	c, err := client.NewAPI(addr, nil)
	if err != nil {
		return fmt.Errorf("--join: %w", err)
	}
	backoff := 100 * time.Millisecond
	deadline := time.Now().Add(2 * time.Minute)
	for {
		jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Join(jctx, id, raftAddr)
		cancel()
		if err == nil {
			logger.Info("joined cluster", "via", addr)
			return nil
		}
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
			return fmt.Errorf("join via %s refused: %w", addr, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("join via %s: gave up after 2m: %w", addr, err)
		}
		logger.Warn("join failed, retrying", "via", addr, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// withPprof serves net/http/pprof under /debug/pprof/ and everything else
// with next.
func withPprof(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", next)
	return mux
}
