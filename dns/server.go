// Package dns answers service lookups over DNS, for callers in any
// language: {svc}.{ns}.svc.switchyard. gives the addresses of the instances
// that may take the caller's traffic (A, AAAA), or their ports, priorities
// and weights (SRV). Answers come from the local catalog replica, chosen by
// route/ exactly as the HTTP API chooses them, so they keep coming while
// the cluster has no leader or a datacenter is cut off.
//
// The server is a chain of small handlers (recover → check the query → the
// zone → EDNS and the caller's locality → answer → fit the answer to the
// transport), each one decision, in the manner of CoreDNS plugins.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// SubnetLocality maps the callers of a subnet to a locality.
type SubnetLocality struct {
	Prefix   netip.Prefix
	Locality store.Locality
}

// Config configures a DNS server. Start from DefaultConfig.
type Config struct {
	// Addr is the UDP and TCP address (port 0: any free port, the same for
	// both).
	Addr string
	// Zone is the domain the server is authoritative for.
	Zone string
	// ConsulDomain, when set (e.g. "consul."), also answers Consul's DNS
	// names below it, for tools that hard-code them: {svc}.service.consul,
	// {tag}.{svc}.service.consul and the RFC 2782 forms
	// _{svc}._tcp.service.consul and _{svc}._{tag}.service.consul, in
	// ConsulNamespace ("": the default namespace). Consul's
	// datacenter-qualified names ({svc}.service.{dc}.consul) name another
	// cluster in Consul and get NXDOMAIN here.
	ConsulDomain    string
	ConsulNamespace string
	// MaxAnswers caps the records of an answer (0: no cap), over UDP and
	// TCP alike, so that no query makes the server pack a whole large
	// service. A capped answer is not marked truncated: TCP would give no
	// more.
	MaxAnswers int
	// MaxUDPSize caps a UDP reply in bytes, whatever EDNS buffer size the
	// query claims (a claim is only a claim: the source address of a
	// datagram may be forged, and a large reply to it would flood the
	// victim). Larger answers are cut with TC set; TCP, whose handshake
	// proves the address, gives the rest.
	MaxUDPSize int
	// MaxTCPConns caps the DNS-over-TCP connections open at once; those
	// above it are closed as soon as they are accepted.
	MaxTCPConns int
	// TCPIdleTimeout closes a TCP connection that sends no query for this
	// long, the first as well as the next ones (RFC 7766 §6.2.3).
	TCPIdleTimeout time.Duration
	// Locality is where this server runs: the caller's locality unless a
	// subnet below says otherwise.
	Locality store.Locality
	// Subnets map callers to localities, by the EDNS Client Subnet of the
	// query or else by its source address; the longest match wins.
	Subnets  []SubnetLocality
	Topology route.Topology
	// Ready reports whether the local catalog may be answered from (a
	// server still catching up after a restart answers SERVFAIL, so that
	// resolvers ask another). Nil: always.
	Ready func() bool
	// Allowed says whether a service may be answered: with access control
	// on, what the anonymous token may read. Anything else is REFUSED. Nil:
	// every service.
	Allowed func(ns, svc string) bool
	Logger  *slog.Logger
}

// Defaults of the bounds a caller meets.
const (
	// DefaultMaxAnswers: nearest and weighted first, the records a client
	// needs to spread its calls, and a TCP answer of at most about 11 KB.
	DefaultMaxAnswers = 256
	// DefaultMaxUDPSize is the 2020 DNS flag day value: no IP
	// fragmentation on any usual path.
	DefaultMaxUDPSize = 1232
	// DefaultMaxTCPConns: resolvers keep few connections; an attacker
	// opening thousands gets no more file descriptors than this.
	DefaultMaxTCPConns = 512
	// DefaultTCPIdleTimeout: a few seconds, as RFC 7766 asks of servers.
	DefaultTCPIdleTimeout = 5 * time.Second
)

// DefaultConfig returns the defaults: 127.0.0.1:7453, zone switchyard., and
// the bounds above.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:7453", Zone: "switchyard.", MaxAnswers: DefaultMaxAnswers,
		MaxUDPSize: DefaultMaxUDPSize, MaxTCPConns: DefaultMaxTCPConns, TCPIdleTimeout: DefaultTCPIdleTimeout}
}

// Validate checks the configuration and normalises the zone.
func (c *Config) Validate() error {
	if c.Zone == "" {
		return errors.New("dns: config: zone is required")
	}
	c.Zone = mdns.CanonicalName(c.Zone)
	if _, ok := mdns.IsDomainName(c.Zone); !ok {
		return fmt.Errorf("dns: config: zone %q is not a domain name", c.Zone)
	}
	if c.ConsulDomain != "" {
		c.ConsulDomain = mdns.CanonicalName(c.ConsulDomain)
		if _, ok := mdns.IsDomainName(c.ConsulDomain); !ok || c.ConsulDomain == "." {
			return fmt.Errorf("dns: config: Consul domain %q is not a domain name", c.ConsulDomain)
		}
		if mdns.IsSubDomain(c.Zone, c.ConsulDomain) || mdns.IsSubDomain(c.ConsulDomain, c.Zone) {
			return fmt.Errorf("dns: config: Consul domain %q and zone %q overlap: give each its own domain", c.ConsulDomain, c.Zone)
		}
	}
	if c.ConsulNamespace == "" {
		c.ConsulNamespace = store.DefaultNamespace
	}
	if c.MaxAnswers < 0 {
		return errors.New("dns: config: max answers must not be negative")
	}
	if c.MaxUDPSize < mdns.MinMsgSize || c.MaxUDPSize > mdns.MaxMsgSize {
		return fmt.Errorf("dns: config: max UDP size %d is not between %d and %d bytes", c.MaxUDPSize, mdns.MinMsgSize, mdns.MaxMsgSize)
	}
	if c.MaxTCPConns < 1 {
		return errors.New("dns: config: max TCP connections must be at least 1")
	}
	if c.TCPIdleTimeout <= 0 {
		return errors.New("dns: config: TCP idle timeout must be positive")
	}
	for _, s := range c.Subnets {
		if !s.Prefix.IsValid() {
			return errors.New("dns: config: invalid subnet")
		}
	}
	return nil
}

// Server is a DNS server over a catalog.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	handler mdns.Handler
	udp     *mdns.Server
	tcp     *mdns.Server
	addr    string
	wg      sync.WaitGroup
	stats   Stats
}

// Stats counts the answers a server sent.
type Stats struct {
	rcodes    [32]atomic.Uint64
	truncated atomic.Uint64
	// tcpRefused counts TCP connections closed at once for being over
	// Config.MaxTCPConns.
	tcpRefused atomic.Uint64
}

// TCPRefused returns how many TCP connections were closed at once because
// MaxTCPConns were already open.
func (s *Stats) TCPRefused() uint64 { return s.tcpRefused.Load() }

func (s *Stats) count(m *mdns.Msg) {
	s.rcodes[m.Rcode&31].Add(1)
	if m.Truncated {
		s.truncated.Add(1)
	}
}

// ByRcode returns the answers sent, by response code name (NOERROR,
// NXDOMAIN, SERVFAIL…), and how many were truncated.
func (s *Stats) ByRcode() (map[string]uint64, uint64) {
	out := map[string]uint64{}
	for code := range s.rcodes {
		if n := s.rcodes[code].Load(); n > 0 {
			name := mdns.RcodeToString[code]
			if name == "" {
				name = strconv.Itoa(code)
			}
			out[name] = n
		}
	}
	return out, s.truncated.Load()
}

// Stats returns the server's answer counters.
func (s *Server) Stats() *Stats { return &s.stats }

// New builds a server answering from cat; call Start.
func New(cfg Config, cat route.Catalog) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, logger: logger}
	s.handler = chain(&cfg, cat, logger, &s.stats)
	return s, nil
}

// Handler returns the handler chain (for tests and fuzzing).
func (s *Server) Handler() mdns.Handler { return s.handler }

// Start binds UDP and TCP on the same port and serves both.
func (s *Server) Start() error {
	pc, ln, err := listenBoth(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dns: listen on %s: %w", s.cfg.Addr, err)
	}
	s.addr = pc.LocalAddr().String()
	// Queries are small: a 4 KiB read buffer holds any real one (a longer
	// datagram is cut and fails to parse: FORMERR).
	s.udp = &mdns.Server{PacketConn: pc, Handler: s.handler, UDPSize: 4096}
	// The read timeout bounds the wait for a connection's first query (and
	// the reading of each query), the idle timeout the wait for the next:
	// both are the idle timeout, so a silent connection holds its slot no
	// longer than an idle one.
	idle := s.cfg.TCPIdleTimeout
	s.tcp = &mdns.Server{Listener: newLimitListener(ln, s.cfg.MaxTCPConns, &s.stats), Handler: s.handler,
		ReadTimeout: idle, WriteTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return idle }}
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				s.logger.Error("DNS server stopped", "err", err)
			}
		}()
		<-started
	}
	s.logger.Info("DNS listening", "addr", s.addr, "zone", s.cfg.Zone)
	return nil
}

// listenBoth binds UDP and TCP on one port; with port 0 it retries until
// the port the UDP socket got is also free for TCP.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			return nil, nil, err
		}
	}
	return nil, nil, errors.New("no port free for both UDP and TCP")
}

// Addr returns the address the server listens on (after Start).
func (s *Server) Addr() string { return s.addr }

// Shutdown stops both listeners and waits for their goroutines.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		if srv != nil {
			errs = append(errs, srv.ShutdownContext(ctx))
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// zoneLabels splits a zone into its labels, for matching names.
func zoneLabels(zone string) int { return strings.Count(zone, ".") }
