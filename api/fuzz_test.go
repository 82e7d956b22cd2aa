package api_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/catalog"
	"github.com/switchyard-io/switchyard/store"
)

// Seeds shared by f.Add; the same bodies live as files under
// testdata/fuzz/<FuzzName>/ so that plain `go test` runs them too.
var registerSeeds = []string{
	`{"address":"10.0.0.1","port":8080}`,
	`{"address":"web-1.example.com.","port":65535,"weight":0,"enabled":false,"ephemeral":true,` +
		`"locality":{"region":"eu-west","datacenter":"dc1","unit":"u1"},"tags":["a","b"],"metadata":{"k":"v"},` +
		`"check":{"type":"ttl","ttl":"10s","deregister_after":"1m"}}`,
	`{"address":"2001:db8::1","port":1,"ephemeral":false,"check":{"type":"http","target":"http://x/","interval":5,"timeout":"1s",` +
		`"failures_before_unhealthy":3,"successes_before_healthy":2}}`,
	`{"address":"10.0.0.1","port":0}`,
	`{"address":"10.0.0.1","port":"80"}`,
	`{"address":"10.0.0.1","port":80,"weight":10001}`,
	`{"address":"1.2.3","port":80}`,
	`{"address":"10.0.0.1","port":80} {}`,
	`{"address":"10.0.0.1","port":`,
	`[]`,
	`null`,
	``,
	`{"address":"10.0.0.1","port":80,"check":{"ttl":1e300}}`,
	`{"address":"10.0.0.1","port":80,"check":{"ttl":-1e-300}}`,
	`{"address":"10.0.0.1","port":9223372036854775807}`,
	`{"address":"10.0.0.1","port":80,"weight":-9223372036854775808}`,
}

var serviceSeeds = []string{
	`{}`,
	`{"protect_threshold":0.5,"min_healthy_ratio":0.7,"balancer":"round_robin","dns_ttl":"10s"}`,
	`{"dns_ttl":30}`,
	`{"dns_ttl":1e300}`,
	`{"dns_ttl":-0.0000001}`,
	`{"protect_threshold":1.5}`,
	`{"balancer":"nope"}`,
	`{"min_healthy_ratio":-0.1}`,
	`{"protect_threshold":1e309}`,
	`{"dns_ttl":"forever"}`,
	`null`,
	`[]`,
	``,
}

// wellFormedError checks the contract of a decode error.
func wellFormedError(t *testing.T, err error) {
	t.Helper()
	if strings.TrimSpace(err.Error()) == "" {
		t.Fatalf("empty error message: %#v", err)
	}
	if !errors.Is(err, api.ErrBadRequest) && !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("error %q is neither ErrBadRequest nor store.ErrInvalid: the API would answer 500", err)
	}
}

func FuzzDecodeRegister(f *testing.F) {
	for _, s := range registerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The door: the API's decoder, then the catalog's validation.
		in, err := api.DecodeRegister("default", "web", "web-1", body)
		if err == nil {
			if err = catalog.DefaultConfig().Prepare(in); err != nil {
				in = nil
			}
		}
		if err != nil {
			wellFormedError(t, err)
			if in != nil {
				t.Fatalf("an instance came back with error %v", err)
			}
			return
		}
		if in.Namespace != "default" || in.Service != "web" || in.ID != "web-1" {
			t.Fatalf("names from the path were not kept: %+v", in)
		}
		if in.Port < 1 || in.Port > 65535 {
			t.Fatalf("port %d accepted", in.Port)
		}
		if in.Weight < 0 || in.Weight > store.MaxWeight {
			t.Fatalf("weight %d accepted", in.Weight)
		}
		if in.Healthy {
			t.Fatalf("the client set healthy")
		}
		again := *in
		if err := again.Normalize(); err != nil {
			t.Fatalf("accepted instance fails Normalize: %v (%+v)", err, in)
		}
		if !reflect.DeepEqual(&again, in) {
			t.Fatalf("Normalize is not idempotent:\n%+v\n%+v", in, &again)
		}
		// What the API accepted must survive the log's JSON encoding, which
		// is how it reaches every replica.
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		var back store.Instance
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if err := back.Normalize(); err != nil {
			t.Fatalf("instance invalid after a JSON round trip: %v (%s)", err, b)
		}
		if back.Port != in.Port || back.Weight != in.Weight || back.Check != in.Check || back.Address != in.Address {
			t.Fatalf("JSON round trip changed the instance:\n%+v\n%+v", in, &back)
		}
	})
}

func FuzzDecodeServiceSettings(f *testing.F) {
	for _, s := range serviceSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cur := store.DefaultServiceSettings()
		// The door: the API's decoder, then the catalog's validation
		// (catalog.PutService).
		got, err := api.DecodeServiceSettings(cur, body)
		if err == nil {
			err = got.Validate()
		}
		if err != nil {
			wellFormedError(t, err)
			return
		}
		for _, v := range []float64{got.ProtectThreshold, got.MinHealthyRatio} {
			if math.IsNaN(v) || v < 0 || v > 1 {
				t.Fatalf("ratio %v accepted", v)
			}
		}
		if got.DNSTTL < 0 || time.Duration(got.DNSTTL) > 24*time.Hour {
			t.Fatalf("dns_ttl %v accepted", time.Duration(got.DNSTTL))
		}
		// Decoding the settings' own JSON over anything gives them back.
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		back, err := api.DecodeServiceSettings(store.ServiceSettings{}, b)
		if err != nil {
			t.Fatalf("settings %s do not decode again: %v", b, err)
		}
		if back != got {
			t.Fatalf("round trip of %s gave %+v, want %+v", b, back, got)
		}
	})
}

func FuzzDecodeNamespaceSettings(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"fallback":"prod"}`, `{"fallback":"staging","description":"x"}`,
		`{"fallback":"Prod"}`, `{"fallback":"dev"}`, `{"description":null}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The door: the API's decoder, then the catalog's validation
		// (catalog.PutNamespace).
		got, err := api.DecodeNamespaceSettings(store.NamespaceSettings{}, body)
		if err == nil {
			err = got.Validate("dev")
		}
		if err != nil {
			wellFormedError(t, err)
			return
		}
		if got.Fallback != "" && store.ValidateName("fallback", got.Fallback) != nil {
			t.Fatalf("fallback %q accepted", got.Fallback)
		}
		if got.Fallback == "dev" {
			t.Fatalf("a namespace may fall back to itself")
		}
	})
}
