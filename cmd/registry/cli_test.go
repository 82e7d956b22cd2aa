package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Every command of the binary, run as an operator would against a real
// `registry dev`: output in table and JSON, exit codes (0 done, 1 failed,
// 2 usage), and the messages of bad input. The steps run in order: each
// sees what the ones before changed.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds and runs the registry binary")
	}
	bin := buildRegistry(t)
	addr := freeAddr(t)
	p := startProc(t, bin, nil, "dev", "--http-addr", addr)
	waitHealthy(t, p, addr, 10*time.Second)
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	emptyToken := write("empty-token", "\n")
	goodConfig := write("good.json", `{"output": "json", "node-id": "a flag of registry server, left to it"}`)
	badConfig := write("bad.json", `{"outptu": "json"}`)
	garbage := write("garbage.snap", "not a backup at all")
	backup := filepath.Join(dir, "catalog.snap")

	// has is a check that stdout holds every string.
	has := func(want ...string) func(t *testing.T, out string) {
		return func(t *testing.T, out string) {
			t.Helper()
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		}
	}
	// js decodes stdout as JSON and checks it.
	js := func(check func(t *testing.T, v map[string]any)) func(t *testing.T, out string) {
		return func(t *testing.T, out string) {
			t.Helper()
			var v map[string]any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("stdout is not a JSON object: %v\n%s", err, out)
			}
			check(t, v)
		}
	}
	field := func(k string, want any) func(t *testing.T, v map[string]any) {
		return func(t *testing.T, v map[string]any) {
			t.Helper()
			if v[k] != want {
				t.Errorf("%s = %#v, want %#v (in %v)", k, v[k], want, v)
			}
		}
	}
	count := func(k string, want int) func(t *testing.T, v map[string]any) {
		return func(t *testing.T, v map[string]any) {
			t.Helper()
			if l, _ := v[k].([]any); len(l) != want {
				t.Errorf("%s holds %d, want %d (in %v)", k, len(l), want, v)
			}
		}
	}

	steps := []struct {
		args   []string
		code   int
		stdout func(t *testing.T, out string)
		stderr string // a substring; "" for none expected
	}{
		// The binary itself.
		{[]string{"version"}, 0, has("registry ", "go1."), ""},
		{[]string{"--version"}, 0, has("registry ", "go1."), ""},
		{[]string{"version", "--output", "json"}, 0, js(func(t *testing.T, v map[string]any) {
			if v["go"] == nil || v["version"] == nil {
				t.Errorf("version JSON without go or version: %v", v)
			}
		}), ""},
		{[]string{"completion", "bash"}, 0, has("bash completion"), ""},
		{[]string{"bogus"}, 2, nil, `unknown command "bogus" for "registry"`},
		{[]string{"lookp", "web"}, 2, nil, "Did you mean this?"},
		{[]string{"token"}, 2, nil, "registry token needs a subcommand: create, list"},
		{[]string{"namespace", "bogus"}, 2, nil, `unknown command "bogus" for "registry namespace"`},
		{[]string{"lookup", "web", "--outptu", "json"}, 2, nil, "unknown flag: --outptu"},
		{[]string{"lookup", "web", "extra"}, 2, nil, "give exactly one SERVICE, got 2 arguments (web extra)"},
		// --help runs nothing: not even a server that is not there.
		{[]string{"keyring", "install", "--help", "--server", "http://127.0.0.1:1"}, 0, has("Usage:"), ""},
		{[]string{"namespace", "create", "--help"}, 0, has("--fallback"), ""},

		// Namespaces.
		{[]string{"namespace", "create", "staging", "--description", "pre-production", "--fallback", "default"}, 0,
			has("NAME", "staging", "default", "pre-production"), ""},
		{[]string{"namespace", "create", "staging"}, 1, nil, `namespace "staging" exists already`},
		{[]string{"namespace", "get", "staging", "--output", "json"}, 0, js(field("fallback", "default")), ""},
		{[]string{"namespace", "update", "staging", "--fallback", "-", "--output", "json"}, 0, js(field("fallback", nil)), ""},
		{[]string{"namespace", "update", "staging"}, 2, nil, "give --fallback or --description"},
		{[]string{"namespace", "update", "nowhere", "--description", "x"}, 1, nil, "namespace_not_found"},
		{[]string{"namespace", "list"}, 0, has("default", "staging"), ""},

		// Instances and services; flags after the arguments.
		{[]string{"register", "--service", "web", "--id", "w1", "--address", "10.0.0.1", "--port", "80", "--persistent"}, 0, has("w1", "10.0.0.1:80"), ""},
		{[]string{"lookup", "web", "--output", "json"}, 0, js(count("instances", 1)), ""},
		{[]string{"lookup", "nosuch"}, 1, nil, `service_not_found: service "nosuch" in namespace "default"`},
		{[]string{"service", "set", "web", "--balancer", "round_robin", "--min-healthy-ratio", "0.7", "--output", "json"}, 0,
			js(func(t *testing.T, v map[string]any) {
				field("balancer", "round_robin")(t, v)
				field("min_healthy_ratio", 0.7)(t, v)
			}), ""},
		{[]string{"service", "set", "web"}, 2, nil, "give at least one of --protect-threshold"},
		{[]string{"service", "set", "web", "--balancer", "nope"}, 1, nil, "400"},
		{[]string{"service", "get", "web"}, 0, has("BALANCER", "round_robin", "0.7"), ""},
		{[]string{"service", "list"}, 0, has("SERVICE", "web"), ""},
		{[]string{"instance", "disable", "web", "w1", "--output", "json"}, 0, js(field("enabled", false)), ""},
		{[]string{"instance", "enable", "web", "w1", "--output", "json"}, 0, js(field("enabled", true)), ""},
		{[]string{"instance", "weight", "web", "w1", "50", "--output", "json"}, 0, js(field("weight", 50.0)), ""},
		{[]string{"instance", "weight", "web", "w1", "99999"}, 2, nil, "want a whole number from 0 to 10000"},
		{[]string{"instance", "maintenance", "web", "w1", "on", "--output", "json"}, 0, js(field("enabled", false)), ""},
		{[]string{"instance", "maintenance", "web", "w1", "off", "--output", "json"}, 0, js(field("enabled", true)), ""},
		{[]string{"instance", "maintenance", "web", "w1", "maybe"}, 2, nil, `"maybe": say on or off`},
		{[]string{"instance", "disable", "web"}, 2, nil, "takes SERVICE and ID, got 1 arguments"},
		{[]string{"instance", "list", "web"}, 0, has("w1", "50"), ""},
		{[]string{"info"}, 0, has("leader", "dev", "instances", "1 (1 healthy)"), ""},
		{[]string{"info", "--output", "json"}, 0, js(func(t *testing.T, v map[string]any) {
			if c, _ := v["catalog"].(map[string]any); c["instances"] != 1.0 || c["namespaces"] != 2.0 {
				t.Errorf("info catalog %v, want 1 instance in 2 namespaces", v["catalog"])
			}
		}), ""},
		{[]string{"watch", "web", "--max-answers", "1", "--output", "json"}, 0, js(count("instances", 1)), ""},
		{[]string{"watch", "nosuch", "--max-answers", "1"}, 1, nil, "service_not_found"},

		// Tokens from a file, flags from a config file.
		{[]string{"lookup", "web", "--token-file", emptyToken}, 2, nil, "is empty"},
		{[]string{"lookup", "web", "--config", goodConfig}, 0, js(count("instances", 1)), ""},
		{[]string{"lookup", "web", "--config", badConfig}, 2, nil, `"outptu" is no flag of any registry command`},

		// Backups.
		{[]string{"snapshot", "save", backup}, 0, nil, ""},
		{[]string{"snapshot", "inspect", backup, "--output", "json"}, 0, js(func(t *testing.T, v map[string]any) {
			if v["instances"] != 1.0 || v["namespaces"] != 2.0 || v["services"] != 1.0 {
				t.Errorf("inspect %v, want 2 namespaces, 1 service, 1 instance", v)
			}
		}), ""},
		{[]string{"snapshot", "inspect", backup}, 0, has("checksum", "ok", "instances"), ""},
		{[]string{"snapshot", "inspect", garbage}, 1, nil, "not a Switchyard backup"},
		{[]string{"snapshot", "inspect"}, 2, nil, "give the backup FILE"},

		// The end of it.
		{[]string{"deregister", "--service", "web", "--id", "w1"}, 0, has("deregistered w1"), ""},
		{[]string{"namespace", "delete", "staging"}, 0, has("deleted namespace staging"), ""},
		{[]string{"namespace", "get", "staging"}, 1, nil, "namespace_not_found"},
		{[]string{"lookup", "web", "--server", "http://127.0.0.1:1"}, 1, nil, "cannot reach a server at http://127.0.0.1:1"},
	}
	t.Setenv("REGISTRY_SERVER", "http://"+addr) // the commands find the server as an operator's shell would tell them
	for _, s := range steps {
		name := strings.Join(s.args, " ")
		r := cli(t, bin, s.args...)
		if r.code != s.code {
			t.Errorf("registry %s: exit %d, want %d\nstdout: %s\nstderr: %s", name, r.code, s.code, r.stdout, r.stderr)
			continue
		}
		if s.stderr != "" && !strings.Contains(r.stderr, s.stderr) {
			t.Errorf("registry %s: stderr %q, want it to say %q", name, r.stderr, s.stderr)
		}
		if s.code != 0 && strings.Contains(r.stderr, "store: ") {
			t.Errorf("registry %s: a Go package prefix in %q", name, r.stderr)
		}
		if s.stdout != nil {
			t.Run(name, func(t *testing.T) { s.stdout(t, r.stdout) })
		}
	}

	// watch prints each change as it happens.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cliOK(t, bin, &struct{}{}, "register", "--server", addr, "--output", "json", "--service", "api", "--id", "a1", "--address", "10.0.1.1", "--port", "80", "--persistent")
	w := exec.CommandContext(ctx, bin, "watch", "api", "--server", addr, "--output", "json", "--max-answers", "2")
	out, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var werr bytes.Buffer
	w.Stderr = &werr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatalf("watch printed nothing: %s", werr.String())
	}
	cliOK(t, bin, &struct{}{}, "register", "--server", addr, "--output", "json", "--service", "api", "--id", "a2", "--address", "10.0.1.2", "--port", "80", "--persistent")
	if !lines.Scan() {
		t.Fatalf("watch printed no second answer after a registration: %s", werr.String())
	}
	var second struct {
		Instances []struct{ ID string } `json:"instances"`
	}
	if err := json.Unmarshal(lines.Bytes(), &second); err != nil || len(second.Instances) != 2 {
		t.Fatalf("watch's second answer %s (%v), want both instances", lines.Bytes(), err)
	}
	if err := w.Wait(); err != nil {
		t.Fatalf("watch --max-answers 2 ended with %v, want exit 0: %s", err, werr.String())
	}
}

// The operator's other commands, against real servers: certificates, a
// token's life with access control on, a backup restored into another
// server, and a stopped server recovered as the only voter of its data.
func TestCLIOperations(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds and runs the registry binary")
	}
	bin := buildRegistry(t)
	dir := t.TempDir()
	run := func(code int, stdoutHas, stderrHas string, args ...string) cliResult {
		t.Helper()
		r := cli(t, bin, args...)
		if r.code != code || !strings.Contains(r.stdout, stdoutHas) || !strings.Contains(r.stderr, stderrHas) {
			t.Fatalf("registry %s: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stdout to hold %q and stderr %q",
				strings.Join(args, " "), r.code, code, r.stdout, r.stderr, stdoutHas, stderrHas)
		}
		return r
	}

	// Certificates.
	tls := filepath.Join(dir, "tls")
	if err := os.Mkdir(tls, 0o700); err != nil {
		t.Fatal(err)
	}
	run(0, "ca.pem", "", "tls", "ca", "--out-dir", tls)
	run(0, "n1.pem", "", "tls", "cert", "--ca-dir", tls, "--out-dir", tls, "--name", "n1", "--hosts", "127.0.0.1")
	run(1, "", "exists", "tls", "cert", "--ca-dir", tls, "--out-dir", tls, "--name", "n1") // never overwritten
	run(2, "", "--name is required", "tls", "cert", "--ca-dir", tls, "--out-dir", tls)
	run(2, "", `--role "bogus"`, "tls", "cert", "--ca-dir", tls, "--out-dir", tls, "--name", "x", "--role", "bogus")
	if fi, err := os.Stat(filepath.Join(tls, "n1-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("n1-key.pem: %v %v, want readable by its owner only", fi, err)
	}

	// A token's life, with access control on.
	addr := freeAddr(t)
	p := startProc(t, bin, nil, "dev", "--acl", "--http-addr", addr)
	waitHealthy(t, p, addr, 10*time.Second)
	var admin string
	waitFor(t, 10*time.Second, "the bootstrap admin token on stdout", func() bool {
		m := regexp.MustCompile(`secret:\s+(swy_\S+)`).FindStringSubmatch(p.stdout.String())
		if m != nil {
			admin = m[1]
		}
		return m != nil
	})
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := "http://" + addr
	run(0, "admin:*", "", "token", "self", "--server", srv, "--token-file", tokenFile)
	run(1, "", "401", "token", "self", "--server", srv) // no token
	var tok struct {
		AccessorID string   `json:"accessor_id"`
		Rules      []string `json:"rules"`
	}
	cliOK(t, bin, &tok, "token", "create", "--server", srv, "--token-file", tokenFile, "--rule", "read:default", "--output", "json")
	cliOK(t, bin, &tok, "token", "update", tok.AccessorID, "--server", srv, "--token-file", tokenFile, "--rule", "read:*", "--output", "json")
	if len(tok.Rules) != 1 || tok.Rules[0] != "read:*" {
		t.Errorf("token update answered rules %v, want [read:*]", tok.Rules)
	}
	run(0, tok.AccessorID, "", "token", "list", "--server", srv, "--token-file", tokenFile)
	run(0, "", "", "token", "revoke", tok.AccessorID, "--server", srv, "--token-file", tokenFile)
	run(1, "", "token_not_found", "token", "revoke", tok.AccessorID, "--server", srv, "--token-file", tokenFile)

	// A backup of one server restored into another.
	run(0, "w1", "", "register", "--server", srv, "--token-file", tokenFile, "--service", "web", "--id", "w1", "--address", "10.0.0.1", "--port", "80", "--persistent")
	backup := filepath.Join(dir, "backup.snap")
	run(0, "", "", "snapshot", "save", backup, "--server", srv, "--token-file", tokenFile)
	addr2 := freeAddr(t)
	p2 := startProc(t, bin, nil, "dev", "--http-addr", addr2)
	waitHealthy(t, p2, addr2, 10*time.Second)
	run(1, "", "not a Switchyard backup", "snapshot", "restore", filepath.Join(dir, "admin-token"), "--server", addr2)
	run(0, "", "", "snapshot", "restore", backup, "--server", addr2)
	run(0, "10.0.0.1:80", "", "lookup", "web", "--server", addr2)

	// A stopped server made the only voter of its data again.
	data := filepath.Join(dir, "data")
	addr3 := freeAddr(t)
	raftAddr := freeAddr(t)
	p3 := startProc(t, bin, nil, "dev", "--http-addr", addr3, "--data-dir", data, "--raft-addr", raftAddr)
	waitHealthy(t, p3, addr3, 10*time.Second)
	run(0, "", "", "register", "--server", addr3, "--service", "api", "--id", "a1", "--address", "10.0.0.2", "--port", "80", "--persistent")
	if err := p3.stop(t); err != nil {
		t.Fatalf("registry dev exited with %v after SIGTERM", err)
	}
	run(2, "", "give --node-id, --data-dir and --raft-addr", "recover", "--data-dir", data)
	run(0, "recovered: dev is now the only voter", "", "recover", "--node-id", "dev", "--data-dir", data, "--raft-addr", raftAddr)
	p4 := startProc(t, bin, nil, "dev", "--http-addr", addr3, "--data-dir", data, "--raft-addr", raftAddr)
	waitHealthy(t, p4, addr3, 20*time.Second)
	run(0, "10.0.0.2:80", "", "lookup", "api", "--server", addr3)
}
