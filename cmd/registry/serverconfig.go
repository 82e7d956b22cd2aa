package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/consulcompat"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/internal/certs"
	"github.com/switchyard-io/switchyard/internal/cidr"
	"github.com/switchyard-io/switchyard/server"
	"github.com/switchyard-io/switchyard/store"
)

// config turns the flags into a server's configuration, refusing
// combinations that cannot work or would run insecurely by accident. The
// data directory is already settled (dev makes a temporary one).
func (o *serverOptions) config() (server.Config, error) {
	cfg := server.DefaultConfig()
	cfg.NodeID, cfg.DataDir = o.nodeID, o.dataDir
	cfg.HTTPAddr, cfg.RaftAddr, cfg.AdvertiseRaftAddr = o.httpAddr, o.raftAddr, o.advertise
	cfg.GossipAddr, cfg.AdvertiseGossipAddr = o.gossipAddr, o.advertiseGossip
	cfg.Bootstrap, cfg.BootstrapExpect = o.bootstrap, o.bootstrapExpect
	for _, j := range strings.Split(o.join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			cfg.Join = append(cfg.Join, j)
		}
	}
	cfg.Locality = store.Locality{Region: o.region, Datacenter: o.datacenter, Unit: o.unit}
	cfg.DisableConsulAPI, cfg.ConsulNamespace = o.noConsulAPI, o.consulNamespace
	if o.dev && o.consulCacheBytes == 0 {
		o.consulCacheBytes = consulcompat.DefaultCacheBytes // dev has no such flag
	}
	if o.consulCacheBytes <= 0 {
		return server.Config{}, usagef("--consul-cache-bytes must be positive")
	}
	cfg.ConsulCacheBytes = o.consulCacheBytes
	if o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != "" || o.tlsVerifyClients {
		if o.tlsCert == "" || o.tlsKey == "" {
			return server.Config{}, usagef("--tls-cert and --tls-key go together (--tls-ca and --tls-verify-clients need them)")
		}
		pems, err := readFiles(o.tlsCert, o.tlsKey, o.tlsCA)
		if err != nil {
			return server.Config{}, err
		}
		srv, cli, err := certs.APIConfigs(pems[0], pems[1], pems[2], o.tlsVerifyClients)
		if err != nil {
			return server.Config{}, err
		}
		cfg.HTTPTLS, cfg.HTTPClientTLS = srv, cli
	}
	if o.raftTLSCert != "" || o.raftTLSKey != "" || o.raftTLSCA != "" {
		if o.raftTLSCert == "" || o.raftTLSKey == "" || o.raftTLSCA == "" {
			return server.Config{}, usagef("--raft-tls-cert, --raft-tls-key and --raft-tls-ca go together")
		}
		pems, err := readFiles(o.raftTLSCert, o.raftTLSKey, o.raftTLSCA)
		if err != nil {
			return server.Config{}, err
		}
		tc, err := certs.PeerConfig(pems[0], pems[1], pems[2])
		if err != nil {
			return server.Config{}, err
		}
		cfg.Raft.TLS = tc
	}
	if o.gossipKeys != "" {
		for _, k := range strings.Split(o.gossipKeys, ",") {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
			if err != nil {
				return server.Config{}, usagef("--gossip-key: not base64: %w", err)
			}
			if err := gossip.CheckKey(b); err != nil {
				return server.Config{}, usagef("--gossip-key: %w", err)
			}
			cfg.Gossip.Keys = append(cfg.Gossip.Keys, b)
		}
	}
	cfg.ACL.Enabled = !o.insecureDev
	cfg.DisableUI, cfg.DrillReports = o.noUI, o.drillReports
	if cfg.ACL.Enabled && cfg.Raft.TLS == nil && !o.raftPlaintext && !loopback(o.raftAddr) {
		if o.dev {
			return server.Config{}, usagef("--raft-addr %s is reachable from other hosts, and registry dev has no Raft TLS: whoever reaches it could write the catalog and mint tokens, whatever --acl says. "+
				"Keep registry dev's --raft-addr on loopback, or run registry server", o.raftAddr)
		}
		return server.Config{}, usagef("--raft-addr %s is reachable from other hosts and Raft runs without TLS: whoever reaches it could write the catalog and mint tokens, whatever access control says. "+
			"Give --raft-tls-cert, --raft-tls-key and --raft-tls-ca (registry tls ca|cert makes them), or --raft-plaintext if no one else can reach that network", o.raftAddr)
	}
	if o.bootstrapTokenFile != "" {
		if o.insecureDev {
			return server.Config{}, errors.New("--bootstrap-token-file makes no sense with --insecure-dev: access control is off")
		}
		b, err := os.ReadFile(o.bootstrapTokenFile)
		if err != nil {
			return server.Config{}, fmt.Errorf("--bootstrap-token-file: %w", err)
		}
		secret := strings.TrimSpace(string(b))
		if err := api.CheckSecret(secret); err != nil {
			return server.Config{}, fmt.Errorf("--bootstrap-token-file %s: %w", o.bootstrapTokenFile, err)
		}
		cfg.ACL.BootstrapSecret = secret
	}
	if !o.dev && !o.insecureDev && len(cfg.Gossip.Keys) == 0 {
		if _, err := os.Stat(server.GossipKeyringPath(o.dataDir)); err != nil {
			return server.Config{}, errors.New("gossip between servers has no key: whoever reaches the gossip port could join the pool, spread heartbeats and claim to be a server. " +
				"Make one key with `registry keygen` and give every server the same one with --gossip-key (or REGISTRY_GOSSIP_KEY), or use --insecure-dev for development")
		}
	}
	if !o.dev {
		l := o.limits
		if l.RequestsPerSecond > 0 && l.Burst == 0 {
			l.Burst = int(max(l.RequestsPerSecond, 1))
		}
		tp, err := cidr.Parse(o.trustedProxies)
		if err != nil {
			return server.Config{}, usagef("--trusted-proxies: %w", err)
		}
		l.TrustedProxies = tp
		cfg.API.Limits = l
		cfg.API.Catalog.MaxInstancesPerService, cfg.API.Catalog.MaxMetadataBytes = o.catalog.MaxInstancesPerService, o.catalog.MaxMetadataBytes
		if o.maxBodyBytes <= 0 {
			return server.Config{}, usagef("--max-body-bytes must be positive")
		}
		cfg.API.MaxBodyBytes = o.maxBodyBytes
		cfg.API.MaxRequestLineBytes = o.maxRequestLineBytes
		cfg.HTTP = o.httpLimits
	}
	if o.dev || o.allowedHosts != "" {
		cfg.API.AllowedHosts = allowedHosts(o.httpAddr, o.allowedHosts)
	}
	if o.datacenterRTT != "" {
		t, err := server.ParseRTTTable(o.datacenterRTT)
		if err != nil {
			return server.Config{}, usagef("--datacenter-rtt: %w", err)
		}
		cfg.DatacenterRTT = t
	}
	cfg.AdminAddr = o.adminAddr
	cfg.XDS.Addr = o.xdsAddr
	cfg.DNS.Addr, cfg.DNS.Zone, cfg.DNS.MaxAnswers = o.dnsAddr, o.dnsZone, o.dnsMaxAnswers
	cfg.DNS.ConsulDomain, cfg.DNS.ConsulNamespace = o.dnsConsul, o.consulNamespace
	cfg.DNS.MaxUDPSize, cfg.DNS.MaxTCPConns, cfg.DNS.TCPIdleTimeout = o.dnsMaxUDPSize, o.dnsMaxTCPConns, o.dnsTCPIdleTimeout
	if o.dnsSubnets != "" {
		sn, err := parseSubnets(o.dnsSubnets)
		if err != nil {
			return server.Config{}, usagef("--dns-subnet-locality: %w", err)
		}
		cfg.DNS.Subnets = sn
	}
	if cfg.DNS.Addr != "" {
		// Before anything starts: a bad bound is the flag's fault.
		if err := cfg.DNS.Validate(); err != nil {
			return server.Config{}, err
		}
	}
	if o.dev {
		// One voter: elections need not wait for anyone.
		cfg.Raft.HeartbeatTimeout = 100 * time.Millisecond
		cfg.Raft.ElectionTimeout = 100 * time.Millisecond
		cfg.Raft.LeaderLeaseTimeout = 100 * time.Millisecond
		cfg.MinQuorum = 1
	} else {
		cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.CommitTimeout = o.heartbeatTimeout, o.electionTimeout, o.commitTimeout
		cfg.Raft.LogStore = o.logStore
		cfg.Raft.SnapshotThreshold, cfg.Raft.SnapshotInterval, cfg.Raft.TrailingLogs = o.snapThreshold, o.snapInterval, o.trailingLogs
		cfg.Raft.LeaderLeaseTimeout = min(cfg.Raft.LeaderLeaseTimeout, cfg.Raft.HeartbeatTimeout)
		cfg.DeadServerAfter, cfg.MinQuorum = o.deadServerAfter, o.minQuorum
		cfg.Role, cfg.Voters, cfg.ServerStabilization = o.role, o.voters, o.stabilization
		cfg.DefaultTTL, cfg.DefaultDeregisterAfter = o.defaultTTL, o.defaultDereg
		cfg.SelfPreservation.Threshold, cfg.SelfPreservation.Window = o.spThreshold, o.spWindow
		cfg.SelfPreservation.MinInstances = o.spMinInstances
		allow, err := cidr.Parse(o.checkAllowCIDRs)
		if err != nil {
			return server.Config{}, usagef("--check-allow-cidrs: %w", err)
		}
		deny, err := cidr.Parse(o.checkDenyCIDRs)
		if err != nil {
			return server.Config{}, usagef("--check-deny-cidrs: %w", err)
		}
		if o.checkMinInterval < 0 {
			return server.Config{}, errors.New("--check-min-interval must not be negative (0: no floor)")
		}
		cfg.CheckPolicy.Allow, cfg.CheckPolicy.Deny = allow, deny
		cfg.CheckPolicy.AllowLoopback, cfg.CheckPolicy.MinInterval = o.checkAllowLoopback, o.checkMinInterval
	}
	if o.dev {
		// The dev server's instances run on the developer's machine.
		cfg.CheckPolicy.AllowLoopback = true
	}
	return cfg, nil
}
