package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/health"
	"github.com/switchyard-io/switchyard/internal/certs"
)

// The attacks of this file come from the network the servers gossip on:
// strangers built straight on memberlist, some of them holding the gossip
// key (an insider, or a stolen key), that try to become Raft voters, to
// count towards bootstrap-expect, or to remove a real server.

var testGossipKey = []byte("k3y-of-the-h0stile-network-tests")

// rawMember is a memberlist delegate announcing meta as given.
type rawMember struct{ meta []byte }

func (m rawMember) NodeMeta(int) []byte                  { return m.meta }
func (rawMember) NotifyMsg([]byte)                       {}
func (rawMember) GetBroadcasts(int, int) [][]byte        { return nil }
func (rawMember) LocalState(bool) []byte                 { return nil }
func (rawMember) MergeRemoteState(buf []byte, join bool) {}

// stranger starts a bare memberlist named name announcing meta, sealed
// with key (nil: plaintext), as an attacker would run it.
func stranger(t *testing.T, name string, meta gossip.Meta, key []byte) *memberlist.Memberlist {
	t.Helper()
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertisePort = name, "127.0.0.1", 0, 0
	b := fmt.Appendf(nil, `{"raft":%q,"http":%q,"expect":%d,"proto":2}`, meta.RaftAddr, meta.HTTPAddr, meta.BootstrapExpect)
	mc.Delegate = rawMember{meta: b}
	mc.SecretKey = key
	mc.LogOutput = testWriter{t}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	return ml
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// serverTLS gives every server a certificate of its own name from one CA:
// Raft and forwarded writes go over mutual TLS.
type serverTLS struct {
	t             *testing.T
	caCert, caKey []byte
}

func newServerTLS(t *testing.T) *serverTLS {
	c, k, err := certs.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &serverTLS{t: t, caCert: c, caKey: k}
}

func (s *serverTLS) issue(role, name string) (cert, key []byte) {
	c, k, err := certs.Issue(s.caCert, s.caKey, role, name, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return c, k
}

func (s *serverTLS) tune(cfg *Config) {
	cert, key := s.issue(certs.RoleServer, cfg.NodeID)
	tc, err := certs.PeerConfig(cert, key, s.caCert)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.Raft.TLS = tc
	cfg.Gossip.Keys = [][]byte{testGossipKey}
}

// fakeRaftPort answers TLS handshakes with the given certificate (nil:
// plaintext), as the "Raft port" a stranger advertises would.
func fakeRaftPort(t *testing.T, cert, key []byte) string {
	t.Helper()
	var ln net.Listener
	var err error
	if cert == nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	} else {
		pair, perr := tls.X509KeyPair(cert, key)
		if perr != nil {
			t.Fatal(perr)
		}
		ln, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				if tc, ok := c.(*tls.Conn); ok {
					_ = tc.Handshake()
				}
				_, _ = c.Read(make([]byte, 1))
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func (c *cluster) raftIDs(s *Server) map[string]bool {
	c.t.Helper()
	ms, err := s.Node().Members()
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range ms {
		out[m.ID] = true
	}
	return out
}

// waitReconciles waits until the leader has run its reconcile n more times.
func (c *cluster) waitReconciles(n uint64) {
	c.t.Helper()
	l := c.leader()
	if l == nil {
		c.t.Fatal("no leader")
	}
	from := l.reconciled.Load()
	eventually(c.t, 20*time.Second, fmt.Sprintf("%d reconcile passes", n), func() error {
		if got := l.reconciled.Load() - from; got < n {
			return fmt.Errorf("%d passes", got)
		}
		return nil
	})
}

func (s *Server) wasRefused(name string) bool {
	s.refusals.mu.Lock()
	defer s.refusals.mu.Unlock()
	_, ok := s.refusals.m[name]
	return ok
}

// A gossip member becomes a Raft voter only once it proves to be the
// server it says it is: without the gossip key it does not even enter the
// pool; with the key (an insider) it must present, on the Raft address it
// advertises, a server certificate of the cluster's CA with its own name;
// and no spelling of a member's address adds that member twice.
func TestGossipStrangerNeverVotes(t *testing.T) {
	ca := newServerTLS(t)
	c := startCluster(t, 3, ca.tune)

	// Without the key: the join fails and no server lists it.
	outsider := stranger(t, "outsider", gossip.Meta{RaftAddr: fakeRaftPort(t, nil, nil)}, nil)
	if _, err := outsider.Join([]string{c.servers[0].Pool().Addr()}); err == nil {
		t.Error("a stranger without the gossip key joined the pool")
	}

	clientCert, clientKey := ca.issue(certs.RoleClient, "client-cert")
	otherCert, otherKey := ca.issue(certs.RoleServer, "s1") // a server's certificate, stolen
	_, s2port, _ := net.SplitHostPort(c.servers[1].Node().RaftAddr())
	insiders := map[string]string{
		"plaintext":   fakeRaftPort(t, nil, nil),
		"client-cert": fakeRaftPort(t, clientCert, clientKey),
		"stolen-cert": fakeRaftPort(t, otherCert, otherKey),
		"alias-s2":    "127.0.0.1:0" + s2port,
		"mapped-s2":   "[::ffff:127.0.0.1]:" + s2port,
		"localhost":   "localhost:" + s2port,
	}
	c.insidersRefused(insiders)
	for _, s := range c.live() {
		for _, m := range s.Pool().Members() {
			if m.Name == "outsider" {
				t.Errorf("%s lists the outsider", s.cfg.NodeID)
			}
		}
	}

	// A real server with its own certificate joins as a voter at once.
	cfg := testConfig(t, "s4")
	ca.tune(&cfg)
	cfg.Join = []string{c.servers[0].Pool().Addr()}
	s4, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s4.Kill() })
	c.add(s4)
	c.waitVoters(4, 20*time.Second)
}

// Without TLS between servers the gossip key is the only proof, so the
// address check alone keeps a server from being added twice: an insider
// advertising another spelling of a voter's Raft address (a leading zero,
// IPv4-mapped IPv6, a DNS alias) is refused, and the configuration keeps
// its three servers.
func TestInsiderNeverAddsAServerTwice(t *testing.T) {
	c := startCluster(t, 3, func(cfg *Config) { cfg.Gossip.Keys = [][]byte{testGossipKey} })
	_, s2port, _ := net.SplitHostPort(c.servers[1].Node().RaftAddr())
	insiders := map[string]string{
		"alias-s2":  "127.0.0.1:0" + s2port,
		"mapped-s2": "[::ffff:127.0.0.1]:" + s2port,
		"localhost": "localhost:" + s2port,
	}
	c.insidersRefused(insiders)
}

// insidersRefused has a gossip member holding the key join for each name,
// advertising its Raft address, then waits until the leader has tried
// and refused every one and reconciled a few times more, and checks that
// every server's Raft configuration still holds the three servers.
func (c *cluster) insidersRefused(insiders map[string]string) {
	t := c.t
	t.Helper()
	for name, raftAddr := range insiders {
		ml := stranger(t, name, gossip.Meta{RaftAddr: raftAddr}, testGossipKey)
		if _, err := ml.Join([]string{c.servers[0].Pool().Addr()}); err != nil {
			t.Fatalf("insider %s: %v", name, err)
		}
	}
	eventually(t, 20*time.Second, "the leader tried and refused every insider", func() error {
		l := c.leader()
		if l == nil {
			return fmt.Errorf("no leader")
		}
		for name := range insiders {
			if !l.wasRefused(name) {
				return fmt.Errorf("%s not refused yet", name)
			}
		}
		return nil
	})
	c.waitReconciles(3)
	for _, s := range c.live() {
		if ids := c.raftIDs(s); len(ids) != 3 {
			t.Errorf("%s's Raft configuration: %v", s.cfg.NodeID, ids)
		}
	}
}

// What gossip says of liveness is bounded: an insider that floods a server
// with heartbeats of instances the catalog does not hold, and of invalid
// names, fills no more than the bounded corner for instances yet to
// appear, and the server's table keeps only the catalog's instances.
func TestGossipedLivenessStaysBounded(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) { cfg.Gossip.Keys = [][]byte{testGossipKey} })
	s := c.servers[0]
	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/web/instances/real",
		map[string]any{"address": "10.0.0.1", "port": 80}, nil); err != nil {
		t.Fatal(err)
	}
	flooder := stranger(t, "flooder", gossip.Meta{}, testGossipKey)
	if _, err := flooder.Join([]string{s.Pool().Addr()}); err != nil {
		t.Fatal(err)
	}
	var target *memberlist.Node
	for _, m := range flooder.Members() {
		if m.Name == s.cfg.NodeID {
			target = m
		}
	}
	if target == nil {
		t.Fatal("the flooder does not see the server")
	}
	const batches, perBatch = 16, 5000 // 80,000 entries, past the bound
	sent := 0
	for b := range batches {
		l := health.NewLiveness(nil)
		for k := range perBatch {
			l.Heard(health.Key{Namespace: "default", Service: "ghost", ID: fmt.Sprintf("g%d-%d", b, k)})
		}
		l.Heard(health.Key{Namespace: "default", Service: "NOT A NAME", ID: "x"})
		l.Heard(health.Key{Namespace: "default", Service: "web", ID: "real"})
		sent += perBatch + 1
		if err := flooder.SendReliable(target, append([]byte{'u'}, l.Flush()...)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "every flooded entry taken in or dropped", func() error {
		if got := s.liveness.Len() + s.liveness.Unknown() + int(s.liveness.Dropped()); got < sent {
			return fmt.Errorf("%d of %d", got, sent)
		}
		return nil
	})
	if n := s.liveness.Unknown(); n > health.DefaultMaxUnknown {
		t.Errorf("%d entries wait for instances the catalog lacks, beyond the bound %d", n, health.DefaultMaxUnknown)
	}
	if n := s.liveness.Len(); n != 1 {
		t.Errorf("the liveness table holds %d instances, want the catalog's one", n)
	}
}

// --bootstrap-expect counts only servers that proved they are: an insider
// announcing the same expectation does not make two servers a cluster.
func TestBootstrapExpectCountsOnlyProvenServers(t *testing.T) {
	ca := newServerTLS(t)
	c := &cluster{t: t, hc: &http.Client{Timeout: 10 * time.Second}}
	var first *Server
	for i := range 2 {
		cfg := testConfig(t, fmt.Sprintf("s%d", i+1))
		cfg.BootstrapExpect = 3
		ca.tune(&cfg)
		if first != nil {
			cfg.Join = []string{first.Pool().Addr()}
		}
		s, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Kill() })
		c.add(s)
		if first == nil {
			first = s
		}
	}
	clientCert, clientKey := ca.issue(certs.RoleClient, "phantom")
	ml := stranger(t, "phantom", gossip.Meta{RaftAddr: fakeRaftPort(t, clientCert, clientKey), BootstrapExpect: 3}, testGossipKey)
	if _, err := ml.Join([]string{first.Pool().Addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the phantom alive in both pools", func() error {
		for _, s := range c.servers {
			ok := false
			for _, m := range s.Pool().Members() {
				ok = ok || (m.Name == "phantom" && m.Live())
			}
			if !ok {
				return fmt.Errorf("%s does not see it", s.cfg.NodeID)
			}
		}
		return nil
	})
	// runBootstrapExpect looks every 200 ms; ten looks with the phantom
	// in view and no cluster.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.servers {
			if id, _ := s.Node().Leader(); id != "" {
				t.Fatalf("%s bootstrapped a cluster counting the phantom (leader %s): %v", s.cfg.NodeID, id, c.raftIDs(s))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The third real server completes the count.
	cfg := testConfig(t, "s3")
	cfg.BootstrapExpect = 3
	ca.tune(&cfg)
	cfg.Join = []string{first.Pool().Addr()}
	s3, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3.Kill() })
	c.add(s3)
	c.waitVoters(3, 20*time.Second)
	if ids := c.raftIDs(first); ids["phantom"] || len(ids) != 3 {
		t.Fatalf("first configuration: %v", ids)
	}
}

// A departure is believed only from the server itself: a forged leave
// message about a live server, then its crash, do not remove it before
// dead-server-after; a server that leaves on purpose is removed at once.
func TestForgedLeaveRemovesNobody(t *testing.T) {
	c := startCluster(t, 5, func(cfg *Config) {
		cfg.Gossip.Keys = [][]byte{testGossipKey}
		cfg.DeadServerAfter = time.Hour
	})
	l := c.leader()
	var victim, leaver *Server
	for _, s := range c.servers {
		switch {
		case s == l:
		case victim == nil:
			victim = s
		case leaver == nil:
			leaver = s
		}
	}
	// An insider (it holds the gossip key) says, in every form the pool
	// ever understood, that the victim leaves.
	ml := stranger(t, "forger", gossip.Meta{}, testGossipKey)
	if _, err := ml.Join([]string{l.Pool().Addr()}); err != nil {
		t.Fatal(err)
	}
	forged := append([]byte{'l'}, victim.cfg.NodeID...)
	for _, n := range ml.Members() {
		if n.Name != "forger" {
			if err := ml.SendReliable(n, forged); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the victim dead on the leader", func() error {
		for _, m := range l.Pool().Members() {
			if m.Name == victim.cfg.NodeID && !m.Live() {
				return nil
			}
		}
		return fmt.Errorf("not dead yet")
	})
	c.waitReconciles(5)
	if !c.raftIDs(l)[victim.cfg.NodeID] {
		t.Fatalf("a forged leave removed %s from the cluster", victim.cfg.NodeID)
	}

	// The leaver announces its own departure and is removed at once, long
	// before the hour (the dead victim's vote was taken: 4 voters → 3 is
	// allowed by min-quorum 3).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaver.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the leaver removed", func() error {
		if c.raftIDs(l)[leaver.cfg.NodeID] {
			return fmt.Errorf("%s still a member", leaver.cfg.NodeID)
		}
		return nil
	})
	if !c.raftIDs(l)[victim.cfg.NodeID] {
		t.Fatalf("%s removed", victim.cfg.NodeID)
	}
}
