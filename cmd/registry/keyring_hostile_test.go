package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/switchyard-io/switchyard/internal/certs"
)

// strangerMeta is a memberlist delegate announcing a server's metadata.
type strangerMeta []byte

func (m strangerMeta) NodeMeta(int) []byte                  { return m }
func (strangerMeta) NotifyMsg([]byte)                       {}
func (strangerMeta) GetBroadcasts(int, int) [][]byte        { return nil }
func (strangerMeta) LocalState(bool) []byte                 { return nil }
func (strangerMeta) MergeRemoteState(buf []byte, join bool) {}

// testKeyringStranger: `registry keyring` sends the admin token and a new
// gossip key only to servers of the Raft configuration whose certificate
// names them. A stranger that holds the gossip key (an insider) and a
// server certificate of the same CA under another name advertises its own
// HTTPS address in gossip: it receives nothing.
func testKeyringStranger(t *testing.T, bin string) {
	tmp := t.TempDir()
	caCert, caKey, err := certs.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key, err := certs.Issue(caCert, caKey, certs.RoleServer, "k1", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caPath, certPath, keyPath := write("ca.pem", caCert), write("k1.pem", cert), write("k1-key.pem", key)
	secret := strings.TrimSpace(cli(t, bin, "token", "secret").stdout)
	secretFile := write("token", []byte(secret+"\n"))
	gossipKey := strings.TrimSpace(cli(t, bin, "keygen").stdout)
	newKey := strings.TrimSpace(cli(t, bin, "keygen").stdout)

	// The token never goes to a plaintext API beyond loopback, the first
	// request (for the members) included: refused before any is sent.
	// 192.0.2.1 is TEST-NET-1, where nothing answers.
	if r := cli(t, bin, "keyring", "--server", "http://192.0.2.1:7400", "--token", secret, "list"); r.code == 0 ||
		!strings.Contains(r.stderr, "plaintext and not loopback") {
		t.Errorf("keyring list against a plaintext remote API: exit %d, stderr %q; want a refusal before any request", r.code, r.stderr)
	}

	httpAddr, raftAddr, gossipAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	p := startProc(t, bin, nil, "server", "--node-id", "k1", "--data-dir", filepath.Join(tmp, "data"),
		"--http-addr", httpAddr, "--raft-addr", raftAddr, "--gossip-addr", gossipAddr, "--dns-addr", "",
		"--bootstrap", "--bootstrap-token-file", secretFile, "--gossip-key", gossipKey,
		"--tls-cert", certPath, "--tls-key", keyPath, "--tls-ca", caPath,
		"--raft-tls-cert", certPath, "--raft-tls-key", keyPath, "--raft-tls-ca", caPath)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caCert)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	waitFor(t, 20*time.Second, "k1 healthy over HTTPS", func() bool {
		if p.exited() {
			t.Fatalf("registry server exited:\n%s", p.stderr.String())
		}
		resp, err := hc.Get("https://" + httpAddr + "/v1/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// The insider's HTTPS endpoint, with a server certificate of the
	// cluster's CA issued to "evil".
	var hits atomic.Int64
	var leaked atomic.Bool
	evil := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if strings.Contains(r.Header.Get("X-Switchyard-Token"), secret) || strings.Contains(r.Header.Get("Authorization"), secret) {
			leaked.Store(true)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"keys":[]}`)
	}))
	ec, ek, err := certs.Issue(caCert, caKey, certs.RoleServer, "evil", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(ec, ek)
	if err != nil {
		t.Fatal(err)
	}
	evil.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	evil.StartTLS()
	t.Cleanup(evil.Close)

	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertisePort = "evil", "127.0.0.1", 0, 0
	mc.Delegate = strangerMeta(fmt.Appendf(nil, `{"raft":%q,"http":%q}`, freeAddr(t), strings.TrimPrefix(evil.URL, "https://")))
	mc.SecretKey = decodeKey(t, gossipKey)
	mc.LogOutput = os.Stderr
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join([]string{gossipAddr}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the insider in k1's members list", func() bool {
		r := cli(t, bin, "members", "--server", "https://"+httpAddr, "--ca-cert", caPath, "--token", secret, "--output", "json")
		return strings.Contains(r.stdout, `"evil"`)
	})

	r := cli(t, bin, "keyring", "--server", "https://"+httpAddr, "--ca-cert", caPath, "--token", secret, "install", newKey)
	if hits.Load() != 0 || leaked.Load() {
		t.Fatalf("the insider received %d requests (token leaked: %v); output:\n%s%s", hits.Load(), leaked.Load(), r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "evil") || !strings.Contains(r.stdout, "known to gossip only") {
		t.Errorf("the insider is not reported as skipped:\n%s", r.stdout)
	}
	var out []struct {
		Server string
		Keys   []struct{ Fingerprint string }
		Error  string
	}
	// The skipped insider makes the command fail (exit 1): the operator
	// sees a member that did not get the key.
	r = cli(t, bin, "keyring", "--server", "https://"+httpAddr, "--ca-cert", caPath, "--token", secret, "--output", "json", "list")
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 1 {
		t.Fatalf("keyring list: exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	got := false
	for _, s := range out {
		if s.Server == "k1" {
			got = s.Error == "" && len(s.Keys) == 2
		}
	}
	if !got {
		t.Errorf("k1 does not hold two keys after install: %+v", out)
	}
	if hits.Load() != 0 {
		t.Fatalf("the insider received %d requests", hits.Load())
	}
}

func decodeKey(t *testing.T, b64 string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
