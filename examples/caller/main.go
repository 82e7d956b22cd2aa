// Command caller is the example client of the disaster drills (drill/): it calls the
// echo service through the Switchyard SDK in a loop and keeps, per second,
// how many calls succeeded, failed, and which datacenter served them, and
// whether the SDK answered live or from its cache. Once a second it also
// calls one instance in every datacenter directly (plain HTTP, outside the
// SDK), so the record shows what a call to each datacenter costs next to
// what the SDK's choice cost. GET /stats on its address returns the record
// as JSON lines, one drill.CallerSecond each.
//
// With CALLER_TARGET set (a gRPC target such as xds:///grpc-echo.default)
// it calls through gRPC instead, as a proxyless gRPC application does:
// grpc-go's own xDS resolver and balancers, bootstrapped by grpc-go's
// GRPC_XDS_BOOTSTRAP_CONFIG (or GRPC_XDS_BOOTSTRAP) to the registry's xDS
// servers, with no Switchyard code on the call path; each call's answer,
// "datacenter/id" (examples/echo), says who served it, and the record's
// source is "xds".
//
// Configuration (environment): CALLER_ADDR (default :8090), CALLER_SERVICE
// (default echo), CALLER_INTERVAL (default 20ms), CALLER_TARGET,
// REGISTRY_SERVERS, REGISTRY_NAMESPACE, REGISTRY_TOKEN, LOCALITY
// (region/datacenter/unit), CACHE_DIR.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
	// grpc-go's xDS resolver (xds:///) and balancers.
	_ "google.golang.org/grpc/xds"

	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/drill"
	"github.com/switchyard-io/switchyard/store"
)

type recorder struct {
	mu   sync.Mutex
	secs []*drill.CallerSecond
}

// current returns the record of this second; r.mu is held.
func (r *recorder) current() *drill.CallerSecond {
	now := time.Now().Unix()
	if len(r.secs) == 0 || r.secs[len(r.secs)-1].At != now {
		r.secs = append(r.secs, &drill.CallerSecond{At: now, ByDC: map[string]int{}, Sources: map[string]int{},
			Latency: map[string][]int{}, Probe: map[string][]int{}})
	}
	return r.secs[len(r.secs)-1]
}

func (r *recorder) probed(dc string, lat time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.current()
	s.Probe[dc] = append(s.Probe[dc], int(lat.Microseconds()))
}

func (r *recorder) add(ok bool, dc string, src client.Source, lat time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.current()
	s.Sources[string(src)]++
	if !ok {
		s.Failed++
		return
	}
	s.OK++
	s.ByDC[dc]++
	if len(s.Latency[dc]) < 200 {
		s.Latency[dc] = append(s.Latency[dc], int(lat.Microseconds()))
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	p := strings.SplitN(os.Getenv("LOCALITY"), "/", 3)
	var loc store.Locality
	for len(p) < 3 {
		p = append(p, "")
	}
	loc.Region, loc.Datacenter, loc.Unit = p[0], p[1], p[2]
	interval, err := time.ParseDuration(env("CALLER_INTERVAL", "20ms"))
	if err != nil {
		logger.Error("CALLER_INTERVAL", "err", err)
		os.Exit(2)
	}
	rec := &recorder{}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		enc := json.NewEncoder(w)
		for _, s := range rec.secs {
			enc.Encode(s)
		}
	})
	ln, err := net.Listen("tcp", env("CALLER_ADDR", ":8090"))
	if err != nil {
		logger.Error("listen", "err", err)
		os.Exit(1)
	}
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}).Serve(ln)
	var call func(context.Context) (dc string, src client.Source, err error)
	if target := os.Getenv("CALLER_TARGET"); target != "" {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			logger.Error("grpc client", "target", target, "err", err)
			os.Exit(1)
		}
		defer cc.Close()
		call = func(ctx context.Context) (string, client.Source, error) { return callGRPC(ctx, cc) }
	} else {
		c, err := sdk(loc, logger)
		if err != nil {
			logger.Error("client", "err", err)
			os.Exit(1)
		}
		defer c.Close()
		svc := env("CALLER_SERVICE", "echo")
		go probe(ctx, rec, strings.Split(env("REGISTRY_SERVERS", "127.0.0.1:7400"), ","), env("REGISTRY_NAMESPACE", store.DefaultNamespace), svc)
		hc := &http.Client{Timeout: time.Second}
		call = func(ctx context.Context) (string, client.Source, error) { return callSDK(ctx, c, hc, svc) }
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		dc, src, err := call(ctx)
		rec.add(err == nil, dc, src, time.Since(start))
	}
}

// sdk is the Switchyard client of the SDK mode.
func sdk(loc store.Locality, logger *slog.Logger) (*client.Client, error) {
	cache := os.Getenv("CACHE_DIR")
	if cache != "" {
		_ = os.MkdirAll(cache, 0o755)
	}
	return client.New(client.Config{Servers: strings.Split(env("REGISTRY_SERVERS", "127.0.0.1:7400"), ","),
		Namespace: env("REGISTRY_NAMESPACE", store.DefaultNamespace), Locality: loc, CacheDir: cache, Logger: logger,
		Token: os.Getenv("REGISTRY_TOKEN")})
}

// callSDK makes one call as an application using the SDK does: a lookup and
// a pick (a second for both), then the HTTP call (a second), reported back
// with Done. It returns the datacenter that served it and where the SDK's
// answer came from.
func callSDK(ctx context.Context, c *client.Client, hc *http.Client, svc string) (string, client.Source, error) {
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	a, _ := c.Lookup(lctx, svc)
	in, err := c.Pick(lctx, svc, client.PickOptions{})
	cancel()
	if err != nil {
		return "", a.Source, err
	}
	resp, err := hc.Get("http://" + net.JoinHostPort(in.Address, strconv.Itoa(in.Port)) + "/")
	c.Done(svc, in, err)
	if err != nil {
		return "", a.Source, err
	}
	defer resp.Body.Close()
	var body struct {
		Datacenter string `json:"datacenter"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", a.Source, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", a.Source, fmt.Errorf("status %d", resp.StatusCode)
	}
	return body.Datacenter, a.Source, nil
}

// sourceXDS marks, in the record, the calls of the gRPC mode.
const sourceXDS client.Source = "xds"

// callGRPC makes one unary call through cc (a second at most) and returns
// the datacenter of the echo instance that answered.
func callGRPC(ctx context.Context, cc *grpc.ClientConn) (string, client.Source, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var out wrapperspb.StringValue
	if err := cc.Invoke(ctx, "/switchyard.echo.Echo/Who", wrapperspb.String("?"), &out); err != nil {
		return "", sourceXDS, err
	}
	dc, _, ok := strings.Cut(out.GetValue(), "/")
	if !ok {
		return "", sourceXDS, fmt.Errorf("answer %q is not datacenter/id", out.GetValue())
	}
	return dc, sourceXDS, nil
}

// probe calls, once a second, one instance of every datacenter directly.
// The instances come from a plain listing, refreshed every five seconds
// from the first server that answers; a failed call records nothing.
func probe(ctx context.Context, rec *recorder, servers []string, ns, svc string) {
	hc := &http.Client{Timeout: time.Second}
	targets := map[string]string{} // datacenter → host:port
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n%5 == 0 {
			if ins, err := listing(ctx, hc, servers, ns, svc); err == nil {
				targets = map[string]string{}
				ids := map[string]string{} // datacenter → the id probed
				for _, in := range ins {
					dc := in.Locality.Datacenter
					if id, ok := ids[dc]; !in.Enabled || (ok && id < in.ID) {
						continue
					}
					ids[dc], targets[dc] = in.ID, net.JoinHostPort(in.Address, strconv.Itoa(in.Port))
				}
			}
		}
		for dc, addr := range targets {
			start := time.Now()
			resp, err := hc.Get("http://" + addr + "/")
			if err != nil {
				continue
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				rec.probed(dc, time.Since(start))
			}
		}
	}
}

func listing(ctx context.Context, hc *http.Client, servers []string, ns, svc string) ([]*store.Instance, error) {
	var last error
	for _, s := range servers {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s+"/v1/namespaces/"+ns+"/services/"+svc+"/instances", nil)
		if err != nil {
			return nil, err
		}
		if t := os.Getenv("REGISTRY_TOKEN"); t != "" {
			req.Header.Set("X-Switchyard-Token", t)
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err
			continue
		}
		var body struct {
			Instances []*store.Instance `json:"instances"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("%s: %d %v", s, resp.StatusCode, err)
			continue
		}
		return body.Instances, nil
	}
	return nil, last
}
