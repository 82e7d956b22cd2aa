// Command caller is the example client of the disaster drills: it calls the
// echo service through the Switchyard SDK in a loop and keeps, per second,
// how many calls succeeded, failed, and which datacenter served them, and
// whether the SDK answered live or from its cache. GET /stats on its
// address returns the record as JSON lines.
//
// Configuration (environment): CALLER_ADDR (default :8090), CALLER_SERVICE
// (default echo), CALLER_INTERVAL (default 20ms), REGISTRY_SERVERS,
// REGISTRY_NAMESPACE, LOCALITY (region/datacenter/unit), CACHE_DIR.
package main

import (
	"context"
	"encoding/json"
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

	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/store"
)

// second is one second of calls.
type second struct {
	At      int64            `json:"at"` // unix seconds
	OK      int              `json:"ok"`
	Failed  int              `json:"failed"`
	ByDC    map[string]int   `json:"by_datacenter"`
	Sources map[string]int   `json:"sources"`
	Latency map[string][]int `json:"latency_us_by_datacenter,omitempty"`
}

type recorder struct {
	mu   sync.Mutex
	secs []*second
}

func (r *recorder) add(ok bool, dc string, src client.Source, lat time.Duration) {
	now := time.Now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.secs) == 0 || r.secs[len(r.secs)-1].At != now {
		r.secs = append(r.secs, &second{At: now, ByDC: map[string]int{}, Sources: map[string]int{}, Latency: map[string][]int{}})
	}
	s := r.secs[len(r.secs)-1]
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
	cache := os.Getenv("CACHE_DIR")
	if cache != "" {
		_ = os.MkdirAll(cache, 0o755)
	}
	c, err := client.New(client.Config{Servers: strings.Split(env("REGISTRY_SERVERS", "127.0.0.1:7400"), ","),
		Namespace: env("REGISTRY_NAMESPACE", store.DefaultNamespace), Locality: loc, CacheDir: cache, Logger: logger})
	if err != nil {
		logger.Error("client", "err", err)
		os.Exit(1)
	}
	defer c.Close()
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
	svc := env("CALLER_SERVICE", "echo")
	hc := &http.Client{Timeout: time.Second}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		a, _ := c.Lookup(lctx, svc)
		in, err := c.Pick(lctx, svc, client.PickOptions{})
		cancel()
		if err != nil {
			rec.add(false, "", a.Source, 0)
			continue
		}
		resp, err := hc.Get("http://" + net.JoinHostPort(in.Address, strconv.Itoa(in.Port)) + "/")
		c.Done(svc, in, err)
		if err != nil {
			rec.add(false, "", a.Source, 0)
			continue
		}
		var body struct {
			Datacenter string `json:"datacenter"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		rec.add(err == nil && resp.StatusCode == http.StatusOK, body.Datacenter, a.Source, time.Since(start))
	}
}
