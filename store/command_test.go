package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleCommands returns one fully populated command of every type, keyed by
// a name for t.Run and for fuzz seed files.
func sampleCommands() map[string]*Command {
	when := time.Date(2024, 5, 1, 12, 30, 45, 123456789, time.UTC)
	in := &Instance{
		Address: "10.0.0.1", Port: 8080, Weight: 250, Enabled: true,
		Locality: Locality{Region: "eu", Datacenter: "eu-west-1", Unit: "rack-3"},
		Tags:     []string{"v2", "canary"},
		Metadata: map[string]string{"version": "2.1.0", "owner": "team-web"},
		Check: Check{Type: CheckHTTP, Target: "http://10.0.0.1:8080/health",
			Interval: Duration(10 * time.Second), Timeout: Duration(1500 * time.Millisecond),
			DeregisterAfter: Duration(time.Hour), FailuresBeforeUnhealthy: 3, SuccessesBeforeHealthy: 2},
	}
	eph := &Instance{Address: "api.internal", Port: 9090, Ephemeral: true,
		Check: Check{Type: CheckTTL, TTL: Duration(15 * time.Second)}}
	return map[string]*Command{
		"register": {Type: CommandRegister, Time: when, Namespace: "prod", Service: "web", ID: "web-1", Instance: in},
		"register-ephemeral": {Type: CommandRegister, Time: when, Namespace: DefaultNamespace, Service: "api",
			ID: "api-1", Instance: eph},
		"deregister": {Type: CommandDeregister, Time: when, Namespace: "prod", Service: "web", ID: "web-1"},
		"put-service": {Type: CommandPutService, Time: when, Namespace: "prod", Service: "web",
			ServiceSettings: &ServiceSettings{ProtectThreshold: 0.25, MinHealthyRatio: 0.75, Balancer: "least_loaded",
				DNSTTL: Duration(30 * time.Second)}},
		"delete-service": {Type: CommandDeleteService, Time: when, Namespace: "prod", Service: "web"},
		"put-namespace": {Type: CommandPutNamespace, Time: when, Namespace: "staging",
			NamespaceSettings: &NamespaceSettings{Fallback: "prod", Description: "pre-production \"quoted\" ✓"}},
		"delete-namespace": {Type: CommandDeleteNamespace, Time: when, Namespace: "staging"},
		"put-server": {Type: CommandPutServer, Time: when,
			Server: &Server{ID: "s1", RaftAddr: "10.9.0.1:7000", HTTPAddr: "10.9.0.1:8500", Locality: Locality{Region: "eu"}}},
		"remove-server": {Type: CommandRemoveServer, Time: when, ID: "s1"},
	}
}

func mustEncode(t testing.TB, c *Command) []byte {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatalf("encode %s: %v", c.Type, err)
	}
	return b
}

func TestCommandRoundTrip(t *testing.T) {
	seen := map[CommandType]bool{}
	for name, c := range sampleCommands() {
		t.Run(name, func(t *testing.T) {
			b := mustEncode(t, c)
			if CommandType(b[0]) != c.Type {
				t.Fatalf("first byte = %d, want the type %d", b[0], c.Type)
			}
			if !json.Valid(b[1:]) {
				t.Fatalf("body is not JSON: %s", b[1:])
			}
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("round trip\n got %s\nwant %s", dump(got), dump(c))
			}
		})
		seen[c.Type] = true
	}
	for _, ct := range []CommandType{CommandRegister, CommandDeregister, CommandPutService, CommandDeleteService,
		CommandPutNamespace, CommandDeleteNamespace, CommandPutServer, CommandRemoveServer} {
		if !seen[ct] {
			t.Errorf("no sample of %s", ct)
		}
	}
}

func TestCommandDecodedAppliesLikeOriginal(t *testing.T) {
	// The leader applies what it encoded; followers apply what they decode.
	// Both must end with the same catalog.
	order := []string{"put-namespace-prod", "put-namespace", "register", "register-ephemeral", "put-service",
		"put-server", "deregister", "delete-service", "remove-server", "delete-namespace"}
	cmds := sampleCommands()
	cmds["put-namespace-prod"] = &Command{Type: CommandPutNamespace, Namespace: "prod", NamespaceSettings: &NamespaceSettings{}}
	leader, follower := New(), New()
	for k, name := range order {
		idx := uint64(k + 1)
		c := cmds[name]
		_, errL := leader.Apply(idx, c)
		dc, err := DecodeCommand(mustEncode(t, c))
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		_, errF := follower.Apply(idx, dc)
		if (errL == nil) != (errF == nil) {
			t.Fatalf("%s: leader error %v, follower error %v", name, errL, errF)
		}
		assertState(t, name, captureState(t, follower), captureState(t, leader))
	}
}

func TestCommandTypeString(t *testing.T) {
	tests := map[CommandType]string{
		CommandRegister:        "register",
		CommandDeregister:      "deregister",
		CommandPutService:      "put-service",
		CommandDeleteService:   "delete-service",
		CommandPutNamespace:    "put-namespace",
		CommandDeleteNamespace: "delete-namespace",
		CommandPutServer:       "put-server",
		CommandRemoveServer:    "remove-server",
		0:                      "command(0)",
		42:                     "command(42)",
		IgnorableFlag | 1:      "command(129)",
	}
	for ct, want := range tests {
		if got := ct.String(); got != want {
			t.Errorf("CommandType(%d).String() = %q, want %q", uint8(ct), got, want)
		}
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	body := func(t CommandType, s string) []byte { return append([]byte{byte(t)}, s...) }
	tests := []struct {
		name    string
		in      []byte
		wantErr error  // nil with wantMsg "" means (nil, nil)
		wantMsg string // a piece of the error message
	}{
		{name: "nil", in: nil, wantErr: ErrUnknownCommand, wantMsg: "empty entry"},
		{name: "empty", in: []byte{}, wantErr: ErrUnknownCommand, wantMsg: "empty entry"},
		{name: "type zero", in: body(0, `{}`), wantErr: ErrUnknownCommand, wantMsg: "command(0)"},
		{name: "type sixteen", in: body(16, `{}`), wantErr: ErrUnknownCommand, wantMsg: "command(16)"},
		{name: "patch-instance without a change", in: body(15, `{}`), wantErr: ErrInvalid, wantMsg: "without a change"},
		{name: "put-token without a token", in: body(12, `{}`), wantErr: ErrInvalid, wantMsg: "without a token"},
		{name: "set-self-preservation without a mode", in: body(11, `{}`), wantErr: ErrInvalid, wantMsg: "without a mode"},
		{name: "set-health without changes", in: body(10, `{}`), wantErr: ErrInvalid, wantMsg: "without changes"},
		{name: "batch is not a single command", in: body(9, `{}`), wantErr: ErrUnknownCommand, wantMsg: "batch"},
		{name: "type 0x7f", in: body(0x7f, `{}`), wantErr: ErrUnknownCommand},
		{name: "ignorable 0x80", in: body(IgnorableFlag, `{}`)},
		{name: "ignorable 0x81 with junk body", in: body(IgnorableFlag|1, `not json at all`)},
		{name: "ignorable 0xff without body", in: []byte{0xff}},
		{name: "known type, no body", in: []byte{byte(CommandDeregister)}, wantMsg: "deregister"},
		{name: "malformed json", in: body(CommandDeregister, `{"ns":`), wantMsg: "deregister"},
		{name: "not an object", in: body(CommandDeleteService, `[1]`), wantMsg: "delete-service"},
		{name: "wrong field type", in: body(CommandRegister, `{"instance":{"port":"80"}}`), wantMsg: "register"},
		{name: "bad time", in: body(CommandDeregister, `{"time":"yesterday"}`), wantMsg: "deregister"},
		{name: "bad duration", in: body(CommandRegister, `{"instance":{"check":{"ttl":"soon"}}}`), wantMsg: "invalid duration"},
		{name: "trailing garbage", in: body(CommandDeregister, `{} x`), wantMsg: "deregister"},
		{name: "register without instance", in: body(CommandRegister, `{"ns":"default","svc":"web","id":"w"}`),
			wantErr: ErrInvalid, wantMsg: "register without instance"},
		{name: "register with null instance", in: body(CommandRegister, `{"instance":null}`),
			wantErr: ErrInvalid, wantMsg: "register without instance"},
		{name: "put-service without settings", in: body(CommandPutService, `{"ns":"default","svc":"web"}`),
			wantErr: ErrInvalid, wantMsg: "put-service without settings"},
		{name: "put-namespace without settings", in: body(CommandPutNamespace, `{"ns":"prod"}`),
			wantErr: ErrInvalid, wantMsg: "put-namespace without settings"},
		{name: "put-server without server", in: body(CommandPutServer, `{}`),
			wantErr: ErrInvalid, wantMsg: "put-server without server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeCommand(tt.in)
			if tt.wantErr == nil && tt.wantMsg == "" {
				if c != nil || err != nil {
					t.Fatalf("DecodeCommand = %+v, %v, want nil, nil for an ignorable entry", c, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeCommand = %+v, want an error", c)
			}
			if c != nil {
				t.Errorf("DecodeCommand returned a command with its error: %+v", c)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && errors.Is(err, ErrUnknownCommand) {
				t.Errorf("a malformed body of a known type reported as an unknown type: %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestDecodeCommandMinimal(t *testing.T) {
	// Commands without pointer fields decode from an empty object.
	for _, ct := range []CommandType{CommandDeregister, CommandDeleteService, CommandDeleteNamespace, CommandRemoveServer} {
		c, err := DecodeCommand([]byte{byte(ct), '{', '}'})
		if err != nil || c == nil || !reflect.DeepEqual(*c, Command{Type: ct}) {
			t.Errorf("DecodeCommand(%s {}) = %+v, %v", ct, c, err)
		}
	}
}

func TestDecodeCommandDurationAsSeconds(t *testing.T) {
	// Older writers may have put a duration as a number of seconds.
	b := append([]byte{byte(CommandRegister)}, `{"instance":{"check":{"ttl":2.5,"interval":"3s"}}}`...)
	c, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Instance.Check.TTL != Duration(2500*time.Millisecond) || c.Instance.Check.Interval != Duration(3*time.Second) {
		t.Fatalf("check = %+v", c.Instance.Check)
	}
}

func TestEncodeOmitsEmptyFields(t *testing.T) {
	b := mustEncode(t, &Command{Type: CommandRemoveServer, ID: "s1"})
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b[1:], &fields); err != nil {
		t.Fatal(err)
	}
	for k := range fields {
		if k != "time" && k != "id" {
			t.Errorf("remove-server carries field %q: %s", k, b[1:])
		}
	}
}
