package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// watchResult summarises the wake-up latency of blocking queries.
type watchResult struct {
	Server      string `json:"server"`
	WriteServer string `json:"write_server"`
	Watchers    int    `json:"watchers"`
	Samples     int    `json:"samples"` // writes made
	Wakes       int    `json:"wakes"`   // watcher answers that saw the write
	// Write is the latency of the write itself (PUT sent → answer read).
	WriteP50ms float64 `json:"write_p50_ms"`
	WriteP99ms float64 `json:"write_p99_ms"`
	// SendToWake: from just before the write is sent to the watcher's
	// answer (headers and body) arriving.
	SendP50ms float64 `json:"send_to_wake_p50_ms"`
	SendP99ms float64 `json:"send_to_wake_p99_ms"`
	SendMaxms float64 `json:"send_to_wake_max_ms"`
	// AckToWake: from the write's answer arriving to the watcher's answer
	// arriving. Negative when the watcher heard of the change before the
	// writer heard its acknowledgement.
	AckP50ms float64 `json:"ack_to_wake_p50_ms"`
	AckP99ms float64 `json:"ack_to_wake_p99_ms"`
	// WokeBeforeAck counts wakes that arrived before the write's answer.
	WokeBeforeAck int `json:"woke_before_ack"`
	// Early counts blocking queries that returned before any write was
	// sent (they should have blocked); Unchanged counts those that returned
	// at wait without seeing the write; Errors counts failed requests.
	Early     int    `json:"early"`
	Unchanged int    `json:"unchanged"`
	Errors    int    `json:"errors"`
	FirstErr  string `json:"first_error,omitempty"`
}

type wake struct {
	at    time.Time
	index uint64
	err   error
}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c           commonFlags
		server      string
		writeServer string
		samples     int
		watchers    int
		settle      time.Duration
		wait        time.Duration
		maxDuration time.Duration
	)
	fs := newFlagSet("watch", stderr)
	c.register(fs)
	fs.StringVar(&server, "server", "http://127.0.0.1:7400", "server the watchers hold their blocking queries on")
	fs.StringVar(&writeServer, "write-server", "", "server the writes go to (default: --server)")
	fs.IntVar(&samples, "samples", 200, "number of writes, each waking every watcher once")
	fs.IntVar(&watchers, "watchers", 1, "concurrent blocking queries on the service")
	fs.DurationVar(&settle, "settle", 20*time.Millisecond, "pause between sending the blocking queries and the write, so they are parked on the server")
	fs.DurationVar(&wait, "wait", 30*time.Second, "wait= of the blocking queries")
	fs.DurationVar(&maxDuration, "max-duration", 2*time.Minute, "stop taking samples after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if writeServer == "" {
		writeServer = server
	}
	ws, err := parseServers("server", server)
	if err != nil {
		return err
	}
	wr, err := parseServers("write-server", writeServer)
	if err != nil {
		return err
	}
	if samples <= 0 || watchers <= 0 || settle < 0 || wait <= 0 || maxDuration <= 0 {
		return fmt.Errorf("--samples, --watchers, --wait and --max-duration must be positive")
	}
	progress(&c, stderr, "watch: %d samples, %d watcher(s) on %s, writes to %s", samples, watchers, ws[0], wr[0])
	r, err := watchBench(ctx, watchSpec{
		server: ws[0], writeServer: wr[0], namespace: c.namespace, service: "watch",
		samples: samples, watchers: watchers, settle: settle, wait: wait,
		maxDuration: maxDuration, timeout: c.timeout,
	})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return writeJSON(stdout, map[string]any{"bench": "watch", "results": []watchResult{r}})
	}
	return watchTable([]watchResult{r}).write(stdout)
}

type watchSpec struct {
	server, writeServer string
	namespace, service  string
	samples, watchers   int
	settle, wait        time.Duration
	maxDuration         time.Duration
	timeout             time.Duration
}

func watchBench(ctx context.Context, s watchSpec) (watchResult, error) {
	res := watchResult{Server: s.server, WriteServer: s.writeServer, Watchers: s.watchers}
	writer := newHTTPClient(1, s.timeout)
	defer writer.CloseIdleConnections()
	// Blocking queries outlive the usual request timeout.
	readers := newHTTPClient(s.watchers, s.wait+s.timeout)
	defer readers.CloseIdleConnections()

	svcPath := fmt.Sprintf("/v1/namespaces/%s/services/%s/instances", url.PathEscape(s.namespace), url.PathEscape(s.service))
	write := func(port int) error {
		body := fmt.Sprintf(`{"address":"10.2.0.1","port":%d,"ephemeral":false}`, port)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.writeServer+svcPath+"/w-0", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		_, _, err = do(writer, req)
		return err
	}
	read := func(ctx context.Context, index uint64) (uint64, error) {
		target := s.server + svcPath
		if index > 0 {
			target += "?index=" + strconv.FormatUint(index, 10) + "&wait=" + s.wait.String()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return 0, err
		}
		_, hdr, err := do(readers, req)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseUint(hdr.Get("X-Switchyard-Index"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("X-Switchyard-Index %q: %v", hdr.Get("X-Switchyard-Index"), err)
		}
		return v, nil
	}

	// Create the service, then learn its index on the watchers' server (a
	// follower may need a moment to apply the write).
	if err := write(1); err != nil {
		return res, fmt.Errorf("first write: %w", err)
	}
	var index uint64
	for deadline := time.Now().Add(5 * time.Second); ; {
		idx, err := read(ctx, 0)
		if err == nil {
			index = idx
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("reading %s: %w", svcPath, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var writeLat, sendLat, ackLat []time.Duration
	noteErr := func(err error) {
		res.Errors++
		if res.FirstErr == "" {
			res.FirstErr = err.Error()
		}
	}
	stopAt := time.Now().Add(s.maxDuration)
	for i := 0; i < s.samples && time.Now().Before(stopAt) && ctx.Err() == nil; i++ {
		wctx, cancel := context.WithTimeout(ctx, s.wait+s.timeout)
		wakes := make(chan wake, s.watchers)
		for w := 0; w < s.watchers; w++ {
			go func() {
				idx, err := read(wctx, index)
				wakes <- wake{at: time.Now(), index: idx, err: err}
			}()
		}
		time.Sleep(s.settle)
		t0 := time.Now()
		err := write(2 + i%60000)
		t1 := time.Now()
		res.Samples++
		if err != nil {
			noteErr(fmt.Errorf("write: %w", err))
		} else {
			writeLat = append(writeLat, t1.Sub(t0))
		}
		next := index
		for w := 0; w < s.watchers; w++ {
			k := <-wakes // bounded by wctx: every read returns by then
			switch {
			case k.err != nil:
				noteErr(fmt.Errorf("blocking query: %w", k.err))
			case k.at.Before(t0):
				res.Early++
				next = max(next, k.index)
			case k.index <= index:
				res.Unchanged++
			default:
				res.Wakes++
				sendLat = append(sendLat, k.at.Sub(t0))
				if err == nil {
					ackLat = append(ackLat, k.at.Sub(t1))
					if k.at.Before(t1) {
						res.WokeBeforeAck++
					}
				}
				next = max(next, k.index)
			}
		}
		cancel()
		if next == index && err != nil {
			// Neither the write nor the watchers got through: back off.
			time.Sleep(100 * time.Millisecond)
		}
		index = next
	}
	for _, l := range [][]time.Duration{writeLat, sendLat, ackLat} {
		slices.Sort(l)
	}
	res.WriteP50ms, res.WriteP99ms = ms(percentile(writeLat, .5)), ms(percentile(writeLat, .99))
	res.SendP50ms, res.SendP99ms, res.SendMaxms = ms(percentile(sendLat, .5)), ms(percentile(sendLat, .99)), ms(percentile(sendLat, 1))
	res.AckP50ms, res.AckP99ms = ms(percentile(ackLat, .5)), ms(percentile(ackLat, .99))
	return res, nil
}

func watchTable(rows []watchResult) *table {
	t := &table{
		title: "Blocking-query wake-up (GET …/instances?index=N&wait=30s, then a write to the service)",
		header: []string{"watchers on", "writes to", "watchers", "writes", "wakes", "write p50 ms", "write p99 ms",
			"send→wake p50 ms", "send→wake p99 ms", "ack→wake p50 ms", "ack→wake p99 ms", "woke before ack", "early", "missed", "errors"},
	}
	for _, r := range rows {
		t.add(r.Server, r.WriteServer, strconv.Itoa(r.Watchers), strconv.Itoa(r.Samples), strconv.Itoa(r.Wakes),
			fmtMs(r.WriteP50ms), fmtMs(r.WriteP99ms), fmtMs(r.SendP50ms), fmtMs(r.SendP99ms),
			fmtMs(r.AckP50ms), fmtMs(r.AckP99ms), strconv.Itoa(r.WokeBeforeAck), strconv.Itoa(r.Early),
			strconv.Itoa(r.Unchanged), strconv.Itoa(r.Errors))
		if r.FirstErr != "" {
			t.notes = append(t.notes, "First error: "+r.FirstErr)
		}
	}
	t.notes = append(t.notes, "send→wake: from just before the write is sent to the watcher's answer arriving; "+
		"ack→wake: from the write's answer arriving to the watcher's answer arriving (negative: the watcher heard first). "+
		"early: blocking queries that returned before the write was sent; missed: returned at wait= without the change.")
	return t
}
