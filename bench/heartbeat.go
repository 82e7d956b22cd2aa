package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// heartbeatResult is one row of the heartbeat benchmark.
type heartbeatResult struct {
	loadResult
	Instances int `json:"instances"`
	// GossipBytesPerBeat is what the servers sent each other per heartbeat
	// (switchyard_gossip_sent_bytes_total over every server).
	GossipBytesPerBeat float64 `json:"gossip_bytes_per_heartbeat"`
	// RaftEntries is how far the applied index moved during the run.
	RaftEntries int64 `json:"raft_entries"`
}

func runHeartbeat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c         commonFlags
		servers   string
		metrics   string
		clients   string
		duration  time.Duration
		count     int64
		instances int
		pids      string
	)
	fs := newFlagSet("heartbeat", stderr)
	c.register(fs)
	fs.StringVar(&servers, "servers", "http://127.0.0.1:7410", "comma-separated servers that receive the heartbeats, round-robin (one: what one server absorbs)")
	fs.StringVar(&metrics, "metrics", "http://127.0.0.1:7410,http://127.0.0.1:7420,http://127.0.0.1:7430", "comma-separated servers whose /metrics (gossip bytes) and /v1/health (applied index) are read before and after")
	fs.StringVar(&clients, "clients", "16,64", "comma-separated concurrency levels, one row each")
	fs.DurationVar(&duration, "duration", 10*time.Second, "length of each level")
	fs.Int64Var(&count, "count", 2000000, "at most this many heartbeats per level (0: no cap)")
	fs.IntVar(&instances, "instances", 20000, "ephemeral instances registered first, heartbeats go to them in turn")
	fs.StringVar(&pids, "pids", "", "comma-separated pids of the server processes, to report their CPU per heartbeat (Linux)")
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
	mets, err := parseServers("metrics", metrics)
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
	if duration <= 0 || instances <= 0 || count < 0 {
		return fmt.Errorf("--duration and --instances must be positive, --count not negative")
	}
	run := strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond)%(36*36*36*36*36), 36)
	base := fmt.Sprintf("/v1/namespaces/%s/services/hb-%s/instances/", url.PathEscape(c.namespace), run)
	progress(&c, stderr, "heartbeat: registering %d ephemeral instances", instances)
	if err := registerMany(ctx, srvs, base, instances, c.timeout); err != nil {
		return err
	}
	var rows []heartbeatResult
	for _, n := range levels {
		progress(&c, stderr, "heartbeat: %d clients over %d servers for %v", n, len(srvs), duration)
		before, err := readCounters(ctx, mets, c.timeout)
		if err != nil {
			return err
		}
		hc := newHTTPClient(n, c.timeout)
		r := runLoad(ctx, loadSpec{
			clients: n, duration: duration, count: count, pids: pidList,
			op: func(ctx context.Context, w int, seq int64) error {
				server := srvs[(int64(w)+seq)%int64(len(srvs))]
				req, err := http.NewRequestWithContext(ctx, http.MethodPut,
					server+base+"i-"+strconv.FormatInt(seq%int64(instances), 10)+"/heartbeat", nil)
				if err != nil {
					return err
				}
				_, _, err = do(hc, req)
				return err
			},
		})
		hc.CloseIdleConnections()
		// Let the last flush of every server go out before reading.
		time.Sleep(time.Second)
		after, err := readCounters(ctx, mets, c.timeout)
		if err != nil {
			return err
		}
		row := heartbeatResult{loadResult: r, Instances: instances, RaftEntries: after.applied - before.applied}
		if r.Ops > 0 {
			row.GossipBytesPerBeat = (after.gossipBytes - before.gossipBytes) / float64(r.Ops)
		}
		rows = append(rows, row)
		if ctx.Err() != nil {
			break
		}
	}
	if c.output == "json" {
		return writeJSON(stdout, map[string]any{"bench": "heartbeat", "servers": srvs, "duration": duration.String(), "results": rows})
	}
	t := &table{
		title: fmt.Sprintf("Heartbeats (PUT …/instances/{id}/heartbeat over %d ephemeral instances, %d receiving server(s))", instances, len(srvs)),
		header: []string{"clients", "heartbeats", "heartbeats/s", "p50 ms", "p99 ms", "errors", "server CPU µs/op", "server cores",
			"gossip bytes/heartbeat", "Raft entries"},
	}
	for _, r := range rows {
		t.add(strconv.Itoa(r.Clients), thousands(r.Ops), fmtRate(r.OpsPerSec), fmtMs(r.P50ms), fmtMs(r.P99ms), thousands(r.Errors),
			fmtCPU(r.loadResult), fmtCores(r.loadResult), strconv.FormatFloat(r.GossipBytesPerBeat, 'f', 1, 64), thousands(r.RaftEntries))
		if r.FirstError != "" {
			t.notes = append(t.notes, fmt.Sprintf("%d clients, first error: %s", r.Clients, r.FirstError))
		}
	}
	if len(rows) > 0 && rows[len(rows)-1].CPUPerOpUs > 0 {
		r := rows[len(rows)-1]
		const beats = 100000.0 / 5 // 100k instances, one heartbeat each every 5 s
		t.notes = append(t.notes, fmt.Sprintf("At this cost, 100,000 instances heartbeating every 5 s (%s heartbeats/s) would take %.2f cores "+
			"of the servers (receiving, gossiping and merging) and %.1f MB/s of gossip between them; add the leader's judge round (see go test ./health -bench Judge).",
			thousands(int64(beats)), beats*r.CPUPerOpUs/1e6, beats*r.GossipBytesPerBeat/1e6))
	}
	return t.write(stdout)
}

// registerMany registers n ephemeral instances i-0 … i-(n-1) under base
// with 32 concurrent clients. Their TTL is ten minutes: registering tens of
// thousands takes longer than the default 15 s, and the first ones must not
// turn unhealthy before the run reaches them.
func registerMany(ctx context.Context, srvs []string, base string, n int, timeout time.Duration) error {
	hc := newHTTPClient(32, timeout)
	defer hc.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				body := fmt.Sprintf(`{"address":"10.%d.%d.%d","port":8080,"ephemeral":true,"check":{"ttl":"10m","deregister_after":"30m"}}`, (i>>16)&255, (i>>8)&255, i&255)
				req, err := http.NewRequestWithContext(ctx, http.MethodPut, srvs[(int(i)+w)%len(srvs)]+base+"i-"+strconv.FormatInt(i, 10),
					bytes.NewReader([]byte(body)))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Content-Type", "application/json")
				if _, _, err := do(hc, req); err != nil {
					errs <- fmt.Errorf("register i-%d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

type counters struct {
	gossipBytes float64
	applied     int64
}

// readCounters sums switchyard_gossip_sent_bytes_total over the servers
// and reads the highest applied index among them.
func readCounters(ctx context.Context, srvs []string, timeout time.Duration) (counters, error) {
	hc := &http.Client{Timeout: timeout, Transport: withToken(http.DefaultTransport)}
	var out counters
	for _, s := range srvs {
		m, err := scrape(ctx, hc, s)
		if err != nil {
			return out, err
		}
		out.gossipBytes += m["switchyard_gossip_sent_bytes_total"]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s+"/v1/health", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return out, fmt.Errorf("read health of %s: %w", s, err)
		}
		var h struct {
			AppliedIndex int64 `json:"applied_index"`
		}
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil {
			return out, fmt.Errorf("read health of %s: %w", s, err)
		}
		out.applied = max(out.applied, h.AppliedIndex)
	}
	return out, nil
}
