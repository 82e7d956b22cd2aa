package server

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/gossip"
)

// The gossip key of a running three-server cluster is rotated through the
// API, server by server (as registry keyring does): nobody falls out of
// the pool, a server restarted with the old key in its configuration keeps
// the new one, and a new server with only the old key cannot join.
func TestGossipKeyRotationThroughTheAPI(t *testing.T) {
	oldKey := []byte("0123456789abcdef0123456789abcdef")
	newKey := []byte("fedcba9876543210fedcba9876543210")
	c := startCluster(t, 3, func(cfg *Config) { cfg.Gossip.Keys = [][]byte{oldKey} })
	b64 := base64.StdEncoding.EncodeToString
	alive := func(what string) {
		t.Helper()
		eventually(t, 10*time.Second, what, func() error {
			for _, s := range c.live() {
				for _, m := range s.Pool().Members() {
					if m.Status != gossip.StatusAlive {
						return fmt.Errorf("%s sees %s %s", s.cfg.NodeID, m.Name, m.Status)
					}
				}
				if n := len(s.Pool().Members()); n != 3 {
					return fmt.Errorf("%s sees %d members", s.cfg.NodeID, n)
				}
			}
			return nil
		})
	}
	alive("three members")
	var failuresBefore uint64
	for _, s := range c.servers {
		failuresBefore += s.Pool().Failures()
	}

	var bad struct{}
	if err := c.do(c.servers[0], http.MethodPut, "/v1/operator/keyring", wire.KeyringRequest{Op: "use", Key: b64(newKey)}, &bad); err == nil {
		t.Fatalf("use of a key not installed succeeded")
	} else if he, ok := err.(*httpError); !ok || he.status != http.StatusConflict {
		t.Fatalf("use of a key not installed: %v, want 409", err)
	}
	for _, step := range []wire.KeyringRequest{{Op: "install", Key: b64(newKey)}, {Op: "use", Key: b64(newKey)}, {Op: "remove", Key: b64(oldKey)}} {
		for _, s := range c.servers {
			var out wire.KeyringResponse
			if err := c.do(s, http.MethodPut, "/v1/operator/keyring", step, &out); err != nil {
				t.Fatalf("%s on %s: %v", step.Op, s.cfg.NodeID, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		alive("alive after " + step.Op)
	}
	var failures uint64
	for _, s := range c.servers {
		failures += s.Pool().Failures()
		var out wire.KeyringResponse
		if err := c.do(s, http.MethodGet, "/v1/operator/keyring", nil, &out); err != nil || len(out.Keys) != 1 ||
			out.Keys[0].Fingerprint != gossip.Fingerprint(newKey) || !out.Keys[0].Primary {
			t.Fatalf("keyring of %s: %+v %v", s.cfg.NodeID, out, err)
		}
	}
	if failures != failuresBefore {
		t.Errorf("servers were found dead during the rotation: %d failures, %d before", failures, failuresBefore)
	}
	for _, body := range []string{`{"op":"install","key":"not base64"}`, `{"op":"install","key":"AAAA"}`, `{"op":"shred","key":"` + b64(newKey) + `"}`} {
		req, _ := http.NewRequest(http.MethodPut, "http://"+c.servers[0].HTTPAddr()+"/v1/operator/keyring", stringsReader(body))
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("keyring %s: %d, want 400", body, resp.StatusCode)
		}
	}

	// s3 restarts with the old key in its configuration: its keyring file
	// has the new one, and it rejoins.
	if err := c.servers[2].Kill(); err != nil {
		t.Fatal(err)
	}
	c.restart(2)
	alive("s3 back after a restart")

	// A fourth server with only the old key stays outside.
	outsider := testConfig(t, "s4")
	outsider.Gossip.Keys = [][]byte{oldKey}
	outsider.Join = []string{c.servers[0].Pool().Addr()}
	s4, err := Start(outsider)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s4.Kill() })
	time.Sleep(2 * time.Second)
	for _, m := range c.servers[0].Pool().Members() {
		if m.Name == "s4" {
			t.Fatalf("a server with the removed key joined: %+v", m)
		}
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
