package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// registerResult is one row of the register benchmark.
type registerResult struct {
	loadResult
	Servers  int `json:"servers"`
	Services int `json:"services"`
	// Target is "registry", or the bare PUT handler ("bare, in-process",
	// "bare, own process") measured at the same level right after it.
	Target string `json:"target,omitempty"`
	// Ratio is the registry's registrations/s over this bare handler's.
	Ratio float64 `json:"registry_over_bare,omitempty"`
}

func runRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c        commonFlags
		servers  string
		clients  string
		duration time.Duration
		count    int64
		services int
		pids     string
		client   string
		bareKind string
	)
	fs := newFlagSet("register", stderr)
	c.register(fs)
	fs.StringVar(&servers, "servers", "http://127.0.0.1:7410,http://127.0.0.1:7420,http://127.0.0.1:7430", "comma-separated servers; clients send writes to them round-robin")
	fs.StringVar(&clients, "clients", "1,16,64", "comma-separated concurrency levels, one row each")
	fs.DurationVar(&duration, "duration", 10*time.Second, "length of each level")
	fs.Int64Var(&count, "count", 500000, "at most this many registrations per level (0: no cap)")
	fs.IntVar(&services, "services", 8, "registrations are spread over this many services")
	fs.StringVar(&client, "http-client", "fasthttp", "HTTP client of the load generator: fasthttp (the lighter, so the servers get the CPU it saves) or net/http")
	fs.StringVar(&pids, "pids", "", "comma-separated pids of the server processes, to report their CPU per registration (Linux)")
	fs.StringVar(&bareKind, "bare", "none", "baseline after each level: none, in-process (a net/http PUT handler in this process answering the registry's own answer bytes), child (the same in a process of its own) or both")
	if err := fs.Parse(args); err != nil {
		return err
	}
	inProc, child := bareKind == "in-process" || bareKind == "both", bareKind == "child" || bareKind == "both"
	if !inProc && !child && bareKind != "none" {
		return fmt.Errorf("--bare %q: use none, in-process, child or both", bareKind)
	}
	if err := c.validate(); err != nil {
		return err
	}
	srvs, err := parseServers("servers", servers)
	if err != nil {
		return err
	}
	levels, err := parseInts("clients", clients)
	if err != nil {
		return err
	}
	pidList, err := parsePids("pids", pids)
	if err != nil {
		return err
	}
	if duration <= 0 || services <= 0 || count < 0 {
		return fmt.Errorf("--duration and --services must be positive, --count not negative")
	}
	// Ids are distinct across runs, so every registration is a real change
	// (re-registering an identical instance is a no-op in the store).
	run := strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond)%(36*36*36*36*36), 36)
	var bares []bareTarget
	if inProc || child {
		var stop func()
		bares, stop, err = startBarePut(ctx, srvs[0], c.namespace, c.timeout, inProc, child)
		if err != nil {
			return err
		}
		defer stop()
	}
	var rows []registerResult
	for _, n := range levels {
		pc, err := newPutClient(client, n, c.timeout)
		if err != nil {
			return err
		}
		progress(&c, stderr, "register: %d clients over %d servers for %v", n, len(srvs), duration)
		r := registerLevel(ctx, registerSpec{
			servers: srvs, namespace: c.namespace, services: services, clients: n,
			duration: duration, count: count, prefix: fmt.Sprintf("r%s-c%d", run, n), pids: pidList, client: pc,
		})
		if len(bares) > 0 {
			r.Target = "registry"
		}
		rows = append(rows, r)
		for _, b := range bares {
			if ctx.Err() != nil {
				break
			}
			progress(&c, stderr, "register: %d clients, %s", n, b.name)
			br := registerLevel(ctx, registerSpec{
				servers: []string{b.url}, namespace: c.namespace, services: services, clients: n,
				duration: duration, count: count, prefix: fmt.Sprintf("r%s-c%d", run, n), pids: b.pids, client: pc,
			})
			br.Target = b.name
			if br.OpsPerSec > 0 {
				br.Ratio = r.OpsPerSec / br.OpsPerSec
			}
			rows = append(rows, br)
		}
		pc.close()
		if ctx.Err() != nil {
			break
		}
	}
	if c.output == "json" {
		return writeJSON(stdout, map[string]any{"bench": "register", "servers": srvs, "duration": duration.String(), "results": rows})
	}
	t := registerTable(rows, srvs)
	return t.write(stdout)
}

type registerSpec struct {
	servers   []string
	namespace string
	services  int
	clients   int
	duration  time.Duration
	count     int64
	prefix    string // instance ids are prefix-seq
	pids      []int  // server processes, for CPU per registration
	client    putClient
}

func registerLevel(ctx context.Context, s registerSpec) registerResult {
	base := make([]string, s.services)
	for i := range base {
		base[i] = fmt.Sprintf("/v1/namespaces/%s/services/bench-%d/instances/", url.PathEscape(s.namespace), i)
	}
	r := runLoad(ctx, loadSpec{
		clients: s.clients, duration: s.duration, count: s.count, pids: s.pids,
		op: func(ctx context.Context, w int, seq int64) error {
			server := s.servers[(int64(w)+seq)%int64(len(s.servers))]
			path := base[seq%int64(s.services)] + s.prefix + "-" + strconv.FormatInt(seq, 10)
			// Persistent instances: nobody heartbeats them, and ephemeral
			// ones would turn unhealthy and expire during later runs.
			body := fmt.Sprintf(`{"address":"10.%d.%d.%d","port":%d,"ephemeral":false}`, (seq>>16)&255, (seq>>8)&255, seq&255, 1+seq%65535)
			return s.client.put(ctx, server+path, []byte(body))
		},
	})
	return registerResult{loadResult: r, Servers: len(s.servers), Services: s.services}
}

func registerTable(rows []registerResult, servers []string) *table {
	t := &table{
		title:  fmt.Sprintf("Registrations (PUT …/instances/{id}, new ids, round-robin over %d servers)", len(servers)),
		header: []string{"clients", "registrations", "registrations/s", "p50 ms", "p99 ms", "max ms", "errors", "server CPU µs/op", "server cores", "bench CPU µs/op"},
	}
	withBare := len(rows) > 0 && rows[0].Target != ""
	if withBare {
		t.header = append(t.header, "target", "registry / this")
		t.notes = append(t.notes, "registry / this: the registry's registrations/s over a bare net/http PUT handler's at the same level, measured right after it with the same client; the bare handler reads the body and answers the registry's own answer bytes.")
	}
	var errs []string
	for _, r := range rows {
		cells := []string{strconv.Itoa(r.Clients), thousands(r.Ops), fmtRate(r.OpsPerSec), fmtMs(r.P50ms), fmtMs(r.P99ms), fmtMs(r.MaxMs), thousands(r.Errors),
			fmtCPU(r.loadResult), fmtCores(r.loadResult), fmtSelfCPU(r.loadResult)}
		if withBare {
			ratio := ""
			if r.Ratio > 0 {
				ratio = fmt.Sprintf("**%.3f**", r.Ratio)
			}
			cells = append(cells, r.Target, ratio)
		}
		t.add(cells...)
		if r.FirstError != "" {
			errs = append(errs, fmt.Sprintf("%d clients: %s", r.Clients, r.FirstError))
		}
	}
	if len(errs) > 0 {
		t.notes = append(t.notes, "First error per level: "+strings.Join(errs, "; "))
	}
	return t
}

// bareTarget is a bare PUT handler to measure after the registry.
type bareTarget struct {
	name   string
	url    string
	pids   []int
	answer childAnswer // what it answers every PUT with
}

// startBarePut registers one instance on server to learn the registry's
// answer (its bytes and headers), then starts bare PUT handlers that
// answer every PUT with them.
func startBarePut(ctx context.Context, server, namespace string, timeout time.Duration, inProc, child bool) ([]bareTarget, func(), error) {
	hc := newHTTPClient(1, timeout)
	u := server + "/v1/namespaces/" + url.PathEscape(namespace) + "/services/bench-bare/instances/probe"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader(`{"address":"10.0.0.1","port":8080,"ephemeral":false}`))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("--bare: a registration to learn the answer: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("--bare: a registration to learn the answer: status %d, %v: %s", resp.StatusCode, err, body)
	}
	b := newBareServer()
	b.set(barePutKey, body, resp.Header)
	answer := childAnswer{Body: body, Header: resp.Header}
	var targets []bareTarget
	var stops []func()
	stopAll := func() {
		for _, s := range stops {
			s()
		}
	}
	if inProc {
		u, stop, err := b.start()
		if err != nil {
			return nil, nil, err
		}
		stops = append(stops, stop)
		targets = append(targets, bareTarget{name: "bare, in-process", url: u, answer: answer})
	}
	if child {
		u, pid, stop, err := startChildBare(b)
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		stops = append(stops, stop)
		targets = append(targets, bareTarget{name: "bare, own process", url: u, pids: []int{pid}, answer: answer})
	}
	return targets, stopAll, nil
}
