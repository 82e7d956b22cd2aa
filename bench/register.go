package bench

import (
	"context"
	"fmt"
	"io"
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
	if err := fs.Parse(args); err != nil {
		return err
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
		pc.close()
		rows = append(rows, r)
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
	var errs []string
	for _, r := range rows {
		t.add(strconv.Itoa(r.Clients), thousands(r.Ops), fmtRate(r.OpsPerSec), fmtMs(r.P50ms), fmtMs(r.P99ms), fmtMs(r.MaxMs), thousands(r.Errors),
			fmtCPU(r.loadResult), fmtCores(r.loadResult), fmtSelfCPU(r.loadResult))
		if r.FirstError != "" {
			errs = append(errs, fmt.Sprintf("%d clients: %s", r.Clients, r.FirstError))
		}
	}
	if len(errs) > 0 {
		t.notes = append(t.notes, "First error per level: "+strings.Join(errs, "; "))
	}
	return t
}
