package check

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/switchyard-io/switchyard/store"
)

// Probe limits.
const (
	// DefaultTimeout bounds a probe whose Check has no Timeout.
	DefaultTimeout = 5 * time.Second
	// MaxOutput is the largest Result.Output, in bytes.
	MaxOutput = 512
	// maxBody is how much of an HTTP response body a probe reads.
	maxBody = 4 << 10
	// userAgent is sent by HTTP and gRPC probes so that instances can tell
	// health checks apart from traffic in their logs.
	userAgent = "switchyard-health-check"
)

// Result is the outcome of one probe.
type Result struct {
	OK bool
	// Output is one short human-readable line, at most MaxOutput bytes:
	// what an operator needs to see why a probe failed (errors as the
	// network reported them, a response's status and body).
	Output string
	// Reason is Output reduced to a few words that tell nothing about the
	// network beyond the verdict ("HTTP 503", "unreachable", "target
	// refused by the check policy (link-local)"): what callers without
	// admin rights are shown, so that checks are no port scanner.
	Reason string
	// Duration is how long the probe took.
	Duration time.Duration
	// At is when the probe started.
	At time.Time
}

// newHTTPClient returns the client of a Policy's HTTP probes, dialling
// through d (which refuses denied addresses). Keep-alives are off: a server
// checks thousands of instances every few seconds, and idle connections to
// all of them would cost more than the handshakes they save; they would also
// hide an instance that stopped accepting connections. Redirects are not
// followed (a 3xx is a failure), and proxies from the environment are not
// used: the target is an instance address, reached directly.
func newHTTPClient(d *net.Dialer) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            d.DialContext,
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    DefaultTimeout,
			DisableKeepAlives:      true,
			DisableCompression:     true,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Probe runs one probe of c and reports the result; it never returns an
// error: a failure is a Result with OK false and the reason in Output and
// Reason. The probe is bounded by c.Timeout (DefaultTimeout when unset), by
// c.Interval when that is shorter, and by ctx. Every connection is dialled
// through the policy: an address it denies is never connected to, whatever
// name led there.
//
// Only the types a server probes are accepted (http, tcp, grpc). Any other
// type (ttl, none, unknown) fails with an Output saying so: passing it here
// is a bug in the caller.
func (p *Policy) Probe(ctx context.Context, c store.Check) Result {
	start := time.Now()
	timeout := probeTimeout(c)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var ok bool
	var out, reason string
	switch c.Type {
	case store.CheckHTTP:
		ok, out, reason = p.probeHTTP(pctx, c.Target)
	case store.CheckTCP:
		ok, out, reason = p.probeTCP(pctx, c.Target)
	case store.CheckGRPC:
		ok, out, reason = p.probeGRPC(pctx, c.Target)
	default:
		out = fmt.Sprintf("check type %q is not probed by servers (only http, tcp and grpc are)", c.Type)
		reason = "not probed by servers"
	}
	// A failure caused by our own deadline (not by ctx) says so: "context
	// deadline exceeded" alone does not tell the operator which limit it was.
	if !ok && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) &&
		mentionsTimeout(out) {
		out += fmt.Sprintf(" (timeout %s)", timeout)
	}
	return Result{
		OK:       ok,
		Output:   clip(out),
		Reason:   reason,
		Duration: time.Since(start),
		At:       start,
	}
}

// probeTimeout is c.Timeout (DefaultTimeout when unset), never more than
// c.Interval: a probe that outlived its interval would overlap the next.
func probeTimeout(c store.Check) time.Duration {
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if iv := time.Duration(c.Interval); iv > 0 && timeout > iv {
		timeout = iv
	}
	return timeout
}

// mentionsTimeout reports whether a probe's output blames a deadline, in
// the words of net ("i/o timeout"), net/http and context ("context deadline
// exceeded") or gRPC ("DeadlineExceeded").
func mentionsTimeout(out string) bool {
	out = strings.ToLower(out)
	return strings.Contains(out, "deadline") || strings.Contains(out, "timeout")
}

// Probeable reports whether a server probes checks of this type.
func Probeable(c store.Check) bool { return c.Probed() }

func (p *Policy) probeHTTP(ctx context.Context, target string) (bool, string, string) {
	prefix := "HTTP GET " + target + ": "
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false, prefix + "invalid target: want an http:// or https:// URL", reasonInvalid
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false, prefix + err.Error(), reasonInvalid
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "text/plain, application/json, */*")
	resp, err := p.hc.Do(req)
	if err != nil {
		// Drop url.Error's `Get "…":` prefix, which repeats ours.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return false, prefix + err.Error(), reasonOf(err)
	}
	defer resp.Body.Close()
	// A body read error is ignored: the status line has decided.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))

	out := prefix + resp.Status
	reason := "HTTP " + strconv.Itoa(resp.StatusCode)
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if !ok {
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode <= 399 && loc != "" {
			out += " (redirect to " + loc + " not followed)"
		}
		if b := strings.TrimSpace(oneLine(string(body))); b != "" {
			out += ": " + b
		}
	}
	return ok, out, reason
}

func (p *Policy) probeTCP(ctx context.Context, target string) (bool, string, string) {
	conn, err := p.dialer.DialContext(ctx, "tcp", target)
	if err != nil {
		// net.OpError reads "dial tcp 127.0.0.1:9: connect: connection refused".
		return false, err.Error(), reasonOf(err)
	}
	_ = conn.Close()
	return true, "TCP connect " + target + ": success", "connected"
}

// probeGRPC asks target's grpc.health.v1.Health/Check. The target is
// "host:port" or "host:port/service", the service being everything after the
// first slash (as in Consul); no service asks about the server as a whole.
func (p *Policy) probeGRPC(ctx context.Context, target string) (bool, string, string) {
	prefix := "gRPC health " + target + ": "
	addr, service, _ := strings.Cut(target, "/")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return false, prefix + "invalid target: want host:port or host:port/service", reasonInvalid
	}
	// passthrough: the address is dialled as given, resolved by the
	// policy's dialer under ctx, with no resolver goroutine to outlive the
	// probe. The dialer's refusal is kept, so that it can be reported.
	var refused atomic.Pointer[DeniedError]
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(userAgent),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := p.dialer.DialContext(ctx, "tcp", addr)
			var d *DeniedError
			if errors.As(err, &d) {
				refused.Store(d)
			}
			return conn, err
		}),
	)
	if err != nil {
		return false, prefix + err.Error(), reasonInvalid
	}
	defer conn.Close()

	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		if d := refused.Load(); d != nil {
			return false, prefix + d.Error(), reasonOf(d)
		}
		s := status.Convert(err)
		reason := "gRPC " + s.Code().String()
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			reason = reasonUnreachable
		}
		return false, prefix + s.Code().String() + ": " + s.Message(), reason
	}
	st := resp.GetStatus()
	return st == healthpb.HealthCheckResponse_SERVING, prefix + st.String(), st.String()
}

// Short reasons of failures, for callers who may not see Output.
const (
	reasonInvalid = "invalid target"
	// reasonUnreachable covers every failure before an answer came: refused,
	// reset, timed out, no route, no such name. Telling them apart would
	// tell a scanner which ports are closed and which are filtered.
	reasonUnreachable = "unreachable"
)

// reasonOf reduces a probe's network error to a short reason.
func reasonOf(err error) string {
	var d *DeniedError
	if errors.As(err, &d) {
		return "target refused by the check policy (" + d.Rule + ")"
	}
	return reasonUnreachable
}

// oneLine makes s printable on one line: control characters (newlines
// included) become spaces and invalid UTF-8 is replaced.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// clip cuts s to MaxOutput bytes on a rune boundary, marking the cut.
func clip(s string) string {
	s = oneLine(s)
	if len(s) <= MaxOutput {
		return s
	}
	const mark = "…"
	n := MaxOutput - len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}
