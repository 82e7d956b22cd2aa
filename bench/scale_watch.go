package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Tens of thousands of parked blocking queries are as many connections,
// and a process may hold only so many file descriptors (this machine's
// hard limit was 20,000). The watchers therefore live in child processes
// of this binary (the hidden command `watch-hold`), each holding at most
// --watchers-per-process of them; the bare baseline runs one bare long-poll
// server per registry server, so both sides spread the connections alike.

// holdReport is what a watch-hold child prints when its queries ended.
type holdReport struct {
	Wakes     []int64 `json:"wakes"` // unix nanoseconds, one per answer that saw the change
	Unchanged int     `json:"unchanged"`
	Errors    int     `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
}

// runWatchHold is the child: it sends --count GETs spread over --targets
// (full URLs), each on a connection of its own, and once all have
// answered prints a holdReport. An answer counts as a wake when its
// X-Switchyard-Index exceeds --index (the bare server sends one).
func runWatchHold(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("registry-bench watch-hold", flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := fs.String("targets", "", "comma-separated URLs")
	count := fs.Int("count", 0, "queries to hold")
	index := fs.Uint64("index", 0, "an answer is a wake when its index is above this")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up on a query after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	urls := strings.Split(*targets, ",")
	if *targets == "" || *count <= 0 {
		return errors.New("watch-hold: --targets and --count are required")
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost: *count, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}
	hc := &http.Client{Transport: tr, Timeout: *timeout}
	var (
		mu  sync.Mutex
		rep holdReport
		wg  sync.WaitGroup
	)
	sent := atomic.Int64{}
	for i := range *count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, urls[i%len(urls)], nil)
			sent.Add(1)
			resp, err := hc.Do(req)
			var idx uint64
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("HTTP %d", resp.StatusCode)
				}
				idx, _ = strconv.ParseUint(resp.Header.Get("X-Switchyard-Index"), 10, 64)
			}
			at := time.Now().UnixNano()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				rep.Errors++
				if rep.FirstErr == "" {
					rep.FirstErr = err.Error()
				}
			case idx <= *index:
				rep.Unchanged++
			default:
				rep.Wakes = append(rep.Wakes, at)
			}
		}()
	}
	wg.Wait()
	tr.CloseIdleConnections()
	return json.NewEncoder(stdout).Encode(rep)
}

// holders are running watch-hold children.
type holders struct {
	cmds []*exec.Cmd
	outs []*bufio.Reader
}

// startHolders spreads n queries over targets in children of at most
// perChild queries each.
func startHolders(targets []string, n, perChild int, index uint64) (*holders, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	h := &holders{}
	for off := 0; off < n; off += perChild {
		k := min(perChild, n-off)
		// Each child takes the targets in an order of its own, so that
		// the queries spread evenly whatever k is.
		mine := make([]string, len(targets))
		for i := range targets {
			mine[i] = targets[(i+off/perChild)%len(targets)]
		}
		cmd := exec.Command(exe, "watch-hold", "--targets", strings.Join(mine, ","), "--count", strconv.Itoa(k),
			"--index", strconv.FormatUint(index, 10))
		cmd.Env = append(os.Environ(), childEnv+"=1")
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			h.kill()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			h.kill()
			return nil, fmt.Errorf("watch-hold child: %w", err)
		}
		h.cmds = append(h.cmds, cmd)
		h.outs = append(h.outs, bufio.NewReader(out))
	}
	return h, nil
}

// collect waits for every child's report and merges them.
func (h *holders) collect() (holdReport, error) {
	var all holdReport
	for i, cmd := range h.cmds {
		var r holdReport
		err := json.NewDecoder(h.outs[i]).Decode(&r)
		werr := cmd.Wait()
		if err != nil {
			return all, fmt.Errorf("watch-hold child: %w (exit: %v)", err, werr)
		}
		all.Wakes = append(all.Wakes, r.Wakes...)
		all.Unchanged += r.Unchanged
		all.Errors += r.Errors
		if all.FirstErr == "" {
			all.FirstErr = r.FirstErr
		}
	}
	return all, nil
}

func (h *holders) kill() {
	for _, c := range h.cmds {
		if c.Process != nil {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
}

// waitParked polls until the servers hold n blocking queries between them
// (sum of read(server)), or timeout.
func waitParked(ctx context.Context, servers []string, n int, timeout time.Duration, read func(context.Context, string) (float64, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		total := 0.0
		for _, s := range servers {
			v, err := read(ctx, s)
			if err != nil {
				return err
			}
			total += v
		}
		if int(total) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %.0f of %d blocking queries parked after %v", total, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wakeRound is one round of parked watchers and the write that wakes them.
type wakeRound struct {
	last                 time.Duration // send → last wake
	p50                  time.Duration
	woken, missed, errs  int
	firstErr             string
	ack                  time.Duration // the waking write's own round trip
	memPerWatcher        float64       // heap + stacks after a collection, per watcher, averaged over servers
	rssPerWatcher        float64
	writesBefore, during float64 // background writes/s before and while the watchers wake
}

// scaleWatch parks --watchers blocking queries on one follower, then
// --cluster-watchers over the voters and read servers, wakes them with
// one write, and compares with bare long-poll servers doing the same.
func scaleWatch(ctx context.Context, s scaleSpec, cl *localCluster) ([]scaleRow, error) {
	leader, err := cl.leader(ctx)
	if err != nil {
		return nil, err
	}
	var follower *localServer
	for _, v := range cl.servers {
		if v != leader && v.role == "voter" {
			follower = v
			break
		}
	}
	var rows []scaleRow
	one, err := wakeRegistry(ctx, s, cl, leader, []*localServer{follower}, s.watchers)
	if err != nil {
		return rows, err
	}
	bare, err := wakeBare(ctx, s, 1, s.watchers)
	if err != nil {
		return rows, err
	}
	rows = append(rows, wakeRows(s.watchers, "on one follower", one, bare)...)

	for len(cl.urls("read")) < s.readers {
		s.say("watch: starting a read server")
		r, err := cl.add("read", 0)
		if err != nil {
			return rows, err
		}
		if err := cl.waitReady(ctx, r, 10*time.Minute); err != nil {
			return rows, err
		}
	}
	var all []*localServer
	for _, v := range cl.servers {
		if v.pid() > 0 {
			all = append(all, v)
		}
	}
	many, err := wakeRegistry(ctx, s, cl, leader, all, s.clusterWatchers)
	if err != nil {
		return rows, err
	}
	bareMany, err := wakeBare(ctx, s, len(all), s.clusterWatchers)
	if err != nil {
		return rows, err
	}
	rows = append(rows, wakeRows(s.clusterWatchers, fmt.Sprintf("over %d servers (3 voters, %d read servers)", len(all), len(all)-3), many, bareMany)...)
	return rows, nil
}

func wakeRows(n int, where string, r, bare wakeRound) []scaleRow {
	out := []scaleRow{{
		Phase: "watch", What: fmt.Sprintf("%s blocking queries parked %s, all woken by one write: write sent → last answer", thousands(int64(n)), where),
		Figure: fmt.Sprintf("%.0f ms (p50 %.0f ms); %s woken, %d missed, %d failed%s", ms(r.last), ms(r.p50), thousands(int64(r.woken)), r.missed, r.errs, firstErrNote(r.firstErr)),
		Value:  ms(r.last), Ratio: r.last.Seconds() / max(bare.last.Seconds(), 1e-9),
		Baseline: fmt.Sprintf("bare net/http long-poll servers (one per registry server) answering as many parked requests: %.0f ms (aim: at most 2×)", ms(bare.last)),
	}, {
		Phase: "watch", What: fmt.Sprintf("memory per parked blocking query (%s), on the servers holding them: heap and goroutine stacks after a collection / resident set (which moves with what the collector returns)", where),
		Figure: fmt.Sprintf("%.0f B / %.0f B", r.memPerWatcher, r.rssPerWatcher),
		Value:  r.memPerWatcher, Ratio: r.memPerWatcher / max(bare.memPerWatcher, 1),
		Baseline: fmt.Sprintf("the bare long-poll server's: %.0f B / %.0f B (aim: 8 KiB)", bare.memPerWatcher, bare.rssPerWatcher),
	}, {
		Phase: "watch", What: fmt.Sprintf("the waking write's acknowledgement, and other writes (4 clients, to the leader) while %s watchers wake", thousands(int64(n))),
		Figure: fmt.Sprintf("ack %.1f ms; background writes %s/s while waking", ms(r.ack), fmtRate(r.during)),
		Value:  r.during, Ratio: r.during / max(r.writesBefore, 1e-9),
		Baseline: fmt.Sprintf("the background writes' rate in the seconds before: %s/s", fmtRate(r.writesBefore)),
	}}
	return out
}

func firstErrNote(s string) string {
	if s == "" {
		return ""
	}
	return " (first: " + s + ")"
}

// wakeRegistry parks n queries on a 10-instance service over the servers
// and wakes them with one registration sent to the leader.
func wakeRegistry(ctx context.Context, s scaleSpec, cl *localCluster, leader *localServer, on []*localServer, n int) (wakeRound, error) {
	var res wakeRound
	hc := newScaleHTTP(30 * time.Second)
	pc, err := newPutClient("fasthttp", 8, s.timeout)
	if err != nil {
		return res, err
	}
	defer pc.close()
	svc := fmt.Sprintf("/v1/namespaces/default/services/watched-%d/instances", n)
	var idx uint64
	for i := range 10 {
		if err := pc.put(ctx, leader.url+svc+"/w-"+strconv.Itoa(i), fillInstance(i)); err != nil {
			return res, fmt.Errorf("watched service: %w", err)
		}
	}
	// The index every server must show before the queries park: the
	// leader's, once it holds all ten.
	idx, err = getIndex(ctx, hc, leader.url+svc)
	if err != nil {
		return res, fmt.Errorf("watched service on the leader: %w", err)
	}
	for _, srv := range on {
		for deadline := time.Now().Add(time.Minute); ; {
			v, err := getIndex(ctx, hc, srv.url+svc)
			if err == nil && v >= idx {
				break
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("%s never showed %s: %v", srv.name, svc, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	memBefore, rssBefore, err := serversMemory(ctx, hc, on)
	if err != nil {
		return res, err
	}
	var targets []string
	for _, srv := range on {
		targets = append(targets, srv.url+svc+"?index="+strconv.FormatUint(idx, 10)+"&wait=2m")
	}
	s.say("watch: parking %s blocking queries on %d server(s)", thousands(int64(n)), len(on))
	h, err := startHolders(targets, n, s.watchersPerChild, idx)
	if err != nil {
		return res, err
	}
	defer h.kill()
	var urls []string
	for _, srv := range on {
		urls = append(urls, srv.admin)
	}
	if err := waitParked(ctx, urls, n, 3*time.Minute, func(ctx context.Context, u string) (float64, error) {
		m, err := scrape(ctx, hc, u)
		return m["switchyard_http_blocking_queries"], err
	}); err != nil {
		return res, err
	}
	memAfter, rssAfter, err := serversMemory(ctx, hc, on)
	if err != nil {
		return res, err
	}
	res.memPerWatcher = (memAfter - memBefore) / float64(n)
	res.rssPerWatcher = (rssAfter - rssBefore) / float64(n)

	// Background writes to another service, through the wake-up, sent to
	// the leader: a closed loop of writes round-robin over the servers
	// would wait on the busiest one and measure only it.
	bw := startBackgroundWrites(ctx, pc, []string{leader.url}, 4)
	time.Sleep(2 * time.Second)
	t0 := time.Now()
	err = pc.put(ctx, leader.url+svc+"/w-0", fillInstance(12345))
	res.ack = time.Since(t0)
	if err != nil {
		bw.stop()
		return res, fmt.Errorf("the waking write: %w", err)
	}
	rep, err := h.collect()
	if err != nil {
		bw.stop()
		return res, err
	}
	res.fromReport(rep, t0)
	// Let the writes run as long after the last wake as the window before.
	time.Sleep(100 * time.Millisecond)
	times := bw.stop()
	res.writesBefore = rateIn(times, t0.Add(-2*time.Second), t0)
	res.during = rateIn(times, t0, t0.Add(max(res.last, 200*time.Millisecond)))
	return res, nil
}

func (r *wakeRound) fromReport(rep holdReport, t0 time.Time) {
	slices.Sort(rep.Wakes)
	r.woken, r.missed, r.errs, r.firstErr = len(rep.Wakes), rep.Unchanged, rep.Errors, rep.FirstErr
	if len(rep.Wakes) > 0 {
		r.last = time.Duration(rep.Wakes[len(rep.Wakes)-1] - t0.UnixNano())
		r.p50 = time.Duration(rep.Wakes[len(rep.Wakes)/2] - t0.UnixNano())
	}
}

// rateIn is how many of the sorted times fall in [from, to), per second.
func rateIn(times []time.Time, from, to time.Time) float64 {
	n := 0
	for _, t := range times {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return float64(n) / to.Sub(from).Seconds()
}

// backgroundWrites registers instances back to back and keeps the time each
// was acknowledged.
type backgroundWrites struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	times  []time.Time
}

func startBackgroundWrites(ctx context.Context, pc putClient, servers []string, clients int) *backgroundWrites {
	ctx, cancel := context.WithCancel(ctx)
	b := &backgroundWrites{cancel: cancel}
	var seq atomic.Int64
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for w := range clients {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for ctx.Err() == nil {
				k := seq.Add(1)
				if k > 1000000 {
					return
				}
				err := pc.put(ctx, servers[(int(k)+w)%len(servers)]+"/v1/namespaces/default/services/bgw/instances/"+run+"-"+strconv.FormatInt(k, 10), fillInstance(int(k)))
				if err == nil {
					b.mu.Lock()
					b.times = append(b.times, time.Now())
					b.mu.Unlock()
				}
			}
		}()
	}
	return b
}

func (b *backgroundWrites) stop() []time.Time {
	b.cancel()
	b.wg.Wait()
	return b.times
}

// serversMemory is the servers' heap and goroutine stacks after a
// collection, and their resident sets, summed.
func serversMemory(ctx context.Context, hc *http.Client, on []*localServer) (mem, resident float64, err error) {
	for _, srv := range on {
		heap, stacks, r, err := liveMemory(ctx, hc, srv)
		if err != nil {
			return 0, 0, err
		}
		mem += heap + stacks
		resident += r
	}
	return mem, resident, nil
}

func getIndex(ctx context.Context, hc *http.Client, u string) (uint64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return strconv.ParseUint(resp.Header.Get("X-Switchyard-Index"), 10, 64)
}

// wakeBare parks n requests over k bare long-poll servers, each in a
// process of its own, and releases them all.
func wakeBare(ctx context.Context, s scaleSpec, k, n int) (wakeRound, error) {
	var res wakeRound
	type child struct {
		url  string
		pid  int
		stop func()
	}
	var kids []child
	defer func() {
		for _, c := range kids {
			c.stop()
		}
	}()
	for range k {
		b := newBareServer()
		b.hold = true
		u, pid, stop, err := startChildBare(b)
		if err != nil {
			return res, err
		}
		kids = append(kids, child{u, pid, stop})
	}
	hc := newScaleHTTP(30 * time.Second)
	var targets, urls []string
	var memBefore, rssBefore float64
	for _, c := range kids {
		targets = append(targets, c.url+"/hold")
		urls = append(urls, c.url)
		m, r, err := bareMemory(ctx, hc, c.url, c.pid)
		if err != nil {
			return res, err
		}
		memBefore += m
		rssBefore += r
	}
	s.say("watch: parking %s requests on %d bare long-poll server(s)", thousands(int64(n)), k)
	h, err := startHolders(targets, n, s.watchersPerChild, 0)
	if err != nil {
		return res, err
	}
	defer h.kill()
	if err := waitParked(ctx, urls, n, 3*time.Minute, func(ctx context.Context, u string) (float64, error) {
		v, err := getIndex(ctx, hc, u+"/parked")
		return float64(v), err
	}); err != nil {
		return res, err
	}
	var memAfter, rssAfter float64
	for _, c := range kids {
		m, r, err := bareMemory(ctx, hc, c.url, c.pid)
		if err != nil {
			return res, err
		}
		memAfter += m
		rssAfter += r
	}
	res.memPerWatcher = (memAfter - memBefore) / float64(n)
	res.rssPerWatcher = (rssAfter - rssBefore) / float64(n)
	// Release every server at once, as one write wakes every server.
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, c := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/release", nil)
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	res.ack = time.Since(t0)
	rep, err := h.collect()
	if err != nil {
		return res, err
	}
	res.fromReport(rep, t0)
	return res, nil
}

// bareMemory asks a bare server for its heap and stacks after a
// collection (GET /memory) and reads its resident set.
func bareMemory(ctx context.Context, hc *http.Client, u string, pid int) (float64, float64, error) {
	v, err := getIndex(ctx, hc, u+"/memory")
	return float64(v), float64(rss(pid)), err
}
