package raft

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/internal/certs"
)

// tlsCluster starts n nodes with mutual TLS between them, each holding a
// server certificate of its own name; it returns the CA for more.
func tlsCluster(t *testing.T, n int) (*cluster, []byte, []byte) {
	caCert, caKey := mustCA(t)
	c := newCluster(t, n, func(cfg *Config) {
		cert, key := mustIssue(t, caCert, caKey, certs.RoleServer, cfg.ID)
		tc, err := certs.PeerConfig(cert, key, caCert)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = tc
	})
	return c, caCert, caKey
}

// serveTLS answers TLS handshakes on a loopback port with the given
// certificate, as a stranger's "Raft port" would.
func serveTLS(t *testing.T, cert, key []byte) string {
	t.Helper()
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go answerHandshakes(ln)
	return ln.Addr().String()
}

// answerHandshakes accepts connections until ln closes, completes each
// one's TLS handshake (if it is TLS), then waits for a byte and hangs up.
func answerHandshakes(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			if tc, ok := c.(*tls.Conn); ok {
				tc.Handshake()
			}
			c.Read(make([]byte, 1))
			c.Close()
		}()
	}
}

// A server certificate proves a server only under its own name: a joining
// "n9" whose Raft address presents n2's certificate (or another server's
// certificate of the same CA) is refused, and so is one that spells an
// existing member's Raft address another way, with or without TLS.
func TestJoinNeedsTheServersOwnCertificate(t *testing.T) {
	c, caCert, caKey := tlsCluster(t, 3)
	leader := c.waitLeader()
	n := c.nodes[leader]

	// A stranger holding a genuine server certificate, but issued to
	// another name: it cannot join as n9.
	otherCert, otherKey := mustIssue(t, caCert, caKey, certs.RoleServer, "n7")
	addr := serveTLS(t, otherCert, otherKey)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := n.Join(ctx, "n9", addr)
	cancel()
	if err == nil || !strings.Contains(err.Error(), `is "n7"'s, not n9's`) {
		t.Fatalf("join as n9 with n7's certificate: %v", err)
	}
	// Under its own name it proves to be a server (the join itself then
	// waits for a Raft peer that is not there; the proof is what counts).
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := n.ProveServer(pctx, "n7", addr); err != nil {
		t.Fatalf("n7's own certificate under its own name: %v", err)
	}
	pcancel()

	ms, err := n.Members()
	if err != nil || len(ms) != 3 {
		t.Fatalf("members after refused joins: %+v %v", ms, err)
	}
}

func TestJoinRefusesAnotherSpellingOfAMembersAddress(t *testing.T) {
	c := newCluster(t, 3) // no TLS: the address check alone must hold
	leader := c.waitLeader()
	n := c.nodes[leader]
	victim := c.nodes[(leader+1)%3]
	_, port, err := net.SplitHostPort(victim.RaftAddr())
	if err != nil {
		t.Fatal(err)
	}
	for _, spelling := range []string{
		"127.0.0.1:0" + port,
		"[::ffff:127.0.0.1]:" + port,
		"[0:0:0:0:0:ffff:7f00:1]:" + port,
		"localhost:" + port, // a DNS alias
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.Join(ctx, "n9", spelling)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "already used by server") {
			t.Errorf("join of n9 at %s (%s's address): %v", spelling, victim.ID(), err)
		}
	}
	for _, bad := range []string{"0.0.0.0:" + port, "[::]:" + port, "224.0.0.1:" + port, "127.0.0.1:0", "127.0.0.1:99999"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.Join(ctx, "n9", bad)
		cancel()
		if err == nil {
			t.Errorf("join of n9 at %s accepted", bad)
		}
	}
	ms, err := n.Members()
	if err != nil || len(ms) != 3 {
		t.Fatalf("members after refused joins: %+v %v", ms, err)
	}
}

// Only a server may announce its own departure: over the Raft port, the
// leader checks that the caller's certificate names the server that
// leaves.
func TestOnlyTheServerItselfAnnouncesItsDeparture(t *testing.T) {
	c, _, _ := tlsCluster(t, 3)
	leader := c.waitLeader()
	a, b := c.nodes[(leader+1)%3], c.nodes[(leader+2)%3]
	leaderAddr := c.nodes[leader].RaftAddr()

	// a, a genuine server, claims that b leaves.
	payload, _ := json.Marshal(leaveRequest{ID: b.ID()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := a.fwd.call(ctx, leaderAddr, opLeave, payload, true)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "its own departure only") {
		t.Fatalf("a announced b's departure: %v", err)
	}
	if _, ok := c.nodes[leader].Departed(b.ID()); ok {
		t.Fatal("the leader believes b departed")
	}
	// b says it itself.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	err = b.AnnounceLeave(ctx)
	cancel()
	if err != nil {
		t.Fatalf("b's own announcement: %v", err)
	}
	if _, ok := c.nodes[leader].Departed(b.ID()); !ok {
		t.Fatal("the leader did not record b's own departure")
	}
	// A name outside the configuration is refused, and not recorded.
	payload, _ = json.Marshal(leaveRequest{ID: "n9"})
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	_, err = a.fwd.call(ctx, leaderAddr, opLeave, payload, true)
	cancel()
	if err == nil {
		t.Fatal("a departure of a stranger was accepted")
	}
	if _, ok := c.nodes[leader].Departed("n9"); ok {
		t.Fatal("a stranger's departure recorded")
	}
}
