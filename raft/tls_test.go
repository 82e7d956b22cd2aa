package raft

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/internal/certs"
	"github.com/switchyard-io/switchyard/store"
)

func mustCA(t *testing.T) (cert, key []byte) {
	t.Helper()
	c, k, err := certs.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func mustIssue(t *testing.T, caCert, caKey []byte, role, name string) (cert, key []byte) {
	t.Helper()
	c, k, err := certs.Issue(caCert, caKey, role, name, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// Raft and forwarded writes between servers go over mutual TLS; a peer
// with a client's certificate, another CA's, or none at all cannot join
// the conversation.
func TestTLSBetweenServers(t *testing.T) {
	caCert, caKey := mustCA(t)
	c := newCluster(t, 3, func(cfg *Config) {
		cert, key := mustIssue(t, caCert, caKey, certs.RoleServer, cfg.ID)
		tc, err := certs.PeerConfig(cert, key, caCert)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = tc
	})
	leader := c.waitLeader()
	follower := c.nodes[(leader+1)%3]
	idx, err := register(context.Background(), follower, "default", "web", "web-1")
	if err != nil {
		t.Fatalf("forwarded write over TLS: %v", err)
	}
	for _, n := range c.nodes {
		if err := n.WaitApplied(context.Background(), idx); err != nil {
			t.Fatal(err)
		}
		if v, err := n.Store().Service("default", "web"); err != nil || v.Instance("web-1") == nil {
			t.Fatalf("%s: %v", n.ID(), err)
		}
	}
	addr := c.nodes[leader].RaftAddr()
	payload, _ := (&store.Command{Type: store.CommandRegister, Namespace: "default", Service: "web", ID: "intruder",
		Instance: &store.Instance{Address: "10.6.6.6", Port: 1, Weight: 1, Enabled: true}}).Encode()

	// A client's certificate, signed by the right CA.
	cc, ck := mustIssue(t, caCert, caKey, certs.RoleClient, "a-client")
	pair, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	asClient := &tls.Config{Certificates: []tls.Certificate{pair}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	// A server certificate of another CA.
	otherCA, otherKey := mustCA(t)
	oc, ok := mustIssue(t, otherCA, otherKey, certs.RoleServer, "n9")
	foreign, err := certs.PeerConfig(oc, ok, otherCA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certs.PeerConfig(cc, ck, caCert); err == nil || !strings.Contains(err.Error(), "not a server") {
		t.Fatalf("a server config from a client certificate: %v", err)
	}
	for _, p := range []struct {
		name string
		tls  *tls.Config
	}{{"client certificate", asClient}, {"other CA", foreign}, {"plaintext", nil}} {
		f := &forwarder{tls: p.tls, idle: map[string][]net.Conn{}, limit: 1}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := f.call(ctx, addr, opApply, payload, false)
		cancel()
		if err == nil {
			t.Fatalf("%s: a forwarded write was accepted", p.name)
		}
		conn, err := dialTyped(addr, time.Second, connRaft, p.tls)
		if err == nil {
			// TLS 1.3 finishes the client's side first: the refusal
			// shows as a closed connection.
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Fatalf("%s: a Raft connection stayed open", p.name)
		}
	}
	if v, _ := c.nodes[leader].Store().Service("default", "web"); v.Instance("intruder") != nil {
		t.Fatal("the intruder's write was applied")
	}

	// A join names an address that must prove a server certificate: one
	// that answers with a client's, or in plaintext, is refused.
	fake, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for _, ln := range []net.Listener{fake, plain} {
		go answerHandshakes(ln)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.nodes[leader].Join(ctx, "n9", ln.Addr().String())
		cancel()
		if err == nil || !strings.Contains(err.Error(), "does not prove to be a server") {
			t.Fatalf("join of %s: %v", ln.Addr(), err)
		}
	}
	ms, err := c.nodes[leader].Members()
	if err != nil || len(ms) != 3 {
		t.Fatalf("members after refused joins: %+v %v", ms, err)
	}
}
