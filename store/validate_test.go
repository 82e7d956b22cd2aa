package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // "" for a valid name
	}{
		{name: "single letter", in: "a"},
		{name: "single digit", in: "0"},
		{name: "word", in: "web"},
		{name: "all digits", in: "123"},
		{name: "inner hyphen", in: "web-1"},
		{name: "double inner hyphen", in: "a--b"},
		{name: "63 characters", in: strings.Repeat("a", 63)},
		{name: "63 characters mixed", in: "a" + strings.Repeat("-9", 31)},
		{name: "empty", in: "", wantErr: "is empty"},
		{name: "64 characters", in: strings.Repeat("a", 64), wantErr: "longer than 63"},
		{name: "leading hyphen", in: "-web", wantErr: "hyphen"},
		{name: "trailing hyphen", in: "web-", wantErr: "hyphen"},
		{name: "only hyphen", in: "-", wantErr: "hyphen"},
		{name: "uppercase", in: "Web", wantErr: "DNS label"},
		{name: "underscore", in: "web_1", wantErr: "DNS label"},
		{name: "dot", in: "web.1", wantErr: "DNS label"},
		{name: "space", in: "web 1", wantErr: "DNS label"},
		{name: "leading space", in: " web", wantErr: "DNS label"},
		{name: "newline", in: "web\n", wantErr: "DNS label"},
		{name: "non-ascii", in: "wéb", wantErr: "DNS label"},
		{name: "slash", in: "a/b", wantErr: "DNS label"},
		{name: "nul byte", in: "a\x00b", wantErr: "DNS label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName("service", tt.in)
			checkInvalid(t, err, tt.wantErr)
			if err != nil && !strings.Contains(err.Error(), "service") {
				t.Errorf("error %q does not name the field", err)
			}
		})
	}
}

func TestValidateHost(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "ipv4", in: "10.0.0.1"},
		{name: "ipv4 zero", in: "0.0.0.0"},
		{name: "ipv4 broadcast", in: "255.255.255.255"},
		{name: "ipv6 loopback", in: "::1"},
		{name: "ipv6", in: "2001:db8::1"},
		{name: "ipv6 full", in: "2001:0db8:0000:0000:0000:0000:0000:0001"},
		{name: "ipv6 with zone", in: "fe80::1%eth0"},
		{name: "ipv4-mapped ipv6", in: "::ffff:10.0.0.1"},
		{name: "single label", in: "localhost"},
		{name: "fqdn", in: "web-1.example.com"},
		{name: "fqdn with trailing dot", in: "example.com."},
		{name: "mixed case", in: "Web.Example.COM"},
		{name: "single letter", in: "a"},
		{name: "label starting with digit", in: "1a.example.com"},
		{name: "numeric label among names", in: "10.example.com"},
		{name: "63 character label", in: strings.Repeat("a", 63) + ".com"},
		{name: "253 characters", in: longHost(253)},

		{name: "empty", in: "", wantErr: true},
		{name: "space", in: " ", wantErr: true},
		{name: "inner space", in: "web 1.example.com", wantErr: true},
		{name: "trailing space", in: "10.0.0.1 ", wantErr: true},
		{name: "leading space", in: " 10.0.0.1", wantErr: true},
		{name: "three octets", in: "1.2.3", wantErr: true},
		{name: "five octets", in: "1.2.3.4.5", wantErr: true},
		{name: "octet out of range", in: "256.0.0.1", wantErr: true},
		{name: "ipv4 with trailing dot", in: "1.2.3.4.", wantErr: true},
		{name: "all digits", in: "12345", wantErr: true},
		{name: "underscore", in: "my_host", wantErr: true},
		{name: "underscore label", in: "_srv.example.com", wantErr: true},
		{name: "leading hyphen", in: "-web.example.com", wantErr: true},
		{name: "trailing hyphen in label", in: "web-.example.com", wantErr: true},
		{name: "empty label", in: "a..com", wantErr: true},
		{name: "only dot", in: ".", wantErr: true},
		{name: "leading dot", in: ".example.com", wantErr: true},
		{name: "64 character label", in: strings.Repeat("a", 64) + ".com", wantErr: true},
		{name: "254 characters", in: longHost(254), wantErr: true},
		{name: "bracketed ipv6", in: "[::1]", wantErr: true},
		{name: "host and port", in: "10.0.0.1:80", wantErr: true},
		{name: "url", in: "http://example.com", wantErr: true},
		{name: "slash", in: "example.com/x", wantErr: true},
		{name: "non-ascii", in: "exämple.com", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateHost(tt.in)
			if tt.wantErr {
				checkInvalid(t, err, "address")
			} else {
				checkInvalid(t, err, "")
			}
		})
	}
}

// longHost returns a valid host name of exactly n characters made of labels
// of at most 63 characters.
func longHost(n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		l := min(63, n-b.Len())
		b.WriteString(strings.Repeat("h", l))
	}
	s := b.String()
	if len(s) != n || strings.HasSuffix(s, ".") {
		panic(fmt.Sprintf("longHost(%d) built %q", n, s))
	}
	return s
}

// checkInvalid asserts that err is nil when wantErr is empty, and otherwise
// that it wraps ErrInvalid and mentions wantErr.
func checkInvalid(t *testing.T, err error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", wantErr)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Errorf("error %q does not mention %q", err, wantErr)
	}
}

// validInstance is a persistent instance that passes Normalize unchanged
// except for the check type default.
func validInstance() Instance {
	return Instance{
		ID: "web-1", Namespace: "default", Service: "web",
		Address: "10.0.0.1", Port: 8080, Weight: DefaultWeight, Enabled: true,
	}
}

func TestInstanceNormalize(t *testing.T) {
	tags := func(n, l int) []string {
		out := make([]string, n)
		for k := range out {
			out[k] = fmt.Sprintf("%0*d", l, k)
		}
		return out
	}
	meta := func(n, keyLen, valLen int) map[string]string {
		out := map[string]string{}
		for k := 0; k < n; k++ {
			out[fmt.Sprintf("%0*d", keyLen, k)] = strings.Repeat("v", valLen)
		}
		return out
	}
	tests := []struct {
		name    string
		edit    func(*Instance)
		wantErr string // "" when Normalize must succeed
		// want edits validInstance into the expected result; nil means
		// "the input with Check.Type defaulted to none".
		want func(*Instance)
	}{
		{name: "persistent defaults to check none", edit: func(*Instance) {}},
		{name: "ephemeral defaults to check ttl", edit: func(i *Instance) { i.Ephemeral = true },
			want: func(i *Instance) { i.Ephemeral, i.Check.Type = true, CheckTTL }},
		{name: "ephemeral with explicit ttl", edit: func(i *Instance) {
			i.Ephemeral, i.Check = true, Check{Type: CheckTTL, TTL: Duration(10 * time.Second)}
		}, want: func(i *Instance) {
			i.Ephemeral, i.Check = true, Check{Type: CheckTTL, TTL: Duration(10 * time.Second)}
		}},
		{name: "weight zero is kept", edit: func(i *Instance) { i.Weight = 0 },
			want: func(i *Instance) { i.Weight, i.Check.Type = 0, CheckNone }},
		{name: "host name address", edit: func(i *Instance) { i.Address = "web-1.example.com" },
			want: func(i *Instance) { i.Address, i.Check.Type = "web-1.example.com", CheckNone }},
		{name: "ipv6 address", edit: func(i *Instance) { i.Address = "2001:db8::1" },
			want: func(i *Instance) { i.Address, i.Check.Type = "2001:db8::1", CheckNone }},

		// Identity fields.
		{name: "bad namespace", edit: func(i *Instance) { i.Namespace = "Prod" }, wantErr: "namespace"},
		{name: "empty namespace", edit: func(i *Instance) { i.Namespace = "" }, wantErr: "namespace is empty"},
		{name: "bad service", edit: func(i *Instance) { i.Service = "web_api" }, wantErr: "service"},
		{name: "bad id", edit: func(i *Instance) { i.ID = "-1" }, wantErr: "instance id"},
		{name: "empty id", edit: func(i *Instance) { i.ID = "" }, wantErr: "instance id is empty"},
		{name: "bad address", edit: func(i *Instance) { i.Address = "1.2.3" }, wantErr: "address"},
		{name: "empty address", edit: func(i *Instance) { i.Address = "" }, wantErr: "address is empty"},

		// Port.
		{name: "port 1", edit: func(i *Instance) { i.Port = 1 }, want: func(i *Instance) { i.Port, i.Check.Type = 1, CheckNone }},
		{name: "port 65535", edit: func(i *Instance) { i.Port = 65535 }, want: func(i *Instance) { i.Port, i.Check.Type = 65535, CheckNone }},
		{name: "port 0", edit: func(i *Instance) { i.Port = 0 }, wantErr: "port 0"},
		{name: "port negative", edit: func(i *Instance) { i.Port = -1 }, wantErr: "port -1"},
		{name: "port 65536", edit: func(i *Instance) { i.Port = 65536 }, wantErr: "port 65536"},

		// Weight.
		{name: "weight max", edit: func(i *Instance) { i.Weight = MaxWeight }, want: func(i *Instance) { i.Weight, i.Check.Type = MaxWeight, CheckNone }},
		{name: "weight above max", edit: func(i *Instance) { i.Weight = MaxWeight + 1 }, wantErr: "weight 10001"},
		{name: "weight negative", edit: func(i *Instance) { i.Weight = -1 }, wantErr: "weight -1"},

		// Locality.
		{name: "full locality", edit: func(i *Instance) { i.Locality = Locality{"eu", "eu-west-1", "rack-7"} },
			want: func(i *Instance) { i.Locality, i.Check.Type = Locality{"eu", "eu-west-1", "rack-7"}, CheckNone }},
		{name: "bad region", edit: func(i *Instance) { i.Locality.Region = "EU" }, wantErr: "locality.region"},
		{name: "bad datacenter", edit: func(i *Instance) { i.Locality.Datacenter = "dc_1" }, wantErr: "locality.datacenter"},
		{name: "bad unit", edit: func(i *Instance) { i.Locality.Unit = "-u" }, wantErr: "locality.unit"},

		// Tags.
		{name: "64 tags", edit: func(i *Instance) { i.Tags = tags(MaxTags, 3) },
			want: func(i *Instance) { i.Tags, i.Check.Type = tags(MaxTags, 3), CheckNone }},
		{name: "65 tags", edit: func(i *Instance) { i.Tags = tags(MaxTags+1, 3) }, wantErr: "65 tags"},
		{name: "tag of 255", edit: func(i *Instance) { i.Tags = tags(1, MaxTagLen) },
			want: func(i *Instance) { i.Tags, i.Check.Type = tags(1, MaxTagLen), CheckNone }},
		{name: "tag of 256", edit: func(i *Instance) { i.Tags = tags(1, MaxTagLen+1) }, wantErr: "tag"},
		{name: "empty tag", edit: func(i *Instance) { i.Tags = []string{"a", ""} }, wantErr: "tag \"\""},

		// Metadata.
		{name: "64 metadata keys", edit: func(i *Instance) { i.Metadata = meta(MaxMetadataKeys, 2, 1) },
			want: func(i *Instance) { i.Metadata, i.Check.Type = meta(MaxMetadataKeys, 2, 1), CheckNone }},
		{name: "65 metadata keys", edit: func(i *Instance) { i.Metadata = meta(MaxMetadataKeys+1, 2, 1) }, wantErr: "65 metadata keys"},
		{name: "metadata key of 128, value of 512", edit: func(i *Instance) { i.Metadata = meta(1, MaxMetadataKey, MaxMetadataValue) },
			want: func(i *Instance) { i.Metadata, i.Check.Type = meta(1, MaxMetadataKey, MaxMetadataValue), CheckNone }},
		{name: "empty metadata value", edit: func(i *Instance) { i.Metadata = map[string]string{"k": ""} },
			want: func(i *Instance) { i.Metadata, i.Check.Type = map[string]string{"k": ""}, CheckNone }},
		{name: "metadata key of 129", edit: func(i *Instance) { i.Metadata = meta(1, MaxMetadataKey+1, 1) }, wantErr: "metadata key"},
		{name: "empty metadata key", edit: func(i *Instance) { i.Metadata = map[string]string{"": "v"} }, wantErr: "metadata key"},
		{name: "metadata value of 513", edit: func(i *Instance) { i.Metadata = meta(1, 1, MaxMetadataValue+1) }, wantErr: "metadata value"},

		// Check type rules.
		{name: "persistent http with target", edit: func(i *Instance) { i.Check = Check{Type: CheckHTTP, Target: "http://10.0.0.1:8080/health"} },
			want: func(i *Instance) { i.Check = Check{Type: CheckHTTP, Target: "http://10.0.0.1:8080/health"} }},
		{name: "persistent tcp with target", edit: func(i *Instance) { i.Check = Check{Type: CheckTCP, Target: "10.0.0.1:8080"} },
			want: func(i *Instance) { i.Check = Check{Type: CheckTCP, Target: "10.0.0.1:8080"} }},
		{name: "persistent grpc with target", edit: func(i *Instance) { i.Check = Check{Type: CheckGRPC, Target: "10.0.0.1:9090"} },
			want: func(i *Instance) { i.Check = Check{Type: CheckGRPC, Target: "10.0.0.1:9090"} }},
		{name: "persistent explicit none", edit: func(i *Instance) { i.Check = Check{Type: CheckNone} }},
		{name: "http without target", edit: func(i *Instance) { i.Check = Check{Type: CheckHTTP} }, wantErr: "needs a target"},
		{name: "tcp without target", edit: func(i *Instance) { i.Check = Check{Type: CheckTCP} }, wantErr: "needs a target"},
		{name: "grpc without target", edit: func(i *Instance) { i.Check = Check{Type: CheckGRPC} }, wantErr: "needs a target"},
		{name: "persistent ttl", edit: func(i *Instance) { i.Check = Check{Type: CheckTTL} }, wantErr: "needs an ephemeral instance"},
		{name: "ephemeral http", edit: func(i *Instance) {
			i.Ephemeral, i.Check = true, Check{Type: CheckHTTP, Target: "http://x/"}
		}, wantErr: "for persistent instances"},
		{name: "ephemeral tcp", edit: func(i *Instance) {
			i.Ephemeral, i.Check = true, Check{Type: CheckTCP, Target: "x:1"}
		}, wantErr: "for persistent instances"},
		{name: "ephemeral none", edit: func(i *Instance) { i.Ephemeral, i.Check = true, Check{Type: CheckNone} }, wantErr: "must heartbeat"},
		{name: "ttl with target", edit: func(i *Instance) {
			i.Ephemeral, i.Check = true, Check{Type: CheckTTL, Target: "x:1"}
		}, wantErr: "takes no target"},
		{name: "unknown check type", edit: func(i *Instance) { i.Check = Check{Type: "icmp"} }, wantErr: "not one of"},
		{name: "uppercase check type", edit: func(i *Instance) { i.Check = Check{Type: "HTTP", Target: "x"} }, wantErr: "not one of"},
		{name: "http target without scheme", edit: func(i *Instance) { i.Check = Check{Type: CheckHTTP, Target: "10.0.0.1:80/health"} }, wantErr: "must be a URL"},
		{name: "http target without host", edit: func(i *Instance) { i.Check = Check{Type: CheckHTTP, Target: "http:///health"} }, wantErr: "must be a URL"},
		{name: "tcp target without port", edit: func(i *Instance) { i.Check = Check{Type: CheckTCP, Target: "10.0.0.1"} }, wantErr: "host:port"},
		{name: "tcp target port out of range", edit: func(i *Instance) { i.Check = Check{Type: CheckTCP, Target: "10.0.0.1:70000"} }, wantErr: "host:port"},
		{name: "grpc target without host", edit: func(i *Instance) { i.Check = Check{Type: CheckGRPC, Target: ":9090/orders"} }, wantErr: "host:port/service"},
		{name: "target too long", edit: func(i *Instance) { i.Check = Check{Type: CheckTCP, Target: strings.Repeat("a", 1100) + ":1"} }, wantErr: "longer than"},

		// Check durations and counters.
		{name: "durations at 24h", edit: func(i *Instance) {
			d := Duration(24 * time.Hour)
			i.Check = Check{Type: CheckHTTP, Target: "http://x/", Interval: d, Timeout: d, DeregisterAfter: d}
		}, want: func(i *Instance) {
			d := Duration(24 * time.Hour)
			i.Check = Check{Type: CheckHTTP, Target: "http://x/", Interval: d, Timeout: d, DeregisterAfter: d}
		}},
		{name: "negative interval", edit: func(i *Instance) { i.Check.Interval = Duration(-time.Second) }, wantErr: "check interval"},
		{name: "timeout above 24h", edit: func(i *Instance) { i.Check.Timeout = Duration(24*time.Hour + 1) }, wantErr: "check timeout"},
		{name: "ttl above 24h", edit: func(i *Instance) {
			i.Ephemeral, i.Check = true, Check{TTL: Duration(25 * time.Hour)}
		}, wantErr: "check ttl"},
		{name: "negative deregister_after", edit: func(i *Instance) { i.Check.DeregisterAfter = -1 }, wantErr: "check deregister_after"},
		{name: "counters at 100", edit: func(i *Instance) {
			i.Check.FailuresBeforeUnhealthy, i.Check.SuccessesBeforeHealthy = 100, 100
		}, want: func(i *Instance) {
			i.Check = Check{Type: CheckNone, FailuresBeforeUnhealthy: 100, SuccessesBeforeHealthy: 100}
		}},
		{name: "failures above 100", edit: func(i *Instance) { i.Check.FailuresBeforeUnhealthy = 101 }, wantErr: "failures_before_unhealthy"},
		{name: "failures negative", edit: func(i *Instance) { i.Check.FailuresBeforeUnhealthy = -1 }, wantErr: "failures_before_unhealthy"},
		{name: "successes above 100", edit: func(i *Instance) { i.Check.SuccessesBeforeHealthy = 101 }, wantErr: "successes_before_healthy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := validInstance()
			tt.edit(&in)
			err := in.Normalize()
			checkInvalid(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			want := validInstance()
			if tt.want != nil {
				tt.want(&want)
			} else {
				tt.edit(&want)
				want.Check.Type = CheckNone
			}
			if !reflect.DeepEqual(in, want) {
				t.Errorf("normalized instance\n got %+v\nwant %+v", in, want)
			}
		})
	}
}

func TestServiceSettingsValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*ServiceSettings)
		wantErr string
	}{
		{name: "defaults", edit: func(*ServiceSettings) {}},
		{name: "protect 0", edit: func(s *ServiceSettings) { s.ProtectThreshold = 0 }},
		{name: "protect 1", edit: func(s *ServiceSettings) { s.ProtectThreshold = 1 }},
		{name: "protect negative", edit: func(s *ServiceSettings) { s.ProtectThreshold = -0.01 }, wantErr: "protect_threshold"},
		{name: "protect above 1", edit: func(s *ServiceSettings) { s.ProtectThreshold = 1.01 }, wantErr: "protect_threshold"},
		{name: "min healthy 0", edit: func(s *ServiceSettings) { s.MinHealthyRatio = 0 }},
		{name: "min healthy 1", edit: func(s *ServiceSettings) { s.MinHealthyRatio = 1 }},
		{name: "min healthy negative", edit: func(s *ServiceSettings) { s.MinHealthyRatio = -1 }, wantErr: "min_healthy_ratio"},
		{name: "min healthy above 1", edit: func(s *ServiceSettings) { s.MinHealthyRatio = 2 }, wantErr: "min_healthy_ratio"},
		{name: "balancer round_robin", edit: func(s *ServiceSettings) { s.Balancer = "round_robin" }},
		{name: "balancer least_loaded", edit: func(s *ServiceSettings) { s.Balancer = "least_loaded" }},
		{name: "balancer consistent_hash", edit: func(s *ServiceSettings) { s.Balancer = "consistent_hash" }},
		{name: "balancer empty", edit: func(s *ServiceSettings) { s.Balancer = "" }, wantErr: "balancer"},
		{name: "balancer unknown", edit: func(s *ServiceSettings) { s.Balancer = "random" }, wantErr: "balancer \"random\""},
		{name: "balancer wrong case", edit: func(s *ServiceSettings) { s.Balancer = "Round_Robin" }, wantErr: "balancer"},
		{name: "dns ttl 0", edit: func(s *ServiceSettings) { s.DNSTTL = 0 }},
		{name: "dns ttl 24h", edit: func(s *ServiceSettings) { s.DNSTTL = Duration(24 * time.Hour) }},
		{name: "dns ttl negative", edit: func(s *ServiceSettings) { s.DNSTTL = Duration(-time.Second) }, wantErr: "dns_ttl"},
		{name: "dns ttl above 24h", edit: func(s *ServiceSettings) { s.DNSTTL = Duration(24*time.Hour + time.Second) }, wantErr: "dns_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultServiceSettings()
			tt.edit(&s)
			checkInvalid(t, s.Validate(), tt.wantErr)
		})
	}
}

func TestDefaultServiceSettings(t *testing.T) {
	want := ServiceSettings{MinHealthyRatio: 0.5, Balancer: "weighted_random", DNSTTL: Duration(5 * time.Second)}
	if got := DefaultServiceSettings(); got != want {
		t.Fatalf("DefaultServiceSettings() = %+v, want %+v", got, want)
	}
}

func TestNamespaceSettingsValidate(t *testing.T) {
	tests := []struct {
		name    string
		set     NamespaceSettings
		wantErr string
	}{
		{name: "empty", set: NamespaceSettings{}},
		{name: "fallback", set: NamespaceSettings{Fallback: "prod"}},
		{name: "fallback default", set: NamespaceSettings{Fallback: DefaultNamespace}},
		{name: "description of 1024", set: NamespaceSettings{Description: strings.Repeat("d", 1024)}},
		{name: "fallback to itself", set: NamespaceSettings{Fallback: "staging"}, wantErr: "fall back to itself"},
		{name: "fallback not a name", set: NamespaceSettings{Fallback: "Prod"}, wantErr: "fallback"},
		{name: "fallback too long", set: NamespaceSettings{Fallback: strings.Repeat("p", 64)}, wantErr: "fallback"},
		{name: "description of 1025", set: NamespaceSettings{Description: strings.Repeat("d", 1025)}, wantErr: "description"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkInvalid(t, tt.set.Validate("staging"), tt.wantErr)
		})
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Duration
		wantErr bool
	}{
		{name: "string", in: `"5s"`, want: Duration(5 * time.Second)},
		{name: "compound string", in: `"1m30s"`, want: Duration(90 * time.Second)},
		{name: "negative string", in: `"-2ms"`, want: Duration(-2 * time.Millisecond)},
		{name: "whole seconds", in: `5`, want: Duration(5 * time.Second)},
		{name: "fractional seconds", in: `1.5`, want: Duration(1500 * time.Millisecond)},
		{name: "zero", in: `0`, want: 0},
		{name: "bad string", in: `"five"`, wantErr: true},
		{name: "unit-less string", in: `"5"`, wantErr: true},
		{name: "bool", in: `true`, wantErr: true},
		{name: "object", in: `{}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("decoded %s as %v, want an error", tt.in, time.Duration(d))
				}
				return
			}
			if err != nil {
				t.Fatalf("decode %s: %v", tt.in, err)
			}
			if d != tt.want {
				t.Fatalf("decode %s = %v, want %v", tt.in, time.Duration(d), time.Duration(tt.want))
			}
			// Encoding writes the Go duration string, which decodes back.
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%q", time.Duration(tt.want).String()); string(b) != want {
				t.Fatalf("encode = %s, want %s", b, want)
			}
			var back Duration
			if err := json.Unmarshal(b, &back); err != nil || back != d {
				t.Fatalf("round trip of %s = %v, %v", b, time.Duration(back), err)
			}
		})
	}
}
