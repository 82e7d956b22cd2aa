package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// localCluster is a cluster of `registry server` processes on loopback that
// `registry-bench scale` starts itself: the scale run adds a server to time
// a snapshot's install and restarts one to time a restart, which a cluster
// started by a script cannot offer it. Data lives under root; every server
// runs with --insecure-dev (no access control, no gossip key: nothing but
// this machine reaches loopback) and without DNS or the console.
type localCluster struct {
	bin, root string
	servers   []*localServer
	seq       int
	extra     []string // flags every server gets
}

type localServer struct {
	name, role string
	dir        string
	url        string // http://127.0.0.1:port
	admin      string // its admin listener: /metrics, /debug/pprof
	gossip     string
	args       []string
	cmd        *exec.Cmd
	done       chan struct{}
}

// pid is the server's process id, 0 once it stopped.
func (s *localServer) pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	select {
	case <-s.done:
		return 0
	default:
		return s.cmd.Process.Pid
	}
}

// freePort asks the kernel for a free loopback TCP port. Another process
// may take it before the server binds it; the server then fails to start,
// which the caller reports.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startLocalCluster starts voters servers of role voter (bootstrapped
// together with --bootstrap-expect) and readers read servers, and waits
// until every one of them is ready.
func startLocalCluster(ctx context.Context, bin, root string, voters, readers int, extra ...string) (*localCluster, error) {
	if voters < 1 {
		return nil, errors.New("a cluster needs at least one voter")
	}
	c := &localCluster{bin: bin, root: root, extra: extra}
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	for range voters {
		if _, err := c.add("voter", voters); err != nil {
			return nil, err
		}
	}
	for range readers {
		if _, err := c.add("read", 0); err != nil {
			return nil, err
		}
	}
	for _, s := range c.servers {
		if err := c.waitReady(ctx, s, 60*time.Second); err != nil {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

// add starts one more server; expect is --bootstrap-expect (0: join the
// running cluster).
func (c *localCluster) add(role string, expect int) (*localServer, error) {
	c.seq++
	name := fmt.Sprintf("s%d", c.seq)
	if role == "read" {
		name = fmt.Sprintf("r%d", c.seq)
	}
	var ports [4]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("a port for %s: %w", name, err)
		}
		ports[i] = p
	}
	s := &localServer{
		name: name, role: role, dir: filepath.Join(c.root, name),
		url:    fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		gossip: fmt.Sprintf("127.0.0.1:%d", ports[2]),
		admin:  fmt.Sprintf("http://127.0.0.1:%d", ports[3]),
	}
	var join []string
	for _, o := range c.servers {
		join = append(join, o.gossip)
	}
	s.args = []string{"server", "--node-id", name, "--data-dir", s.dir,
		"--http-addr", strings.TrimPrefix(s.url, "http://"), "--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--gossip-addr", s.gossip, "--dns-addr", "", "--xds-addr", "", "--insecure-dev", "--no-ui", "--role", role,
		"--voters", "3", "--log-level", "warn", "--admin-addr", strings.TrimPrefix(s.admin, "http://")}
	s.args = append(s.args, c.extra...)
	if expect > 0 {
		s.args = append(s.args, "--bootstrap-expect", strconv.Itoa(expect))
	}
	if len(join) > 0 {
		s.args = append(s.args, "--join", strings.Join(join, ","))
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	c.servers = append(c.servers, s)
	return s, c.start(s)
}

// start runs s's process (again, after a stop: its data directory holds
// its state, so it needs no --join or --bootstrap-expect to find its way).
func (c *localCluster) start(s *localServer) error {
	f, err := os.OpenFile(filepath.Join(c.root, s.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, s.args...)
	cmd.Stdout, cmd.Stderr = f, f
	// A process group of its own: a ^C to the bench reaches the bench,
	// which stops the servers in order. Not a session of its own (see
	// scripts/cluster.sh: autogroup scheduling).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(s.done) }()
	return nil
}

// stop ends s: SIGTERM (the server leaves the cluster), then SIGKILL after
// 20 s; kill sends SIGKILL at once (a crash: it comes back as the member it
// was).
func (c *localCluster) stop(s *localServer, kill bool) {
	if s.pid() == 0 {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (c *localCluster) close() {
	for i := len(c.servers) - 1; i >= 0; i-- {
		c.stop(c.servers[i], false)
	}
}

// urls lists the servers' base URLs, of the given role ("" for all).
func (c *localCluster) urls(role string) []string {
	var out []string
	for _, s := range c.servers {
		if role == "" || s.role == role {
			out = append(out, s.url)
		}
	}
	return out
}

// pids lists the running servers' process ids.
func (c *localCluster) pids() []int {
	var out []int
	for _, s := range c.servers {
		if p := s.pid(); p > 0 {
			out = append(out, p)
		}
	}
	return out
}

// waitReady polls s's /v1/health until it answers 200 (it has caught up
// with a leader), s exits, or timeout passes.
func (c *localCluster) waitReady(ctx context.Context, s *localServer, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/v1/health", nil)
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("server %s exited before it was ready: %s", s.name, c.tail(s))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server %s not ready after %v: %s", s.name, timeout, c.tail(s))
		}
	}
}

// leader returns the server that leads, asking the first running one.
func (c *localCluster) leader(ctx context.Context) (*localServer, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, s := range c.servers {
		if s.pid() == 0 {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/v1/health", nil)
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		var h struct {
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for _, l := range c.servers {
			if l.name == h.Leader {
				return l, nil
			}
		}
	}
	return nil, errors.New("no server names a leader")
}

// tail is the last lines of s's log, for an error message.
func (c *localCluster) tail(s *localServer) string {
	f, err := os.Open(filepath.Join(c.root, s.name+".log"))
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}

// scrape reads a server's /metrics into a map from series (name and
// labels, as written) to value.
func scrape(ctx context.Context, hc *http.Client, server string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: HTTP %d", server, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// rss is a process's resident set in bytes (Linux), 0 when unknown.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
