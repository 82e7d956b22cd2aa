package prometheus

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/discovery/targetgroup"
)

// registry builds cmd/registry from this repository and runs `registry dev`
// on a free port; it returns the HTTP address.
func registry(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "registry")
	build := exec.Command("go", "build", "-o", bin, "./cmd/registry")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the registry: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "dev", "--http-addr", addr, "--dns-addr", "", "--xds-addr", "")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("registry dev:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry dev not healthy on %s after 20s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// call sends one request to the registry's native API.
func call(t *testing.T, method, url, body string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
}

// targets is what discovery has said so far: the latest group per source.
type targets map[string]*targetgroup.Group

func (ts targets) of(service string) []model.LabelSet {
	var out []model.LabelSet
	for _, g := range ts {
		for _, tg := range g.Targets {
			l := tg.Merge(g.Labels)
			if string(l["__meta_consul_service"]) == service {
				out = append(out, l)
			}
		}
	}
	return out
}

// Prometheus's own Consul discovery, pointed at a registry: it finds the
// registered instances, with their tags and metadata as labels, follows a
// registration and a removal, and sees a service only once it exists.
func TestPrometheusConsulDiscovery(t *testing.T) {
	addr := registry(t)
	api := "http://" + addr + "/v1/namespaces/default/services/"
	call(t, http.MethodPut, api+"web/instances/web-1",
		`{"address":"10.0.0.1","port":8080,"ephemeral":false,"tags":["v1","http"],"metadata":{"version":"1.2.3","team":"shop"}}`)
	call(t, http.MethodPut, api+"db/instances/db-1", `{"address":"10.0.1.1","port":5432,"ephemeral":false}`)

	conf := consul.DefaultSDConfig
	conf.Server = addr
	conf.RefreshInterval = model.Duration(time.Second)
	reg := prom.NewRegistry()
	refresh := discovery.NewRefreshMetrics(reg)
	if err := refresh.Register(); err != nil {
		t.Fatal(err)
	}
	metrics := conf.NewDiscovererMetrics(reg, refresh)
	if err := metrics.Register(); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := consul.NewDiscovery(&conf, logger, metrics)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch := make(chan []*targetgroup.Group)
	go d.Run(ctx, ch)
	seen := targets{}
	// until waits for discovery to report a state where cond holds.
	until := func(what string, cond func() error) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			if err := cond(); err == nil {
				return
			}
			select {
			case groups := <-ch:
				for _, g := range groups {
					seen[g.Source] = g
				}
			case <-timeout:
				t.Fatalf("%s: not within 30s: %v", what, cond())
			}
		}
	}

	until("web and db discovered", func() error {
		web, db := seen.of("web"), seen.of("db")
		if len(web) != 1 || len(db) != 1 {
			return fmt.Errorf("web %v, db %v", web, db)
		}
		w := web[0]
		for name, want := range map[string]string{
			"__address__":                            "10.0.0.1:8080",
			"__meta_consul_service_address":          "10.0.0.1",
			"__meta_consul_service_port":             "8080",
			"__meta_consul_service_id":               "web-1",
			"__meta_consul_tags":                     ",v1,http,",
			"__meta_consul_service_metadata_version": "1.2.3",
			"__meta_consul_service_metadata_team":    "shop",
			"__meta_consul_health":                   "passing",
		} {
			if got := string(w[model.LabelName(name)]); got != want {
				return fmt.Errorf("%s = %q, want %q (labels %v)", name, got, want, w)
			}
		}
		if got := string(db[0]["__address__"]); got != "10.0.1.1:5432" {
			return fmt.Errorf("db address %q", got)
		}
		return nil
	})

	call(t, http.MethodPut, api+"web/instances/web-2", `{"address":"10.0.0.2","port":8080,"ephemeral":false,"tags":["v2"]}`)
	until("the second web instance", func() error {
		if web := seen.of("web"); len(web) != 2 {
			return fmt.Errorf("web %v", web)
		}
		return nil
	})

	call(t, http.MethodDelete, api+"web/instances/web-1", "")
	until("web-1 removed", func() error {
		web := seen.of("web")
		if len(web) != 1 || string(web[0]["__meta_consul_service_id"]) != "web-2" {
			return fmt.Errorf("web %v", web)
		}
		return nil
	})

	call(t, http.MethodPut, api+"cache/instances/c-1", `{"address":"10.0.2.1","port":6379,"ephemeral":false}`)
	until("a new service discovered", func() error {
		if c := seen.of("cache"); len(c) != 1 || string(c[0]["__address__"]) != "10.0.2.1:6379" {
			return fmt.Errorf("cache %v", c)
		}
		return nil
	})
}
