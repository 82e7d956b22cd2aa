package check

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-io/switchyard/store"
)

// newHTTPServer starts a real HTTP server on 127.0.0.1 for the test.
func newHTTPServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newGRPCServer starts a real gRPC server on 127.0.0.1 serving the
// standard health service, and returns its address, its health server and
// a function that stops it (also run at cleanup).
func newGRPCServer(t *testing.T) (string, *health.Server, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), hs, srv.Stop
}

func httpCheck(url string) store.Check {
	return store.Check{Type: store.CheckHTTP, Target: url, Timeout: store.Duration(5 * time.Second)}
}

func TestProbeHTTPOKThenFailing(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusOK)
	var gotUA atomic.Value
	srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUA.Store(r.UserAgent())
		c := int(code.Load())
		w.WriteHeader(c)
		if c != http.StatusOK {
			_, _ = io.WriteString(w, "database\tdown\n")
		}
	}))
	url := srv.URL + "/health"

	r := loopbackPolicy.Probe(t.Context(), httpCheck(url))
	if !r.OK || r.Output != "HTTP GET "+url+": 200 OK" {
		t.Fatalf("200: OK=%v Output=%q", r.OK, r.Output)
	}
	if ua, _ := gotUA.Load().(string); ua != "switchyard-health-check" {
		t.Errorf("User-Agent = %q", ua)
	}
	if r.At.IsZero() || r.Duration <= 0 {
		t.Errorf("At=%v Duration=%v, want both set", r.At, r.Duration)
	}

	code.Store(http.StatusInternalServerError)
	r = loopbackPolicy.Probe(t.Context(), httpCheck(url))
	if want := "HTTP GET " + url + ": 500 Internal Server Error: database down"; r.OK || r.Output != want {
		t.Fatalf("500: OK=%v Output=%q, want false %q", r.OK, r.Output, want)
	}
}

func TestProbeHTTPStatuses(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/no-content", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, _ *http.Request) { followed.Add(1) })
	mux.HandleFunc("/not-found", http.NotFound)
	mux.HandleFunc("/huge", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, strings.Repeat("é", 1<<20)) // 2 MiB, multi-byte
	})
	srv := newHTTPServer(t, mux)

	cases := []struct {
		path   string
		ok     bool
		output string // prefix after "HTTP GET <url>: "
	}{
		{"/no-content", true, "204 No Content"},
		{"/redirect", false, "302 Found (redirect to /target not followed)"},
		{"/not-found", false, "404 Not Found: 404 page not found"},
		{"/huge", false, "503 Service Unavailable: éé"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			url := srv.URL + tc.path
			r := loopbackPolicy.Probe(t.Context(), httpCheck(url))
			want := "HTTP GET " + url + ": " + tc.output
			if r.OK != tc.ok || !strings.HasPrefix(r.Output, want) {
				t.Fatalf("OK=%v Output=%q, want %v and prefix %q", r.OK, r.Output, tc.ok, want)
			}
			if len(r.Output) > MaxOutput || !utf8.ValidString(r.Output) {
				t.Fatalf("Output is %d bytes (max %d), valid UTF-8: %v", len(r.Output), MaxOutput, utf8.ValidString(r.Output))
			}
		})
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("redirect target was fetched %d times, want 0", n)
	}
}

func TestProbeHTTPInvalidTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:8080", "ftp://127.0.0.1/x", "http://", "http://[::1"} {
		t.Run(target, func(t *testing.T) {
			r := loopbackPolicy.Probe(t.Context(), httpCheck(target))
			if r.OK || !strings.Contains(r.Output, "invalid target") {
				t.Fatalf("OK=%v Output=%q, want a failure naming an invalid target", r.OK, r.Output)
			}
		})
	}
}

func TestProbeHTTPRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r := loopbackPolicy.Probe(t.Context(), httpCheck(url))
	if r.OK || !strings.HasPrefix(r.Output, "HTTP GET "+url+": dial tcp") || !strings.Contains(r.Output, "refused") {
		t.Fatalf("OK=%v Output=%q, want a refused dial", r.OK, r.Output)
	}
}

// hangingServer answers nothing until the request is abandoned; entered
// receives a value when a request arrives.
func hangingServer(t *testing.T) (*httptest.Server, chan struct{}) {
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	// Release handlers before Close, which waits for them.
	t.Cleanup(func() { close(release); srv.Close() })
	return srv, entered
}

func TestProbeTimeout(t *testing.T) {
	srv, _ := hangingServer(t)
	cases := []struct {
		name     string
		timeout  time.Duration
		interval time.Duration
		want     string
	}{
		{"timeout", 100 * time.Millisecond, 0, "(timeout 100ms)"},
		// A 1-minute timeout is cut to the 150ms interval.
		{"clamped to interval", time.Minute, 150 * time.Millisecond, "(timeout 150ms)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := store.Check{Type: store.CheckHTTP, Target: srv.URL,
				Timeout: store.Duration(tc.timeout), Interval: store.Duration(tc.interval)}
			r := loopbackPolicy.Probe(t.Context(), c)
			if r.OK || !strings.Contains(r.Output, tc.want) {
				t.Fatalf("OK=%v Output=%q, want a failure containing %q", r.OK, r.Output, tc.want)
			}
			// Generous: only shows the limit was not DefaultTimeout or more.
			if r.Duration >= DefaultTimeout {
				t.Fatalf("probe took %v", r.Duration)
			}
		})
	}
}

func TestProbeTimeoutRules(t *testing.T) {
	s := func(d time.Duration) store.Duration { return store.Duration(d) }
	cases := []struct {
		timeout, interval store.Duration
		want              time.Duration
	}{
		{0, 0, DefaultTimeout},
		{-1, 0, DefaultTimeout},
		{s(2 * time.Second), 0, 2 * time.Second},
		{s(2 * time.Second), s(time.Second), time.Second},
		{0, s(time.Second), time.Second},
		{0, s(time.Minute), DefaultTimeout},
		{s(time.Second), s(time.Minute), time.Second},
	}
	for _, tc := range cases {
		if got := probeTimeout(store.Check{Timeout: tc.timeout, Interval: tc.interval}); got != tc.want {
			t.Errorf("timeout %v interval %v: got %v, want %v",
				time.Duration(tc.timeout), time.Duration(tc.interval), got, tc.want)
		}
	}
}

func TestProbeRespectsContext(t *testing.T) {
	srv, entered := hangingServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan Result, 1)
	go func() {
		done <- loopbackPolicy.Probe(ctx, store.Check{Type: store.CheckHTTP, Target: srv.URL, Timeout: store.Duration(time.Minute)})
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the server")
	}
	cancel()
	select {
	case r := <-done:
		if r.OK || !strings.Contains(r.Output, "canceled") {
			t.Fatalf("OK=%v Output=%q, want a cancelled failure", r.OK, r.Output)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Probe did not return after its context was cancelled")
	}
}

func TestProbeTCP(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	c := store.Check{Type: store.CheckTCP, Target: addr}

	r := loopbackPolicy.Probe(t.Context(), c)
	if !r.OK || r.Output != "TCP connect "+addr+": success" {
		t.Fatalf("open listener: OK=%v Output=%q", r.OK, r.Output)
	}

	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	r = loopbackPolicy.Probe(t.Context(), c)
	if want := "dial tcp " + addr + ": connect: connection refused"; r.OK || r.Output != want {
		t.Fatalf("closed listener: OK=%v Output=%q, want false %q", r.OK, r.Output, want)
	}

	r = loopbackPolicy.Probe(t.Context(), store.Check{Type: store.CheckTCP, Target: "no-port"})
	if r.OK || !strings.Contains(r.Output, "missing port") {
		t.Fatalf("bad target: OK=%v Output=%q", r.OK, r.Output)
	}
}

func TestProbeGRPC(t *testing.T) {
	addr, hs, stop := newGRPCServer(t)
	probe := func(target string) Result {
		t.Helper()
		return loopbackPolicy.Probe(t.Context(), store.Check{Type: store.CheckGRPC, Target: target})
	}
	expect := func(step, target string, ok bool, output string) {
		t.Helper()
		r := probe(target)
		want := "gRPC health " + target + ": " + output
		if r.OK != ok || r.Output != want {
			t.Fatalf("%s: OK=%v Output=%q, want %v %q", step, r.OK, r.Output, ok, want)
		}
	}

	// health.NewServer starts with the server as a whole SERVING.
	expect("initial", addr, true, "SERVING")
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	expect("not serving", addr, false, "NOT_SERVING")
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	expect("serving again", addr, true, "SERVING")

	// A named service, after the first slash.
	named := addr + "/orders.v1.Orders"
	expect("named, not registered", named, false, "NotFound: unknown service")
	hs.SetServingStatus("orders.v1.Orders", healthpb.HealthCheckResponse_SERVING)
	expect("named serving", named, true, "SERVING")
	hs.SetServingStatus("orders.v1.Orders", healthpb.HealthCheckResponse_NOT_SERVING)
	expect("named not serving", named, false, "NOT_SERVING")
	hs.SetServingStatus("orders.v1.Orders", healthpb.HealthCheckResponse_UNKNOWN)
	expect("named unknown", named, false, "UNKNOWN")
	// The server as a whole is unaffected by the named service.
	expect("whole server", addr, true, "SERVING")

	stop()
	r := probe(addr)
	if r.OK || !strings.HasPrefix(r.Output, "gRPC health "+addr+": Unavailable: ") {
		t.Fatalf("stopped server: OK=%v Output=%q", r.OK, r.Output)
	}

	r = probe("no-port/svc")
	if r.OK || !strings.Contains(r.Output, "invalid target") {
		t.Fatalf("bad target: OK=%v Output=%q", r.OK, r.Output)
	}
}

func TestProbeUnsupportedTypes(t *testing.T) {
	for _, typ := range []string{store.CheckTTL, store.CheckNone, "", "icmp"} {
		t.Run(typ, func(t *testing.T) {
			r := loopbackPolicy.Probe(t.Context(), store.Check{Type: typ, Target: "127.0.0.1:1"})
			if r.OK || !strings.Contains(r.Output, "not probed by servers") || !strings.Contains(r.Output, `"`+typ+`"`) {
				t.Fatalf("OK=%v Output=%q, want a failure naming type %q", r.OK, r.Output, typ)
			}
			if Probeable(store.Check{Type: typ}) {
				t.Fatalf("Probeable(%q) = true", typ)
			}
		})
	}
}

func TestClip(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"short", "ok", "ok"},
		{"control characters", "a\nb\r\tc\x00", "a b  c "},
		{"invalid utf-8", "a\xffb", "a\uFFFDb"},
		{"exactly max", strings.Repeat("x", MaxOutput), strings.Repeat("x", MaxOutput)},
		{"ascii over max", strings.Repeat("x", MaxOutput+1), strings.Repeat("x", MaxOutput-3) + "…"},
		// 'é' is 2 bytes: 509 bytes would split one, so the cut falls at 508.
		{"multi-byte over max", strings.Repeat("é", MaxOutput), strings.Repeat("é", (MaxOutput-3)/2) + "…"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := clip(tc.in)
			if got != tc.want {
				t.Fatalf("clip = %q (%d bytes), want %q (%d bytes)", got, len(got), tc.want, len(tc.want))
			}
			if len(got) > MaxOutput || !utf8.ValidString(got) {
				t.Fatalf("clip gave %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
			}
		})
	}
}

// loopbackPolicy lets the tests' probes reach their servers on 127.0.0.1.
var loopbackPolicy = func() *Policy {
	p, err := NewPolicy(PolicyConfig{AllowLoopback: true})
	if err != nil {
		panic(err)
	}
	return p
}()
