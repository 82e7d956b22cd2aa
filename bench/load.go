package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// newHTTPClient returns a client whose pool keeps one idle connection per
// worker (and some spare), so a closed-loop run never re-dials: Go's default
// keeps only 2 idle connections per host, and 64 workers would then open a
// new TCP connection for most requests and measure the dialer instead.
func newHTTPClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4*conns + 16,
		MaxIdleConnsPerHost:   conns + 8,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true, // neither side compresses; keep the requests identical
		ForceAttemptHTTP2:     false,
	}
	return &http.Client{Transport: withToken(tr), Timeout: timeout}
}

// benchToken is the token every command sends (REGISTRY_TOKEN; "" for
// servers without access control).
func benchToken() string { return os.Getenv("REGISTRY_TOKEN") }

// withToken wraps rt to send benchToken with every request, if there is one.
func withToken(rt http.RoundTripper) http.RoundTripper {
	if tok := benchToken(); tok != "" {
		return tokenTransport{rt, tok}
	}
	return rt
}

// tokenTransport sends REGISTRY_TOKEN with every request, for servers with
// access control on (the bare handlers get it too and ignore it, so both
// sides carry the same bytes).
type tokenTransport struct {
	next  http.RoundTripper
	token string
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Switchyard-Token", t.token)
	return t.next.RoundTrip(r)
}

// loadSpec is one closed-loop run: clients workers each call op back to
// back until duration has passed or count operations were started.
type loadSpec struct {
	clients  int
	duration time.Duration
	// count caps the operations started over all workers (0: no cap).
	count int64
	// op does one operation. It returns the error to count, if any.
	op func(ctx context.Context, worker int, seq int64) error
	// pids are the server processes whose CPU the run reports (optional).
	pids []int
}

// loadResult summarises a run. Latencies are of successful operations.
type loadResult struct {
	Clients    int           `json:"clients"`
	Ops        int64         `json:"ops"`
	Errors     int64         `json:"errors"`
	Elapsed    time.Duration `json:"-"`
	Seconds    float64       `json:"seconds"`
	OpsPerSec  float64       `json:"ops_per_sec"`
	P50        time.Duration `json:"-"`
	P99        time.Duration `json:"-"`
	Max        time.Duration `json:"-"`
	P50ms      float64       `json:"p50_ms"`
	P99ms      float64       `json:"p99_ms"`
	MaxMs      float64       `json:"max_ms"`
	FirstError string        `json:"first_error,omitempty"`
	// ServerCPU is the CPU time the server processes (--pids) used during
	// the run; CPUPerOpUs divides it by the operations, ServerCores by the
	// run's length. Zero when not measured.
	ServerCPU   time.Duration `json:"-"`
	ServerCPUs  float64       `json:"server_cpu_s,omitempty"`
	CPUPerOpUs  float64       `json:"server_cpu_per_op_us,omitempty"`
	ServerCores float64       `json:"server_cores,omitempty"`
	// SelfCPUPerOpUs is the load generator's own CPU per operation, which
	// it takes from the servers when both share a machine.
	SelfCPUPerOpUs float64 `json:"bench_cpu_per_op_us,omitempty"`
}

// maxSamplesPerWorker bounds the memory a worker uses for latencies; past
// it, operations are still counted but their latencies not kept (at the
// default settings a worker never gets there).
const maxSamplesPerWorker = 1 << 20

// runLoad runs spec and measures it. It stops early when ctx ends.
func runLoad(ctx context.Context, spec loadSpec) loadResult {
	var m measurement
	m.add(runLoadRaw(ctx, spec))
	return m.result()
}

// measurement accumulates several runs of the same load (rounds that
// alternate with another target's, say) into one result.
type measurement struct {
	clients  int
	ops      int64
	errors   int64
	elapsed  time.Duration
	lats     []time.Duration
	firstErr string
	cpu      time.Duration
	cpuKnown bool
	self     time.Duration // the load generator's own CPU
}

// rawRun is what one run measured, before percentiles.
type rawRun struct {
	clients  int
	ops      int64
	errors   int64
	elapsed  time.Duration
	lats     []time.Duration
	firstErr string
	cpu      time.Duration // CPU of the server processes, when measured
	cpuKnown bool
	self     time.Duration // CPU of this process (0 where /proc is missing)
}

func (m *measurement) add(r rawRun) {
	m.clients = r.clients
	m.ops += r.ops
	m.errors += r.errors
	m.elapsed += r.elapsed
	m.lats = append(m.lats, r.lats...)
	if m.firstErr == "" {
		m.firstErr = r.firstErr
	}
	if r.cpuKnown {
		m.cpu += r.cpu
		m.cpuKnown = true
	}
	m.self += r.self
}

func (m *measurement) result() loadResult {
	r := loadResult{Clients: m.clients, Ops: m.ops, Errors: m.errors, Elapsed: m.elapsed, FirstError: m.firstErr}
	r.fill(m.lats)
	if m.cpuKnown {
		r.ServerCPU = m.cpu
		r.ServerCPUs = m.cpu.Seconds()
		if m.ops > 0 {
			r.CPUPerOpUs = float64(m.cpu.Microseconds()) / float64(m.ops)
		}
		if m.elapsed > 0 {
			r.ServerCores = m.cpu.Seconds() / m.elapsed.Seconds()
		}
	}
	if m.ops > 0 {
		r.SelfCPUPerOpUs = float64(m.self.Microseconds()) / float64(m.ops)
	}
	return r
}

// runLoadRaw runs spec once and returns its raw measurements.
func runLoadRaw(ctx context.Context, spec loadSpec) rawRun {
	return withCPU(spec.pids, func() rawRun { return runLoadOnce(ctx, spec) })
}

func runLoadOnce(ctx context.Context, spec loadSpec) rawRun {
	ctx, cancel := context.WithTimeout(ctx, spec.duration)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var (
		started  atomic.Int64
		oks      atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Pointer[string]
		wg       sync.WaitGroup
	)
	lats := make([][]time.Duration, spec.clients)
	start := time.Now()
	for w := 0; w < spec.clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1024)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				seq := started.Add(1)
				if spec.count > 0 && seq > spec.count {
					break
				}
				t0 := time.Now()
				err := spec.op(ctx, w, seq)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil || !time.Now().Before(deadline) {
						// Cut off by the end of the run, not a failure (a
						// client that takes the run's deadline as its own
						// may see it pass before ctx's timer fires).
						break
					}
					errs.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					// Do not spin on a dead server.
					time.Sleep(time.Millisecond)
					continue
				}
				oks.Add(1)
				if len(mine) < maxSamplesPerWorker {
					mine = append(mine, d)
				}
			}
			lats[w] = mine
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := rawRun{clients: spec.clients, ops: oks.Load(), errors: errs.Load(), elapsed: elapsed, lats: slices.Concat(lats...)}
	if p := firstErr.Load(); p != nil {
		r.firstErr = *p
	}
	return r
}

// fill computes rate and percentiles from the latencies of the run.
func (r *loadResult) fill(lats []time.Duration) {
	r.Seconds = r.Elapsed.Seconds()
	if r.Seconds > 0 {
		r.OpsPerSec = float64(r.Ops) / r.Seconds
	}
	slices.Sort(lats)
	r.P50, r.P99, r.Max = percentile(lats, 0.50), percentile(lats, 0.99), percentile(lats, 1)
	r.P50ms, r.P99ms, r.MaxMs = ms(r.P50), ms(r.P99), ms(r.Max)
}

// percentile returns the q-quantile of sorted by the nearest-rank method.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// httpError is a non-2xx answer.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// do sends req and reads the whole answer into io.Discard (so the
// connection returns to the pool). It returns the answer's length and
// headers; a non-2xx answer is an *httpError.
func do(hc *http.Client, req *http.Request) (int64, http.Header, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, resp.Header, &httpError{status: resp.StatusCode, body: string(b)}
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, resp.Header, fmt.Errorf("read answer: %w", err)
	}
	return n, resp.Header, nil
}

// procCPU returns the CPU time (user + system) the processes have used so
// far, read from /proc/PID/stat (Linux; USER_HZ is 100 on every Linux we
// know of). It lets a run report the servers' CPU per operation, which a
// noisy machine disturbs far less than throughput.
func procCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("server CPU: %w", err)
		}
		// Fields after the command name, which is in parentheses and may
		// hold spaces: state is field 3, utime 14, stime 15.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			return 0, fmt.Errorf("server CPU: /proc/%d/stat: unexpected format", pid)
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			return 0, fmt.Errorf("server CPU: /proc/%d/stat: unexpected format", pid)
		}
		for _, v := range f[11:13] {
			ticks, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("server CPU: /proc/%d/stat: %v", pid, err)
			}
			total += time.Duration(ticks) * 10 * time.Millisecond
		}
	}
	return total, nil
}

// withCPU runs fn and adds the CPU the pids used meanwhile to its result,
// and this process's own. Without pids, or when /proc cannot be read, it
// leaves the servers' CPU unset.
func withCPU(pids []int, fn func() rawRun) rawRun {
	self := []int{os.Getpid()}
	selfBefore, selfErr := procCPU(self)
	before, err := procCPU(pids)
	r := fn()
	r.self, _ = cpuSince(self, selfBefore, selfErr)
	if len(pids) > 0 {
		r.cpu, r.cpuKnown = cpuSince(pids, before, err)
	}
	return r
}

// parsePids reads a comma-separated list of process ids; empty means none.
func parsePids(flagName, s string) ([]int, error) {
	if strings.TrimSpace(strings.ReplaceAll(s, ",", "")) == "" {
		return nil, nil
	}
	return parseInts(flagName, s)
}

// cpuSince returns the CPU pids used since before was read, and false if
// either reading failed.
func cpuSince(pids []int, before time.Duration, err error) (time.Duration, bool) {
	if err != nil {
		return 0, false
	}
	after, err := procCPU(pids)
	if err != nil {
		return 0, false
	}
	return after - before, true
}
