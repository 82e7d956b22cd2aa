package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// deltaGet asks path with delta=token and returns the answer, its token
// and the decoded body.
func deltaGet(t *testing.T, hc *http.Client, base, path, token string) (status int, next string, body []byte, r wire.InstancesResponse) {
	t.Helper()
	sep := "?"
	if bytes.ContainsRune([]byte(path), '?') {
		sep = "&"
	}
	res, err := hc.Get(base + path + sep + "delta=" + url.QueryEscape(token))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err = io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, body)
		}
	}
	return res.StatusCode, res.Header.Get(api.HeaderDeltaToken), body, r
}

// deltaCov counts what the deltas checked covered.
type deltaCov struct {
	deltas, full, listing, fallback, protected, spilled, removed, upserts int
}

// TestDeltaAnswersRebuildFullAnswers: a real store behind the API and a
// loopback HTTP server; random writes to a service in three namespaces
// (qa falls back to dev, dev to default): registrations at random
// localities, removals, health flips, weight and traffic switches,
// settings that move spill-over and protection, a fallback's service
// deleted and created again. After each batch, every question (plain
// listings, and selections for callers at several places, this server's
// among them) is asked in full with delta=true, and again with the tokens
// of earlier answers. A delta applied (wire.ApplyDelta) to the earlier
// full answer must encode to exactly the bytes of the new full answer,
// order included, and carry the same new token; an answer given in full
// instead must be those bytes.
func TestDeltaAnswersRebuildFullAnswers(t *testing.T) {
	var cov deltaCov
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) { deltaAnswers(t, seed, &cov) })
	}
	t.Logf("%+v", cov)
	for what, n := range map[string]int{"deltas": cov.deltas, "full answers to a token": cov.full, "plain listings": cov.listing,
		"fallbacks": cov.fallback, "protection": cov.protected, "spill-over": cov.spilled, "removals": cov.removed, "upserts": cov.upserts} {
		if n == 0 {
			t.Errorf("no delta checked with %s: the random catalogs no longer make them", what)
		}
	}
}

func deltaAnswers(t *testing.T, seed uint64, cov *deltaCov) {
	rng := rand.New(rand.NewPCG(seed, 5))
	st := store.New()
	node := &fakeNode{store: st, unexpectedCall: func(what string) { t.Errorf("unexpected call to %s", what) }}
	cfg := api.DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.Locality = store.Locality{Region: "eu", Datacenter: "eu-1", Unit: "a"}
	cfg.Topology = route.RTTTable{"eu-1": {"us-1": 80 * time.Millisecond, "ap-1": 150 * time.Millisecond}}
	srv, err := api.New(cfg, node)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	hc := hs.Client()

	index := uint64(1)
	apply := func(cmds ...*store.Command) {
		index++
		for _, c := range cmds {
			c.Time = time.Unix(int64(index), 0).UTC()
		}
		st.ApplyBatch(index, cmds)
	}
	apply(&store.Command{Type: store.CommandPutNamespace, Namespace: "dev", NamespaceSettings: &store.NamespaceSettings{Fallback: "default"}})
	apply(&store.Command{Type: store.CommandPutNamespace, Namespace: "qa", NamespaceSettings: &store.NamespaceSettings{Fallback: "dev"}})
	namespaces := []string{"default", "dev", "qa"}
	localities := []store.Locality{
		{Region: "eu", Datacenter: "eu-1", Unit: "a"}, {Region: "eu", Datacenter: "eu-1", Unit: "b"},
		{Region: "eu", Datacenter: "eu-2", Unit: "a"}, {Region: "us", Datacenter: "us-1", Unit: "a"},
		{Region: "ap", Datacenter: "ap-1", Unit: "a"}, {},
	}
	var questions []string
	for _, ns := range namespaces {
		p := "/v1/namespaces/" + ns + "/services/svc/instances"
		questions = append(questions, p, p+"?healthy=true", p+"?near=eu/eu-1/a", p+"?near=us/us-1", p+"?near=")
	}
	type answer struct {
		token string
		full  wire.InstancesResponse
	}
	history := map[string][]answer{}
	for step := range 120 {
		var cmds []*store.Command
		for range 1 + rng.IntN(3) {
			ns := namespaces[rng.IntN(3)]
			id := fmt.Sprintf("i-%02d", rng.IntN(16))
			switch k := rng.IntN(20); {
			case k < 6:
				in := store.Instance{Address: "10.0.0.1", Port: 80 + rng.IntN(3), Weight: []int{0, 100, 100}[rng.IntN(3)],
					Enabled: rng.IntN(8) > 0, Locality: localities[rng.IntN(len(localities))],
					Tags: []string{"v1", "v2"}[:rng.IntN(3)%2+1], Metadata: map[string]string{"b": "2", "a": "1"}}
				cmds = append(cmds, &store.Command{Type: store.CommandRegister, Namespace: ns, Service: "svc", ID: id, Instance: &in})
			case k < 9:
				cmds = append(cmds, &store.Command{Type: store.CommandDeregister, Namespace: ns, Service: "svc", ID: id})
			case k < 16:
				cmds = append(cmds, &store.Command{Type: store.CommandSetHealth,
					Health: []store.HealthChange{{Namespace: ns, Service: "svc", ID: id, Healthy: rng.IntN(4) == 0}}})
			case k < 17:
				en, w := rng.IntN(4) > 0, []int{0, 50, 100}[rng.IntN(3)]
				cmds = append(cmds, &store.Command{Type: store.CommandPatchInstance, Namespace: ns, Service: "svc", ID: id,
					Patch: &store.InstancePatch{Weight: &w, Enabled: &en}})
			case k < 19:
				set := store.DefaultServiceSettings()
				set.MinHealthyRatio = []float64{0, 0.5, 0.75, 1}[rng.IntN(4)]
				set.ProtectThreshold = []float64{0, 0, 0.3, 0.6}[rng.IntN(4)]
				cmds = append(cmds, &store.Command{Type: store.CommandPutService, Namespace: ns, Service: "svc", ServiceSettings: &set})
			default:
				if ns != "default" {
					cmds = append(cmds, &store.Command{Type: store.CommandDeleteService, Namespace: ns, Service: "svc"})
				}
			}
		}
		apply(cmds...)
		for _, q := range questions {
			status, token, fullBody, full := deltaGet(t, hc, hs.URL, q, "true")
			if status == http.StatusNotFound {
				delete(history, q)
				continue
			}
			if status != http.StatusOK || token == "" || full.Delta {
				t.Fatalf("step %d %s delta=true: %d token %q\n%s", step, q, status, token, fullBody)
			}
			past := history[q]
			for k, old := range past {
				if k < len(past)-3 && k%8 != 0 {
					continue // the last three answers, and every eighth before them
				}
				status, next, body, r := deltaGet(t, hc, hs.URL, q, old.token)
				if status != http.StatusOK || next != token {
					t.Fatalf("step %d %s delta=%s: %d, token %q, want %q\n%s", step, q, old.token, status, next, token, body)
				}
				if !r.Delta {
					if !bytes.Equal(body, fullBody) {
						t.Fatalf("step %d %s: the full answer to a token differs from the full answer\n%s\n%s", step, q, body, fullBody)
					}
					cov.full++
					continue
				}
				got, err := old.full.ApplyDelta(&r)
				if err != nil {
					t.Fatalf("step %d %s: %v\n%s", step, q, err, body)
				}
				if b, _ := json.Marshal(got); !bytes.Equal(b, fullBody) {
					t.Fatalf("step %d %s since %s: the delta\n%s\napplied gives\n%s\nthe full answer is\n%s", step, q, old.token, body, b, fullBody)
				}
				cov.deltas++
				if r.Near == nil {
					cov.listing++
				}
				if r.ServedBy != "" && r.ServedBy != r.Namespace {
					cov.fallback++
				}
				if r.Protected {
					cov.protected++
				}
				if len(r.Levels) > 1 {
					cov.spilled++
				}
				if len(r.Removed) > 0 {
					cov.removed++
				}
				if len(r.Instances) > 0 {
					cov.upserts++
				}
			}
			history[q] = append(past, answer{token, full})
		}
	}
}

// A blocking lookup with a token wakes on a change with only that change:
// a registration, then a removal; one that times out answers a delta of
// nothing with the same token. Without delta=, answers are as before: no
// token, no delta field.
func TestDeltaBlockingLookup(t *testing.T) {
	ts := newTestServer(t)
	for k := range 3 {
		ts.register(t, "default", "web", fmt.Sprintf("w-%d", k), fmt.Sprintf(`{"address":"10.0.0.%d","port":8080}`, k+1))
	}
	const list = "/v1/namespaces/default/services/web/instances"
	plain := mustOK(t, "plain lookup", ts.get(t, list))
	if plain.header.Get(api.HeaderDeltaToken) != "" || bytes.Contains(plain.body, []byte(`"delta"`)) || bytes.Contains(plain.body, []byte(`"removed"`)) {
		t.Fatalf("a lookup without delta= changed: %s %v", plain.body, plain.header)
	}
	for _, q := range []string{"", "?near=eu/eu-1"} {
		t.Run("query "+q, func(t *testing.T) {
			sep := "?"
			if q != "" {
				sep = "&"
			}
			first := mustOK(t, "lookup with delta=true", ts.get(t, list+q+sep+"delta=true"))
			token, idx := first.header.Get(api.HeaderDeltaToken), index(t, first)
			var full wire.InstancesResponse
			decode(t, first, &full)
			if token == "" || full.Delta || len(full.Instances) < 3 {
				t.Fatalf("first answer: token %q, %s", token, first.body)
			}
			wake := func(write func()) (wire.InstancesResponse, string, uint64) {
				t.Helper()
				got := make(chan response, 1)
				go func() {
					got <- ts.get(t, fmt.Sprintf("%s%s%sindex=%d&wait=10s&delta=%s", list, q, sep, idx, token))
				}()
				time.Sleep(50 * time.Millisecond)
				write()
				r := mustOK(t, "blocking lookup", <-got)
				var d wire.InstancesResponse
				decode(t, r, &d)
				return d, r.header.Get(api.HeaderDeltaToken), index(t, r)
			}
			id := "new" + fmt.Sprint(len(q))
			d, next, nidx := wake(func() { ts.register(t, "default", "web", id, `{"address":"10.0.1.1","port":8080}`) })
			if !d.Delta || len(d.Instances) != 1 || d.Instances[0].ID != id || len(d.Removed) != 0 || next == token || nidx <= idx {
				t.Fatalf("after a registration: %+v, token %q→%q, index %d→%d", d, token, next, idx, nidx)
			}
			if q != "" && (d.Instances[0].Level != "anywhere" || !slices.Equal(d.Levels, full.Levels)) {
				t.Fatalf("selection delta: level %q, levels %v (full had %v)", d.Instances[0].Level, d.Levels, full.Levels)
			}
			token, idx = next, nidx
			d, next, nidx = wake(func() { mustOK(t, "deregister", ts.do(t, http.MethodDelete, list+"/"+id, "")) })
			if !d.Delta || len(d.Instances) != 0 || !slices.Equal(d.Removed, []string{id}) || next == token || nidx <= idx {
				t.Fatalf("after a removal: %+v, token %q→%q", d, token, next)
			}
			token, idx = next, nidx
			r := mustOK(t, "timed out lookup", ts.get(t, fmt.Sprintf("%s%s%sindex=%d&wait=100ms&delta=%s", list, q, sep, idx, token)))
			if got := r.header.Get(api.HeaderDeltaToken); got != token || !bytes.Contains(r.body, []byte(`"delta":true,"instances":[]`)) || index(t, r) != idx {
				t.Fatalf("timed out: token %q (had %q), index %d: %s", got, token, index(t, r), r.body)
			}
		})
	}
}

// A token the answer cannot use gets the full answer and a fresh token:
// a token of another question, of a newer index, or of before the service
// was deleted and created again.
func TestDeltaFallsBackToFullAnswers(t *testing.T) {
	ts := newTestServer(t)
	ts.register(t, "default", "web", "w-1", `{"address":"10.0.0.1","port":8080}`)
	ts.register(t, "default", "api", "a-1", `{"address":"10.0.0.2","port":8080}`)
	const web = "/v1/namespaces/default/services/web/instances"
	tokenOf := func(path string) string {
		return mustOK(t, path, ts.get(t, path+"delta=true")).header.Get(api.HeaderDeltaToken)
	}
	webList, webNear, apiList := tokenOf(web+"?"), tokenOf(web+"?near=eu&"), tokenOf("/v1/namespaces/default/services/api/instances?")
	if webList == webNear || webList == apiList {
		t.Fatalf("tokens of different questions are equal: %s %s %s", webList, webNear, apiList)
	}
	var base uint64
	var scope string
	if _, err := fmt.Sscanf(webList, "d1.%d.%s", &base, &scope); err != nil {
		t.Fatalf("token %q: %v", webList, err)
	}
	ts.register(t, "default", "web", "w-2", `{"address":"10.0.0.3","port":8080}`)
	deleted := tokenOf(web + "?")
	mustOK(t, "delete service", ts.do(t, http.MethodDelete, "/v1/namespaces/default/services/web", ""))
	ts.register(t, "default", "web", "w-1", `{"address":"10.0.0.1","port":8080}`)
	for name, tok := range map[string]string{
		"another selection":     webNear,
		"another service":       apiList,
		"a newer index":         fmt.Sprintf("d1.%d.%s", base+1000, scope),
		"the deleted service's": deleted,
	} {
		r := mustOK(t, name, ts.get(t, web+"?delta="+tok))
		var got wire.InstancesResponse
		decode(t, r, &got)
		if got.Delta || len(got.Instances) != 1 || r.header.Get(api.HeaderDeltaToken) == tok || r.header.Get(api.HeaderDeltaToken) == "" {
			t.Errorf("%s: %s (token %q)", name, r.body, r.header.Get(api.HeaderDeltaToken))
		}
	}
}
