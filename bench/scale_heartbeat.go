package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The heartbeat phase: --heartbeat-instances ephemeral instances, each
// sending one heartbeat every --heartbeat-interval, paced (not as fast as
// possible): the k-th heartbeat of the run is due at start + k × interval /
// instances, round-robin over the voters. A sender that falls behind the
// schedule shows as a lower rate and as instances turning unhealthy.
const hbPerService = 1000

func hbPath(k, silentFrom int) string {
	if k >= silentFrom {
		return "/v1/namespaces/default/services/hb-silent/instances/h-" + strconv.Itoa(k)
	}
	return "/v1/namespaces/default/services/hb-" + strconv.Itoa(k/hbPerService) + "/instances/h-" + strconv.Itoa(k)
}

func scaleHeartbeat(ctx context.Context, s scaleSpec, cl *localCluster) ([]scaleRow, error) {
	ttl := s.heartbeatTTL
	n := s.heartbeatInstances
	silentFrom := n - s.silenceSamples
	voters := cl.urls("voter")
	pc, err := newPutClient("fasthttp", s.clients, s.timeout)
	if err != nil {
		return nil, err
	}
	defer pc.close()
	s.say("heartbeat: registering %s ephemeral instances (TTL %v)", thousands(int64(n)), ttl)
	body := func(k int) []byte {
		return fmt.Appendf(nil, `{"address":"10.%d.%d.%d","port":9000,"ephemeral":true,"check":{"ttl":"%s","deregister_after":"10m"}}`,
			(k>>16)&255, (k>>8)&255, k&255, ttl)
	}
	if err := parallel(ctx, s.clients, n, func(ctx context.Context, w, k int) error {
		return pc.put(ctx, voters[(k+w)%len(voters)]+hbPath(k, silentFrom), body(k))
	}); err != nil {
		return nil, fmt.Errorf("heartbeat instances: %w", err)
	}

	// The pacer runs from here to the end of the phase; silenced stops the
	// heartbeats of the silent sample.
	var (
		silenced atomic.Bool
		lastBeat sync.Map // id of a silent instance → time of its last acknowledged heartbeat
		sent     atomic.Int64
		failed   atomic.Int64
		firstErr atomic.Pointer[string]
		maxLag   atomic.Int64
	)
	pctx, stopPacer := context.WithCancel(ctx)
	defer stopPacer()
	step := s.heartbeatInterval / time.Duration(n)
	start := time.Now()
	var seq atomic.Int64
	var wg sync.WaitGroup
	workers := s.clients * 2
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pctx.Err() == nil {
				j := seq.Add(1) - 1
				due := start.Add(time.Duration(j) * step)
				if d := time.Until(due); d > 0 {
					select {
					case <-pctx.Done():
						return
					case <-time.After(d):
					}
				} else if lag := int64(-d); lag > maxLag.Load() {
					maxLag.Store(lag)
				}
				k := int(j % int64(n))
				if k >= silentFrom && silenced.Load() {
					continue
				}
				err := pc.put(pctx, voters[(k+w)%len(voters)]+hbPath(k, silentFrom)+"/heartbeat", nil)
				if err != nil {
					if pctx.Err() == nil {
						failed.Add(1)
						msg := err.Error()
						firstErr.CompareAndSwap(nil, &msg)
					}
					continue
				}
				sent.Add(1)
				if k >= silentFrom {
					lastBeat.Store("h-"+strconv.Itoa(k), time.Now())
				}
			}
		}()
	}
	// One interval of warm-up: instances registered early in a long
	// registration may have lapsed and come back now.
	s.say("heartbeat: %s heartbeats/s wanted (%s instances every %v), warming up", fmtRate(float64(n)/s.heartbeatInterval.Seconds()), thousands(int64(n)), s.heartbeatInterval)
	if !sleepCtx(ctx, s.heartbeatInterval+2*time.Second) {
		return nil, ctx.Err()
	}
	hc := newScaleHTTP(s.timeout)
	before, err := readCounters(ctx, voters, s.timeout)
	if err != nil {
		return nil, err
	}
	cpu0, cpuErr := procCPU(cl.pids())
	sent0, t0 := sent.Load(), time.Now()
	maxLag.Store(0)
	s.say("heartbeat: measuring for %v", s.heartbeatDuration)
	if !sleepCtx(ctx, s.heartbeatDuration) {
		return nil, ctx.Err()
	}
	beats := sent.Load() - sent0
	elapsed := time.Since(t0)
	cpu, cpuOK := cpuSince(cl.pids(), cpu0, cpuErr)
	lagAtEnd := time.Duration(maxLag.Load())
	time.Sleep(time.Second) // the last gossip flush
	after, err := readCounters(ctx, voters, s.timeout)
	if err != nil {
		return nil, err
	}
	rate := float64(beats) / elapsed.Seconds()
	want := float64(n) / s.heartbeatInterval.Seconds()
	rows := []scaleRow{{
		Phase: "heartbeat", What: fmt.Sprintf("heartbeats/s from %s ephemeral instances, one every %v each, round-robin over 3 voters", thousands(int64(n)), s.heartbeatInterval),
		Figure: fmt.Sprintf("%s/s over %.0f s (%s failed%s); the sender's worst lag behind its schedule %.1f s", fmtRate(rate), elapsed.Seconds(),
			thousands(failed.Load()), firstErrNote(loaded(firstErr.Load())), lagAtEnd.Seconds()),
		Value: rate, Ratio: rate / want, Baseline: fmt.Sprintf("the heartbeats/s wanted: %s", fmtRate(want)),
	}}
	if cpuOK && beats > 0 {
		perBeat := cpu.Seconds() / float64(beats)
		rows = append(rows, scaleRow{
			Phase: "heartbeat", What: "server CPU per 10,000 heartbeats/s (the three voters together: receiving, gossiping, merging, judging)",
			Figure: fmt.Sprintf("%.2f cores (%.0f µs per heartbeat)", perBeat*10000, perBeat*1e6), Value: perBeat * 10000,
		})
	}
	if beats > 0 {
		perBeat := (after.gossipBytes - before.gossipBytes) / float64(beats)
		rows = append(rows, scaleRow{
			Phase: "heartbeat", What: "gossip sent per 10,000 heartbeats/s (the three voters together), and Raft entries the heartbeats caused",
			Figure: fmt.Sprintf("%s/s (%.0f bytes per heartbeat); %s Raft entries", fmtBytes(int64(perBeat*10000)), perBeat, thousands(after.applied-before.applied)),
			Value:  perBeat * 10000,
		})
	}

	// Silence: the sample stops; every voter must show each of them
	// unhealthy. The others keep heartbeating meanwhile.
	s.say("heartbeat: %d instances fall silent", s.silenceSamples)
	down := make([]map[string]time.Time, len(voters))
	var dmu sync.Mutex
	wctx, stopWatch := context.WithTimeout(ctx, ttl+60*time.Second)
	defer stopWatch()
	var wwg sync.WaitGroup
	for i, v := range voters {
		down[i] = map[string]time.Time{}
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			watchHealth(wctx, hc, v+"/v1/namespaces/default/services/hb-silent/instances", func(id string, at time.Time) {
				dmu.Lock()
				defer dmu.Unlock()
				if _, ok := down[i][id]; !ok {
					down[i][id] = at
				}
				all := 0
				for _, m := range down {
					if len(m) == s.silenceSamples {
						all++
					}
				}
				if all == len(voters) {
					stopWatch()
				}
			})
		}()
	}
	silenced.Store(true)
	wwg.Wait()
	var lats []time.Duration
	missed := 0
	for k := silentFrom; k < n; k++ {
		id := "h-" + strconv.Itoa(k)
		lb, ok := lastBeat.Load(id)
		var latest time.Time
		everywhere := true
		for _, m := range down {
			at, ok := m[id]
			if !ok {
				everywhere = false
				break
			}
			if at.After(latest) {
				latest = at
			}
		}
		if !ok || !everywhere {
			missed++
			continue
		}
		lats = append(lats, latest.Sub(lb.(time.Time)))
	}
	slices.Sort(lats)
	unhealthy, err := countUnhealthy(ctx, hc, voters[0], silentFrom)
	if err != nil {
		return rows, err
	}
	stopPacer()
	wg.Wait()
	p99 := percentile(lats, .99)
	rows = append(rows, scaleRow{
		Phase: "heartbeat", What: fmt.Sprintf("last heartbeat → unhealthy on all 3 voters (%d instances fall silent, TTL %v), while the others heartbeat", s.silenceSamples, ttl),
		Figure: fmt.Sprintf("p50 %.1f s, p99 %.1f s, max %.1f s; %d never seen unhealthy everywhere; %s of the %s still heartbeating unhealthy at the end",
			percentile(lats, .5).Seconds(), p99.Seconds(), percentile(lats, 1).Seconds(), missed, thousands(int64(unhealthy)), thousands(int64(silentFrom))),
		Value: p99.Seconds(), Ratio: p99.Seconds() / ttl.Seconds(), Baseline: fmt.Sprintf("the TTL (%v, a setting)", ttl),
	})
	return rows, nil
}

// countUnhealthy counts the unhealthy instances among the first n
// heartbeat instances, as server sees them.
func countUnhealthy(ctx context.Context, hc *http.Client, server string, n int) (int, error) {
	bad := 0
	for svc := 0; svc*hbPerService < n; svc++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/v1/namespaces/default/services/hb-"+strconv.Itoa(svc)+"/instances", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		var body struct {
			Instances []struct {
				Healthy bool `json:"healthy"`
			} `json:"instances"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("hb-%d on %s: %w", svc, server, err)
		}
		for _, in := range body.Instances {
			if !in.Healthy {
				bad++
			}
		}
	}
	return bad, nil
}

// parallel calls fn for k = 0 … n-1 from clients goroutines, retrying a
// failed call a few times; it returns the first error that persists.
func parallel(ctx context.Context, clients, n int, fn func(ctx context.Context, w, k int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && first.Load() == nil {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				var err error
				for try := 0; try < 5; try++ {
					if err = fn(ctx, w, k); err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond << try)
				}
				if err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return ctx.Err()
}

// sleepCtx sleeps d or until ctx ends; it reports whether ctx is still on.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
