package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/catalog"
	"github.com/switchyard-io/switchyard/consulcompat"
	"github.com/switchyard-io/switchyard/dns"
	"github.com/switchyard-io/switchyard/internal/gctune"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/server"
	"github.com/switchyard-io/switchyard/store"
)

// defaultGCHeadroomMiB is the heap growth between collections the garbage
// collector may use while the live heap is smaller (internal/gctune): at
// 64 clients on a three-node cluster it saved a sixth of the servers' CPU
// per registration
// (docs/benchmarks/history.md#fewer-collections-a-cheaper-answer-fewer-allocations-per-command-26-november-2026-1520-utc).
const defaultGCHeadroomMiB = 128

// serverOptions are the flags of `registry server` (and, with other
// defaults, `registry dev`).
type serverOptions struct {
	nodeID          string
	dataDir         string
	httpAddr        string
	raftAddr        string
	advertise       string
	gossipAddr      string
	advertiseGossip string
	bootstrap       bool
	bootstrapExpect int
	join            string
	region          string
	datacenter      string
	unit            string
	datacenterRTT   string
	dnsAddr         string
	xdsAddr         string
	dnsConsul       string
	dnsZone         string
	dnsMaxAnswers   int
	dnsSubnets      string
	logLevel        string
	logFormat       string

	heartbeatTimeout time.Duration
	electionTimeout  time.Duration
	commitTimeout    time.Duration
	snapThreshold    uint64
	snapInterval     time.Duration
	trailingLogs     uint64
	logStore         string
	deadServerAfter  time.Duration
	minQuorum        int
	role             string
	voters           int
	stabilization    time.Duration
	defaultTTL       time.Duration
	defaultDereg     time.Duration
	spThreshold      float64
	spWindow         time.Duration
	spMinInstances   int

	adminAddr string

	noConsulAPI      bool
	consulNamespace  string
	consulCacheBytes int64

	limits       api.Limits
	catalog      catalog.Config
	maxBodyBytes int64

	checkAllowCIDRs, checkDenyCIDRs string
	checkAllowLoopback              bool
	checkMinInterval                time.Duration
	httpLimits                      server.HTTPLimits
	maxRequestLineBytes             int

	gossipKeys string

	raftTLSCert, raftTLSKey, raftTLSCA string

	tlsCert, tlsKey, tlsCA string
	tlsVerifyClients       bool

	insecureDev        bool
	raftPlaintext      bool
	noUI               bool
	drillReports       string
	bootstrapTokenFile string
	devACL             bool

	gcHeadroomMiB int

	allowedHosts      string
	trustedProxies    string
	dnsMaxUDPSize     int
	dnsMaxTCPConns    int
	dnsTCPIdleTimeout time.Duration

	dev bool
}

func (o *serverOptions) flags(fs *pflag.FlagSet, dev bool) {
	o.gcHeadroomMiB = defaultGCHeadroomMiB
	if dev {
		fs.StringVar(&o.dataDir, "data-dir", "", "data directory (default: a temporary folder removed at exit)")
		fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:7400", "HTTP API address")
		fs.StringVar(&o.raftAddr, "raft-addr", "127.0.0.1:0", "Raft address (port 0: any free port)")
		fs.StringVar(&o.gossipAddr, "gossip-addr", "127.0.0.1:0", "gossip address, TCP and UDP (port 0: any free port)")
		o.dnsFlags(fs)
		fs.StringVar(&o.xdsAddr, "xds-addr", "127.0.0.1:7404", "xDS address (ADS over gRPC, for Envoy and proxyless gRPC; empty: none)")
		fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
		fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
		fs.StringVar(&o.adminAddr, "admin-addr", "", "serve Go profiling (/debug/pprof/) and /metrics on this address too (empty: none)")
		fs.StringVar(&o.drillReports, "drill-reports", "", "folder of registry drill reports the web console shows (empty: none)")
		fs.BoolVar(&o.devACL, "acl", false, "check tokens, as registry server does (a bootstrap admin token is printed); without it everything is open")
		fs.StringVar(&o.allowedHosts, "allowed-hosts", "", "comma-separated names the API may be called by besides --http-addr's host, localhost, 127.0.0.1 and ::1 (any other Host is refused: DNS rebinding)")
		return
	}
	def := server.DefaultConfig()
	fs.StringVar(&o.nodeID, "node-id", "", "this server's id, a DNS label, stable across restarts (required)")
	fs.StringVar(&o.dataDir, "data-dir", "", "data directory for the Raft log and snapshots (required)")
	fs.StringVar(&o.httpAddr, "http-addr", def.HTTPAddr, "HTTP API address")
	fs.StringVar(&o.raftAddr, "raft-addr", def.RaftAddr, "Raft address (also carries forwarded writes)")
	fs.StringVar(&o.advertise, "advertise-raft-addr", "", "Raft address other servers dial (default: --raft-addr)")
	fs.StringVar(&o.gossipAddr, "gossip-addr", def.GossipAddr, "gossip address between servers, TCP and UDP")
	fs.StringVar(&o.advertiseGossip, "advertise-gossip-addr", "", "gossip address other servers reach (default: --gossip-addr)")
	fs.BoolVar(&o.bootstrap, "bootstrap", false, "start a new cluster with this server as its first voter")
	fs.IntVar(&o.bootstrapExpect, "bootstrap-expect", 0, "start a new cluster once this many servers (all started with the same value) have found each other")
	fs.StringVar(&o.join, "join", "", "comma-separated gossip or HTTP addresses of cluster members (e.g. 127.0.0.1:7412)")
	fs.StringVar(&o.region, "region", "", "this server's region")
	fs.StringVar(&o.datacenter, "datacenter", "", "this server's datacenter")
	fs.StringVar(&o.unit, "unit", "", "this server's unit")
	o.dnsFlags(fs)
	fs.StringVar(&o.xdsAddr, "xds-addr", def.XDS.Addr, "xDS address (ADS over gRPC, for Envoy and proxyless gRPC; TLS and tokens as the HTTP API; empty: none)")
	fs.StringVar(&o.datacenterRTT, "datacenter-rtt", "", "round-trip times between datacenters, overriding gossip's: dcA:dcB=80ms,dcA:dcC=120ms")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&o.adminAddr, "admin-addr", "", "serve Go profiling (/debug/pprof/) and /metrics on this address, apart from the API (empty: none; whoever reaches it can profile the server)")
	fs.DurationVar(&o.heartbeatTimeout, "raft-heartbeat-timeout", def.Raft.HeartbeatTimeout, "follower: time without the leader before an election")
	fs.DurationVar(&o.electionTimeout, "raft-election-timeout", def.Raft.ElectionTimeout, "candidate: time before a new election")
	fs.DurationVar(&o.commitTimeout, "raft-commit-timeout", def.Raft.CommitTimeout,
		"leader: idle interval at which followers learn the commit index (lower: faster writes via followers; higher: less idle CPU)")
	fs.Uint64Var(&o.snapThreshold, "raft-snapshot-threshold", def.Raft.SnapshotThreshold,
		"take a Raft snapshot of the catalog once this many log entries follow the last one (checked every --raft-snapshot-interval)")
	fs.DurationVar(&o.snapInterval, "raft-snapshot-interval", def.Raft.SnapshotInterval, "how often to check --raft-snapshot-threshold (each check at a random point of the interval)")
	fs.Uint64Var(&o.trailingLogs, "raft-trailing-logs", def.Raft.TrailingLogs,
		"log entries kept after a snapshot, so a follower that lags by fewer catches up from the log instead of installing a snapshot")
	fs.StringVar(&o.logStore, "raft-log-store", raft.LogStoreBolt,
		"log store of a new data directory: bolt (raft.db, two syncs per append) or wal (hashicorp/raft-wal segment files, one sync per append); a data directory that holds one keeps it")
	fs.DurationVar(&o.deadServerAfter, "dead-server-after", def.DeadServerAfter, "remove a server dead this long from the Raft configuration (0: never)")
	fs.IntVar(&o.minQuorum, "min-quorum", def.MinQuorum, "never remove dead servers below this many voters")
	fs.StringVar(&o.role, "role", store.RoleVoter, "voter (may be given a vote) or read (a Raft non-voter: holds the catalog, answers reads, DNS and blocking queries, forwards writes, never counts towards quorum)")
	fs.IntVar(&o.voters, "voters", def.Voters, "the leader keeps this many voters (3 or 5), spread over datacenters; other servers of role voter wait as standbys and replace a voter that dies")
	fs.DurationVar(&o.stabilization, "server-stabilization", def.ServerStabilization, "a standby must have been alive this long before it is given a vote")
	fs.DurationVar(&o.defaultTTL, "default-ttl", def.DefaultTTL, "ephemeral instances: unhealthy after this long without a heartbeat, unless their check says otherwise")
	fs.DurationVar(&o.defaultDereg, "default-deregister-after", def.DefaultDeregisterAfter, "ephemeral instances: removed after this long without a heartbeat, unless their check says otherwise")
	fs.Float64Var(&o.spThreshold, "self-preservation-threshold", def.SelfPreservation.Threshold,
		"pause expiry when more than this share of ephemeral instances falls silent within the window (0: never)")
	fs.DurationVar(&o.spWindow, "self-preservation-window", def.SelfPreservation.Window, "the window of --self-preservation-threshold")
	fs.IntVar(&o.spMinInstances, "self-preservation-min-instances", def.SelfPreservation.MinInstances,
		"below this many ephemeral instances self-preservation never starts")
	fs.String("config", "", "JSON config file whose keys are flag names (flags and REGISTRY_* variables win)")
	dl := api.DefaultLimits()
	fs.Float64Var(&o.limits.RequestsPerSecond, "limit-requests-per-client", 0, "requests a second one client IP may send, above which it gets 429 (0: no limit)")
	fs.IntVar(&o.limits.Burst, "limit-burst", 0, "requests one client IP may send at once above its rate (default: one second's worth)")
	fs.IntVar(&o.limits.BlockingPerClient, "limit-blocking-per-client", dl.BlockingPerClient, "blocking queries one client IP may hold open (0: no limit)")
	fs.IntVar(&o.limits.ConnectionsPerClient, "limit-connections-per-client", dl.ConnectionsPerClient, "HTTP connections one client IP may hold open (0: no limit)")
	dc := catalog.DefaultConfig()
	fs.IntVar(&o.catalog.MaxInstancesPerService, "max-instances-per-service", dc.MaxInstancesPerService, "refuse new instances in a service that has this many (0: no limit)")
	fs.IntVar(&o.catalog.MaxMetadataBytes, "max-metadata-bytes", dc.MaxMetadataBytes, "refuse an instance whose metadata keys and values add up to more bytes than this (0: only the built-in caps)")
	fs.Int64Var(&o.maxBodyBytes, "max-body-bytes", api.DefaultConfig().MaxBodyBytes, "refuse request bodies larger than this with 413")
	fs.BoolVar(&o.limits.LimitLoopback, "limit-loopback", false, "apply the per-client limits to loopback clients too (always, with --trusted-proxies)")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs or addresses of proxies whose X-Forwarded-For names the client the per-client limits count (empty: the header is ignored)")
	fs.StringVar(&o.allowedHosts, "allowed-hosts", "", "comma-separated names the API may be called by; when set, any other Host but --http-addr's host, localhost, 127.0.0.1 and ::1 is refused (DNS rebinding; empty: any Host)")
	fs.StringVar(&o.checkAllowCIDRs, "check-allow-cidrs", "", "comma-separated CIDRs: health checks may reach only these (empty: any address not denied); metadata and link-local addresses stay refused")
	fs.StringVar(&o.checkDenyCIDRs, "check-deny-cidrs", "", "comma-separated CIDRs health checks may not reach (wins over --check-allow-cidrs)")
	fs.BoolVar(&o.checkAllowLoopback, "check-allow-loopback", false, "let health checks reach 127.0.0.0/8, ::1 and localhost (this server's own host)")
	fs.DurationVar(&o.checkMinInterval, "check-min-interval", def.CheckPolicy.MinInterval, "refuse health checks with a shorter interval (400)")
	dh := def.HTTP
	fs.IntVar(&o.maxRequestLineBytes, "max-request-line-bytes", def.API.MaxRequestLineBytes, "answer 414 to a request URI longer than this (below --max-header-bytes; 0: no cap but that one)")
	fs.IntVar(&o.httpLimits.MaxHeaderBytes, "max-header-bytes", dh.MaxHeaderBytes, "answer 431 to a request whose request line and headers are larger than this")
	fs.DurationVar(&o.httpLimits.ReadHeaderTimeout, "http-read-header-timeout", dh.ReadHeaderTimeout, "close a connection that takes longer than this to send a request's headers")
	fs.DurationVar(&o.httpLimits.ReadTimeout, "http-read-timeout", dh.ReadTimeout, "close a connection that takes longer than this to send a whole request, body included (blocking queries wait after it, unaffected)")
	fs.DurationVar(&o.httpLimits.IdleTimeout, "http-idle-timeout", dh.IdleTimeout, "close a kept-alive connection idle this long")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve the HTTP API over HTTPS with this certificate")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the key of --tls-cert")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "the CA that signed the other servers' HTTPS certificates (and clients' with --tls-verify-clients)")
	fs.BoolVar(&o.tlsVerifyClients, "tls-verify-clients", false, "require API clients to present a certificate signed by --tls-ca")
	fs.StringVar(&o.raftTLSCert, "raft-tls-cert", "", "this server's certificate (registry tls cert --role server): Raft and forwarded writes go over mutual TLS, and only peers with a server certificate of the same CA are accepted")
	fs.StringVar(&o.raftTLSKey, "raft-tls-key", "", "the key of --raft-tls-cert")
	fs.StringVar(&o.raftTLSCA, "raft-tls-ca", "", "the cluster's CA certificate (ca.pem)")
	fs.StringVar(&o.gossipKeys, "gossip-key", "", "base64 32-byte keys that seal gossip (registry keygen makes one), comma-separated: the first seals, any opens (to roll a key in); every server needs the same")
	fs.IntVar(&o.gcHeadroomMiB, "gc-headroom-mib", defaultGCHeadroomMiB,
		"let the Go heap grow this many MiB above the live heap between collections while the live heap is smaller (GOGC up to 2000); beyond it GOGC is 100. 0, or GOGC in the environment: Go's own setting")
	fs.BoolVar(&o.insecureDev, "insecure-dev", false, "run WITHOUT access control and allow gossip without --gossip-key: anyone who reaches the API may change the catalog (development only)")
	fs.BoolVar(&o.noUI, "no-ui", false, "do not serve the web console (/ui/)")
	fs.StringVar(&o.drillReports, "drill-reports", "", "folder of registry drill reports the web console shows (empty: none)")
	fs.BoolVar(&o.raftPlaintext, "raft-plaintext", false, "allow Raft without TLS on a non-loopback address with access control on (only on a network nobody else reaches: whoever reaches the Raft port can write the catalog, tokens included)")
	fs.StringVar(&o.bootstrapTokenFile, "bootstrap-token-file", "", "file holding the secret of the first admin token (registry token secret makes one); without it the first leader makes a random one and prints it once")
	fs.BoolVar(&o.noConsulAPI, "no-consul-api", false, "do not serve Consul's HTTP endpoints (/v1/agent, /v1/catalog, /v1/health/…, /v1/status)")
	fs.StringVar(&o.consulNamespace, "consul-namespace", store.DefaultNamespace, "the namespace Consul requests without ?ns= use")
	fs.Int64Var(&o.consulCacheBytes, "consul-cache-bytes", consulcompat.DefaultCacheBytes, "bound on the memory of the Consul API's remembered answers (the X-Consul-Index of each distinct query); least recently used go first")
}

func (o *serverOptions) dnsFlags(fs *pflag.FlagSet) {
	def := dns.DefaultConfig()
	fs.StringVar(&o.dnsAddr, "dns-addr", def.Addr, "DNS address, UDP and TCP (empty: no DNS server)")
	fs.StringVar(&o.dnsZone, "dns-zone", def.Zone, "the DNS zone answered")
	fs.StringVar(&o.dnsConsul, "dns-consul-domain", "", "also answer Consul's DNS names below this domain (e.g. consul: web.service.consul, _web._tcp.service.consul), in --consul-namespace (empty: off)")
	fs.IntVar(&o.dnsMaxAnswers, "dns-max-answers", def.MaxAnswers, "at most this many records per DNS answer, over UDP and TCP (0: as many as fit)")
	fs.StringVar(&o.dnsSubnets, "dns-subnet-locality", "", "callers' localities by subnet (EDNS Client Subnet or source): 10.1.0.0/16=eu/eu-west-1/a,10.2.0.0/16=us")
	fs.IntVar(&o.dnsMaxUDPSize, "dns-max-udp-size", def.MaxUDPSize, "at most this many bytes per DNS answer over UDP, whatever EDNS size a client claims (512 to 65535; larger answers are cut with TC set)")
	fs.IntVar(&o.dnsMaxTCPConns, "dns-max-tcp-connections", def.MaxTCPConns, "DNS-over-TCP connections open at once; those above are closed at once")
	fs.DurationVar(&o.dnsTCPIdleTimeout, "dns-tcp-idle-timeout", def.TCPIdleTimeout, "close a DNS-over-TCP connection that sends no query for this long")
}

// parseSubnets reads --dns-subnet-locality.
func parseSubnets(s string) ([]dns.SubnetLocality, error) {
	var out []dns.SubnetLocality
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		pfx, loc, ok := strings.Cut(item, "=")
		p, err := netip.ParsePrefix(strings.TrimSpace(pfx))
		if !ok || err != nil {
			return nil, fmt.Errorf("%q: use 10.1.0.0/16=region/datacenter/unit", item)
		}
		l, err := api.ParseLocality(strings.TrimSpace(loc))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		out = append(out, dns.SubnetLocality{Prefix: p.Masked(), Locality: l})
	}
	return out, nil
}

// allowedHosts lists the names a request's Host may carry: the loopback
// names, the listen address's host (unless it listens on every address),
// and the names of --allowed-hosts.
func allowedHosts(httpAddr, extra string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if host, _, err := net.SplitHostPort(httpAddr); err == nil && host != "" {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsUnspecified() {
			names = append(names, host)
		}
	}
	for _, n := range strings.Split(extra, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func serverCommand(stdout io.Writer) *cobra.Command {
	var o serverOptions
	fs := pflag.NewFlagSet("registry server", pflag.ContinueOnError)
	o.flags(fs, false)
	return spec{
		Name:       "server",
		ShortUsage: "registry server --node-id ID --data-dir D [--http-addr A] [--raft-addr A] [--bootstrap | --join ADDR]",
		ShortHelp:  "run a cluster member",
		LongHelp: "Runs one registry server. The first server of a new cluster starts with --bootstrap;\n" +
			"the others start with --join and the HTTP address of any member. A restarted server\n" +
			"needs neither: it finds its cluster in its data directory.\n" +
			"Every flag can also be set in a JSON file given by --config, or as REGISTRY_<FLAG>\n" +
			"(REGISTRY_NODE_ID, REGISTRY_DATA_DIR, ...).",
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %q: this command takes only flags", args)
			}
			return runServer(ctx, o, stdout)
		},
	}.command()
}

// orOff is an address in the ready line, "off" for a door not served.
func orOff(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}

func devCommand(stdout io.Writer) *cobra.Command {
	o := serverOptions{dev: true}
	fs := pflag.NewFlagSet("registry dev", pflag.ContinueOnError)
	o.flags(fs, true)
	return spec{
		Name:       "dev",
		ShortUsage: "registry dev [--data-dir D] [--http-addr 127.0.0.1:7400]",
		ShortHelp:  "run one embedded node for development",
		LongHelp:   "Runs a single-node registry, ready in well under 2 s. Without --data-dir its data\nlives in a temporary folder removed at exit.",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %q: this command takes only flags", args)
			}
			o.nodeID = "dev"
			o.bootstrap = true
			o.insecureDev = !o.devACL
			o.region, o.datacenter, o.unit = "local", "local", "local"
			return runServer(ctx, o, stdout)
		},
	}.command()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: use text or json", format)
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
	if o.bootstrap && o.bootstrapExpect > 0 {
		return errors.New("--bootstrap and --bootstrap-expect exclude each other: use --bootstrap-expect N on every first server")
	}

	cfg, err := o.config()
	if err != nil {
		return err
	}
	cfg.Logger = logger
	type bootstrapped struct {
		accessor, secret string
		generated        bool
	}
	bootCh := make(chan bootstrapped, 1)
	cfg.ACL.OnBootstrap = func(accessor, secret string, generated bool) {
		bootCh <- bootstrapped{accessor, secret, generated}
	}
	if o.gcHeadroomMiB < 0 {
		return usagef("--gc-headroom-mib must be 0 (off) or more")
	}
	if gogc, set := os.LookupEnv("GOGC"); set || o.gcHeadroomMiB == 0 {
		logger.Debug("garbage collector left to Go's setting", "GOGC", gogc)
	} else {
		defer gctune.Start(uint64(o.gcHeadroomMiB) << 20)()
		logger.Debug("garbage collector tuned", "headroom_mib", o.gcHeadroomMiB, "gogc", gctune.Current())
	}
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	if o.insecureDev && !o.dev {
		logger.Warn("access control is OFF (--insecure-dev): anyone who reaches the API may change the catalog")
	}
	if cfg.ACL.Enabled && !o.dev {
		if cfg.Raft.TLS == nil && !loopback(o.raftAddr) {
			logger.Warn("Raft runs without TLS (--raft-plaintext): whoever reaches the Raft port can write the catalog, tokens included")
		}
		if cfg.HTTPTLS == nil && !loopback(o.httpAddr) {
			logger.Warn("the HTTP API runs without TLS: tokens cross the network in the clear (--tls-cert, --tls-key)")
		}
		// The pool's own word: its keys may come from the keyring file in
		// the data directory rather than from --gossip-key.
		if !srv.Pool().Encrypted() && !loopback(o.gossipAddr) {
			logger.Warn("gossip runs without encryption: a stranger on the network can join the pool and spread heartbeats (--gossip-key)")
		}
	}
	if len(cfg.Join) > 0 && srv.Node().HadState() {
		logger.Info("data directory holds cluster state; joining gossip only", "join", cfg.Join)
	}
	readyErr := make(chan error, 1)
	go func() { readyErr <- waitReady(ctx, srv) }()

	for {
		select {
		case err := <-srv.Err():
			_ = srv.Kill()
			return err
		case b := <-bootCh:
			if b.generated {
				fmt.Fprintf(stdout, "Access control bootstrapped. The admin token, shown this once (only its hash is stored):\n"+
					"  accessor: %s\n  secret:   %s\n"+
					"Use it with --token or REGISTRY_TOKEN, e.g. registry token create --rule write:default --server http://%s\n",
					b.accessor, b.secret, srv.HTTPAddr())
			} else {
				fmt.Fprintf(stdout, "Access control bootstrapped with the admin token of --bootstrap-token-file (accessor %s)\n", b.accessor)
			}
		case err := <-readyErr:
			readyErr = nil
			if err != nil {
				continue
			}
			if o.dev {
				acl := "access control OFF: anyone who reaches it may change the catalog"
				if !o.insecureDev {
					acl = "access control on"
				}
				fmt.Fprintf(stdout, "Switchyard dev server ready: http://%s, dns %s, xds %s (data in %s%s; %s)\n", srv.HTTPAddr(), orOff(srv.DNSAddr()), orOff(srv.XDSAddr()), o.dataDir, removedAtExit, acl)
			} else {
				fmt.Fprintf(stdout, "Switchyard server %s ready: http://%s, raft %s, gossip %s, dns %s, xds %s\n", o.nodeID, srv.HTTPAddr(), srv.Node().RaftAddr(), srv.Pool().Addr(), orOff(srv.DNSAddr()), orOff(srv.XDSAddr()))
			}
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := srv.Shutdown(sctx)
			cancel()
			return err
		}
	}
}

func waitReady(ctx context.Context, srv *server.Server) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !srv.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// loopback reports whether host:port names loopback only (a listen
// address, or a server's address: IPv4-mapped loopback counts).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
