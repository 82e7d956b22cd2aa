package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// fillInstance is the body of the fill's k-th registration: an instance
// as a real one looks (a locality, two tags, two metadata entries),
// persistent, so that nobody has to heartbeat a million of them.
func fillInstance(k int) []byte {
	return fmt.Appendf(nil, `{"address":"10.%d.%d.%d","port":%d,"ephemeral":false,`+
		`"locality":{"region":"eu","datacenter":"eu-west-%d","unit":"u%d"},`+
		`"tags":["v2","http"],"metadata":{"version":"2.3.%d","owner":"team-%d"}}`,
		(k>>16)&255, (k>>8)&255, k&255, 8000+k%1000, 1+k%3, k%4, k%10, k%50)
}

// fillPath is where the k-th instance goes: the big services take turns
// with the small ones from the start, so every service grows through the
// whole fill (a write's cost at the end includes the biggest lists).
func (s *scaleSpec) fillPath(k int) string {
	var svc string
	if big := s.bigServices * s.bigSize; k < 2*big && k%2 == 0 {
		svc = "big-" + strconv.Itoa((k/2)%s.bigServices)
	} else {
		small := s.services - s.bigServices
		svc = "svc-" + strconv.Itoa(k%small)
	}
	return "/v1/namespaces/default/services/" + svc + "/instances/i-" + strconv.Itoa(k)
}

// liveMemory forces a collection on a server (its admin listener's
// /debug/pprof/heap?gc=1), then reads the heap that survived it and the
// goroutines' stacks from its metrics, and the process's resident set.
func liveMemory(ctx context.Context, hc *http.Client, srv *localServer) (heap, stacks, resident float64, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.admin+"/debug/pprof/heap?gc=1", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("collect on %s: %w", srv.name, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	m, err := scrape(ctx, hc, srv.admin)
	if err != nil {
		return 0, 0, 0, err
	}
	return m["go_memstats_heap_alloc_bytes"], m["go_memstats_stack_inuse_bytes"], float64(rss(srv.pid())), nil
}

// scaleFill registers the catalog at --clients, timing each tenth, and
// measures the voters' memory per instance.
func scaleFill(ctx context.Context, s scaleSpec, cl *localCluster) ([]scaleRow, error) {
	hc := newScaleHTTP(30 * time.Second)
	voters := cl.servers[:3]
	var heap0, rss0 [3]float64
	for i, v := range voters {
		h, _, r, err := liveMemory(ctx, hc, v)
		if err != nil {
			return nil, err
		}
		heap0[i], rss0[i] = h, r
	}
	pc, err := newPutClient("fasthttp", s.clients, s.timeout)
	if err != nil {
		return nil, err
	}
	defer pc.close()
	srvs := cl.urls("voter")
	n := s.instances
	var (
		next, done, errs atomic.Int64
		tenths           [11]time.Time
		cpuAt            [11]time.Duration // the servers' CPU time at each tenth
		firstErr         atomic.Pointer[string]
		mu               sync.Mutex
		lats             []time.Duration
		wg               sync.WaitGroup
	)
	s.say("fill: %s instances over %s services (%d of %s instances) at %d clients",
		thousands(int64(n)), thousands(int64(s.services)), s.bigServices, thousands(int64(s.bigSize)), s.clients)
	fctx, cancel := context.WithTimeout(ctx, s.fillMaxDuration)
	defer cancel()
	pids := cl.pids()
	tenth := int64(max(n/10, 1)) // registrations per tenth
	cpuAt[0], _ = procCPU(pids)
	tenths[0] = time.Now()
	for w := range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, n/s.clients+1)
			for fctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= n {
					break
				}
				t0 := time.Now()
				err := pc.put(fctx, srvs[(k+w)%len(srvs)]+s.fillPath(k), fillInstance(k))
				if err != nil {
					if fctx.Err() != nil {
						break
					}
					errs.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					// The instance is retried: the catalog must hold n.
					next.Add(-1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mine = append(mine, time.Since(t0))
				d := done.Add(1)
				if d%tenth == 0 && d/tenth <= 10 {
					k := d / tenth
					tenths[k] = time.Now()
					cpuAt[k], _ = procCPU(pids)
				}
				if d%100000 == 0 {
					s.say("fill: %s registered", thousands(d))
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if got := done.Load(); got < int64(n) {
		return nil, fmt.Errorf("fill: %s of %s registered in %v (first error: %s)", thousands(got), thousands(int64(n)), s.fillMaxDuration, orNone(loaded(firstErr.Load())))
	}
	elapsed := tenths[10].Sub(tenths[0])
	first := float64(n/10) / tenths[1].Sub(tenths[0]).Seconds()
	last := float64(n/10) / tenths[10].Sub(tenths[9]).Seconds()
	slices.Sort(lats)
	// The servers' CPU per registration in the first and last tenth: a
	// rate can drift with what else the machine runs, the cost of a write
	// as the catalog grows much less.
	perReg := func(k int) float64 { return float64((cpuAt[k] - cpuAt[k-1]).Microseconds()) / float64(n/10) }
	cpuNote := ""
	if cpuAt[1] > 0 && cpuAt[10] > 0 {
		cpuNote = fmt.Sprintf("; server CPU per registration %.0f µs in the first tenth, %.0f µs in the last (%.2f×)", perReg(1), perReg(10), perReg(10)/perReg(1))
	}
	rows := []scaleRow{{
		Phase: "fill", What: fmt.Sprintf("registrations/s building a catalog of %s instances, %s services (%d of %s instances), %d clients",
			thousands(int64(n)), thousands(int64(s.services)), s.bigServices, thousands(int64(s.bigSize)), s.clients),
		Figure: fmt.Sprintf("%s/s over %.0f s; first tenth %s/s, last tenth %s/s; p99 %s ms, max %s ms; %s errors (retried)%s",
			fmtRate(float64(n)/elapsed.Seconds()), elapsed.Seconds(), fmtRate(first), fmtRate(last),
			fmtMs(ms(percentile(lats, .99))), fmtMs(ms(percentile(lats, 1))), thousands(errs.Load()), cpuNote),
		Value: float64(n) / elapsed.Seconds(), Ratio: last / first, Baseline: "the first tenth's registrations/s (last tenth over first)",
	}}
	// Memory per instance: each voter's live heap and resident set, beyond
	// what it held empty.
	var dHeap, dRSS float64
	var perServer []string
	for i, v := range voters {
		h, _, r, err := liveMemory(ctx, hc, v)
		if err != nil {
			return rows, err
		}
		dHeap += (h - heap0[i]) / float64(n)
		dRSS += (r - rss0[i]) / float64(n)
		perServer = append(perServer, fmt.Sprintf("%s %.0f/%.0f", v.name, (h-heap0[i])/float64(n), (r-rss0[i])/float64(n)))
	}
	dHeap, dRSS = dHeap/3, dRSS/3
	rows = append(rows, scaleRow{
		Phase: "fill", What: "memory per instance on a voter, beyond the empty server: live heap after a collection / resident set",
		Figure: fmt.Sprintf("%.0f B / %.0f B (per voter, heap/RSS: %v)", dHeap, dRSS, perServer),
		// The value is the live heap: the resident set of a small catalog
		// moves with what the collector returns to the system.
		Value: dHeap, Ratio: dRSS / 1024, Baseline: "the aim of 1 KiB per instance (resident)",
	})
	return rows, nil
}

// loaded is the string a first-error pointer holds, "" when none was kept.
func loaded(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
