package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
	"github.com/switchyard-io/switchyard/xds"
)

// XDSConfig configures the xDS server (package xds).
type XDSConfig struct {
	// Addr is where it listens for ADS over gRPC; empty turns it off.
	Addr string
	// MaxStreams bounds the ADS streams one connection may open.
	MaxStreams uint32
}

// DefaultXDSConfig serves xDS on 127.0.0.1:7404, like the other doors
// loopback until an operator opens it.
func DefaultXDSConfig() XDSConfig { return XDSConfig{Addr: "127.0.0.1:7404", MaxStreams: 16} }

// startXDS serves the catalog over xDS on cfg.XDS.Addr, with the API's TLS,
// tokens and connection limits: a stream presents its token in metadata
// (xds.HeaderToken), and sees only the services it may read.
func (s *Server) startXDS(cfg Config, topo route.Topology, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.XDS.Addr)
	if err != nil {
		return fmt.Errorf("server: xDS: %w", err)
	}
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(max(cfg.XDS.MaxStreams, 1)),
		// A client pinging more often than this is cut off; idle streams
		// stay (a watch is idle between changes).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.ConnectionTimeout(10 * time.Second),
	}
	if cfg.HTTPTLS != nil {
		tc := cfg.HTTPTLS.Clone()
		tc.NextProtos = []string{"h2"}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	xc := xds.Config{Catalog: s.api.Catalog(), Topology: topo, Ready: s.node.ReadyCh(), Logger: logger.With("component", "xds")}
	if cfg.ACL.Enabled {
		st := s.node.Store()
		xc.Token = func(secret string) (*store.Token, bool) {
			if secret == "" {
				return st.Anonymous(), true
			}
			t := st.TokenBySecretHash(api.HashSecret(secret))
			return t, t != nil
		}
	}
	g := grpc.NewServer(opts...)
	xs := xds.New(xc)
	xs.Register(g)
	s.xds, s.xdsLn, s.xdsServer = g, ln, xs
	// One client's connections are capped as on the HTTP port
	// (--limit-connections-per-client), each with at most MaxStreams
	// streams; a connection over the cap is closed at once.
	limited := api.LimitListener(ln, cfg.API.Limits, true)
	go func() {
		if err := g.Serve(limited); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			select {
			case s.serve <- fmt.Errorf("server: xDS: %w", err):
			default: // another part's failure is being reported
			}
		}
	}()
	return nil
}

// XDSAddr returns the xDS server's address ("" when it is off).
func (s *Server) XDSAddr() string {
	if s.xdsLn == nil {
		return ""
	}
	return s.xdsLn.Addr().String()
}
