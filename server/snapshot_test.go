package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/raft"
)

// catalogOf reads a server's whole catalog through the API: namespaces with
// their settings, services with theirs, and every instance.
func catalogOf(t *testing.T, c *cluster, s *Server) map[string]any {
	t.Helper()
	out := map[string]any{}
	var nss struct {
		Namespaces []struct {
			Name        string
			Fallback    string
			Description string
		}
	}
	if err := c.do(s, http.MethodGet, "/v1/namespaces", nil, &nss); err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss.Namespaces {
		out["ns/"+ns.Name] = ns
		var svcs struct {
			Services []map[string]any
		}
		if err := c.do(s, http.MethodGet, "/v1/namespaces/"+ns.Name+"/services", nil, &svcs); err != nil {
			t.Fatal(err)
		}
		for _, sv := range svcs.Services {
			name := fmt.Sprint(sv["name"])
			delete(sv, "create_index")
			delete(sv, "modify_index")
			delete(sv, "index")
			out["svc/"+ns.Name+"/"+name] = sv
			ins, err := c.instances(s, ns.Name, name)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(ins.Instances)
			out["ins/"+ns.Name+"/"+name] = string(b)
		}
	}
	return out
}

// TestSnapshotSaveWipeRestore: a backup taken from one cluster restores,
// identical, into a new one, waking its watchers; a corrupt or foreign file
// is refused and changes nothing.
func TestSnapshotSaveWipeRestore(t *testing.T) {
	a := startCluster(t, 3)
	s := a.servers[1]
	if err := a.do(s, http.MethodPut, "/v1/namespaces/prod", map[string]any{"fallback": "default", "description": "production"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.do(s, http.MethodPut, "/v1/namespaces/prod/services/web", map[string]any{"protect_threshold": 0.3, "balancer": "round_robin"}, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		ns := []string{"default", "prod"}[i%2]
		if err := a.do(a.servers[i%3], http.MethodPut, fmt.Sprintf("/v1/namespaces/%s/services/web/instances/web-%d", ns, i), map[string]any{
			"address": fmt.Sprintf("10.0.0.%d", i+1), "port": 8000 + i, "ephemeral": false, "weight": 10 + i,
			"tags": []string{"v1"}, "metadata": map[string]string{"i": strconv.Itoa(i)},
			"locality": map[string]string{"region": "eu", "datacenter": "eu-west-1"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Writes went to all three servers: wait until the one read has them.
	eventually(t, 5*time.Second, "every write on s1", func() error {
		for _, ns := range []string{"default", "prod"} {
			got, err := a.instances(a.servers[0], ns, "web")
			if err == nil && len(got.Instances) != 10 {
				err = fmt.Errorf("%s: %d instances", ns, len(got.Instances))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	want := catalogOf(t, a, a.servers[0])

	resp, err := http.Get("http://" + s.HTTPAddr() + "/v1/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	backup, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(backup) < 100 {
		t.Fatalf("GET /v1/snapshot: %d, %d bytes", resp.StatusCode, len(backup))
	}
	for _, srv := range a.servers {
		srv.Kill()
	}

	// A new cluster, empty but for a service a client watches.
	b := startCluster(t, 3)
	if err := b.do(b.servers[0], http.MethodPut, "/v1/namespaces/default/services/web/instances/other", map[string]any{
		"address": "10.9.9.9", "port": 1, "ephemeral": false}, nil); err != nil {
		t.Fatal(err)
	}
	var watched wire.InstancesResponse
	eventually(t, 3*time.Second, "write seen on s3", func() error {
		var err error
		watched, err = b.instances(b.servers[2], "default", "web")
		if err == nil && len(watched.Instances) != 1 {
			err = fmt.Errorf("%d instances", len(watched.Instances))
		}
		return err
	})
	woke := make(chan wire.InstancesResponse, 1)
	go func() {
		var out wire.InstancesResponse
		_ = b.do(b.servers[2], http.MethodGet, fmt.Sprintf("/v1/namespaces/default/services/web/instances?index=%d&wait=30s", watched.Index), nil, &out)
		woke <- out
	}()

	put := func(srv *Server, body []byte) (int, string, string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut, "http://"+srv.HTTPAddr()+"/v1/snapshot", bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg), resp.Header.Get("X-Switchyard-Leader")
	}
	// Refused, nothing changed: a corrupt file, a foreign one.
	corrupt := bytes.Clone(backup)
	corrupt[len(corrupt)/2] ^= 1
	for _, bad := range [][]byte{corrupt, []byte(`{"namespaces":[]}`)} {
		code, msg, _ := put(b.leader(), bad)
		if code != http.StatusBadRequest || !(strings.Contains(msg, "checksum mismatch") || strings.Contains(msg, "not a Switchyard backup")) {
			t.Fatalf("bad file: %d %s", code, msg)
		}
	}
	if got, err := b.instances(b.leader(), "default", "web"); err != nil || len(got.Instances) != 1 {
		t.Fatalf("after refused restores: %+v %v", got.Instances, err)
	}
	// A follower names the leader.
	var follower *Server
	for _, srv := range b.servers {
		if srv != b.leader() {
			follower = srv
			break
		}
	}
	if code, msg, leader := put(follower, backup); code != http.StatusConflict || leader != b.leader().HTTPAddr() {
		t.Fatalf("restore on a follower: %d %s, leader header %q", code, msg, leader)
	}
	if code, msg, _ := put(b.leader(), backup); code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, msg)
	}
	for _, srv := range b.servers {
		eventually(t, 10*time.Second, "restored on "+srv.cfg.NodeID, func() error {
			if got := catalogOf(t, b, srv); !reflect.DeepEqual(got, want) {
				for k := range want {
					if !reflect.DeepEqual(got[k], want[k]) {
						return fmt.Errorf("catalog differs at %s:\n%v\nwant\n%v", k, got[k], want[k])
					}
				}
				return fmt.Errorf("catalog differs: %d keys, want %d", len(got), len(want))
			}
			return nil
		})
	}
	select {
	case got := <-woke:
		if got.Index <= watched.Index || len(got.Instances) != 10 {
			t.Fatalf("watcher woke with index %d (was %d), %d instances", got.Index, watched.Index, len(got.Instances))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query not woken by the restore")
	}
	// The restored cluster takes writes after it.
	if err := b.do(b.servers[2], http.MethodPut, "/v1/namespaces/prod/services/web/instances/web-new", map[string]any{
		"address": "10.0.1.1", "port": 80, "ephemeral": false}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := b.instances(b.servers[2], "prod", "web")
	if err != nil || len(got.Instances) != 11 {
		t.Fatalf("write after restore: %d instances, %v", len(got.Instances), err)
	}
}

// TestRecoverFromOneSurvivor: the whole cluster is lost but for one server's
// data directory; raft.Recover (registry recover) makes that server a
// cluster of one that serves everything it held and takes writes.
func TestRecoverFromOneSurvivor(t *testing.T) {
	for _, kind := range []string{raft.LogStoreBolt, raft.LogStoreWAL} {
		t.Run(kind, func(t *testing.T) { testRecoverFromOneSurvivor(t, kind) })
	}
}

func testRecoverFromOneSurvivor(t *testing.T, logStore string) {
	c := startCluster(t, 3, func(c *Config) { c.Raft.LogStore = logStore })
	for i := range 10 {
		if err := c.do(c.servers[i%3], http.MethodPut, fmt.Sprintf("/v1/namespaces/default/services/web/instances/web-%d", i), map[string]any{
			"address": "10.0.0.1", "port": 8000 + i, "ephemeral": false}, nil); err != nil {
			t.Fatal(err)
		}
	}
	survivor := c.servers[2]
	eventually(t, 5*time.Second, "all writes on the survivor", func() error {
		got, err := c.instances(survivor, "default", "web")
		if err == nil && len(got.Instances) != 10 {
			err = fmt.Errorf("%d instances", len(got.Instances))
		}
		return err
	})
	cfg := survivor.cfg
	cfg.RaftAddr = survivor.Node().RaftAddr()
	for _, s := range c.servers {
		s.Kill()
	}

	rc := cfg.Raft
	rc.ID, rc.DataDir, rc.RaftAddr = cfg.NodeID, cfg.DataDir, cfg.RaftAddr
	if err := raft.Recover(rc); err != nil {
		t.Fatal(err)
	}
	cfg.BootstrapExpect, cfg.Join = 0, nil
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	one := &cluster{t: t, hc: c.hc, servers: []*Server{s}}
	eventually(t, 10*time.Second, "the survivor leads and is ready", func() error {
		if !s.Node().IsLeader() || !s.Ready() {
			return fmt.Errorf("leader %v, ready %v", s.Node().IsLeader(), s.Ready())
		}
		return nil
	})
	got, err := one.instances(s, "default", "web")
	if err != nil || len(got.Instances) != 10 {
		t.Fatalf("after recovery: %d instances, %v", len(got.Instances), err)
	}
	if err := one.do(s, http.MethodPut, "/v1/namespaces/default/services/web/instances/web-new", map[string]any{
		"address": "10.0.0.2", "port": 80, "ephemeral": false}, nil); err != nil {
		t.Fatal(err)
	}
	ms, err := s.Node().Members()
	if err != nil || len(ms) != 1 || ms[0].ID != cfg.NodeID {
		t.Fatalf("members after recovery: %+v %v", ms, err)
	}
	if got := s.Node().LogStore(); got != logStore {
		t.Fatalf("log store after recovery: %q, want %q", got, logStore)
	}
	// A directory without Raft data is refused.
	bad := rc
	bad.DataDir = t.TempDir()
	if err := raft.Recover(bad); err == nil || !strings.Contains(err.Error(), "no Raft data") {
		t.Fatalf("recover from an empty directory: %v", err)
	}
}
