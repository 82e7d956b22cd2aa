package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchyard-io/switchyard/client"
)

// deltaModeResult is one way of watching: every watcher asks for full
// answers, or for deltas.
type deltaModeResult struct {
	Mode    string `json:"mode"` // "full" or "delta"
	Changes int    `json:"changes"`
	// Answers counts the watchers' answers that carried a change.
	Answers int `json:"answers"`
	// Bytes is everything the watchers read from their connections for
	// the changes (status lines, headers and bodies); per change, for all
	// watchers, and per answer.
	Bytes          int64   `json:"bytes"`
	BytesPerChange float64 `json:"bytes_per_change"`
	BytesPerAnswer float64 `json:"bytes_per_answer"`
	// LastWake: from just before a change is sent to the last watcher's
	// answer read whole, over the changes.
	LastWakeP50ms float64 `json:"last_wake_p50_ms"`
	LastWakeMaxms float64 `json:"last_wake_max_ms"`
	// Early counts answers that came before the change was sent; Missed,
	// those that came at wait= without it; Errors, failed requests.
	Early    int    `json:"early"`
	Missed   int    `json:"missed"`
	Errors   int    `json:"errors"`
	FirstErr string `json:"first_error,omitempty"`
}

// deltaResult compares the two ways of watching one big service.
type deltaResult struct {
	Server    string `json:"server"`
	Service   string `json:"service"`
	Instances int    `json:"instances"`
	Watchers  int    `json:"watchers"`
	Near      string `json:"near"`
	// FullAnswerBytes is the body of one full answer.
	FullAnswerBytes int             `json:"full_answer_bytes"`
	Full            deltaModeResult `json:"full"`
	Delta           deltaModeResult `json:"delta"`
	// Ratio is the delta mode's bytes per change over the full mode's.
	Ratio float64 `json:"ratio"`
	// Verified: one watcher rebuilt every answer from the deltas it got,
	// and ended with exactly the server's full answer.
	Verified  bool   `json:"verified"`
	VerifyErr string `json:"verify_error,omitempty"`
}

// runDelta measures what watchers of a big service receive per change:
// every watcher asking for the full answer each time, then every watcher
// asking for deltas.
func runDelta(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c           commonFlags
		server      string
		instances   int
		watchers    int
		changes     int
		near        string
		settle      time.Duration
		wait        time.Duration
		maxDuration time.Duration
	)
	fs := newFlagSet("delta", stderr)
	c.register(fs)
	fs.StringVar(&server, "server", "http://127.0.0.1:7400", "server the service is registered on and watched")
	fs.IntVar(&instances, "instances", 5000, "instances of the watched service (registered first, in region eu-west, datacenter dc1)")
	fs.IntVar(&watchers, "watchers", 1000, "blocking queries on the service, each on its own connection")
	fs.IntVar(&changes, "changes", 20, "changes made in each mode, each waking every watcher once")
	fs.StringVar(&near, "near", "eu-west/dc1", "the watchers' locality (near=): the default puts every instance in their answer")
	fs.DurationVar(&settle, "settle", 500*time.Millisecond, "pause between sending the blocking queries and the change, so they are parked on the server")
	fs.DurationVar(&wait, "wait", time.Minute, "wait= of the blocking queries")
	fs.DurationVar(&maxDuration, "max-duration", 10*time.Minute, "stop making changes after this long (both modes together)")
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
	if instances <= 0 || watchers <= 0 || changes <= 0 || settle < 0 || wait <= 0 || maxDuration <= 0 {
		return fmt.Errorf("--instances, --watchers, --changes, --wait and --max-duration must be positive")
	}
	if instances > 100_000 || watchers > 10_000 {
		return fmt.Errorf("--instances is at most 100000 and --watchers at most 10000")
	}
	if _, err := client.NewAPI(srvs[0], nil); err != nil {
		return err
	}
	r, err := deltaBench(ctx, deltaSpec{server: srvs[0], namespace: c.namespace, instances: instances, watchers: watchers,
		changes: changes, near: near, settle: settle, wait: wait, maxDuration: maxDuration, timeout: c.timeout,
		progress: func(format string, args ...any) { progress(&c, stderr, format, args...) }})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return writeJSON(stdout, map[string]any{"bench": "delta", "results": []deltaResult{r}})
	}
	return deltaTable(r).write(stdout)
}

type deltaSpec struct {
	server, namespace string
	instances         int
	watchers, changes int
	near              string
	settle, wait      time.Duration
	maxDuration       time.Duration
	timeout           time.Duration
	progress          func(format string, args ...any)
}

// countingConn counts the bytes read from a connection into n.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// countingClient is an HTTP client whose connections count what they
// read: every byte of every answer, headers included.
func countingClient(conns int, timeout time.Duration) (*http.Client, *atomic.Int64) {
	n := new(atomic.Int64)
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{conn, n}, nil
		},
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 8,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	return &http.Client{Transport: withToken(tr), Timeout: timeout}, n
}

// watchAnswer is one watcher's answer to one change.
type watchAnswer struct {
	at    time.Time
	index uint64
	token string
	body  []byte // kept for the verifying watcher only
	err   error
}

func deltaBench(ctx context.Context, s deltaSpec) (deltaResult, error) {
	svc := "delta-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	res := deltaResult{Server: s.server, Service: svc, Instances: s.instances, Watchers: s.watchers, Near: s.near}
	base := fmt.Sprintf("%s/v1/namespaces/%s/services/%s", s.server, url.PathEscape(s.namespace), url.PathEscape(svc))
	list := base + "/instances?healthy=true&near=" + url.QueryEscape(s.near)
	s.progress("delta: registering %d instances in %s", s.instances, svc)
	if err := populate(ctx, s.server, s.namespace, svc, s.instances, s.timeout); err != nil {
		return res, fmt.Errorf("registering %d instances: %w", s.instances, err)
	}
	writer := newHTTPClient(1, s.timeout)
	defer writer.CloseIdleConnections()
	defer func() {
		// The service was made for this run.
		req, err := http.NewRequest(http.MethodDelete, base, nil)
		if err == nil {
			_, _, _ = do(writer, req)
		}
	}()
	get := func(hc *http.Client, target string) ([]byte, http.Header, error) {
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
		if err == nil && resp.StatusCode != http.StatusOK {
			err = &httpError{status: resp.StatusCode, body: string(bytes.TrimSpace(body))}
		}
		return body, resp.Header, err
	}
	first, _, err := get(writer, list)
	if err != nil {
		return res, fmt.Errorf("GET %s: %w", list, err)
	}
	var probe client.Instances
	if err := json.Unmarshal(first, &probe); err != nil {
		return res, fmt.Errorf("GET %s: %w", list, err)
	}
	if len(probe.Instances) != s.instances {
		return res, fmt.Errorf("GET %s: %d instances in the answer, want all %d (is --near where they are?)", list, len(probe.Instances), s.instances)
	}
	res.FullAnswerBytes = len(first)

	// change makes the k-th change of the run (k counts across both
	// modes, so that no re-registration repeats an earlier one, which
	// would change nothing): mostly a re-registration with a new tag, and
	// every fifth change a removal, followed by the instance's return.
	removed := -1
	change := func(k int) error {
		id := (k * 7919) % s.instances
		method, body := http.MethodPut, instanceBody(id, fmt.Sprintf(`"v1","change-%d"`, k))
		switch {
		case k%5 == 3:
			method, body, removed = http.MethodDelete, "", id
		case k%5 == 4 && removed >= 0:
			id, body, removed = removed, instanceBody(removed, `"v1"`), -1
		}
		req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("%s/instances/i-%05d", base, id), strings.NewReader(body))
		if err != nil {
			return err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		_, _, err = do(writer, req)
		return err
	}

	stopAt := time.Now().Add(s.maxDuration)
	k := 0
	for _, mode := range []string{"full", "delta"} {
		m := deltaModeResult{Mode: mode}
		hc, read := countingClient(s.watchers, s.wait+s.timeout)
		// Every watcher starts from the same answer: one full answer
		// read here (the watchers' own first answers would be as many
		// full answers, which is not what is measured).
		startURL := list
		if mode == "delta" {
			startURL += "&delta=true"
		}
		body, hdr, err := get(writer, startURL)
		if err != nil {
			return res, fmt.Errorf("GET %s: %w", startURL, err)
		}
		index, err := strconv.ParseUint(hdr.Get("X-Switchyard-Index"), 10, 64)
		if err != nil {
			return res, fmt.Errorf("X-Switchyard-Index %q: %w", hdr.Get("X-Switchyard-Index"), err)
		}
		tokens := make([]string, s.watchers)
		var verify *client.Instances
		if mode == "delta" {
			tok := hdr.Get(client.HeaderDeltaToken)
			if tok == "" {
				return res, fmt.Errorf("no %s in the answer to delta=true: does the server answer deltas?", client.HeaderDeltaToken)
			}
			for w := range tokens {
				tokens[w] = tok
			}
			verify = new(client.Instances)
			if err := json.Unmarshal(body, verify); err != nil {
				return res, err
			}
		}
		s.progress("delta: %s answers: %d changes, %d watchers", mode, s.changes, s.watchers)
		var lastWake []time.Duration
		noteErr := func(err error) {
			m.Errors++
			if m.FirstErr == "" {
				m.FirstErr = err.Error()
			}
		}
		for i := 0; i < s.changes && time.Now().Before(stopAt) && ctx.Err() == nil; i++ {
			wctx, cancel := context.WithTimeout(ctx, s.wait+s.timeout)
			answers := make(chan struct {
				w int
				a watchAnswer
			}, s.watchers)
			for w := range s.watchers {
				target := list + "&index=" + strconv.FormatUint(index, 10) + "&wait=" + s.wait.String()
				if mode == "delta" {
					target += "&delta=" + url.QueryEscape(tokens[w])
				}
				go func() {
					a := watchAnswer{}
					req, err := http.NewRequestWithContext(wctx, http.MethodGet, target, nil)
					if err == nil {
						var resp *http.Response
						if resp, err = hc.Do(req); err == nil {
							if w == 0 && verify != nil {
								a.body, err = io.ReadAll(resp.Body)
							} else {
								_, err = io.Copy(io.Discard, resp.Body)
							}
							resp.Body.Close()
							if err == nil && resp.StatusCode != http.StatusOK {
								err = fmt.Errorf("HTTP %d", resp.StatusCode)
							}
							a.index, _ = strconv.ParseUint(resp.Header.Get("X-Switchyard-Index"), 10, 64)
							a.token = resp.Header.Get(client.HeaderDeltaToken)
						}
					}
					a.at, a.err = time.Now(), err
					answers <- struct {
						w int
						a watchAnswer
					}{w, a}
				}()
			}
			time.Sleep(s.settle)
			before := read.Load()
			t0 := time.Now()
			err := change(k)
			k++
			m.Changes++
			if err != nil {
				noteErr(fmt.Errorf("change: %w", err))
			}
			next := index
			var last time.Time
			for range s.watchers {
				x := <-answers // bounded by wctx
				a := x.a
				switch {
				case a.err != nil:
					noteErr(fmt.Errorf("blocking query: %w", a.err))
					continue
				case a.at.Before(t0):
					m.Early++
				case a.index <= index:
					m.Missed++
				default:
					m.Answers++
					if a.at.After(last) {
						last = a.at
					}
				}
				next = max(next, a.index)
				if mode == "delta" {
					tokens[x.w] = a.token
				}
				if x.w == 0 && verify != nil && res.VerifyErr == "" {
					if err := rebuild(verify, a.body); err != nil {
						res.VerifyErr = err.Error()
					}
				}
			}
			m.Bytes += read.Load() - before
			cancel()
			if !last.IsZero() {
				lastWake = append(lastWake, last.Sub(t0))
			}
			index = next
		}
		hc.CloseIdleConnections()
		if m.Changes > 0 {
			m.BytesPerChange = float64(m.Bytes) / float64(m.Changes)
		}
		if m.Answers > 0 {
			m.BytesPerAnswer = float64(m.Bytes) / float64(m.Answers)
		}
		slices.Sort(lastWake)
		m.LastWakeP50ms, m.LastWakeMaxms = ms(percentile(lastWake, .5)), ms(percentile(lastWake, 1))
		if mode == "full" {
			res.Full = m
		} else {
			res.Delta = m
			if res.VerifyErr == "" {
				body, _, err := get(writer, list)
				switch rebuilt, _ := json.Marshal(verify); {
				case err != nil:
					res.VerifyErr = err.Error()
				case !bytes.Equal(rebuilt, body):
					res.VerifyErr = fmt.Sprintf("the answer rebuilt from deltas (%d bytes) is not the full answer (%d bytes)", len(rebuilt), len(body))
				default:
					res.Verified = true
				}
			}
		}
	}
	if res.Full.BytesPerChange > 0 {
		res.Ratio = res.Delta.BytesPerChange / res.Full.BytesPerChange
	}
	return res, nil
}

// rebuild applies an answer to the verifying watcher's full answer: a
// delta is applied, a full answer replaces it.
func rebuild(full *client.Instances, body []byte) error {
	var a client.Instances
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("verifying watcher: %w", err)
	}
	if !a.Delta {
		*full = a
		return nil
	}
	next, err := full.ApplyDelta(&a)
	if err != nil {
		return fmt.Errorf("verifying watcher: %w", err)
	}
	*full = *next
	return nil
}

func deltaTable(r deltaResult) *table {
	t := &table{
		title: fmt.Sprintf("Watchers of a %s-instance service (%s answer): bytes per change, full answers vs deltas",
			thousands(int64(r.Instances)), fmtBytes(int64(r.FullAnswerBytes))),
		header: []string{"watchers ask for", "watchers", "changes", "answers", "bytes per change (all watchers)", "bytes per answer",
			"last wake p50 ms", "last wake max ms", "early", "missed", "errors"},
	}
	for _, m := range []deltaModeResult{r.Full, r.Delta} {
		what := map[string]string{"full": "full answers", "delta": "deltas"}[m.Mode]
		t.add(what, thousands(int64(r.Watchers)), strconv.Itoa(m.Changes), thousands(int64(m.Answers)),
			thousands(int64(m.BytesPerChange+0.5)), thousands(int64(m.BytesPerAnswer+0.5)),
			fmtMs(m.LastWakeP50ms), fmtMs(m.LastWakeMaxms), strconv.Itoa(m.Early), strconv.Itoa(m.Missed), strconv.Itoa(m.Errors))
		if m.FirstErr != "" {
			t.notes = append(t.notes, m.Mode+": first error: "+m.FirstErr)
		}
	}
	verified := "yes: one watcher rebuilt every answer from its deltas and ended with the server's full answer, byte for byte"
	if !r.Verified {
		verified = "NO: " + r.VerifyErr
	}
	t.notes = append(t.notes,
		fmt.Sprintf("Deltas / full answers, bytes per change: %.5f (%.0f× fewer). Bytes are all the watchers read for a change: status lines, headers and bodies.", r.Ratio, 1/max(r.Ratio, 1e-12)),
		"last wake: from just before the change is sent to the last watcher's answer read whole.",
		"Verified: "+verified+".",
		fmt.Sprintf("Server %s, service %s (deleted after the run), watchers near=%s.", r.Server, r.Service, r.Near))
	return t
}
