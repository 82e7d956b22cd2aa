package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// silenceResult is the silence benchmark's outcome.
type silenceResult struct {
	Samples   int           `json:"samples"`
	TTL       time.Duration `json:"-"`
	TTLs      float64       `json:"ttl_s"`
	P50ms     float64       `json:"p50_ms"`
	P99ms     float64       `json:"p99_ms"`
	MaxMs     float64       `json:"max_ms"`
	Missed    int           `json:"missed"`
	FalseDown int           `json:"false_unhealthy"`
}

func runSilence(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c        commonFlags
		servers  string
		samples  int
		ttl      time.Duration
		interval time.Duration
		spacing  time.Duration
	)
	fs := newFlagSet("silence", stderr)
	c.register(fs)
	fs.StringVar(&servers, "servers", "http://127.0.0.1:7410,http://127.0.0.1:7420,http://127.0.0.1:7430", "comma-separated servers: heartbeats go to them at random, every one is watched")
	fs.IntVar(&samples, "samples", 40, "instances that fall silent (as many more keep heartbeating)")
	fs.DurationVar(&ttl, "ttl", 3*time.Second, "check TTL of the instances")
	fs.DurationVar(&interval, "interval", time.Second, "heartbeat interval")
	fs.DurationVar(&spacing, "spacing", 150*time.Millisecond, "time between two instances falling silent")
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
	if samples <= 0 || ttl <= 0 || interval <= 0 || interval >= ttl || spacing < 0 {
		return fmt.Errorf("--samples and --ttl must be positive, 0 < --interval < --ttl")
	}
	run := strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond)%(36*36*36*36*36), 36)
	svcPath := fmt.Sprintf("/v1/namespaces/%s/services/silence-%s", url.PathEscape(c.namespace), run)
	hc := newHTTPClient(4*samples, c.timeout)
	defer hc.CloseIdleConnections()

	n := 2 * samples
	for i := range n {
		body := fmt.Sprintf(`{"address":"10.9.%d.%d","port":8080,"ephemeral":true,"check":{"ttl":"%s","deregister_after":"1h"}}`,
			i>>8, i&255, ttl)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, srvs[i%len(srvs)]+svcPath+"/instances/s-"+strconv.Itoa(i), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if _, _, err := do(hc, req); err != nil {
			return fmt.Errorf("register: %w", err)
		}
	}

	// Watch every server: the first time each instance shows unhealthy.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var mu sync.Mutex
	down := make([]map[string]time.Time, len(srvs))
	var wg sync.WaitGroup
	for k, s := range srvs {
		down[k] = map[string]time.Time{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchHealth(wctx, hc, s+svcPath+"/instances", func(id string, at time.Time) {
				mu.Lock()
				if _, seen := down[k][id]; !seen {
					down[k][id] = at
				}
				mu.Unlock()
			})
		}()
	}

	// Heartbeat every instance to a random server; instance i < samples
	// stops at its turn and records its last acknowledged heartbeat.
	progress(&c, stderr, "silence: %d instances heartbeat every %v (TTL %v); %d fall silent %v apart", n, interval, ttl, samples, spacing)
	hbctx, stopBeats := context.WithCancel(ctx)
	defer stopBeats()
	last := make([]time.Time, n)
	start := time.Now().Add(2 * interval)
	var hwg sync.WaitGroup
	for i := range n {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			stopAt := time.Time{}
			if i < samples {
				stopAt = start.Add(time.Duration(i) * spacing)
			}
			t := time.NewTimer(time.Duration(rand.Int64N(int64(interval))))
			defer t.Stop()
			for {
				select {
				case <-hbctx.Done():
					return
				case <-t.C:
				}
				if !stopAt.IsZero() && time.Now().After(stopAt) {
					return
				}
				req, _ := http.NewRequestWithContext(hbctx, http.MethodPut, srvs[rand.IntN(len(srvs))]+svcPath+"/instances/s-"+strconv.Itoa(i)+"/heartbeat", nil)
				if _, _, err := do(hc, req); err == nil {
					mu.Lock()
					last[i] = time.Now()
					mu.Unlock()
				}
				t.Reset(interval)
			}
		}()
	}
	end := start.Add(time.Duration(samples)*spacing + ttl + 5*time.Second)
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(end)):
	}
	stopBeats()
	hwg.Wait()
	stopWatch()
	wg.Wait()

	res := silenceResult{Samples: samples, TTL: ttl, TTLs: ttl.Seconds()}
	var lats []time.Duration
	mu.Lock()
	for i := range n {
		id := "s-" + strconv.Itoa(i)
		var all time.Time
		everywhere := true
		for k := range srvs {
			at, ok := down[k][id]
			if !ok {
				everywhere = false
				break
			}
			if at.After(all) {
				all = at
			}
		}
		switch {
		case i >= samples && len(downOn(down, id)) > 0:
			res.FalseDown++
		case i < samples && !everywhere:
			res.Missed++
		case i < samples:
			lats = append(lats, all.Sub(last[i]))
		}
	}
	mu.Unlock()
	slices.Sort(lats)
	if len(lats) > 0 {
		res.P50ms = ms(lats[(len(lats)-1)/2])
		res.P99ms = ms(lats[min(len(lats)-1, (len(lats)*99+99)/100-1)])
		res.MaxMs = ms(lats[len(lats)-1])
	}
	if c.output == "json" {
		return writeJSON(stdout, map[string]any{"bench": "silence", "servers": srvs, "result": res})
	}
	t := &table{
		title:  fmt.Sprintf("Silence → unhealthy on all %d servers (last acknowledged heartbeat → every server's blocking query shows unhealthy)", len(srvs)),
		header: []string{"samples", "TTL", "p50 ms", "p99 ms", "max ms", "p99 beyond TTL ms", "missed", "false unhealthy"},
	}
	t.add(strconv.Itoa(res.Samples), ttl.String(), fmtMs(res.P50ms), fmtMs(res.P99ms), fmtMs(res.MaxMs),
		fmtMs(res.P99ms-ms(ttl)), strconv.Itoa(res.Missed), strconv.Itoa(res.FalseDown))
	return t.write(stdout)
}

func downOn(down []map[string]time.Time, id string) []int {
	var out []int
	for k, m := range down {
		if _, ok := m[id]; ok {
			out = append(out, k)
		}
	}
	return out
}

// watchHealth follows a service's instance list with blocking queries and
// calls onDown(id, time) for each instance it sees unhealthy.
func watchHealth(ctx context.Context, hc *http.Client, listURL string, onDown func(string, time.Time)) {
	index := uint64(0)
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, listURL+"?wait=5s&index="+strconv.FormatUint(index, 10), nil)
		resp, err := hc.Do(req)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		now := time.Now()
		var body struct {
			Index     uint64 `json:"index"`
			Instances []struct {
				ID      string `json:"id"`
				Healthy bool   `json:"healthy"`
			} `json:"instances"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for _, in := range body.Instances {
			if !in.Healthy {
				onDown(in.ID, now)
			}
		}
		index = body.Index
	}
}
