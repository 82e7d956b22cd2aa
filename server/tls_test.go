package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard-io/switchyard/internal/certs"
)

// The HTTP API over HTTPS with client certificates verified: plaintext and
// certificate-less clients fail, a client with a certificate of the CA is
// served, and a server joins another through its HTTPS address.
func TestHTTPSAPI(t *testing.T) {
	caCert, caKey, err := certs.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey, err := certs.Issue(caCert, caKey, certs.RoleServer, "server", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey, err := certs.Issue(caCert, caKey, certs.RoleClient, "ops", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	withTLS := func(cfg *Config) {
		cfg.HTTPTLS, cfg.HTTPClientTLS, err = certs.APIConfigs(srvCert, srvKey, caCert, true)
		if err != nil {
			t.Fatal(err)
		}
	}
	c := startCluster(t, 1, withTLS)
	s1 := c.servers[0]
	path := "/v1/namespaces/default/services"

	// Plaintext to the TLS port.
	resp, err := http.Get("http://" + s1.HTTPAddr() + path)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plaintext request served")
		}
	}
	client := func(cert, key []byte) *http.Client {
		tc, err := certs.ClientConfig(cert, key, caCert)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	if _, err := client(nil, nil).Get("https://" + s1.HTTPAddr() + path); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// A certificate from another CA.
	otherCA, otherKey, _ := certs.NewCA("other", time.Hour)
	oc, ok, _ := certs.Issue(otherCA, otherKey, certs.RoleClient, "stranger", nil, time.Hour)
	if _, err := client(oc, ok).Get("https://" + s1.HTTPAddr() + path); err == nil {
		t.Fatal("a client of another CA was served")
	}
	resp, err = client(cliCert, cliKey).Get("https://" + s1.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "services") {
		t.Fatalf("with a client certificate: %d %s", resp.StatusCode, b)
	}

	// xDS on the same certificate: a plaintext stream is refused, one with
	// a client certificate of the CA is answered.
	if _, err := adsAnswer(s1.XDSAddr(), insecure.NewCredentials()); err == nil {
		t.Fatal("xDS answered a plaintext stream on a TLS server")
	}
	tc, err := certs.ClientConfig(cliCert, cliKey, caCert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adsAnswer(s1.XDSAddr(), credentials.NewTLS(tc)); err != nil {
		t.Fatalf("xDS over TLS with a client certificate: %v", err)
	}

	// A second server joins through the first one's HTTPS address: it reads
	// the members list over TLS with its own certificate.
	cfg := testConfig(t, "s2")
	withTLS(&cfg)
	cfg.Join = []string{"https://" + s1.HTTPAddr()}
	s2, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Kill() })
	c.add(s2)
	eventually(t, 15*time.Second, "s2 a voter", func() error {
		ms, err := s1.Node().Members()
		if err != nil {
			return err
		}
		if len(ms) != 2 {
			return fmt.Errorf("%d members", len(ms))
		}
		return nil
	})
}

// Profiling is served only on the opt-in admin address, never on the API's.
func TestAdminAddress(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) { cfg.AdminAddr = "127.0.0.1:0" })
	s := c.servers[0]
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := get("http://" + s.AdminAddr() + "/debug/pprof/cmdline"); code != http.StatusOK {
		t.Fatalf("admin pprof: %d", code)
	}
	if code := get("http://" + s.AdminAddr() + "/metrics"); code != http.StatusOK {
		t.Fatalf("admin metrics: %d", code)
	}
	if code := get("http://" + s.HTTPAddr() + "/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Fatalf("pprof on the API address: %d", code)
	}
	plain := startCluster(t, 1)
	if plain.servers[0].AdminAddr() != "" {
		t.Fatal("an admin listener without --admin-addr")
	}
}
