package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// xdsResult compares how soon an xDS client and a blocking query hear of a
// write, on the same server, in the same samples.
type xdsResult struct {
	Server  string `json:"server"`
	XDS     string `json:"xds"`
	Samples int    `json:"samples"`
	// Ack→answer: from the write's acknowledgement arriving to the
	// blocking query's answer / the xDS response arriving.
	BlockingP50ms float64 `json:"blocking_ack_to_wake_p50_ms"`
	BlockingP99ms float64 `json:"blocking_ack_to_wake_p99_ms"`
	XDSP50ms      float64 `json:"xds_ack_to_push_p50_ms"`
	XDSP99ms      float64 `json:"xds_ack_to_push_p99_ms"`
	// Send→answer, the same from just before the write was sent (always
	// positive; the ratio is taken of these).
	BlockingSendP50ms float64 `json:"blocking_send_to_wake_p50_ms"`
	XDSSendP50ms      float64 `json:"xds_send_to_push_p50_ms"`
	XDSSendP99ms      float64 `json:"xds_send_to_push_p99_ms"`
	BlockingSendP99ms float64 `json:"blocking_send_to_wake_p99_ms"`
	Errors            int     `json:"errors"`
	FirstErr          string  `json:"first_error,omitempty"`
}

func runXDS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c           commonFlags
		server      string
		xdsAddr     string
		token       string
		samples     int
		settle      time.Duration
		maxDuration time.Duration
	)
	fs := newFlagSet("xds", stderr)
	c.register(fs)
	fs.StringVar(&server, "server", "http://127.0.0.1:7400", "server the writes and the blocking query go to")
	fs.StringVar(&xdsAddr, "xds", "127.0.0.1:7404", "that server's xDS address (plaintext)")
	fs.StringVar(&token, "token", benchToken(), "token for the xDS stream (default: $REGISTRY_TOKEN)")
	fs.IntVar(&samples, "samples", 200, "number of writes, each heard by both")
	fs.DurationVar(&settle, "settle", 20*time.Millisecond, "pause between parking the blocking query and the write")
	fs.DurationVar(&maxDuration, "max-duration", 2*time.Minute, "stop taking samples after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	ss, err := parseServers("server", server)
	if err != nil {
		return err
	}
	if samples <= 0 || settle < 0 || maxDuration <= 0 {
		return errors.New("--samples and --max-duration must be positive")
	}
	progress(&c, stderr, "xds: %d samples on %s (xDS %s)", samples, ss[0], xdsAddr)
	r, err := xdsBench(ctx, xdsSpec{server: ss[0], xds: xdsAddr, token: token, namespace: c.namespace,
		samples: samples, settle: settle, maxDuration: maxDuration, timeout: c.timeout})
	if err != nil {
		return err
	}
	if c.output == "json" {
		return writeJSON(stdout, map[string]any{"bench": "xds", "results": []xdsResult{r}})
	}
	t := &table{
		title:  "xDS push vs blocking query, the same write heard by both on one server",
		header: []string{"client", "ack→answer p50 ms", "ack→answer p99 ms", "send→answer p50 ms", "send→answer p99 ms", "xDS / blocking (send→answer p50)"},
	}
	t.add("blocking query", fmtMs(r.BlockingP50ms), fmtMs(r.BlockingP99ms), fmtMs(r.BlockingSendP50ms), fmtMs(r.BlockingSendP99ms), "")
	ratio := ""
	if r.BlockingSendP50ms > 0 {
		ratio = fmt.Sprintf("**%.2f**", r.XDSSendP50ms/r.BlockingSendP50ms)
	}
	t.add("xDS (ADS, endpoints)", fmtMs(r.XDSP50ms), fmtMs(r.XDSP99ms), fmtMs(r.XDSSendP50ms), fmtMs(r.XDSSendP99ms), ratio)
	t.notes = append(t.notes, fmt.Sprintf("%d samples, %d errors%s.", r.Samples, r.Errors, firstErrNote(r.FirstErr)))
	return t.write(stdout)
}

type xdsSpec struct {
	server, xds, token, namespace string
	samples                       int
	settle, maxDuration, timeout  time.Duration
}

// xdsBench keeps one ADS stream subscribed to a service's endpoints (it
// acknowledges each answer, as a client does) and, for each sample, parks
// a blocking query on the same service, writes a change of its endpoints,
// and times both answers.
func xdsBench(ctx context.Context, s xdsSpec) (xdsResult, error) {
	res := xdsResult{Server: s.server, XDS: s.xds}
	hc := newHTTPClient(2, s.timeout+time.Minute)
	defer hc.CloseIdleConnections()
	const service = "bench-xds"
	svcPath := fmt.Sprintf("/v1/namespaces/%s/services/%s/instances", url.PathEscape(s.namespace), service)
	write := func(port int) (uint64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.server+svcPath+"/x-0",
			strings.NewReader(fmt.Sprintf(`{"address":"10.3.0.1","port":%d,"ephemeral":false}`, port)))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		_, hdr, err := do(hc, req)
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(hdr.Get("X-Switchyard-Index"), 10, 64)
	}
	index, err := write(1)
	if err != nil {
		return res, fmt.Errorf("first write: %w", err)
	}

	cc, err := grpc.NewClient("passthrough:///"+s.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return res, err
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.token != "" {
		sctx = metadata.AppendToOutgoingContext(sctx, "x-switchyard-token", s.token)
	}
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
	if err != nil {
		return res, fmt.Errorf("xDS stream: %w", err)
	}
	name := service + "." + s.namespace
	if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{name}}); err != nil {
		return res, fmt.Errorf("xDS stream: %w", err)
	}
	pushes := make(chan time.Time, 16)
	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			at := time.Now()
			if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{name},
				VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
				recvErr <- err
				return
			}
			pushes <- at
		}
	}()
	// The first answer is the state the stream starts from.
	select {
	case <-pushes:
	case err := <-recvErr:
		return res, fmt.Errorf("xDS stream: %w", err)
	case <-time.After(s.timeout):
		return res, errors.New("xDS stream: no first answer")
	}

	var bAck, xAck, bSend, xSend []time.Duration
	stopAt := time.Now().Add(s.maxDuration)
	for i := 0; i < s.samples && time.Now().Before(stopAt) && ctx.Err() == nil; i++ {
		woke := make(chan time.Time, 1)
		qctx, qcancel := context.WithTimeout(ctx, s.timeout+30*time.Second)
		go func() {
			req, err := http.NewRequestWithContext(qctx, http.MethodGet,
				fmt.Sprintf("%s%s?index=%d&wait=30s", s.server, svcPath, index), nil)
			if err == nil {
				_, _, err = do(hc, req)
			}
			if err != nil {
				woke <- time.Time{}
				return
			}
			woke <- time.Now()
		}()
		time.Sleep(s.settle)
		t0 := time.Now()
		idx, err := write(2 + i%60000)
		t1 := time.Now()
		res.Samples++
		if err != nil {
			qcancel()
			<-woke
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = err.Error()
			}
			continue
		}
		index = idx
		var xAt time.Time
		select {
		case xAt = <-pushes:
		case err := <-recvErr:
			qcancel()
			return res, fmt.Errorf("xDS stream: %w", err)
		case <-time.After(s.timeout):
			qcancel()
			return res, fmt.Errorf("xDS stream: no answer within %v of write %d", s.timeout, i)
		}
		bAt := <-woke
		qcancel()
		if bAt.IsZero() {
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = "blocking query failed"
			}
			continue
		}
		bAck, xAck = append(bAck, bAt.Sub(t1)), append(xAck, xAt.Sub(t1))
		bSend, xSend = append(bSend, bAt.Sub(t0)), append(xSend, xAt.Sub(t0))
	}
	for _, l := range [][]time.Duration{bAck, xAck, bSend, xSend} {
		slices.Sort(l)
	}
	res.BlockingP50ms, res.BlockingP99ms = ms(percentile(bAck, .5)), ms(percentile(bAck, .99))
	res.XDSP50ms, res.XDSP99ms = ms(percentile(xAck, .5)), ms(percentile(xAck, .99))
	res.BlockingSendP50ms, res.BlockingSendP99ms = ms(percentile(bSend, .5)), ms(percentile(bSend, .99))
	res.XDSSendP50ms, res.XDSSendP99ms = ms(percentile(xSend, .5)), ms(percentile(xSend, .99))
	return res, nil
}
