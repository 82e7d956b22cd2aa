package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/health/check"
)

// TestEveryDoorObeysTheCatalogsRules registers through the native API and
// through the Consul-compatible API of one server and shows that the same
// rules refuse the same inputs, each in its own dialect: the native API
// with its JSON error and code, Consul's in plain text with the status
// Consul clients expect. The rules live in the catalog service alone.
func TestEveryDoorObeysTheCatalogsRules(t *testing.T) {
	const maxBody = 4096
	c := startCluster(t, 1, func(cfg *Config) {
		cfg.API.Catalog.MaxInstancesPerService = 2
		cfg.API.Catalog.MaxMetadataBytes = 100
		cfg.API.MaxBodyBytes = maxBody
		cfg.CheckPolicy = check.DefaultPolicyConfig() // metadata ranges and loopback refused
	})
	s := c.servers[0]
	base := "http://" + s.HTTPAddr()

	native := func(id string, body map[string]any) (int, wire.ErrorBody) {
		t.Helper()
		st, out := rawCall(t, c.hc, http.MethodPut, base+"/v1/namespaces/default/services/web/instances/"+id, body)
		var eb wire.ErrorBody
		if st != http.StatusOK {
			if err := json.Unmarshal([]byte(out), &eb); err != nil || eb.Code == "" {
				t.Fatalf("native error answer %d %q is not the JSON error shape", st, out)
			}
		}
		return st, eb
	}
	consul := func(id string, body map[string]any) (int, string) {
		t.Helper()
		body["ID"], body["Name"] = id, "web"
		st, out := rawCall(t, c.hc, http.MethodPut, base+"/v1/agent/service/register", body)
		if st != http.StatusOK && strings.HasPrefix(strings.TrimSpace(out), "{") {
			t.Fatalf("Consul error answer %d %q is JSON: Consul answers errors in plain text", st, out)
		}
		return st, out
	}
	bigMeta := map[string]string{"k": strings.Repeat("v", 120)}
	cases := []struct {
		name         string
		native       map[string]any
		consul       map[string]any
		status       int
		code         string
		sameMessage  string // in both answers
		nativeStatus int    // when the native API's status differs (0: status)
	}{
		{name: "metadata over --max-metadata-bytes",
			native: map[string]any{"address": "10.0.0.1", "port": 80, "metadata": bigMeta},
			consul: map[string]any{"Address": "10.0.0.1", "Port": 80, "Meta": bigMeta},
			status: http.StatusBadRequest, code: "invalid", sameMessage: "--max-metadata-bytes"},
		{name: "port out of range",
			native: map[string]any{"address": "10.0.0.1", "port": 70000},
			consul: map[string]any{"Address": "10.0.0.1", "Port": 70000},
			status: http.StatusBadRequest, code: "invalid", sameMessage: "port 70000 is outside 1-65535"},
		{name: "address that is no host",
			native: map[string]any{"address": "bad host!", "port": 80},
			consul: map[string]any{"Address": "bad host!", "Port": 80},
			status: http.StatusBadRequest, code: "invalid", sameMessage: `address "bad host!"`},
		{name: "check aimed at cloud metadata",
			native: map[string]any{"address": "10.0.0.1", "port": 80, "ephemeral": false,
				"check": map[string]any{"type": "http", "target": "http://169.254.169.254/latest/meta-data/", "interval": "10s"}},
			consul: map[string]any{"Address": "10.0.0.1", "Port": 80,
				"Check": map[string]any{"HTTP": "http://169.254.169.254/latest/meta-data/", "Interval": "10s"}},
			status: http.StatusBadRequest, code: "check_target_denied", sameMessage: "169.254.169.254 is refused"},
		{name: "check probing faster than --check-min-interval",
			native: map[string]any{"address": "10.0.0.1", "port": 80, "ephemeral": false,
				"check": map[string]any{"type": "tcp", "target": "10.0.0.1:80", "interval": "100ms"}},
			consul: map[string]any{"Address": "10.0.0.1", "Port": 80,
				"Check": map[string]any{"TCP": "10.0.0.1:80", "Interval": "100ms"}},
			status: http.StatusBadRequest, code: "check_interval_too_short", sameMessage: "--check-min-interval"},
		{name: "body over --max-body-bytes",
			native: map[string]any{"address": "10.0.0.1", "port": 80, "tags": []string{strings.Repeat("t", maxBody)}},
			consul: map[string]any{"Address": "10.0.0.1", "Port": 80, "Tags": []string{strings.Repeat("t", maxBody)}},
			status: http.StatusRequestEntityTooLarge, code: "body_too_large", sameMessage: "4096"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, eb := native("n1", tc.native)
			want := tc.status
			if tc.nativeStatus != 0 {
				want = tc.nativeStatus
			}
			if st != want || eb.Code != tc.code || !strings.Contains(eb.Error, tc.sameMessage) {
				t.Errorf("native: %d %+v; want %d %s naming %q", st, eb, want, tc.code, tc.sameMessage)
			}
			cst, out := consul("c1", tc.consul)
			if cst != tc.status || !strings.Contains(out, tc.sameMessage) {
				t.Errorf("Consul: %d %q; want %d naming %q", cst, out, tc.status, tc.sameMessage)
			}
		})
	}
	// Nothing refused was stored.
	if v, err := s.node.Store().Service("default", "web"); err == nil && v.Len() > 0 {
		t.Fatalf("refused registrations left %d instances", v.Len())
	}

	// --max-instances-per-service counts instances of both doors, and
	// refuses a third through either.
	if st, eb := native("n1", map[string]any{"address": "10.0.0.1", "port": 80}); st != http.StatusOK {
		t.Fatalf("native n1: %d %+v", st, eb)
	}
	if st, out := consul("c1", map[string]any{"Address": "10.0.0.2", "Port": 80}); st != http.StatusOK {
		t.Fatalf("Consul c1: %d %q", st, out)
	}
	if st, eb := native("n2", map[string]any{"address": "10.0.0.3", "port": 80}); st != http.StatusConflict ||
		eb.Code != "too_many_instances" || !strings.Contains(eb.Error, "--max-instances-per-service") {
		t.Errorf("native third instance: %d %+v; want 409 too_many_instances", st, eb)
	}
	if st, out := consul("c2", map[string]any{"Address": "10.0.0.4", "Port": 80}); st != http.StatusConflict ||
		!strings.Contains(out, "--max-instances-per-service") {
		t.Errorf("Consul third instance: %d %q; want 409 naming --max-instances-per-service", st, out)
	}
	// Registering an instance again is not a new one: both doors may.
	if st, eb := native("c1", map[string]any{"address": "10.0.0.2", "port": 81}); st != http.StatusOK {
		t.Errorf("native re-registration of c1: %d %+v", st, eb)
	}
	if st, out := consul("n1", map[string]any{"Address": "10.0.0.1", "Port": 81}); st != http.StatusOK {
		t.Errorf("Consul re-registration of n1: %d %q", st, out)
	}
	v, err := s.node.Store().Service("default", "web")
	if err != nil || v.Len() != 2 || v.Instance("n1").Port != 81 || v.Instance("c1").Port != 81 {
		t.Fatalf("after the re-registrations: %v %v", v, err)
	}

	// A heartbeat for a persistent instance is refused by both doors.
	st, out := rawCall(t, c.hc, http.MethodPut, base+"/v1/namespaces/default/services/web/instances/n1", map[string]any{
		"address": "10.0.0.1", "port": 81, "ephemeral": false, "check": map[string]any{"type": "tcp", "target": "10.0.0.1:81", "interval": "10s"}})
	if st != http.StatusOK {
		t.Fatalf("persistent n1: %d %s", st, out)
	}
	if st, out := rawCall(t, c.hc, http.MethodPut, base+"/v1/namespaces/default/services/web/instances/n1/heartbeat", nil); st != http.StatusBadRequest ||
		!strings.Contains(out, "persistent") {
		t.Errorf("native heartbeat of a persistent instance: %d %s", st, out)
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/agent/check/pass/service:n1", bytes.NewReader(nil))
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("Consul TTL pass of a check that is no TTL: %d", resp.StatusCode)
	}
}
