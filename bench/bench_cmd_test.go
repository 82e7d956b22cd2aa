package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMain lets this test binary stand in for the command when
// `lookup --bare child` re-executes it as a bare-serve child.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "registry-bench:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(lat, c.q); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v, want 0", got)
	}
	if got := percentile([]time.Duration{-3, 1}, 0.5); got != -3 {
		t.Errorf("negative latencies: p50 = %v, want -3", got)
	}
}

func TestRunLoadBounds(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		var calls atomic.Int64
		r := runLoad(context.Background(), loadSpec{clients: 8, duration: 10 * time.Second, count: 100,
			op: func(context.Context, int, int64) error { calls.Add(1); return nil }})
		if calls.Load() != 100 || r.Ops != 100 {
			t.Errorf("count 100: %d calls, %d ops", calls.Load(), r.Ops)
		}
		if r.Elapsed > 5*time.Second {
			t.Errorf("took %v", r.Elapsed)
		}
	})
	t.Run("duration", func(t *testing.T) {
		r := runLoad(context.Background(), loadSpec{clients: 4, duration: 100 * time.Millisecond,
			op: func(context.Context, int, int64) error { time.Sleep(time.Millisecond); return nil }})
		if r.Elapsed < 100*time.Millisecond || r.Elapsed > 2*time.Second {
			t.Errorf("elapsed %v for a 100ms run", r.Elapsed)
		}
		if r.Ops == 0 || r.P50 < time.Millisecond {
			t.Errorf("ops %d p50 %v", r.Ops, r.P50)
		}
	})
	t.Run("errors", func(t *testing.T) {
		r := runLoad(context.Background(), loadSpec{clients: 2, duration: time.Second, count: 10,
			op: func(_ context.Context, _ int, seq int64) error {
				if seq%2 == 0 {
					return errors.New("boom")
				}
				return nil
			}})
		if r.Ops != 5 || r.Errors != 5 || r.FirstError != "boom" {
			t.Errorf("ops %d errors %d first %q, want 5, 5, boom", r.Ops, r.Errors, r.FirstError)
		}
	})
}

func TestProcCPU(t *testing.T) {
	pid := []int{os.Getpid()}
	before, err := procCPU(pid)
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	// Spin until the process has used 100ms more CPU, however long a busy
	// machine makes that take (bounded), then check withCPU saw it.
	r := withCPU(pid, func() rawRun {
		x := 0
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			for range 1 << 16 {
				x++
			}
			if now, err := procCPU(pid); err != nil || now-before >= 100*time.Millisecond {
				break
			}
		}
		return rawRun{ops: int64(x % 2)}
	})
	after, _ := procCPU(pid)
	if !r.cpuKnown || r.cpu < 80*time.Millisecond || after < before+r.cpu {
		t.Errorf("spinning for 100ms of CPU measured %v (known %v); total %v -> %v", r.cpu, r.cpuKnown, before, after)
	}
	if _, err := procCPU([]int{1 << 30}); err == nil {
		t.Error("no error for a pid that does not exist")
	}
	if _, err := parsePids("pids", "1,x"); err == nil {
		t.Error("parsePids accepted x")
	}
}

func TestTableIsMarkdown(t *testing.T) {
	tb := &table{title: "T", header: []string{"a", "bb"}}
	tb.add("x", "1,234")
	var b bytes.Buffer
	if err := tb.write(&b); err != nil {
		t.Fatal(err)
	}
	want := "T\n\n| a |    bb |\n| - | ----: |\n| x | 1,234 |\n\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if thousands(1234567) != "1,234,567" || thousands(12) != "12" || thousands(-1000) != "-1,000" {
		t.Errorf("thousands: %s %s %s", thousands(1234567), thousands(12), thousands(-1000))
	}
}

func TestBareServerAnswersSameBytes(t *testing.T) {
	bs := newBareServer()
	hdr := http.Header{"Content-Type": {"application/json"}, "X-Switchyard-Index": {"7"}, "Date": {"x"}}
	bs.set("/p", []byte(`{"a":1}`), hdr)
	w := httptest.NewRecorder()
	bs.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/p", nil))
	if w.Body.String() != `{"a":1}` || w.Header().Get("X-Switchyard-Index") != "7" || w.Header().Get("Date") != "" {
		t.Errorf("answer %q headers %v", w.Body.String(), w.Header())
	}
	w = httptest.NewRecorder()
	bs.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/other", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("unknown path: %d", w.Code)
	}
}

// TestCommandsAgainstRegistry runs the three commands briefly against a
// real registry in this process and checks what they report.
func TestCommandsAgainstRegistry(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	runJSON := func(t *testing.T, args ...string) map[string]json.RawMessage {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := Run(ctx, append(args, "--output", "json", "--quiet"), &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("%v: output is not JSON: %v\n%s", args, err, out.String())
		}
		return m
	}

	for _, client := range []string{"fasthttp", "net/http"} {
		t.Run("register with "+client, func(t *testing.T) {
			before := reg.Node.Store().Stats().Instances
			m := runJSON(t, "register", "--servers", reg.URL+","+reg.URL, "--clients", "1,4", "--duration", "300ms", "--count", "200",
				"--pids", fmt.Sprint(os.Getpid()), "--http-client", client)
			var rows []registerResult
			if err := json.Unmarshal(m["results"], &rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[0].Clients != 1 || rows[1].Clients != 4 {
				t.Fatalf("rows: %+v", rows)
			}
			for _, r := range rows {
				if r.Ops == 0 || r.Errors != 0 || r.Ops > 200 || r.OpsPerSec <= 0 || r.P50ms <= 0 || r.P99ms < r.P50ms {
					t.Errorf("row %+v", r)
				}
			}
			// CPU is counted in 10ms ticks: over both levels it cannot be
			// zero, for the servers (here this process) or the generator.
			if cpu := rows[0].ServerCPUs + rows[1].ServerCPUs; cpu <= 0 {
				t.Errorf("rows %+v: no server CPU although --pids was given", rows)
			}
			if rows[0].SelfCPUPerOpUs+rows[1].SelfCPUPerOpUs <= 0 {
				t.Errorf("rows %+v: no CPU of the load generator", rows)
			}
			// Every registration acknowledged is in the catalog.
			after := reg.Node.Store().Stats().Instances
			if int64(after-before) < rows[0].Ops+rows[1].Ops {
				t.Errorf("%d instances added to the catalog, %d registrations acknowledged", after-before, rows[0].Ops+rows[1].Ops)
			}
		})
	}

	t.Run("xds", func(t *testing.T) {
		m := runJSON(t, "xds", "--server", reg.URL, "--xds", reg.XDS, "--samples", "20")
		var rows []xdsResult
		if err := json.Unmarshal(m["results"], &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Fatalf("rows: %+v", rows)
		}
		r := rows[0]
		// Every sample's write was heard by both, after it was sent.
		if r.Samples != 20 || r.Errors != 0 || r.XDSSendP50ms <= 0 || r.BlockingSendP50ms <= 0 ||
			r.XDSSendP99ms < r.XDSSendP50ms || r.BlockingSendP99ms < r.BlockingSendP50ms {
			t.Errorf("xds row %+v", r)
		}
	})

	// A refused registration is an error with the server's status and
	// message, whichever client sent it.
	for _, client := range []string{"fasthttp", "net/http"} {
		t.Run("refused with "+client, func(t *testing.T) {
			m := runJSON(t, "register", "--servers", reg.URL, "--namespace", "no-such-namespace", "--clients", "2",
				"--duration", "200ms", "--count", "20", "--http-client", client)
			var rows []registerResult
			if err := json.Unmarshal(m["results"], &rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows[0].Ops != 0 || rows[0].Errors == 0 || !strings.Contains(rows[0].FirstError, "HTTP 404") ||
				!strings.Contains(rows[0].FirstError, "no-such-namespace") {
				t.Errorf("rows %+v: want only errors, the first an HTTP 404 naming the namespace", rows)
			}
		})
	}

	t.Run("lookup", func(t *testing.T) {
		m := runJSON(t, "lookup", "--server", reg.URL, "--instances", "3,20", "--clients", "2", "--duration", "200ms", "--warmup", "50ms", "--bare", "both")
		var rows []lookupResult
		if err := json.Unmarshal(m["results"], &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].Instances != 3 || rows[1].Instances != 20 || rows[1].Bytes <= rows[0].Bytes {
			t.Fatalf("rows: %+v", rows)
		}
		for _, r := range rows {
			if r.Bare == nil || r.BareChild == nil {
				t.Fatalf("row %+v: a baseline is missing", r)
			}
			if r.Registry.Ops == 0 || r.Bare.Ops == 0 || r.BareChild.Ops == 0 ||
				r.Registry.Errors+r.Bare.Errors+r.BareChild.Errors != 0 || r.Ratio <= 0 || r.RatioChild <= 0 {
				t.Errorf("row %+v", r)
			}
		}
	})

	t.Run("watch", func(t *testing.T) {
		m := runJSON(t, "watch", "--server", reg.URL, "--samples", "10", "--watchers", "3", "--settle", "5ms")
		var rows []watchResult
		if err := json.Unmarshal(m["results"], &rows); err != nil {
			t.Fatal(err)
		}
		r := rows[0]
		if r.Samples != 10 || r.Wakes != 30 || r.Early+r.Unchanged+r.Errors != 0 {
			t.Errorf("result %+v", r)
		}
		if r.SendP50ms <= 0 || r.SendP99ms < r.SendP50ms || r.SendP99ms > 5000 {
			t.Errorf("wake latencies %+v", r)
		}
	})

	// Watchers of a service of a few hundred instances: with deltas they
	// read a small fraction of what full answers cost them per change,
	// and one of them, rebuilding every answer from its deltas, ends with
	// the server's full answer.
	t.Run("delta", func(t *testing.T) {
		m := runJSON(t, "delta", "--server", reg.URL, "--instances", "300", "--watchers", "20", "--changes", "6", "--settle", "100ms", "--wait", "20s")
		var rows []deltaResult
		if err := json.Unmarshal(m["results"], &rows); err != nil {
			t.Fatal(err)
		}
		r := rows[0]
		for _, md := range []deltaModeResult{r.Full, r.Delta} {
			if md.Changes != 6 || md.Answers != 6*20 || md.Early+md.Missed+md.Errors != 0 {
				t.Errorf("%s: %+v", md.Mode, md)
			}
		}
		if !r.Verified {
			t.Errorf("not verified: %s", r.VerifyErr)
		}
		// A full answer of 300 instances is about 100 KB; a delta of one
		// change a few hundred bytes with its headers.
		if r.FullAnswerBytes < 50_000 || r.Full.BytesPerAnswer < float64(r.FullAnswerBytes) ||
			r.Delta.BytesPerAnswer <= 0 || r.Delta.BytesPerAnswer > 2_000 || r.Ratio <= 0 || r.Ratio > 0.05 {
			t.Errorf("bytes: full answer %d, full %+v, delta %+v, ratio %v", r.FullAnswerBytes, r.Full, r.Delta, r.Ratio)
		}
		if r.Ratio != r.Delta.BytesPerChange/r.Full.BytesPerChange {
			t.Errorf("ratio %v, bytes per change %v / %v", r.Ratio, r.Delta.BytesPerChange, r.Full.BytesPerChange)
		}
		// The service made for the run is gone.
		if _, err := reg.Node.Store().Service("default", r.Service); err == nil {
			t.Errorf("service %s left behind", r.Service)
		}
	})

	// With --bare both, each level is followed by a bare PUT handler in this
	// process and one in its own, answering the registry's answer bytes;
	// the registry's rate over theirs is the ratio. The bare handlers store
	// nothing: the catalog grows by the registry's rows and the probe only.
	t.Run("register with bare baselines", func(t *testing.T) {
		before := reg.Node.Store().Stats().Instances
		m := runJSON(t, "register", "--servers", reg.URL, "--clients", "2", "--duration", "300ms", "--count", "300", "--bare", "both")
		var rows []registerResult
		if err := json.Unmarshal(m["results"], &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 || rows[0].Target != "registry" || rows[1].Target != "bare, in-process" || rows[2].Target != "bare, own process" {
			t.Fatalf("rows: %+v", rows)
		}
		for _, r := range rows {
			if r.Ops == 0 || r.Errors != 0 || r.OpsPerSec <= 0 {
				t.Errorf("row %+v", r)
			}
		}
		for _, r := range rows[1:] {
			if want := rows[0].OpsPerSec / r.OpsPerSec; r.Ratio != want {
				t.Errorf("%s: ratio %v, want %v", r.Target, r.Ratio, want)
			}
		}
		// At most one registration per client was cut off by the level's
		// end after the registry had applied it.
		if added := int64(reg.Node.Store().Stats().Instances - before); added < rows[0].Ops+1 || added > rows[0].Ops+1+2 {
			t.Errorf("%d instances added to the catalog, want the registry's %d, the probe and at most 2 cut off", added, rows[0].Ops)
		}
	})

	t.Run("table", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if err := Run(ctx, []string{"register", "--servers", reg.URL, "--clients", "2", "--duration", "100ms", "--quiet"}, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "| clients | registrations | registrations/s |") {
			t.Errorf("table output:\n%s", out.String())
		}
	})

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"register", "--clients", "0"},
			{"register", "--output", "yaml"},
			{"register", "--http-client", "curl"},
			{"register", "--bare", "sometimes"},
			{"lookup", "--server", "a,b"},
			{"watch", "--samples", "0"},
			{"delta", "--watchers", "0"},
			{"delta", "--server", "a,b"},
			{"delta", "--instances", "1000000"},
			{"nope"},
		} {
			var out, errOut bytes.Buffer
			if err := Run(ctx, args, &out, &errOut); err == nil {
				t.Errorf("%v: no error", args)
			}
		}
	})
}
