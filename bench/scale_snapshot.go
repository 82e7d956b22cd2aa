package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// background runs a mixed load (lookups of small services and new
// registrations, round-robin over servers) until stopped, so that a phase
// can say whether any request failed or took long while it ran.
type background struct {
	cancel context.CancelFunc
	done   chan loadResult
}

func startBackground(ctx context.Context, servers []string, clients int, timeout time.Duration, small int) (*background, error) {
	pc, err := newPutClient("fasthttp", clients, timeout)
	if err != nil {
		return nil, err
	}
	hc := newHTTPClient(clients, timeout)
	ctx, cancel := context.WithCancel(ctx)
	b := &background{cancel: cancel, done: make(chan loadResult, 1)}
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	go func() {
		defer pc.close()
		defer hc.CloseIdleConnections()
		b.done <- runLoad(ctx, loadSpec{clients: clients, duration: 30 * time.Minute, count: 10000000,
			op: func(ctx context.Context, w int, seq int64) error {
				srv := servers[(int64(w)+seq)%int64(len(servers))]
				if seq%4 == 0 {
					return pc.put(ctx, srv+"/v1/namespaces/default/services/bg/instances/"+run+"-"+strconv.FormatInt(seq, 10), fillInstance(int(seq)))
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet,
					srv+"/v1/namespaces/default/services/svc-"+strconv.FormatInt(seq%int64(small), 10)+"/instances", nil)
				if err != nil {
					return err
				}
				_, _, err = do(hc, req)
				return err
			}})
	}()
	return b, nil
}

func (b *background) stop() loadResult {
	b.cancel()
	return <-b.done
}

// snapshotStats reads a server's snapshot timings from its /metrics.
type snapshotStats struct {
	count, sum map[string]float64 // by phase
	bytes      float64
}

func readSnapshotStats(ctx context.Context, hc *http.Client, srv *localServer) (snapshotStats, error) {
	m, err := scrape(ctx, hc, srv.admin)
	if err != nil {
		return snapshotStats{}, err
	}
	st := snapshotStats{count: map[string]float64{}, sum: map[string]float64{}, bytes: m["switchyard_raft_snapshot_bytes"]}
	for _, p := range []string{"capture", "persist", "restore"} {
		st.count[p] = m[`switchyard_raft_snapshot_seconds_count{phase="`+p+`"}`]
		st.sum[p] = m[`switchyard_raft_snapshot_seconds_sum{phase="`+p+`"}`]
	}
	return st, nil
}

func (st snapshotStats) mean(phase string) string {
	if st.count[phase] == 0 {
		return "none"
	}
	return fmt.Sprintf("%.0f ms (%g)", 1000*st.sum[phase]/st.count[phase], st.count[phase])
}

// scaleSnapshots measures the full catalog's Raft snapshots: those the
// voters took during the fill, a backup saved through the API, a new
// server installing the leader's snapshot, and a follower's restart, all
// under a background load whose failures and slowest answer it reports.
func scaleSnapshots(ctx context.Context, s scaleSpec, cl *localCluster) ([]scaleRow, error) {
	hc := newScaleHTTP(5 * time.Minute)
	leader, err := cl.leader(ctx)
	if err != nil {
		return nil, err
	}
	lst, err := readSnapshotStats(ctx, hc, leader)
	if err != nil {
		return nil, err
	}
	rows := []scaleRow{{
		Phase: "snapshot", What: "Raft snapshots the leader took during the fill: capture (writes wait) / persist (concurrent with writes), mean (count); size",
		Figure: fmt.Sprintf("%s / %s; %s", lst.mean("capture"), lst.mean("persist"), fmtBytes(int64(lst.bytes))),
		Value:  1000 * lst.sum["persist"] / max(lst.count["persist"], 1),
	}}
	// The follower that restarts below; the background load goes to the
	// other two voters (to a killed server it would only fail to connect).
	var follower *localServer
	var steady []string
	for _, v := range cl.servers[:3] {
		if v != leader && follower == nil {
			follower = v
			continue
		}
		steady = append(steady, v.url)
	}
	bg, err := startBackground(ctx, steady, 8, s.timeout, s.services-s.bigServices)
	if err != nil {
		return rows, err
	}
	stopped := false
	defer func() {
		if !stopped {
			bg.stop()
		}
	}()
	time.Sleep(time.Second)

	// A backup through the API: the same snapshot, streamed to a caller.
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, leader.url+"/v1/snapshot", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return rows, fmt.Errorf("backup: %w", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return rows, fmt.Errorf("backup: HTTP %d, %v", resp.StatusCode, err)
	}
	backup := time.Since(t0)
	rows = append(rows, scaleRow{Phase: "snapshot", What: "a backup of the whole catalog (GET /v1/snapshot on the leader), under the background load",
		Figure: fmt.Sprintf("%.1f s, %s", backup.Seconds(), fmtBytes(n)), Value: backup.Seconds()})

	// A new server installs the leader's snapshot (the log before it is
	// gone) and replays the rest.
	s.say("snapshot: a read server joins and installs the catalog")
	t0 = time.Now()
	r, err := cl.add("read", 0)
	if err != nil {
		return rows, err
	}
	if err := cl.waitReady(ctx, r, 10*time.Minute); err != nil {
		return rows, err
	}
	join := time.Since(t0)
	rst, err := readSnapshotStats(ctx, hc, r)
	if err != nil {
		return rows, err
	}
	rows = append(rows, scaleRow{Phase: "snapshot", What: "a new server (a read server) from start to ready: joins, installs the leader's snapshot, replays the log after it",
		Figure: fmt.Sprintf("%.1f s, of which restoring the snapshot %s", join.Seconds(), rst.mean("restore")), Value: join.Seconds()})

	// A follower restarts: its own snapshot, then its log.
	s.say("snapshot: %s restarts", follower.name)
	// Killed, not stopped: SIGTERM makes a server leave the cluster, and
	// this one must come back as the member it was.
	cl.stop(follower, true)
	t0 = time.Now()
	if err := cl.start(follower); err != nil {
		return rows, err
	}
	if err := cl.waitReady(ctx, follower, 10*time.Minute); err != nil {
		return rows, err
	}
	restart := time.Since(t0)
	fst, err := readSnapshotStats(ctx, hc, follower)
	if err != nil {
		return rows, err
	}
	rows = append(rows, scaleRow{Phase: "snapshot", What: "a voter restarted (SIGKILL, start again): process start to ready, its own snapshot restored and its log replayed",
		Figure: fmt.Sprintf("%.1f s, of which restoring the snapshot %s", restart.Seconds(), fst.mean("restore")), Value: restart.Seconds()})

	res := bg.stop()
	stopped = true
	rows = append(rows, scaleRow{Phase: "snapshot", What: "the background load during the three above (8 clients: 3 lookups of a small service to 1 registration, round-robin over the leader and the voter that is not restarted)",
		Figure: fmt.Sprintf("%s requests, %s failed (first: %s), p99 %s ms, max %s ms", thousands(res.Ops+res.Errors), thousands(res.Errors), orNone(res.FirstError), fmtMs(res.P99ms), fmtMs(res.MaxMs)),
		Value:  float64(res.Errors)})
	return rows, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
