package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scaleSpec is what `registry-bench scale` measures. The defaults are the
// issue's sizes; the Go test runs the same code at a hundredth of them.
type scaleSpec struct {
	bin, dir string
	phases   map[string]bool

	logStore    string        // the servers' --raft-log-store, and the bare replicated baseline's
	clients     int           // registration clients (64)
	regDuration time.Duration // each registration level and its baseline

	instances, services   int // the catalog the fill builds
	bigServices, bigSize  int // of which these many services of this size
	fillMaxDuration       time.Duration
	watchers              int // parked on one server
	clusterWatchers       int // parked over the whole cluster, read servers included
	readers               int // read servers for the cluster-wide watchers
	heartbeatInstances    int
	heartbeatInterval     time.Duration
	heartbeatDuration     time.Duration
	heartbeatTTL          time.Duration
	silenceSamples        int
	timeout               time.Duration
	quiet                 bool
	progress              io.Writer
	watchersPerChild      int
	heartbeatRegisterPace int // clients registering the heartbeat instances
}

var scalePhases = []string{"disk", "register", "fill", "snapshot", "watch", "heartbeat"}

func runScale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c      commonFlags
		s      scaleSpec
		phases string
	)
	fs := newFlagSet("scale", stderr)
	c.register(fs)
	fs.StringVar(&s.bin, "registry", "", "the registry binary to start servers from (go build -o /tmp/registry ./cmd/registry); default: registry in $PATH")
	fs.StringVar(&s.dir, "dir", "", "folder for the servers' data and logs (default: a temporary folder, removed afterwards)")
	fs.StringVar(&phases, "phases", strings.Join(scalePhases, ","), "phases to run, in this order: "+strings.Join(scalePhases, ", ")+" (snapshot needs fill)")
	fs.StringVar(&s.logStore, "raft-log-store", "bolt", "the servers' Raft log store (bolt, the servers' default, or wal), also the bare replicated PUT handler's")
	fs.IntVar(&s.clients, "clients", 64, "concurrent clients of the registration levels and the fill")
	fs.DurationVar(&s.regDuration, "register-duration", 10*time.Second, "length of each registration level and of its bare baseline")
	fs.IntVar(&s.instances, "instances", 1000000, "instances the fill registers")
	fs.IntVar(&s.services, "services", 10000, "services they are spread over")
	fs.IntVar(&s.bigServices, "big-services", 4, "of which this many hold --big-size instances each")
	fs.IntVar(&s.bigSize, "big-size", 5000, "instances of each big service")
	fs.DurationVar(&s.fillMaxDuration, "fill-max-duration", 30*time.Minute, "stop the fill after this long")
	fs.IntVar(&s.watchers, "watchers", 10000, "blocking queries parked on one server")
	fs.IntVar(&s.clusterWatchers, "cluster-watchers", 50000, "blocking queries parked over the whole cluster (its voters and --readers read servers)")
	fs.IntVar(&s.readers, "readers", 2, "read servers started for the cluster-wide watchers")
	fs.IntVar(&s.watchersPerChild, "watchers-per-process", 12000, "blocking queries one watcher process holds (each is a connection: a file descriptor)")
	fs.IntVar(&s.heartbeatInstances, "heartbeat-instances", 100000, "ephemeral instances that heartbeat")
	fs.DurationVar(&s.heartbeatInterval, "heartbeat-interval", 5*time.Second, "each sends one heartbeat this often")
	fs.DurationVar(&s.heartbeatDuration, "heartbeat-duration", 30*time.Second, "how long the heartbeats are measured")
	fs.DurationVar(&s.heartbeatTTL, "heartbeat-ttl", 15*time.Second, "the heartbeat instances' TTL (the server's default)")
	fs.IntVar(&s.silenceSamples, "silence-samples", 100, "instances that stop heartbeating at the end, timed until every server shows them unhealthy")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	s.timeout, s.quiet, s.progress = c.timeout, c.quiet, stderr
	s.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		known := false
		for _, k := range scalePhases {
			known = known || k == p
		}
		if !known {
			return fmt.Errorf("--phases: unknown phase %q (known: %s)", p, strings.Join(scalePhases, ", "))
		}
		s.phases[p] = true
	}
	if s.phases["snapshot"] && !s.phases["fill"] {
		return errors.New("--phases: snapshot measures the catalog the fill built: add fill")
	}
	if err := s.validate(); err != nil {
		return err
	}
	if s.bin == "" {
		p, err := exec.LookPath("registry")
		if err != nil {
			return errors.New("--registry: no registry binary given and none in $PATH (go build -o /tmp/registry ./cmd/registry)")
		}
		s.bin = p
	}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "registry-scale-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		s.dir = d
	} else if err := emptyDir(s.dir); err != nil {
		return err
	}
	rows, err := scaleRun(ctx, s)
	if c.output == "json" {
		if werr := writeJSON(stdout, map[string]any{"bench": "scale", "rows": rows}); werr != nil && err == nil {
			err = werr
		}
		return err
	}
	if werr := scaleTable(rows).write(stdout); werr != nil && err == nil {
		err = werr
	}
	return err
}

func (s *scaleSpec) validate() error {
	switch {
	case s.logStore != "bolt" && s.logStore != "wal":
		return fmt.Errorf("--raft-log-store %q: use bolt or wal", s.logStore)
	case s.clients <= 0 || s.regDuration <= 0 || s.fillMaxDuration <= 0:
		return errors.New("--clients, --register-duration and --fill-max-duration must be positive")
	case s.instances <= 0 || s.services <= 0 || s.bigServices < 0 || s.bigSize <= 0:
		return errors.New("--instances, --services and --big-size must be positive, --big-services not negative")
	case s.bigServices >= s.services:
		return fmt.Errorf("--big-services %d: leave some of the %d services small", s.bigServices, s.services)
	case s.bigServices*s.bigSize > s.instances:
		return fmt.Errorf("--big-services × --big-size = %d is more than --instances %d", s.bigServices*s.bigSize, s.instances)
	case s.watchers <= 0 || s.clusterWatchers <= 0 || s.readers < 0 || s.watchersPerChild <= 0:
		return errors.New("--watchers, --cluster-watchers and --watchers-per-process must be positive, --readers not negative")
	case s.heartbeatInstances <= 0 || s.heartbeatInterval <= 0 || s.heartbeatDuration <= 0 || s.silenceSamples <= 0 || s.heartbeatTTL < time.Second:
		return errors.New("--heartbeat-instances, --heartbeat-interval, --heartbeat-duration and --silence-samples must be positive, --heartbeat-ttl at least 1s")
	case s.silenceSamples >= s.heartbeatInstances:
		return errors.New("--silence-samples must be fewer than --heartbeat-instances")
	}
	return nil
}

// scaleRow is one line of the capacity table.
type scaleRow struct {
	Phase    string  `json:"phase"`
	What     string  `json:"what"`
	Figure   string  `json:"figure"`
	Ratio    float64 `json:"ratio,omitempty"`
	Baseline string  `json:"baseline,omitempty"`
	// Value is the figure as a number, for scripts (its unit is in What).
	Value float64 `json:"value"`
}

func (s *scaleSpec) say(format string, args ...any) {
	if !s.quiet {
		fmt.Fprintf(s.progress, "# scale: "+format+"\n", args...)
	}
}

// scaleRun starts a three-voter cluster and runs the phases in order. It
// returns the rows measured so far with the first error.
func scaleRun(ctx context.Context, s scaleSpec) ([]scaleRow, error) {
	var rows []scaleRow
	add := func(r ...scaleRow) { rows = append(rows, r...) }
	if s.phases["disk"] {
		r, err := diskSyncs(filepath.Join(s.dir, "disk-probe"), 2*time.Second, 20000)
		if err != nil {
			return rows, err
		}
		add(r)
	}
	s.say("starting three voters from %s in %s", s.bin, s.dir)
	// Snapshots often enough that the fill takes several (the default
	// threshold of 16,384 entries would take none in a short run: concurrent
	// registrations share entries).
	snapEvery := min(max(s.instances/64, 64), 16384)
	cl, err := startLocalCluster(ctx, s.bin, s.dir, 3, 0,
		"--raft-snapshot-threshold", strconv.Itoa(snapEvery), "--raft-snapshot-interval", "1s", "--raft-log-store", s.logStore)
	if err != nil {
		return rows, err
	}
	defer cl.close()
	if s.phases["register"] {
		r, err := scaleRegister(ctx, s, cl, "empty catalog")
		add(r...)
		if err != nil {
			return rows, err
		}
	}
	if s.phases["fill"] {
		r, err := scaleFill(ctx, s, cl)
		add(r...)
		if err != nil {
			return rows, err
		}
		if s.phases["register"] {
			r, err := scaleRegister(ctx, s, cl, fmt.Sprintf("%s instances in the catalog", thousands(int64(s.instances))))
			add(r...)
			if err != nil {
				return rows, err
			}
		}
	}
	if s.phases["snapshot"] {
		r, err := scaleSnapshots(ctx, s, cl)
		add(r...)
		if err != nil {
			return rows, err
		}
	}
	if s.phases["watch"] {
		r, err := scaleWatch(ctx, s, cl)
		add(r...)
		if err != nil {
			return rows, err
		}
	}
	if readers := len(cl.urls("read")); readers > 0 && s.phases["register"] {
		// The same writes with read servers attached: each is one more
		// replica the leader sends every entry to.
		what := fmt.Sprintf("%d read servers attached", readers)
		if s.phases["fill"] {
			what += fmt.Sprintf(", %s instances in the catalog", thousands(int64(s.instances)))
		}
		r, err := scaleRegister(ctx, s, cl, what)
		add(r...)
		if err != nil {
			return rows, err
		}
	}
	if s.phases["heartbeat"] {
		r, err := scaleHeartbeat(ctx, s, cl)
		add(r...)
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

func scaleTable(rows []scaleRow) *table {
	t := &table{
		title:  "Capacity (registry-bench scale: three voters on this machine, read servers where said)",
		header: []string{"phase", "what", "figure", "ratio", "baseline of the ratio (same run)"},
	}
	for _, r := range rows {
		ratio := ""
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("**%.3g**", r.Ratio)
		}
		t.add(r.Phase, r.What, r.Figure, ratio, r.Baseline)
	}
	return t
}

// diskSyncs measures synced appends/s on the filesystem of path: what
// bounds a Raft log's commits when nothing else does.
func diskSyncs(path string, d time.Duration, maxCount int) (scaleRow, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return scaleRow{}, fmt.Errorf("disk probe: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 512)
	n := 0
	start := time.Now()
	for time.Since(start) < d && n < maxCount {
		if _, err := f.Write(buf); err != nil {
			return scaleRow{}, fmt.Errorf("disk probe: %w", err)
		}
		if err := f.Sync(); err != nil {
			return scaleRow{}, fmt.Errorf("disk probe: %w", err)
		}
		n++
	}
	rate := float64(n) / time.Since(start).Seconds()
	return scaleRow{Phase: "disk", What: "synced 512-byte appends per second (write + fsync, one file, the data folder's disk)",
		Figure: fmtRate(rate), Value: rate}, nil
}

// scaleRegister measures registrations at --clients over the voters, then
// a bare PUT handler in a process of its own, the same way.
func scaleRegister(ctx context.Context, s scaleSpec, cl *localCluster, when string) ([]scaleRow, error) {
	srvs := cl.urls("voter")
	bares, stop, err := startBarePut(ctx, srvs[0], "default", s.timeout, false, true)
	if err != nil {
		return nil, err
	}
	defer stop()
	pc, err := newPutClient("fasthttp", s.clients, s.timeout)
	if err != nil {
		return nil, err
	}
	defer pc.close()
	run := fmt.Sprintf("reg%d", time.Now().UnixNano()%1e9)
	s.say("registrations at %d clients, %s", s.clients, when)
	commit := commitWatch(ctx, cl)
	r := registerLevel(ctx, registerSpec{servers: srvs, namespace: "default", services: 8, clients: s.clients,
		duration: s.regDuration, count: 2000000, prefix: run, pids: cl.pids(), client: pc})
	commitNote := commit(r.Ops)
	s.say("the bare PUT handler at %d clients", s.clients)
	b := registerLevel(ctx, registerSpec{servers: []string{bares[0].url}, namespace: "default", services: 8, clients: s.clients,
		duration: s.regDuration, count: 2000000, prefix: run, pids: bares[0].pids, client: pc})
	if r.Errors > 0 && r.Ops == 0 {
		return nil, fmt.Errorf("registrations failed: %s", r.FirstError)
	}
	rows := []scaleRow{registerRow(fmt.Sprintf("registrations/s at %d clients round-robin over 3 voters, %s", s.clients, when), r, b, commitNote)}
	// The same writes sent to the leader alone: what forwarding from the
	// followers (two writes in three above) costs.
	if leader, err := cl.leader(ctx); err == nil {
		s.say("registrations at %d clients to the leader alone", s.clients)
		commit := commitWatch(ctx, cl)
		l := registerLevel(ctx, registerSpec{servers: []string{leader.url}, namespace: "default", services: 8, clients: s.clients,
			duration: s.regDuration, count: 2000000, prefix: run + "l", pids: cl.pids(), client: pc})
		rows = append(rows, registerRow(fmt.Sprintf("registrations/s at %d clients sent to the leader alone, %s", s.clients, when), l, b, commit(l.Ops)))
		r, err := bareReplicated(ctx, s, pc, bares[0].answer, run, b, l)
		if err != nil {
			return rows, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// emptyDir makes dir, or checks that it is empty: servers started on an
// earlier run's data would look for that run's peers.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("--dir %s holds an earlier run's files (%s…): give an empty or new folder", dir, names[0].Name())
	}
	return nil
}

// logStoreName names a --raft-log-store's library.
func logStoreName(kind string) string {
	if kind == "wal" {
		return "raft-wal"
	}
	return "raft-boltdb"
}

// bareReplicated measures the bare replicated PUT handler (see
// startBareRaft) the same way, sent to its leader: the rate any write
// synced on three processes of this machine can reach. It returns that
// rate over the bare PUT handler's, and the registrations sent to the
// leader alone (l) over it.
func bareReplicated(ctx context.Context, s scaleSpec, pc putClient, a childAnswer, run string, bare, l registerResult) ([]scaleRow, error) {
	s.say("the bare replicated PUT handler (three hashicorp/raft processes) at %d clients", s.clients)
	leader, pids, stop, err := startBareRaft(ctx, filepath.Join(s.dir, "bare-raft-"+run), s.logStore, a)
	if err != nil {
		return nil, err
	}
	defer stop()
	r := registerLevel(ctx, registerSpec{servers: []string{leader}, namespace: "default", services: 8, clients: s.clients,
		duration: s.regDuration, count: 2000000, prefix: run + "r", pids: pids, client: pc})
	if r.Ops == 0 {
		return nil, fmt.Errorf("bare replicated PUT handler: no write succeeded: %s", r.FirstError)
	}
	rows := []scaleRow{{Phase: "register",
		What:   fmt.Sprintf("the machine's bound for replicated writes: a bare replicated PUT handler at %d clients (net/http, hashicorp/raft with %s and group commit, three processes, a state machine that keeps nothing), sent to its leader", s.clients, logStoreName(s.logStore)),
		Figure: fmt.Sprintf("%s/s, p50 %s ms, p99 %s ms, %s errors, CPU %s µs each (three processes)", fmtRate(r.OpsPerSec), fmtMs(r.P50ms), fmtMs(r.P99ms), thousands(r.Errors), fmtCPU(r.loadResult)),
		Value:  r.OpsPerSec, Baseline: fmt.Sprintf("the bare net/http PUT handler in its own process: %s/s", fmtRate(bare.OpsPerSec))}}
	if bare.OpsPerSec > 0 {
		rows[0].Ratio = r.OpsPerSec / bare.OpsPerSec
	}
	rows = append(rows, scaleRow{Phase: "register",
		What:   "registrations sent to the leader alone over the bare replicated PUT handler: how much of the machine's bound a registration reaches",
		Figure: fmt.Sprintf("%s/s against %s/s", fmtRate(l.OpsPerSec), fmtRate(r.OpsPerSec)),
		Value:  l.OpsPerSec, Ratio: l.OpsPerSec / r.OpsPerSec,
		Baseline: fmt.Sprintf("the bare replicated PUT handler: %s/s", fmtRate(r.OpsPerSec))})
	return rows, nil
}

func registerRow(what string, r, bare registerResult, commit string) scaleRow {
	row := scaleRow{Phase: "register", What: what,
		Figure: fmt.Sprintf("%s/s, p50 %s ms, p99 %s ms, %s errors, server CPU %s µs each%s", fmtRate(r.OpsPerSec), fmtMs(r.P50ms), fmtMs(r.P99ms), thousands(r.Errors), fmtCPU(r.loadResult), commit),
		Value:  r.OpsPerSec, Baseline: fmt.Sprintf("a bare net/http PUT handler in its own process: %s/s", fmtRate(bare.OpsPerSec))}
	if bare.OpsPerSec > 0 {
		row.Ratio = r.OpsPerSec / bare.OpsPerSec
	}
	return row
}

// newScaleHTTP is a client for the scale run's own requests (metrics,
// health, single writes).
func newScaleHTTP(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout}
}

// commitWatch reads the leader's commit histogram and log index now; the
// function it returns reads them again and says, for ops writes made
// meanwhile, how long a batch entry took from append to applied on the
// leader (its disk, a follower's disk and the round trip between) and how
// many writes an entry carried.
func commitWatch(ctx context.Context, cl *localCluster) func(ops int64) string {
	hc := newScaleHTTP(10 * time.Second)
	leader, err := cl.leader(ctx)
	if err != nil {
		return func(int64) string { return "" }
	}
	read := func() (sum, count, applied float64, ok bool) {
		m, err := scrape(ctx, hc, leader.admin)
		if err != nil {
			return 0, 0, 0, false
		}
		return m["switchyard_raft_commit_seconds_sum"], m["switchyard_raft_commit_seconds_count"], m["switchyard_raft_applied_index"], true
	}
	s0, c0, a0, ok0 := read()
	return func(ops int64) string {
		s1, c1, a1, ok1 := read()
		if !ok0 || !ok1 || c1 <= c0 {
			return ""
		}
		return fmt.Sprintf("; a batch entry %.2f ms from append to applied on the leader, %.0f writes per entry",
			1000*(s1-s0)/(c1-c0), float64(ops)/max(a1-a0, 1))
	}
}
