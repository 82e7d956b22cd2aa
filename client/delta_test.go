package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/internal/testlog"
	"github.com/switchyard-io/switchyard/store"
)

// lookupCounter is the SDK's HTTP transport in the test: it counts the
// lookups answered in full and those answered with a delta that changed
// something.
type lookupCounter struct {
	rt            http.RoundTripper
	deltas, fulls atomic.Int64
}

func (l *lookupCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := l.rt.RoundTrip(req)
	if err != nil || res.StatusCode != http.StatusOK || !strings.HasSuffix(req.URL.Path, "/instances") {
		return res, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	var r wire.InstancesResponse
	if json.Unmarshal(b, &r) == nil {
		switch {
		case !r.Delta:
			l.fulls.Add(1)
		case len(r.Instances)+len(r.Removed) > 0:
			l.deltas.Add(1)
		}
	}
	return res, nil
}

// TestSDKFollowsChangesByDeltas: an SDK client in namespace dev (which
// falls back to default), at eu/eu-1/a, watches a service on a real
// server while instances are registered, turn unhealthy and healthy again,
// are removed, the nearest unit spills over to the datacenter, and dev
// runs out of instances so that default serves, then serves again. After
// every step the client's answer must be exactly the server's full answer
// (the same instances, fields and levels, in the same order, the same
// serving namespace); the steps that keep the answer's scope must reach
// it by deltas, and those that change it (spill-over, fallback) by a full
// answer.
func TestSDKFollowsChangesByDeltas(t *testing.T) {
	s := startOne(t)
	ctx := context.Background()
	base := "http://" + s.HTTPAddr()
	api, err := client.NewAPI(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	put := func(path, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, base+path, strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %d", path, res.StatusCode)
		}
	}
	f := false
	at := func(unit string) client.Registration {
		return client.Registration{Address: "10.0.0.1", Port: 8080, Ephemeral: &f, Locality: store.Locality{Region: "eu", Datacenter: "eu-1", Unit: unit}}
	}
	ttl := func(unit string, d time.Duration) client.Registration {
		return client.Registration{Address: "10.0.0.2", Port: 8080, Locality: store.Locality{Region: "eu", Datacenter: "eu-1", Unit: unit},
			Check: store.Check{TTL: store.Duration(d), DeregisterAfter: store.Duration(time.Hour)}}
	}
	reg := func(ns, id string, r client.Registration) {
		t.Helper()
		if _, err := api.Register(ctx, ns, "pay", id, r); err != nil {
			t.Fatalf("register %s/%s: %v", ns, id, err)
		}
	}
	dereg := func(ns string, ids ...string) {
		t.Helper()
		for _, id := range ids {
			if err := api.Deregister(ctx, ns, "pay", id); err != nil {
				t.Fatalf("deregister %s/%s: %v", ns, id, err)
			}
		}
	}
	put("/v1/namespaces/dev", `{"fallback":"default"}`)
	reg("dev", "v-1", at("a"))
	reg("dev", "v-2", at("a"))
	reg("dev", "v-3", at("b"))
	reg("default", "d-1", at("a"))

	counter := &lookupCounter{rt: &http.Transport{}}
	here := store.Locality{Region: "eu", Datacenter: "eu-1", Unit: "a"}
	cl, err := client.New(client.Config{Servers: []string{s.HTTPAddr()}, Namespace: "dev", Locality: here,
		HTTPClient: &http.Client{Transport: counter}, Logger: testlog.New(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// follow makes a change, waits until the client answers exactly what
	// the server's full answer holds, then checks how it got there.
	follow := func(step string, byDelta bool, change func(), check func(full *client.Instances) bool) {
		t.Helper()
		deltas, fulls := counter.deltas.Load(), counter.fulls.Load()
		change()
		var a client.Answer
		var full *client.Instances
		deadline := time.Now().Add(10 * time.Second)
		for {
			full, err = api.Lookup(ctx, "dev", "pay", client.LookupOptions{HealthyOnly: true, Near: here.Path()})
			if err != nil {
				t.Fatal(err)
			}
			a, err = cl.Lookup(ctx, "pay")
			got, _ := json.Marshal(a.Instances)
			want, _ := json.Marshal(full.Instances)
			if err == nil && check(full) && bytes.Equal(got, want) && a.ServedBy == full.ServedBy && a.Protected == full.Protected &&
				a.Source == client.SourceLive {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the client answers (served by %s, %v)\n%s\nthe server's full answer (served by %s)\n%s",
					step, a.ServedBy, err, got, full.ServedBy, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		switch {
		case byDelta && counter.deltas.Load() == deltas:
			t.Fatalf("%s: followed without a delta (%d full answers)", step, counter.fulls.Load()-fulls)
		case byDelta && counter.fulls.Load() != fulls:
			t.Fatalf("%s: %d full answers where deltas would do", step, counter.fulls.Load()-fulls)
		case !byDelta && counter.fulls.Load() == fulls:
			t.Fatalf("%s: the scope changed, but no full answer came", step)
		}
		t.Logf("%s: %d deltas, %d full answers; %d instances served by %s at %v", step,
			counter.deltas.Load()-deltas, counter.fulls.Load()-fulls, len(full.Instances), full.ServedBy, full.Levels)
	}
	has := func(id string) func(*client.Instances) bool {
		return func(r *client.Instances) bool {
			for _, in := range r.Instances {
				if in.ID == id {
					return true
				}
			}
			return false
		}
	}
	not := func(f func(*client.Instances) bool) func(*client.Instances) bool {
		return func(r *client.Instances) bool { return !f(r) }
	}
	servedBy := func(ns string, levels int) func(*client.Instances) bool {
		return func(r *client.Instances) bool { return r.ServedBy == ns && len(r.Levels) == levels }
	}

	nothing := func() {}
	follow("first answer", false, nothing, has("v-1"))
	follow("registration", true, func() { reg("dev", "v-4", at("a")) }, has("v-4"))
	follow("registration with a TTL", true, func() { reg("dev", "v-5", ttl("a", 3*time.Second)) }, has("v-5"))
	follow("silent past its TTL: unhealthy", true, nothing, not(has("v-5")))
	follow("heartbeat: healthy again", true, func() {
		if err := api.Heartbeat(ctx, "dev", "pay", "v-5"); err != nil {
			t.Fatal(err)
		}
	}, has("v-5"))
	follow("removals", true, func() { dereg("dev", "v-5", "v-2") }, func(r *client.Instances) bool { return !has("v-5")(r) && !has("v-2")(r) })

	// Unit a must be whole to serve alone; one silent instance makes it
	// spill over to the datacenter (unit b).
	follow("spill-over", false, func() {
		put("/v1/namespaces/dev/services/pay", `{"min_healthy_ratio":1}`)
		reg("dev", "v-6", ttl("a", 500*time.Millisecond))
	}, servedBy("dev", 2))
	follow("registration while spilled over", true, func() { reg("dev", "v-7", at("b")) }, has("v-7"))

	// Nothing usable in dev: default serves.
	follow("fallback", false, func() { dereg("dev", "v-1", "v-3", "v-4", "v-6", "v-7") }, servedBy("default", 1))
	follow("registration in the fallback", true, func() { reg("default", "d-2", at("a")) }, has("d-2"))
	follow("dev serves again", false, func() { reg("dev", "v-8", at("a")) }, servedBy("dev", 1))
	follow("registration", true, func() { reg("dev", "v-9", at("a")) }, has("v-9"))
}
