package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// lookupResult is one row of the lookup benchmark: the registry and the
// bare handler(s) measured the same way, in alternating rounds.
type lookupResult struct {
	Instances int        `json:"instances"`
	Clients   int        `json:"clients"`
	Bytes     int64      `json:"bytes"`
	Registry  loadResult `json:"registry"`
	// Bare is the in-process bare handler; BareChild, when measured, the
	// same handler in a process of its own.
	Bare      *loadResult `json:"bare,omitempty"`
	BareChild *loadResult `json:"bare_child,omitempty"`
	// Ratio is registry lookups/s over bare (in-process) lookups/s;
	// RatioChild over the bare handler in its own process.
	Ratio      float64 `json:"ratio,omitempty"`
	RatioChild float64 `json:"ratio_child,omitempty"`
}

func runLookup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c         commonFlags
		server    string
		instances string
		clients   string
		bareKind  string
		duration  time.Duration
		warmup    time.Duration
		rounds    int
		count     int64
		pids      string
	)
	fs := newFlagSet("lookup", stderr)
	c.register(fs)
	fs.StringVar(&server, "server", "http://127.0.0.1:7400", "registry server")
	fs.StringVar(&instances, "instances", "10,1000", "comma-separated service sizes, one service each")
	fs.StringVar(&clients, "clients", "16,64", "comma-separated concurrency levels")
	fs.StringVar(&bareKind, "bare", "in-process", "baseline: in-process (a net/http server in this process), child (the same in a process of its own) or both")
	fs.DurationVar(&duration, "duration", 10*time.Second, "measured time per target (registry, each bare) and row")
	fs.DurationVar(&warmup, "warmup", 500*time.Millisecond, "unmeasured run before each target's first round (opens connections)")
	fs.IntVar(&rounds, "rounds", 4, "split each measurement into this many rounds alternating between the targets, so drifting background load hits them alike")
	fs.Int64Var(&count, "count", 2000000, "at most this many lookups per target and row (0: no cap)")
	fs.StringVar(&pids, "pids", "", "pid of the registry process, to report its CPU per lookup (Linux; the bare child's is known)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	srvs, err := parseServers("server", server)
	if err != nil {
		return err
	}
	if len(srvs) != 1 {
		return fmt.Errorf("--server: give one server")
	}
	sizes, err := parseInts("instances", instances)
	if err != nil {
		return err
	}
	levels, err := parseInts("clients", clients)
	if err != nil {
		return err
	}
	if duration <= 0 || warmup < 0 || count < 0 || rounds <= 0 {
		return fmt.Errorf("--duration and --rounds must be positive, --warmup and --count not negative")
	}
	pidList, err := parsePids("pids", pids)
	if err != nil {
		return err
	}
	inProc, child := bareKind == "in-process" || bareKind == "both", bareKind == "child" || bareKind == "both"
	if !inProc && !child {
		return fmt.Errorf("--bare %q: use in-process, child or both", bareKind)
	}

	var rows []lookupResult
	for _, n := range sizes {
		svc := fmt.Sprintf("lookup-%d", n)
		path := fmt.Sprintf("/v1/namespaces/%s/services/%s/instances", url.PathEscape(c.namespace), svc)
		progress(&c, stderr, "lookup: registering %d instances in %s", n, svc)
		if err := populate(ctx, srvs[0], c.namespace, svc, n, c.timeout); err != nil {
			return fmt.Errorf("registering %d instances: %w", n, err)
		}
		body, hdr, err := fetchOnce(ctx, srvs[0]+path, n, c.timeout)
		if err != nil {
			return err
		}
		// The bare handler serves the bytes and headers the registry
		// answered: same request, same answer, no registry.
		bare := newBareServer()
		bare.set(path, body, hdr)
		targets := []lookupTarget{{name: "registry", url: srvs[0] + path, pids: pidList}}
		if inProc {
			u, stop, err := bare.start()
			if err != nil {
				return err
			}
			defer stop()
			targets = append(targets, lookupTarget{name: "bare", url: u + path})
		}
		if child {
			u, pid, stop, err := startChildBare(bare)
			if err != nil {
				return err
			}
			defer stop()
			var cp []int
			if len(pidList) > 0 {
				cp = []int{pid}
			}
			targets = append(targets, lookupTarget{name: "bare-child", url: u + path, pids: cp})
		}
		for _, k := range levels {
			row := lookupResult{Instances: n, Clients: k, Bytes: int64(len(body))}
			progress(&c, stderr, "lookup: %d instances (%s), %d clients, %d targets × %v in %d rounds", n, fmtBytes(row.Bytes), k, len(targets), duration, rounds)
			res := measureAlternating(ctx, targets, k, warmup, duration, rounds, count, int64(len(body)), c.timeout)
			row.Registry = res[0]
			for i, t := range targets[1:] {
				r := res[i+1]
				ratio := 0.0
				if r.OpsPerSec > 0 {
					ratio = row.Registry.OpsPerSec / r.OpsPerSec
				}
				switch t.name {
				case "bare":
					row.Bare, row.Ratio = &r, ratio
				case "bare-child":
					row.BareChild, row.RatioChild = &r, ratio
				}
			}
			rows = append(rows, row)
			if ctx.Err() != nil {
				break
			}
		}
	}
	if c.output == "json" {
		return writeJSON(stdout, map[string]any{"bench": "lookup", "server": srvs[0], "duration": duration.String(), "rounds": rounds, "results": rows})
	}
	return lookupTable(rows).write(stdout)
}

type lookupTarget struct {
	name, url string
	pids      []int // server processes whose CPU is measured
}

// measureAlternating measures GETs of every target at k clients: rounds
// rounds of duration/rounds each, the targets taking turns (in a rotating
// order), so that a burst of load from elsewhere on the machine does not
// land on one target only. Each target keeps its connections across rounds.
func measureAlternating(ctx context.Context, targets []lookupTarget, k int, warmup, duration time.Duration, rounds int, count, wantBytes int64, timeout time.Duration) []loadResult {
	ms := make([]measurement, len(targets))
	ops := make([]func(context.Context, int, int64) error, len(targets))
	for i, t := range targets {
		hc := newHTTPClient(k, timeout)
		defer hc.CloseIdleConnections()
		target := t.url
		ops[i] = func(ctx context.Context, _ int, _ int64) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
			if err != nil {
				return err
			}
			n, _, err := do(hc, req)
			if err != nil {
				return err
			}
			if n != wantBytes {
				return fmt.Errorf("answer of %d bytes, expected %d (the service changed during the run?)", n, wantBytes)
			}
			return nil
		}
		if warmup > 0 {
			runLoadRaw(ctx, loadSpec{clients: k, duration: warmup, count: count, op: ops[i]})
		}
	}
	per := duration / time.Duration(rounds)
	perCount := int64(0)
	if count > 0 {
		perCount = max(1, count/int64(rounds))
	}
	for r := 0; r < rounds && ctx.Err() == nil; r++ {
		for j := range targets {
			i := (r + j) % len(targets)
			ms[i].add(runLoadRaw(ctx, loadSpec{clients: k, duration: per, count: perCount, op: ops[i], pids: targets[i].pids}))
		}
	}
	out := make([]loadResult, len(targets))
	for i := range ms {
		out[i] = ms[i].result()
	}
	return out
}

// populate registers instances i-00000 … i-(n-1) in svc. Each size has its
// own service, and registering an identical instance again changes nothing,
// so a second run against the same server finds the same answer.
func populate(ctx context.Context, server, ns, svc string, n int, timeout time.Duration) error {
	const workers = 16
	hc := newHTTPClient(workers, timeout)
	defer hc.CloseIdleConnections()
	base := fmt.Sprintf("%s/v1/namespaces/%s/services/%s/instances", server, url.PathEscape(ns), url.PathEscape(svc))
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				body := instanceBody(int(i), `"v1"`)
				req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/i-%05d", base, i), strings.NewReader(body))
				if err == nil {
					req.Header.Set("Content-Type", "application/json")
					_, _, err = do(hc, req)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// instanceBody is the registration of instance i as populate makes it,
// with tags (a JSON list's inside): a persistent instance in region
// eu-west, datacenter dc1, one of four units.
func instanceBody(i int, tags string) string {
	return fmt.Sprintf(`{"address":"10.1.%d.%d","port":8080,"locality":{"region":"eu-west","datacenter":"dc1","unit":"u%d"},"tags":[%s],"ephemeral":false}`,
		i/250, 1+i%250, i%4, tags)
}

// fetchOnce reads the answer the benchmark will request over and over, and
// checks it lists n instances.
func fetchOnce(ctx context.Context, target string, n int, timeout time.Duration) ([]byte, http.Header, error) {
	hc := newHTTPClient(1, timeout)
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: HTTP %d: %s", target, resp.StatusCode, bytes.TrimSpace(body))
	}
	var got struct {
		Instances []json.RawMessage `json:"instances"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", target, err)
	}
	if len(got.Instances) != n {
		return nil, nil, fmt.Errorf("GET %s: %d instances listed, expected %d (is another run registering into it?)", target, len(got.Instances), n)
	}
	return body, resp.Header, nil
}

// bareServer is the baseline: a plain net/http server that writes
// prepared bytes, the least any HTTP server could do for the same answer.
type bareServer struct {
	mu      sync.RWMutex
	answers map[string]bareAnswer

	// hold: GET /hold parks until POST /release (the watchers' baseline
	// of `scale`); GET /parked and GET /memory answer in the index header.
	hold        bool
	parked      atomic.Int64
	release     chan struct{}
	releaseOnce sync.Once
}

type bareAnswer struct {
	body   []byte
	header http.Header
}

func newBareServer() *bareServer {
	return &bareServer{answers: map[string]bareAnswer{}, release: make(chan struct{})}
}

// holdAnswer is what a parked request gets when released: about the size
// of the registry's answer for the 10-instance service `scale` watches.
var holdAnswer = []byte(`{"instances":[` + strings.Repeat(`{"id":"w","address":"10.0.0.1","port":8080,"tags":["v2","http"],"metadata":{"version":"2.3.1"}},`, 40) + `{}]}`)

// serveHold answers the hold mode's paths; it reports whether it did.
func (b *bareServer) serveHold(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case "/hold":
		b.parked.Add(1)
		select {
		case <-b.release:
		case <-r.Context().Done():
		}
		b.parked.Add(-1)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("X-Switchyard-Index", "1")
		_, _ = w.Write(holdAnswer)
	case "/release":
		b.releaseOnce.Do(func() { close(b.release) })
	case "/parked":
		w.Header().Set("X-Switchyard-Index", strconv.FormatInt(b.parked.Load(), 10))
	case "/memory":
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("X-Switchyard-Index", strconv.FormatUint(ms.HeapAlloc+ms.StackInuse, 10))
	default:
		return false
	}
	return true
}

// set stores the answer to GET path. The registry's own headers (content
// type, index, staleness) are copied so that the answers have the same
// size on the wire; Date and Content-Length are written by net/http.
func (b *bareServer) set(path string, body []byte, from http.Header) {
	h := http.Header{}
	for k, v := range from {
		if k == "Date" || k == "Content-Length" {
			continue
		}
		h[k] = v
	}
	b.mu.Lock()
	b.answers[path] = bareAnswer{body: body, header: h}
	b.mu.Unlock()
}

// barePutKey is the answer a bare server gives to every PUT, whatever the
// path (register --bare): it reads the body first, as the registry does.
const barePutKey = "PUT *"

func (b *bareServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.hold && b.serveHold(w, r) {
		return
	}
	key := r.URL.Path
	if r.Method == http.MethodPut {
		_, _ = io.Copy(io.Discard, r.Body)
		key = barePutKey
	}
	b.mu.RLock()
	a, ok := b.answers[key]
	b.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	for k, v := range a.header {
		h[k] = v
	}
	h["Content-Length"] = []string{strconv.Itoa(len(a.body))}
	_, _ = w.Write(a.body)
}

// start serves b on 127.0.0.1:0 and returns its base URL and a stop func.
func (b *bareServer) start() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bare server: %w", err)
	}
	hs := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("bare server:", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}, nil
}

func lookupTable(rows []lookupResult) *table {
	t := &table{
		title:  "Lookups (GET …/instances), registry vs a bare net/http handler serving the same bytes",
		header: []string{"instances", "answer", "clients", "server", "lookups/s", "p50 ms", "p99 ms", "max ms", "errors", "server CPU µs/op", "registry / this"},
	}
	var errs []string
	line := func(r lookupResult, who string, lr loadResult, ratio string) {
		t.add(thousands(int64(r.Instances)), fmtBytes(r.Bytes), strconv.Itoa(r.Clients), who,
			fmtRate(lr.OpsPerSec), fmtMs(lr.P50ms), fmtMs(lr.P99ms), fmtMs(lr.MaxMs), thousands(lr.Errors), fmtCPUPrecise(lr), ratio)
		if lr.FirstError != "" {
			errs = append(errs, fmt.Sprintf("%s %d/%d: %s", who, r.Instances, r.Clients, lr.FirstError))
		}
	}
	for _, r := range rows {
		line(r, "registry", r.Registry, "")
		if r.Bare != nil {
			line(r, "bare, in-process", *r.Bare, fmt.Sprintf("**%.2f**", r.Ratio))
		}
		if r.BareChild != nil {
			line(r, "bare, own process", *r.BareChild, fmt.Sprintf("**%.2f**", r.RatioChild))
		}
	}
	t.notes = append(t.notes, "registry / this: the registry's lookups/s over the bare handler's, same answer bytes, same client, rounds alternating. "+
		"server CPU µs/op: CPU time of the serving process per lookup (registry with --pids; the bare handler when it runs in its own process).")
	if len(errs) > 0 {
		t.notes = append(t.notes, "First errors: "+strings.Join(errs, "; "))
	}
	return t
}
