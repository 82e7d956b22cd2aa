package main

// System tests: build the registry binary once and run it as real processes,
// the way a user does. Every server listens on a port picked free by the
// test; every process is killed by t.Cleanup.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard-io/switchyard/internal/testtool"
)

func TestSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds and runs the registry binary")
	}
	bin := buildRegistry(t)
	t.Run("dev", func(t *testing.T) { t.Parallel(); testDev(t, bin) })
	t.Run("dev-data-dir", func(t *testing.T) { t.Parallel(); testDevDataDir(t, bin) })
	t.Run("server-config", func(t *testing.T) { t.Parallel(); testServerConfig(t, bin) })
	t.Run("readme-tour", func(t *testing.T) { t.Parallel(); testReadmeTour(t, bin) })
	t.Run("lookup-cache-dir", func(t *testing.T) { t.Parallel(); testLookupCacheDir(t, bin) })
	t.Run("keyring", func(t *testing.T) { t.Parallel(); testKeyring(t, bin) })
	t.Run("keyring-stranger", func(t *testing.T) { t.Parallel(); testKeyringStranger(t, bin) })
	t.Run("gc-tuning", func(t *testing.T) { t.Parallel(); testGCTuning(t, bin) })
	t.Run("browser-guard", func(t *testing.T) { t.Parallel(); testBrowserGuard(t, bin) })
}

// testGCTuning: by default the collector gets a headroom above the small
// live heap (GOGC above 100, shown by /metrics); GOGC in the environment
// and --gc-headroom-mib 0 leave Go's own setting.
func testGCTuning(t *testing.T, bin string) {
	gogc := func(addr string) int {
		t.Helper()
		resp, err := httpClient.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatalf("GET /metrics: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for line := range strings.Lines(string(body)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go_gc_gogc_percent "); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("go_gc_gogc_percent %q: %v", v, err)
				}
				return n
			}
		}
		t.Fatalf("no go_gc_gogc_percent in /metrics (%d %d bytes)", resp.StatusCode, len(body))
		return 0
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want func(int) bool
		what string
	}{
		{"dev", nil, []string{"dev"}, func(p int) bool { return p > 100 }, "above 100"},
		{"dev GOGC=150", []string{"GOGC=150"}, []string{"dev"}, func(p int) bool { return p == 150 }, "150"},
		{"server --gc-headroom-mib 0", nil, []string{"server", "--node-id", "gc", "--data-dir", t.TempDir(), "--raft-addr", freeAddr(t),
			"--bootstrap", "--insecure-dev", "--gc-headroom-mib", "0"}, func(p int) bool { return p == 100 }, "100"},
	} {
		addr := freeAddr(t)
		p := startProc(t, bin, tc.env, append(tc.args, "--http-addr", addr)...)
		waitHealthy(t, p, addr, 20*time.Second)
		if got := gogc(addr); !tc.want(got) {
			t.Errorf("%s: go_gc_gogc_percent %d, want %s", tc.name, got, tc.what)
		}
		if err := p.stop(t); err != nil {
			t.Fatal(err)
		}
	}
}

// testLookupCacheDir: `registry lookup --cache-dir D` answers live while a
// server does, and from its disk snapshot, saying how old, once none does.
func testLookupCacheDir(t *testing.T, bin string) {
	addr := freeAddr(t)
	p := startProc(t, bin, nil, "dev", "--http-addr", addr)
	waitHealthy(t, p, addr, 20*time.Second)
	cache := filepath.Join(t.TempDir(), "cache")
	r := cli(t, bin, "register", "--server", addr, "--service", "orders", "--id", "o-1", "--address", "10.0.0.1", "--port", "8080", "--persistent")
	if r.code != 0 {
		t.Fatalf("register: %s", r.stderr)
	}
	var live struct {
		Source    string `json:"source"`
		Instances []struct {
			ID string `json:"id"`
		} `json:"instances"`
	}
	cliOK(t, bin, &live, "lookup", "--server", addr, "--cache-dir", cache, "--output", "json", "orders")
	if live.Source != "live" || len(live.Instances) != 1 || live.Instances[0].ID != "o-1" {
		t.Fatalf("live lookup through the SDK: %+v", live)
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	r = cli(t, bin, "lookup", "--server", addr, "--cache-dir", cache, "orders")
	if r.code != 0 || !strings.Contains(r.stdout, "o-1") || !strings.Contains(r.stdout, "(answered from snapshot, ") {
		t.Fatalf("lookup with every server down: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// Without the cache there is nothing to answer from.
	if r := cli(t, bin, "lookup", "--server", addr, "--cache-dir", t.TempDir(), "orders"); r.code == 0 {
		t.Fatalf("lookup without server or snapshot succeeded: %s", r.stdout)
	}
}

// buildRegistry builds this package into a temporary directory.
func buildRegistry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "registry")
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the registry: %v", err)
	}
	cmd := exec.Command(gocmd, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// --- processes --------------------------------------------------------------

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running registry server.
type proc struct {
	t              *testing.T
	name           string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	err            error // set when done is closed
}

// startProc starts bin with args; env entries are added to the test's
// environment. The process is killed at cleanup, and its output is logged
// if the test failed.
func startProc(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: strings.Join(args, " "), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	// Gossip and DNS on free ports, so that parallel tests (and a registry
	// someone runs on this machine) do not collide on the defaults.
	p.cmd.Env = append(append(os.Environ(), "REGISTRY_GOSSIP_ADDR=127.0.0.1:0", "REGISTRY_DNS_ADDR=127.0.0.1:0", "REGISTRY_XDS_ADDR=127.0.0.1:0"), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start registry %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("registry %s\n--- stdout ---\n%s--- stderr ---\n%s", p.name, p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the process to exit by itself.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM registry %s: %v", p.name, err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(15 * time.Second):
		t.Fatalf("registry %s still running 15s after SIGTERM", p.name)
		return nil
	}
}

// cliResult is the outcome of one client command.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs a client command to completion.
func cli(t *testing.T, bin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("registry %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// cliOK runs a client command that must succeed and decodes its JSON output.
func cliOK(t *testing.T, bin string, out any, args ...string) {
	t.Helper()
	r := cli(t, bin, args...)
	if r.code != 0 {
		t.Fatalf("registry %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), out); err != nil {
		t.Fatalf("registry %s: output is not the expected JSON: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

// --- waiting ---------------------------------------------------------------

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond until it holds, failing the test at the deadline.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: still waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func healthy(addr string) bool {
	resp, err := httpClient.Get("http://" + addr + "/v1/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// waitHealthy waits until the server at addr answers /v1/health with 200,
// failing early if p exits.
func waitHealthy(t *testing.T, p *proc, addr string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "GET http://"+addr+"/v1/health to answer 200", func() bool {
		if p.exited() {
			t.Fatalf("registry %s exited early: %v\n%s", p.name, p.err, p.stderr.String())
		}
		return healthy(addr)
	})
}

// getJSON decodes the 200 answer of GET url into out.
func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

// registerChecked registers a persistent instance whose check probes
// target every interval, and returns the status and body of the answer.
func registerChecked(t *testing.T, addr, token, id, target, interval string) (int, string) {
	t.Helper()
	body := `{"address": "10.0.0.1", "port": 80, "ephemeral": false, "check": {"type": "tcp", "target": ` +
		strconv.Quote(target) + `, "interval": ` + strconv.Quote(interval) + `}}`
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/namespaces/default/services/db/instances/"+id, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Switchyard-Token", token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// --- answers ---------------------------------------------------------------

type instanceJSON struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	Address   string `json:"address"`
	Port      int    `json:"port"`
	Weight    int    `json:"weight"`
	Enabled   bool   `json:"enabled"`
	Ephemeral bool   `json:"ephemeral"`
	Healthy   bool   `json:"healthy"`
}

type lookupJSON struct {
	Namespace string          `json:"namespace"`
	Service   string          `json:"service"`
	Instances []*instanceJSON `json:"instances"`
}

func (l lookupJSON) ids() []string {
	out := []string{}
	for _, in := range l.Instances {
		out = append(out, in.ID)
	}
	return out
}

type memberJSON struct {
	ID       string `json:"id"`
	Role     string `json:"role"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
}

var devBanner = regexp.MustCompile(`Switchyard dev server ready: http://(\S+), dns \S+, xds (127\.0\.0\.1:\d+) \(data in (.+?)(, removed at exit)?; access control (?:on|OFF: anyone who reaches it may change the catalog)\)\n`)

// waitBanner waits for the dev server's ready line and returns its HTTP
// address, its data directory and whether it says the data is temporary.
func waitBanner(t *testing.T, p *proc) (addr, dataDir string, temporary bool) {
	t.Helper()
	m := bannerOf(t, p)
	return m[1], m[3], m[4] != ""
}

// bannerOf waits for the dev server's ready line and returns its parts.
func bannerOf(t *testing.T, p *proc) []string {
	t.Helper()
	var m []string
	waitFor(t, 5*time.Second, "the dev server's ready banner on stdout", func() bool {
		m = devBanner.FindStringSubmatch(p.stdout.String())
		return m != nil
	})
	return m
}

// xdsAddresses asks the xDS server at addr for cluster's endpoints over
// ADS, once, and returns their addresses.
func xdsAddresses(t *testing.T, addr, cluster string) []string {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{cluster}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatalf("xDS at %s: %v", addr, err)
	}
	var out []string
	for _, a := range r.GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if err := a.UnmarshalTo(&cla); err != nil {
			t.Fatal(err)
		}
		for _, l := range cla.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				sa := e.GetEndpoint().GetAddress().GetSocketAddress()
				out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
			}
		}
	}
	return out
}

// --- a. registry dev ---------------------------------------------------------

func testDev(t *testing.T, bin string) {
	addr := freeAddr(t)
	server := "http://" + addr
	began := time.Now()
	p := startProc(t, bin, nil, "dev", "--http-addr", addr)
	waitHealthy(t, p, addr, 10*time.Second)
	if took := time.Since(began); took >= 2*time.Second {
		t.Errorf("registry dev took %s to answer /v1/health with 200; want under 2s", took.Round(time.Millisecond))
	} else {
		t.Logf("registry dev ready in %s", took.Round(time.Millisecond))
	}

	banner := bannerOf(t, p)
	bannerAddr, xdsAddr, dataDir, temporary := banner[1], banner[2], banner[3], banner[4] != ""
	if bannerAddr != addr {
		t.Errorf("banner says http://%s, want http://%s", bannerAddr, addr)
	}
	if !temporary {
		t.Errorf("banner does not say the data is removed at exit:\n%s", p.stdout.String())
	}
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		t.Fatalf("data dir %q from the banner: %v", dataDir, err)
	}

	// Register, look up, list members, deregister: all through the CLI.
	var in instanceJSON
	cliOK(t, bin, &in, "register", "--server", server, "--service", "web", "--id", "web-1",
		"--address", "10.0.0.1", "--port", "8080", "--output", "json")
	want := instanceJSON{ID: "web-1", Namespace: "default", Service: "web", Address: "10.0.0.1", Port: 8080,
		Weight: 100, Enabled: true, Ephemeral: true, Healthy: true}
	if in != want {
		t.Errorf("register answered %+v, want %+v", in, want)
	}
	// registry dev serves xDS too: the instance is an endpoint of web.default.
	if got := xdsAddresses(t, xdsAddr, "web.default"); !slices.Equal(got, []string{"10.0.0.1:8080"}) {
		t.Errorf("xDS endpoints of web.default from registry dev: %v, want [10.0.0.1:8080]", got)
	}

	var lk lookupJSON
	cliOK(t, bin, &lk, "lookup", "--server", server, "--output", "json", "web")
	if len(lk.Instances) != 1 || *lk.Instances[0] != want {
		t.Errorf("lookup web: %+v, want exactly %+v", lk, want)
	}
	// The dev server's instances run on the developer's machine: its
	// checks may probe loopback; metadata stays refused.
	if code, body := registerChecked(t, addr, "", "db-1", "127.0.0.1:1", "1s"); code != http.StatusOK {
		t.Errorf("dev: check on loopback: %d %s, want 200", code, body)
	}
	if code, body := registerChecked(t, addr, "", "db-2", "169.254.169.254:80", "1s"); code != http.StatusBadRequest || !strings.Contains(body, "cloud-metadata") {
		t.Errorf("dev: check on the metadata address: %d %s, want 400 naming cloud-metadata", code, body)
	}

	var ms []memberJSON
	cliOK(t, bin, &ms, "members", "--server", server, "--output", "json")
	if len(ms) != 1 || ms[0].Role != "leader" || ms[0].ID != "dev" || ms[0].HTTPAddr != addr {
		t.Errorf("members: %+v, want one leader \"dev\" at %s", ms, addr)
	}

	// The table output names the instance too.
	if r := cli(t, bin, "lookup", "--server", server, "web"); r.code != 0 || !strings.Contains(r.stdout, "10.0.0.1:8080") {
		t.Errorf("lookup web (table): exit %d, stdout:\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	var dereg map[string]string
	cliOK(t, bin, &dereg, "deregister", "--server", server, "--service", "web", "--id", "web-1", "--output", "json")
	if dereg["deregistered"] != "web-1" {
		t.Errorf("deregister answered %v", dereg)
	}
	lk = lookupJSON{}
	cliOK(t, bin, &lk, "lookup", "--server", server, "--output", "json", "web")
	if len(lk.Instances) != 0 {
		t.Errorf("after deregister, lookup web lists %v", lk.ids())
	}

	// Mistakes exit non-zero with one readable line on stderr.
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"port zero", []string{"register", "--server", server, "--service", "web", "--id", "web-1", "--address", "10.0.0.1", "--port", "0"}, "--port"},
		{"port too large", []string{"register", "--server", server, "--service", "web", "--id", "web-1", "--address", "10.0.0.1", "--port", "70000"}, "port 70000"},
		{"bad service name", []string{"register", "--server", server, "--service", "Web_App", "--id", "web-1", "--address", "10.0.0.1", "--port", "80"}, "Web_App"},
		{"unknown output", []string{"members", "--server", server, "--output", "yaml"}, "--output"},
		{"unknown namespace", []string{"lookup", "--server", server, "--namespace", "nowhere", "web"}, "not found"},
		{"no server", []string{"members", "--server", "http://" + freeAddr(t)}, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, bin, tc.args...)
			if r.code == 0 {
				t.Fatalf("registry %s: exit 0, want an error\nstdout: %s", strings.Join(tc.args, " "), r.stdout)
			}
			msg := strings.TrimSpace(r.stderr)
			if !strings.HasPrefix(msg, "registry: ") || !strings.Contains(msg, tc.want) ||
				strings.Contains(msg, "\n") || strings.Contains(msg, "goroutine") {
				t.Errorf("registry %s: exit %d, stderr %q; want one line \"registry: …%s…\"",
					strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
			}
		})
	}
	// None of the refused registrations changed anything.
	lk = lookupJSON{}
	cliOK(t, bin, &lk, "lookup", "--server", server, "--output", "json", "web")
	if len(lk.Instances) != 0 {
		t.Errorf("after refused registrations, lookup web lists %v", lk.ids())
	}

	// SIGTERM: a clean exit that removes the temporary data.
	if err := p.stop(t); err != nil {
		t.Errorf("registry dev exited with %v after SIGTERM, want 0", err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary data dir %s still exists after exit (stat: %v)", dataDir, err)
	}
}

// --- b. registry dev --data-dir ---------------------------------------------

func testDevDataDir(t *testing.T, bin string) {
	dir := filepath.Join(t.TempDir(), "dev-data") // does not exist yet
	addr := freeAddr(t)
	p := startProc(t, bin, nil, "dev", "--data-dir", dir, "--http-addr", addr)
	waitHealthy(t, p, addr, 10*time.Second)
	_, bannerDir, temporary := waitBanner(t, p)
	if bannerDir != dir || temporary {
		t.Errorf("banner: data in %q (temporary %v), want %q, kept", bannerDir, temporary, dir)
	}
	var in instanceJSON
	cliOK(t, bin, &in, "register", "--server", "http://"+addr, "--service", "db", "--id", "db-1",
		"--address", "10.0.0.9", "--port", "5432", "--persistent", "--output", "json")
	if err := p.stop(t); err != nil {
		t.Errorf("registry dev exited with %v after SIGTERM, want 0", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("data dir given with --data-dir is gone after exit: %v", err)
	}

	addr = freeAddr(t)
	p = startProc(t, bin, nil, "dev", "--data-dir", dir, "--http-addr", addr)
	waitHealthy(t, p, addr, 10*time.Second)
	var lk lookupJSON
	cliOK(t, bin, &lk, "lookup", "--server", "http://"+addr, "--output", "json", "db")
	if len(lk.Instances) != 1 || lk.Instances[0].ID != "db-1" || lk.Instances[0].Address != "10.0.0.9" || lk.Instances[0].Port != 5432 {
		t.Errorf("after a restart on the same data dir, lookup db: %+v, want db-1 at 10.0.0.9:5432", lk)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("registry dev exited with %v after SIGTERM, want 0", err)
	}
}

// --- c. registry server from environment and config file -------------------

func testServerConfig(t *testing.T, bin string) {
	tmp := t.TempDir()
	httpAddr, raftAddr := freeAddr(t), freeAddr(t)
	cfg := map[string]any{
		"node-id":   "from-file", // REGISTRY_NODE_ID wins over the file
		"http-addr": httpAddr,
		"raft-addr": raftAddr,
		"bootstrap": true,
		// a key from `registry keygen` (a server refuses to start without one)
		"gossip-key": "q0BiWlzlfFHj8vsmc3EdD8YN6zS+MqC0oWxdXoLY09I=",
		// the log store setting reaches a new data directory
		"raft-log-store": "wal",
	}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(tmp, "registry.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(tmp, "data")
	p := startProc(t, bin, []string{"REGISTRY_NODE_ID=from-env", "REGISTRY_DATA_DIR=" + dataDir},
		"server", "--config", cfgPath)
	waitHealthy(t, p, httpAddr, 20*time.Second)
	waitFor(t, 5*time.Second, "the server's ready line on stdout", func() bool {
		return strings.Contains(p.stdout.String(), "Switchyard server from-env ready: http://"+httpAddr)
	})

	var ms []memberJSON
	cliOK(t, bin, &ms, "members", "--server", httpAddr, "--output", "json")
	if len(ms) != 1 || ms[0].ID != "from-env" || ms[0].Role != "leader" || ms[0].HTTPAddr != httpAddr || ms[0].RaftAddr != raftAddr {
		t.Errorf("members: %+v, want one leader \"from-env\" at http %s, raft %s", ms, httpAddr, raftAddr)
	}
	if entries, err := os.ReadDir(dataDir); err != nil || len(entries) == 0 {
		t.Errorf("REGISTRY_DATA_DIR %s holds nothing (err %v)", dataDir, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "wal", "wal-meta.db")); err != nil {
		t.Errorf("raft-log-store wal: no WAL in the data directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "raft.db")); err == nil {
		t.Errorf("raft-log-store wal: the data directory holds a bolt log too")
	}
	// A second server on the same data directory is refused at once.
	r := cli(t, bin, "server", "--node-id", "from-env", "--data-dir", dataDir, "--http-addr", freeAddr(t),
		"--raft-addr", freeAddr(t), "--insecure-dev")
	if r.code == 0 || !strings.Contains(r.stderr, "another server uses this data directory") {
		t.Errorf("second server on a data directory in use: exit %d, stderr %s", r.code, r.stderr)
	}
	// An unknown log store is a usage error that names the choices.
	r = cli(t, bin, "server", "--node-id", "x", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t),
		"--raft-addr", freeAddr(t), "--bootstrap", "--insecure-dev", "--raft-log-store", "rocksdb")
	if r.code == 0 || !strings.Contains(r.stderr, `log store "rocksdb": want bolt or wal`) {
		t.Errorf("--raft-log-store rocksdb: exit %d, stderr %s", r.code, r.stderr)
	}
	// registry dev has neither Raft TLS nor --raft-plaintext: its refusal
	// of a reachable Raft address with access control on names neither.
	if r := cli(t, bin, "dev", "--acl", "--http-addr", freeAddr(t), "--raft-addr", "0.0.0.0:0"); r.code == 0 ||
		!strings.Contains(r.stderr, "registry dev has no Raft TLS") || strings.Contains(r.stderr, "--raft-plaintext") {
		t.Errorf("dev --acl --raft-addr 0.0.0.0:0: exit %d, stderr %s", r.code, r.stderr)
	}
	testServerSecure(t, bin, p, httpAddr, raftAddr, dataDir)
}

var bootstrapBanner = regexp.MustCompile(`(?s)Access control bootstrapped\. The admin token, shown this once.*?accessor: ([0-9a-f]{32})\n  secret:   (swy_\S+)\n`)

// testServerSecure: `registry server` starts with access control on. Its
// first start prints the bootstrap admin token once; the CLI needs it.
func testServerSecure(t *testing.T, bin string, p *proc, httpAddr, raftAddr, dataDir string) {
	var m []string
	waitFor(t, 10*time.Second, "the bootstrap token on stdout", func() bool {
		m = bootstrapBanner.FindStringSubmatch(p.stdout.String())
		return m != nil
	})
	secret := m[2]
	reg := []string{"register", "--server", httpAddr, "--service", "web", "--id", "w1", "--address", "10.0.0.1", "--port", "80", "--output", "json"}
	if r := cli(t, bin, reg...); r.code == 0 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "X-Switchyard-Token") {
		t.Errorf("register without a token: exit %d, stderr %q; want a 401 that says how to send a token", r.code, r.stderr)
	}
	var in struct{ ID string }
	cliOK(t, bin, &in, append(reg, "--token", secret)...)
	if in.ID != "w1" {
		t.Errorf("register with the bootstrap token: %+v", in)
	}
	// Through the SDK (--cache-dir), the token goes with the lookup too.
	var viaSDK struct {
		Source    string `json:"source"`
		Instances []struct {
			ID string `json:"id"`
		} `json:"instances"`
	}
	cliOK(t, bin, &viaSDK, "lookup", "--server", httpAddr, "--cache-dir", t.TempDir(), "--token", secret, "--output", "json", "web")
	if viaSDK.Source != "live" || len(viaSDK.Instances) != 1 || viaSDK.Instances[0].ID != "w1" {
		t.Errorf("lookup --cache-dir --token: %+v", viaSDK)
	}
	var tok struct {
		AccessorID string `json:"accessor_id"`
		Secret     string
		Rules      []string
	}
	cliOK(t, bin, &tok, "token", "create", "--server", httpAddr, "--token", secret, "--rule", "read:default", "--description", "reader", "--output", "json")
	if tok.Secret == "" || len(tok.Rules) != 1 || tok.Rules[0] != "read:default" {
		t.Fatalf("token create: %+v", tok)
	}
	var list struct {
		AccessControl bool `json:"access_control"`
		Tokens        []struct {
			AccessorID string `json:"accessor_id"`
			Secret     string
		}
	}
	cliOK(t, bin, &list, "token", "list", "--server", httpAddr, "--token", secret, "--output", "json")
	if !list.AccessControl || len(list.Tokens) != 3 { // bootstrap, reader, anonymous
		t.Errorf("token list: %+v", list)
	}
	for _, x := range list.Tokens {
		if x.Secret != "" {
			t.Errorf("token list shows a secret")
		}
	}
	// The reader may look up, not register; REGISTRY_TOKEN works as --token.
	var lk lookupJSON
	cliOK(t, bin, &lk, "lookup", "--server", httpAddr, "--token", tok.Secret, "--output", "json", "web")
	if r := cli(t, bin, append(reg[:len(reg):len(reg)], "--token", tok.Secret)...); r.code == 0 || !strings.Contains(r.stderr, "403") {
		t.Errorf("register with a read token: exit %d, stderr %q; want 403", r.code, r.stderr)
	}
	// registry server refuses checks aimed at its own loopback, and at
	// intervals under a second.
	if code, body := registerChecked(t, httpAddr, secret, "db-1", "127.0.0.1:1", "1s"); code != http.StatusBadRequest ||
		!strings.Contains(body, `"check_target_denied"`) || !strings.Contains(body, "--check-allow-loopback") {
		t.Errorf("server: check on loopback: %d %s, want 400 check_target_denied naming --check-allow-loopback", code, body)
	}
	if code, body := registerChecked(t, httpAddr, secret, "db-1", "10.0.0.1:80", "500ms"); code != http.StatusBadRequest ||
		!strings.Contains(body, `"check_interval_too_short"`) {
		t.Errorf("server: check every 500ms: %d %s, want 400 check_interval_too_short", code, body)
	}
	if r := cli(t, bin, "token", "revoke", "--server", httpAddr, "--token", secret, tok.AccessorID); r.code != 0 {
		t.Errorf("token revoke: exit %d %s", r.code, r.stderr)
	}
	if r := cli(t, bin, "lookup", "--server", httpAddr, "--token", tok.Secret, "web"); r.code == 0 || !strings.Contains(r.stderr, "401") {
		t.Errorf("lookup with a revoked token: exit %d, stderr %q; want 401", r.code, r.stderr)
	}

	// A restart finds the cluster bootstrapped: no second token.
	if err := p.stop(t); err != nil {
		t.Errorf("registry server exited with %v after SIGTERM, want 0", err)
	}
	p2 := startProc(t, bin, []string{"REGISTRY_CHECK_MIN_INTERVAL=2s"},
		"server", "--node-id", "from-env", "--data-dir", dataDir, "--http-addr", httpAddr, "--raft-addr", raftAddr,
		"--check-allow-loopback", "--check-deny-cidrs", "127.0.0.2/32", "--check-allow-cidrs", "127.0.0.0/30")
	waitHealthy(t, p2, httpAddr, 20*time.Second)
	cliOK(t, bin, &lk, "lookup", "--server", httpAddr, "--token", secret, "--output", "json", "web")
	if code, body := registerChecked(t, httpAddr, secret, "db-1", "127.0.0.1:1", "2s"); code != http.StatusOK {
		t.Errorf("--check-allow-loopback: check on loopback: %d %s, want 200", code, body)
	}
	if code, body := registerChecked(t, httpAddr, secret, "db-2", "127.0.0.2:1", "2s"); code != http.StatusBadRequest || !strings.Contains(body, "check-deny-cidrs") {
		t.Errorf("--check-deny-cidrs: %d %s, want 400 naming check-deny-cidrs", code, body)
	}
	if code, body := registerChecked(t, httpAddr, secret, "db-4", "10.1.2.3:1", "2s"); code != http.StatusBadRequest || !strings.Contains(body, "check-allow-cidrs") {
		t.Errorf("--check-allow-cidrs 127.0.0.0/30: check on 10.1.2.3: %d %s, want 400 naming check-allow-cidrs", code, body)
	}
	if code, body := registerChecked(t, httpAddr, secret, "db-3", "127.0.0.1:1", "1s"); code != http.StatusBadRequest || !strings.Contains(body, "2s") {
		t.Errorf("REGISTRY_CHECK_MIN_INTERVAL=2s: check every 1s: %d %s, want 400 naming the 2s floor", code, body)
	}
	if strings.Contains(p2.stdout.String(), "Access control bootstrapped") {
		t.Errorf("a restarted server printed a bootstrap token again:\n%s", p2.stdout.String())
	}
	if err := p2.stop(t); err != nil {
		t.Errorf("restarted registry server exited with %v after SIGTERM, want 0", err)
	}
	// Placeholder secrets are refused before anything starts.
	bad := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(bad, []byte("changeme-changeme-changeme-changeme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, bin, "server", "--node-id", "x", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t), "--bootstrap", "--bootstrap-token-file", bad); r.code == 0 || !strings.Contains(r.stderr, "placeholder") {
		t.Errorf("server with a placeholder bootstrap secret: exit %d, stderr %q", r.code, r.stderr)
	}
	// Without a gossip key (and no keyring in the data directory) a server
	// is refused, with the way to make one; the restart above needed none,
	// its data directory holds the keyring.
	if r := cli(t, bin, "server", "--node-id", "x", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t), "--bootstrap"); r.code == 0 ||
		!strings.Contains(r.stderr, "registry keygen") || !strings.Contains(r.stderr, "--gossip-key") {
		t.Errorf("server without a gossip key: exit %d, stderr %q", r.code, r.stderr)
	}
	// Raft reachable from other hosts without TLS is refused with access
	// control on: the Raft port would bypass the tokens.
	if r := cli(t, bin, "server", "--node-id", "x", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t), "--raft-addr", "0.0.0.0:0", "--bootstrap"); r.code == 0 || !strings.Contains(r.stderr, "--raft-plaintext") {
		t.Errorf("server with plaintext Raft on 0.0.0.0: exit %d, stderr %q", r.code, r.stderr)
	}
}

// --- d. the README's curl tour ------------------------------------------------

// tourBlocks returns the sh code blocks of the README section "## A curl tour".
func tourBlocks(t *testing.T) []string {
	t.Helper()
	var blocks []string
	found := false
	for _, b := range markdownBlocks(t, filepath.Join("..", "..", "README.md")) {
		if b.section == "A curl tour" {
			found = true
			if b.lang == "sh" {
				blocks = append(blocks, b.body)
			}
		}
	}
	if !found {
		t.Fatal(`README.md has no code blocks in a "## A curl tour" section`)
	}
	return blocks
}

func testReadmeTour(t *testing.T, bin string) {
	testtool.Find(t, "curl", "curl") // the README tour runs it
	blocks := tourBlocks(t)
	if len(blocks) < 4 {
		t.Fatalf("the README's curl tour has %d code blocks; want at least 4", len(blocks))
	}
	addr := freeAddr(t)
	p := startProc(t, bin, nil, "dev", "--http-addr", addr)
	waitHealthy(t, p, addr, 10*time.Second)

	for i, block := range blocks {
		if !strings.Contains(block, "curl -sf") || !strings.Contains(block, "127.0.0.1:7400") {
			t.Errorf("tour block %d does not use `curl -sf` against 127.0.0.1:7400:\n%s", i+1, block)
			continue
		}
		script := "set -euo pipefail\n" + strings.ReplaceAll(block, "127.0.0.1:7400", addr)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		began := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(began)
		cancel()
		if err != nil {
			t.Fatalf("tour block %d failed: %v\n%s\noutput:\n%s", i+1, err, block, out)
		}
		// The blocking query in the tour must be woken by the write after it,
		// not run out its 30 s wait.
		if took > 10*time.Second {
			t.Errorf("tour block %d took %s:\n%s", i+1, took.Round(time.Millisecond), block)
		}
		t.Logf("tour block %d (%s):\n%s", i+1, took.Round(time.Millisecond), out)
	}

	// The tour's writes happened: staging exists, web's settings changed, and
	// both instances are gone again.
	base := "http://" + addr + "/v1/namespaces/staging"
	var ns struct {
		Name     string `json:"name"`
		Fallback string `json:"fallback"`
	}
	getJSON(t, base, &ns)
	if ns.Name != "staging" || ns.Fallback != "default" {
		t.Errorf("after the tour, namespace staging is %+v", ns)
	}
	var svc struct {
		Balancer         string  `json:"balancer"`
		ProtectThreshold float64 `json:"protect_threshold"`
	}
	getJSON(t, base+"/services/web", &svc)
	if svc.Balancer != "round_robin" || svc.ProtectThreshold != 0.5 {
		t.Errorf("after the tour, service web settings are %+v", svc)
	}
	var lk lookupJSON
	getJSON(t, base+"/services/web/instances", &lk)
	if len(lk.Instances) != 0 {
		t.Errorf("after the tour, web still lists %v", lk.ids())
	}
}

// --- e. registry keyring --------------------------------------------------------

// testKeyring: `registry keyring` rotates the gossip key of a running server
// (with access control on, through its admin token), and the rotated key
// is what the server uses after a restart.
func testKeyring(t *testing.T, bin string) {
	tmp := t.TempDir()
	secretFile := filepath.Join(tmp, "token")
	secret := strings.TrimSpace(cli(t, bin, "token", "secret").stdout)
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oldKey := strings.TrimSpace(cli(t, bin, "keygen").stdout)
	newKey := strings.TrimSpace(cli(t, bin, "keygen").stdout)
	httpAddr, raftAddr, gossipAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	dataDir := filepath.Join(tmp, "data")
	args := []string{"server", "--node-id", "k1", "--data-dir", dataDir, "--http-addr", httpAddr, "--raft-addr", raftAddr,
		"--gossip-addr", gossipAddr, "--dns-addr", "", "--bootstrap", "--bootstrap-token-file", secretFile, "--gossip-key", oldKey}
	p := startProc(t, bin, nil, args...)
	waitHealthy(t, p, httpAddr, 20*time.Second)
	waitFor(t, 10*time.Second, "the bootstrap token", func() bool { return strings.Contains(p.stdout.String(), "Access control bootstrapped") })

	type keys []struct {
		Server string
		Keys   []struct {
			Fingerprint string
			Primary     bool
		}
		Error string
	}
	list := func() keys {
		var out keys
		cliOK(t, bin, &out, "keyring", "--server", httpAddr, "--token", secret, "--output", "json", "list")
		return out
	}
	before := list()
	if len(before) != 1 || before[0].Server != "k1" || len(before[0].Keys) != 1 || !before[0].Keys[0].Primary {
		t.Fatalf("keyring list: %+v", before)
	}
	if r := cli(t, bin, "keyring", "--server", httpAddr, "list"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "401") {
		t.Errorf("keyring list without a token: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, bin, "keyring", "--server", httpAddr, "--token", secret, "use", newKey); r.code == 0 || !strings.Contains(r.stdout, "not installed") {
		t.Errorf("keyring use before install: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	for _, step := range [][]string{{"install", newKey}, {"use", newKey}, {"remove", oldKey}} {
		if r := cli(t, bin, append([]string{"keyring", "--server", httpAddr, "--token", secret}, step...)...); r.code != 0 {
			t.Fatalf("keyring %s: exit %d %s %s", step[0], r.code, r.stdout, r.stderr)
		}
	}
	after := list()
	if len(after) != 1 || len(after[0].Keys) != 1 || after[0].Keys[0].Fingerprint == before[0].Keys[0].Fingerprint {
		t.Fatalf("keyring after rotation: %+v (before %+v)", after, before)
	}
	// Restarted with the old --gossip-key, it keeps the rotated key.
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	args = slices.DeleteFunc(args, func(a string) bool { return a == "--bootstrap" })
	p2 := startProc(t, bin, nil, args...)
	waitHealthy(t, p2, httpAddr, 20*time.Second)
	if again := list(); len(again) != 1 || len(again[0].Keys) != 1 || again[0].Keys[0].Fingerprint != after[0].Keys[0].Fingerprint {
		t.Errorf("keyring after a restart with the old flag: %+v, want %+v", again, after)
	}
	if err := p2.stop(t); err != nil {
		t.Errorf("registry server exited with %v after SIGTERM, want 0", err)
	}
}

// testBrowserGuard: registry dev answers only under its own names (a page
// whose name an attacker made resolve to 127.0.0.1 is refused, DNS
// rebinding) and refuses writes a browser sends from another site, while
// curl-like clients and --allowed-hosts names are served. registry server
// with --trusted-proxies counts the clients its proxy forwards for, each
// with its own budget, and loopback stops being exempt.
func testBrowserGuard(t *testing.T, bin string) {
	send := func(method, url, host string, header map[string]string, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	addr := freeAddr(t)
	p := startProc(t, bin, nil, "dev", "--http-addr", addr, "--allowed-hosts", "registry.test")
	waitHealthy(t, p, addr, 20*time.Second)
	_, port, _ := net.SplitHostPort(addr)
	base := "http://" + addr
	if code, body := send("GET", base+"/v1/namespaces", "evil.example:"+port, nil, ""); code != http.StatusMisdirectedRequest ||
		!strings.Contains(body, `"code":"host_not_allowed"`) || !strings.Contains(body, "--allowed-hosts") {
		t.Errorf("Host evil.example: %d %s", code, body)
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "registry.test"} {
		if code, body := send("GET", base+"/v1/namespaces", host, nil, ""); code != http.StatusOK {
			t.Errorf("Host %s: %d %s", host, code, body)
		}
	}
	ns := base + "/v1/namespaces/guarded"
	if code, body := send("PUT", ns, "", map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}, `{}`); code != http.StatusForbidden ||
		!strings.Contains(body, `"code":"cross_site"`) {
		t.Errorf("PUT from another origin: %d %s", code, body)
	}
	if code, body := send("PUT", ns, "", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, `{}`); code != http.StatusForbidden {
		t.Errorf("text/plain PUT from another site: %d %s", code, body)
	}
	if code, body := send("PUT", ns, "", map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}, `{}`); code != http.StatusOK {
		t.Errorf("PUT as the console sends it: %d %s", code, body)
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}

	addr = freeAddr(t)
	p = startProc(t, bin, nil, "server", "--node-id", "px", "--data-dir", t.TempDir(), "--raft-addr", freeAddr(t), "--bootstrap", "--insecure-dev",
		"--http-addr", addr, "--trusted-proxies", "127.0.0.1", "--limit-requests-per-client", "0.5", "--limit-burst", "2")
	waitHealthy(t, p, addr, 20*time.Second)
	// spend sends requests as the client xff ("": loopback itself) until
	// one is refused, and returns how many passed.
	spend := func(xff string) int {
		t.Helper()
		for i := range 20 {
			h := map[string]string{}
			if xff != "" {
				h["X-Forwarded-For"] = xff
			}
			code, body := send("GET", "http://"+addr+"/v1/namespaces", "", h, "")
			if code == http.StatusTooManyRequests {
				return i
			}
			if code != http.StatusOK {
				t.Fatalf("%s: %d %s", xff, code, body)
			}
		}
		t.Fatalf("client %q: 20 requests passed a limit of 0.5 a second", xff)
		return 0
	}
	// waitHealthy's requests came from loopback: its budget may be gone
	// already; either way it runs out.
	spend("")
	for _, client := range []string{"2001:db8:5:5::1", "198.51.100.7"} {
		if n := spend(client); n < 2 || n > 3 {
			t.Errorf("client %s behind the trusted proxy: %d passed, want its own burst of 2", client, n)
		}
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
}
