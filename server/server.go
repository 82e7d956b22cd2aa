// Package server assembles one registry server: the Raft node and its
// catalog, the gossip pool, the health judge, and the HTTP API. cmd/registry
// runs it; the cluster tests start several in one process, on loopback.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/consulcompat"
	"github.com/switchyard-io/switchyard/dns"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/health"
	"github.com/switchyard-io/switchyard/health/check"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
	"github.com/switchyard-io/switchyard/ui"
	"github.com/switchyard-io/switchyard/xds"
)

// Config configures a server. Start from DefaultConfig.
type Config struct {
	NodeID  string
	DataDir string
	// HTTPAddr is the HTTP API's listen address (port 0: any free port).
	HTTPAddr string
	// RaftAddr carries Raft and forwarded writes; AdvertiseRaftAddr is
	// what other servers dial (default: the listener's address).
	RaftAddr, AdvertiseRaftAddr string
	// GossipAddr is the gossip pool's TCP and UDP address;
	// AdvertiseGossipAddr what other servers reach (default: GossipAddr).
	GossipAddr, AdvertiseGossipAddr string
	Locality                        store.Locality
	// DisableConsulAPI leaves out Consul's endpoints (api/consulcompat).
	DisableConsulAPI bool
	// ConsulNamespace serves Consul requests without ?ns= ("" for default).
	ConsulNamespace string
	// ConsulCacheBytes bounds the Consul API's remembered answers (0:
	// consulcompat.DefaultCacheBytes).
	ConsulCacheBytes int64
	// DatacenterRTT overrides the round-trip times gossip measures between
	// datacenters, for ordering other regions nearest first.
	DatacenterRTT route.RTTTable

	// Bootstrap starts a new cluster with this server as its only voter.
	Bootstrap bool
	// BootstrapExpect starts a new cluster once this many servers with the
	// same setting have found each other by gossip (0: off).
	BootstrapExpect int
	// Join lists gossip or HTTP addresses of servers to join. The servers
	// this one knew at its last run are tried too.
	Join []string
	// HTTPTLS serves the HTTP API over TLS (nil: plaintext); with
	// ClientAuth set it verifies clients' certificates too. HTTPClientTLS
	// is what this server uses when it calls another's API (joining
	// through an HTTP address, asking a check's owner).
	HTTPTLS, HTTPClientTLS *tls.Config

	// Raft, Gossip, API and DNS carry timings and limits; the identity and
	// address fields in them are filled from the fields above. An empty
	// DNS.Addr turns the DNS server off.
	Raft   raft.Config
	Gossip gossip.Config
	API    api.Config
	DNS    dns.Config
	XDS    XDSConfig

	// FlushInterval is how often the heartbeats heard here are sent to the
	// other servers.
	FlushInterval time.Duration
	// JudgeInterval is how often the leader judges instance health.
	JudgeInterval time.Duration
	// DefaultTTL and DefaultDeregisterAfter apply to ephemeral instances
	// whose check leaves them unset.
	DefaultTTL, DefaultDeregisterAfter time.Duration
	// SelfPreservation says when expiry pauses because many instances
	// fell silent at once.
	SelfPreservation health.SelfPreservationConfig

	// CheckSyncInterval is how often a server recomputes which checks it
	// owns (also at once when gossip membership changes).
	CheckSyncInterval time.Duration
	// CheckPolicy says which targets checks may probe and how often; both
	// APIs refuse other registrations and every probe dials through it.
	CheckPolicy check.PolicyConfig

	// ReconcileInterval is how often the leader brings the Raft
	// configuration in line with the gossip pool.
	ReconcileInterval time.Duration
	// DeadServerAfter is how long a server may be dead in gossip before the
	// leader removes it from the Raft configuration (0: never).
	DeadServerAfter time.Duration
	// MinQuorum is the fewest voters removal of dead servers may leave.
	MinQuorum int
	// Role is this server's role: store.RoleVoter ("" too) may be given a
	// vote, store.RoleRead never is (it holds the catalog, answers reads
	// and forwards writes).
	Role string
	// Voters is how many voters the leader keeps, spread over datacenters,
	// chosen among the live servers of role voter; the others of that
	// role wait as non-voters (standbys) to replace a voter that dies.
	Voters int
	// ServerStabilization is how long a standby must have been alive in
	// gossip before the leader gives it a vote.
	ServerStabilization time.Duration

	// ACL is access control: on by default.
	ACL ACLConfig
	// DisableUI leaves out the web console (/ui/).
	DisableUI bool
	// DrillReports is the folder registry drill writes its reports to,
	// shown by the console ("": none).
	DrillReports string

	// HTTP bounds the request line, headers and timings of the API and
	// admin listeners.
	HTTP HTTPLimits

	// AdminAddr, when set, serves Go profiling (/debug/pprof/) and /metrics
	// on a listener of its own, apart from the API (bind it to loopback or
	// an operators' network: whoever reaches it can profile the server).
	AdminAddr string
	Logger    *slog.Logger
}

// DefaultConfig returns the defaults of `registry server`.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:               "127.0.0.1:7400",
		RaftAddr:               "127.0.0.1:7401",
		GossipAddr:             "127.0.0.1:7402",
		Raft:                   raft.DefaultConfig(),
		Gossip:                 gossip.DefaultConfig(),
		API:                    api.DefaultConfig(),
		HTTP:                   DefaultHTTPLimits(),
		DNS:                    dns.DefaultConfig(),
		XDS:                    DefaultXDSConfig(),
		FlushInterval:          250 * time.Millisecond,
		JudgeInterval:          500 * time.Millisecond,
		DefaultTTL:             health.DefaultTTL,
		DefaultDeregisterAfter: health.DefaultDeregisterAfter,
		SelfPreservation:       health.DefaultSelfPreservation(),
		ReconcileInterval:      time.Second,
		CheckSyncInterval:      time.Second,
		CheckPolicy:            check.DefaultPolicyConfig(),
		DeadServerAfter:        2 * time.Minute,
		MinQuorum:              3,
		Voters:                 5,
		ServerStabilization:    10 * time.Second,
		ACL:                    ACLConfig{Enabled: true},
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("node id is required")
	case c.DataDir == "":
		return errors.New("data dir is required")
	case c.Bootstrap && c.BootstrapExpect > 0:
		return errors.New("bootstrap and bootstrap-expect exclude each other")
	case c.BootstrapExpect < 0:
		return errors.New("bootstrap-expect must not be negative")
	case c.FlushInterval <= 0 || c.JudgeInterval <= 0 || c.ReconcileInterval <= 0 || c.CheckSyncInterval <= 0:
		return errors.New("flush, judge, reconcile and check-sync intervals must be positive")
	case c.DefaultTTL <= 0 || c.DefaultDeregisterAfter < c.DefaultTTL:
		return errors.New("need 0 < default ttl <= default deregister-after")
	case !(c.SelfPreservation.Threshold >= 0 && c.SelfPreservation.Threshold <= 1) || c.SelfPreservation.Window < 0:
		return errors.New("self-preservation threshold must be 0-1 (0: off) and its window not negative")
	case c.DeadServerAfter < 0 || c.MinQuorum < 1:
		return errors.New("dead-server-after must not be negative and min-quorum at least 1")
	case !store.ValidRole(c.Role):
		return fmt.Errorf("role %q: want %s or %s", c.Role, store.RoleVoter, store.RoleRead)
	case c.Role == store.RoleRead && (c.Bootstrap || c.BootstrapExpect > 0):
		return errors.New("a read server never votes, so it cannot bootstrap a cluster: give bootstrap or bootstrap-expect to voters only, and join the read server to them")
	case c.Voters < 1:
		return errors.New("voters must be at least 1 (3 or 5 in production)")
	case c.ServerStabilization < 0:
		return errors.New("server stabilization must not be negative")
	}
	if err := c.CheckPolicy.Validate(); err != nil {
		return err
	}
	if err := c.HTTP.Validate(); err != nil {
		return err
	}
	if n := c.API.MaxRequestLineBytes; n >= c.HTTP.MaxHeaderBytes {
		return fmt.Errorf("max-request-line-bytes (%d) must be below max-header-bytes (%d), which net/http applies to the request line too", n, c.HTTP.MaxHeaderBytes)
	}
	if c.ACL.BootstrapSecret != "" {
		if err := api.CheckSecret(c.ACL.BootstrapSecret); err != nil {
			return fmt.Errorf("bootstrap token: %w", err)
		}
	}
	return store.ValidateName("node id", c.NodeID)
}

// Server is one running registry server.
type Server struct {
	cfg       Config
	logger    *slog.Logger
	node      *raft.Node
	pool      *gossip.Pool
	liveness  *health.Liveness
	api       *api.Server
	consul    *consulcompat.Server // nil with DisableConsulAPI
	dns       *dns.Server
	xds       *grpc.Server // nil when off
	xdsLn     net.Listener
	xdsServer *xds.Server // nil when off
	http      *http.Server
	httpLn    net.Listener
	adminLn   net.Listener
	admin     *http.Server
	peers     *peerFile

	checks        *checks
	ctx           context.Context
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	changed       chan struct{} // gossip membership changed (reconcile)
	checksChanged chan struct{} // gossip membership changed (check owners)
	serve         chan error

	bootPending *pendingBootstrap // runReconcile's own (see bootstrapACL)
	refusals    refusals          // gossip members that did not prove to be servers
	reconciled  atomic.Uint64     // passes of the leader's reconcile (tests wait on it)

	rttMu   sync.Mutex // the last RTT matrix, reused for 2 s
	rttLast wire.RTTMatrix
	rttAt   time.Time

	stopOnce sync.Once
	stopErr  error
}

// Start opens the data directory, binds every listener and starts the
// server. It returns before the server has joined or caught up: see Ready.
func Start(cfg Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server: config: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, logger: logger, changed: make(chan struct{}, 1), checksChanged: make(chan struct{}, 1),
		serve: make(chan error, 1)}
	s.checks = &checks{s: s, hc: s.apiClient()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var cleanup []func()
	defer func() {
		if err != nil {
			s.cancel()
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("server: HTTP listener: %w", err)
	}
	cleanup = append(cleanup, func() { s.httpLn.Close() })

	rc := cfg.Raft
	rc.ID, rc.DataDir, rc.Bootstrap = cfg.NodeID, cfg.DataDir, cfg.Bootstrap
	rc.RaftAddr, rc.AdvertiseAddr = cfg.RaftAddr, cfg.AdvertiseRaftAddr
	rc.HTTPAddr, rc.Locality, rc.Logger = s.httpLn.Addr().String(), cfg.Locality, logger
	rc.Role = cfg.Role
	rc.OnLeader = s.kickReconcile // a new leader reconciles (and bootstraps tokens) at once
	s.node, err = raft.Open(rc, store.New())
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { s.node.Shutdown() })

	s.peers = &peerFile{path: peersPath(cfg.DataDir)}
	s.liveness = health.NewLiveness(nil)
	// Gossip is heard from the network: only instances of the catalog
	// enter the table, others wait in a bounded corner (health.Liveness).
	s.liveness.Restrict(func(k health.Key) bool {
		v, err := s.node.Store().Service(k.Namespace, k.Service)
		return err == nil && v.Instance(k.ID) != nil
	}, 0)
	gc := cfg.Gossip
	gc.Name, gc.BindAddr, gc.AdvertiseAddr = cfg.NodeID, cfg.GossipAddr, cfg.AdvertiseGossipAddr
	gc.Meta = gossip.Meta{RaftAddr: s.node.RaftAddr(), HTTPAddr: s.httpLn.Addr().String(),
		Region: cfg.Locality.Region, Datacenter: cfg.Locality.Datacenter, Unit: cfg.Locality.Unit,
		BootstrapExpect: cfg.BootstrapExpect, Protocol: s.node.Protocol(), Role: cfg.Role}
	// Until gossip has been heard, every other server counts as protocol 1.
	s.node.SetLiveProtocols(map[string]int{})
	gc.KeyringFile = GossipKeyringPath(cfg.DataDir)
	gc.Handler = livenessHandler{s.liveness, logger}
	gc.OnChange = s.membershipChanged
	gc.Logger = logger
	s.pool, err = gossip.Start(gc)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { s.pool.Shutdown() })

	s.checks.policy, err = check.NewPolicy(cfg.CheckPolicy)
	if err != nil {
		return nil, err
	}
	ac := cfg.API
	ac.Catalog.CheckPolicy, ac.Catalog.Liveness = s.checks.policy, s.liveness
	ac.Catalog.ReachesJudge = s.reachesJudge
	reg := prometheus.NewRegistry()
	ac.Logger, ac.Gossip, ac.Metrics, ac.Checks = logger, s.pool, s.metricsHandler(reg), s.checks
	ac.Registerer = reg
	ac.AccessControl = cfg.ACL.Enabled
	ac.RTT = s.rttMatrix
	ac.DrillReports = cfg.DrillReports
	if !cfg.DisableUI {
		ac.Console = ui.Handler()
	}
	if s.pool.Encrypted() {
		ac.Keyring = s.pool
	}
	topo := &topology{s: s, static: cfg.DatacenterRTT}
	ac.Locality, ac.Topology = cfg.Locality, topo

	s.api, err = api.New(ac, s.node)
	if err != nil {
		return nil, err
	}
	if !cfg.DisableConsulAPI {
		s.consul, err = consulcompat.New(s.api.Closing(), consulcompat.Config{NodeName: cfg.NodeID, Locality: cfg.Locality,
			Namespace: cfg.ConsulNamespace, Catalog: s.api.Catalog(), MaxBodyBytes: ac.MaxBodyBytes,
			DefaultWait: ac.DefaultWait, MaxWait: ac.MaxWait,
			Logger: logger.With("component", "consul-api"), Blocking: s.api.BlockingContext, Auth: s.api,
			CacheBytes: cfg.ConsulCacheBytes}, s.node)
		if err != nil {
			return nil, err
		}
		s.api.Extend(func(e *gin.Engine, _ context.Context) { s.consul.Mount(e) })
	}
	var handler http.Handler = markProxied(s.api.Handler())
	// The write timeout leaves a long poll its whole wait, and a minute to
	// answer (see httpServer).
	s.http = httpServer(handler, cfg.HTTP, ac.MaxWait+time.Minute, logger)
	go func() {
		ln := api.LimitListener(s.httpLn, ac.Limits, cfg.HTTPTLS != nil)
		if cfg.HTTPTLS != nil {
			ln = tls.NewListener(ln, cfg.HTTPTLS)
		}
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serve <- fmt.Errorf("server: HTTP: %w", err)
		}
	}()
	if cfg.DNS.Addr != "" {
		dc := cfg.DNS
		dc.Locality, dc.Topology, dc.Ready, dc.Logger = cfg.Locality, topo, s.node.Ready, logger
		if cfg.ACL.Enabled {
			dc.Allowed = s.dnsAllowed
		}
		if s.dns, err = dns.New(dc, s.api.Catalog()); err != nil {
			return nil, err
		}
		if err := s.dns.Start(); err != nil {
			return nil, err
		}
		cleanup = append(cleanup, func() { s.dns.Shutdown(context.Background()) })
	}
	if cfg.XDS.Addr != "" {
		if err := s.startXDS(cfg, topo, logger); err != nil {
			return nil, err
		}
		cleanup = append(cleanup, func() { s.xds.Stop() })
	}
	logger.Info("server started", "id", cfg.NodeID, "http", s.HTTPAddr(), "raft", s.node.RaftAddr(), "gossip", s.pool.Addr(), "dns", s.DNSAddr(), "xds", s.XDSAddr())

	judge := health.NewJudge(health.JudgeConfig{
		Store: s.node.Store(), Liveness: s.liveness, IsLeader: s.node.IsLeader,
		Apply: func(ctx context.Context, c *store.Command) error {
			_, err := s.node.Apply(ctx, c)
			return err
		},
		Interval: cfg.JudgeInterval, DefaultTTL: cfg.DefaultTTL, DefaultDeregisterAfter: cfg.DefaultDeregisterAfter,
		SelfPreservation: cfg.SelfPreservation, Logger: logger,
	})
	s.goRun(func() { judge.Run(s.ctx) })
	s.goRun(s.runFlush)
	s.goRun(s.runJoin)
	s.goRun(s.runReconcile)
	s.goRun(s.runChecks)
	if cfg.BootstrapExpect > 0 && !s.node.HadState() {
		s.goRun(s.runBootstrapExpect)
	}
	// Last: its /metrics reads every part started above.
	if cfg.AdminAddr != "" {
		aln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			return nil, fmt.Errorf("server: admin address: %w", err)
		}
		s.adminLn = aln
		// No write timeout: a profile or trace streams for as long as its
		// ?seconds= asks (net/http/pprof refuses one longer than a timeout).
		s.admin = httpServer(adminHandler(ac.Metrics), cfg.HTTP, 0, logger)
		cleanup = append(cleanup, func() { s.admin.Close() })
		go func() { _ = s.admin.Serve(aln) }()
		logger.Info("admin endpoints (profiling, metrics)", "addr", aln.Addr().String())
	}
	return s, nil
}

// GossipKeyringPath is where a server keeps its gossip keys once they
// were given or rotated (gossip.Config.KeyringFile): a data directory that
// holds one encrypts gossip without --gossip-key.
func GossipKeyringPath(dataDir string) string { return filepath.Join(dataDir, "gossip-keyring.json") }

func (s *Server) goRun(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// HTTPAddr returns the address the HTTP API listens on.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// DNSAddr returns the DNS server's address ("" when it is off).
func (s *Server) DNSAddr() string {
	if s.dns == nil {
		return ""
	}
	return s.dns.Addr()
}

// Node returns the Raft node.
func (s *Server) Node() *raft.Node { return s.node }

// Pool returns the gossip pool.
func (s *Server) Pool() *gossip.Pool { return s.pool }

// Ready reports whether the server has caught up with its cluster's leader.
func (s *Server) Ready() bool { return s.node.Ready() }

// Err reports a failure of the HTTP listener.
func (s *Server) Err() <-chan error { return s.serve }

// Shutdown stops the server gracefully: blocking queries answer, the
// others hear that it leaves, requests in flight finish (until ctx ends),
// and Raft stops.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.stop(ctx, true)
}

// Kill stops the server as a crash would look to the others: no goodbye
// in gossip. Tests use it to play a failure.
func (s *Server) Kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.stop(ctx, false)
}

func (s *Server) stop(ctx context.Context, leave bool) error {
	s.stopOnce.Do(func() {
		s.logger.Info("shutting down", "leave", leave)
		s.api.StopWaiting()
		s.cancel()
		var errs []error
		if leave {
			// Only the server itself may say it leaves, and it says so
			// to the leader over the Raft port, before gossip hears it.
			lctx, lcancel := context.WithTimeout(ctx, time.Second)
			if err := s.node.AnnounceLeave(lctx); err != nil {
				s.logger.Warn("could not announce the departure to the leader; it will find this server dead", "err", err)
			}
			lcancel()
			errs = append(errs, s.pool.Leave(time.Second))
		} else {
			errs = append(errs, s.pool.Shutdown())
		}
		// DNS stops alongside HTTP, not after it: HTTP may spend the whole
		// budget waiting on a connection that just opened, and DNS must not
		// then fail for lack of time.
		dnsDone := make(chan error, 1)
		if s.dns != nil {
			go func() { dnsDone <- s.dns.Shutdown(ctx) }()
		} else {
			dnsDone <- nil
		}
		if s.xds != nil {
			// Streams are long-lived watches: close them, as a crash
			// would; clients reconnect to another server.
			s.xds.Stop()
		}
		if err := s.http.Shutdown(ctx); err != nil {
			s.http.Close()
		}
		if s.admin != nil {
			s.admin.Close()
		}
		errs = append(errs, <-dnsDone)
		s.wg.Wait()
		errs = append(errs, s.node.Shutdown())
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// kickReconcile runs the reconcile loop now rather than at its next tick.
func (s *Server) kickReconcile() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Server) membershipChanged() {
	for _, ch := range []chan struct{}{s.changed, s.checksChanged} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// runFlush sends the heartbeats heard here to the other servers.
func (s *Server) runFlush() {
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if b := s.liveness.Flush(); b != nil {
				s.pool.Broadcast(b)
			}
		case <-prune.C:
			s.pruneLiveness()
		}
	}
}

// pruneLiveness forgets instances that left the catalog long ago (a
// heartbeat that races a registration must not be lost, hence the delay).
func (s *Server) pruneLiveness() {
	st := s.node.Store()
	cutoff := time.Now().Add(-10 * time.Minute)
	s.liveness.Forget(func(k health.Key, last time.Time) bool {
		if last.After(cutoff) {
			return false
		}
		v, err := st.Service(k.Namespace, k.Service)
		return err != nil || v.Instance(k.ID) == nil
	})
}

// reachesJudge says whether a heartbeat taken here reaches the health
// judge, the leader: what this server hears goes to the others only
// through its gossip pool (runFlush broadcasts to the members the pool
// holds live, and nobody relays it further). Raft and gossip membership
// are apart, so a server can be caught up with the leader while its pool
// does not hold it: a read server or a restarted server whose pool has not
// joined yet, or has not yet heard of the leader. It takes heartbeats on
// the leader, when its pool holds the leader, and, while no leader is
// known, when its pool holds another server (the next leader is one of
// them, or this one); otherwise the heartbeat is refused, and the instance
// takes it to another server instead of lapsing after a 200.
func (s *Server) reachesJudge() error {
	if s.node.IsLeader() {
		return nil
	}
	id, _ := s.node.Leader()
	switch {
	case id != "" && s.pool.Live(id):
		return nil
	case id == "" && s.pool.LivePeers() > 0:
		return nil
	case id != "":
		return fmt.Errorf("%w: the leader %s is not in this server's gossip pool (yet), so a heartbeat taken here would not reach its health judge; send it to another server",
			api.ErrNotReady, id)
	}
	return fmt.Errorf("%w: no leader is known and this server's gossip pool holds no other server, so a heartbeat taken here would reach no health judge; send it to another server",
		api.ErrNotReady)
}

// livenessHandler connects the liveness table to the gossip pool.
type livenessHandler struct {
	l      *health.Liveness
	logger *slog.Logger
}

func (h livenessHandler) Message(b []byte) {
	if err := h.l.Merge(b); err != nil {
		h.logger.Warn("dropped a liveness message", "err", err)
	}
}

func (h livenessHandler) LocalState() []byte { return h.l.State() }

func (h livenessHandler) MergeState(b []byte) { h.Message(b) }

// adminHandler serves net/http/pprof under /debug/pprof/ and the metrics.
func adminHandler(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if metrics != nil {
		mux.Handle("/metrics", metrics)
	}
	return mux
}

// AdminAddr is the admin listener's address ("" without one).
func (s *Server) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// apiClient is the HTTP client for another server's API.
func (s *Server) apiClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = s.cfg.HTTPClientTLS
	return &http.Client{Timeout: 3 * time.Second, Transport: tr}
}

// apiURL is the base URL of the API at host:port.
func (s *Server) apiURL(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	if s.cfg.HTTPTLS != nil {
		return "https://" + addr
	}
	return "http://" + addr
}
