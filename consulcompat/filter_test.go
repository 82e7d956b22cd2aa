package consulcompat

import (
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/store"
)

func TestFilter(t *testing.T) {
	in := &store.Instance{ID: "web-1", Service: "web", Address: "10.0.0.1", Port: 8080, Tags: []string{"v1", "primary"},
		Metadata: map[string]string{"version": "1", metaNode: "s1"}, Healthy: true, Enabled: true, Ephemeral: true,
		Check: store.Check{Type: store.CheckTTL}, Locality: store.Locality{Region: "eu", Datacenter: "dc-a", Unit: "u1"}}
	v := view{in: in, dc: "dc-a"}
	checks := v.checks()
	for _, c := range []struct {
		expr string
		want bool
	}{
		{`Service.Service == "web"`, true},
		{`Service.ID != "web-1"`, false},
		{`"primary" in Service.Tags`, true},
		{`"canary" not in Service.Tags`, true},
		{`Service.Tags contains "v1" and Service.Meta.version == "1"`, true},
		{`Service.Tags contains "v1" and Service.Meta.version == "2"`, false},
		{`Service.Meta.absent is empty`, true},
		{`Service.Meta.version is not empty`, true},
		{"Node.Datacenter == `dc-a`", true},
		{`Node.Node == "s1"`, true},
		{`Node.Meta.region == "eu"`, true},
		{`Checks.Status contains "passing"`, true},
		{`Service.Port == 8080`, true},
		{`ServiceMeta.version == "1"`, true},
		{`Service.Meta.switchyard.node == "s1"`, false}, // reserved keys are not Meta
	} {
		e, err := parseFilter(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := e.match(v, checks); got != c.want {
			t.Errorf("%s: %v, want %v", c.expr, got, c.want)
		}
	}
	for _, c := range []struct{ expr, err string }{
		{`Service.Port > 80`, "unsupported clause"},
		{`a == "x" or b == "y"`, "or is not supported"},
		{`(Service.ID == "x")`, "parentheses"},
		{`Service.Nope == "x"`, "unknown selector"},
		{`Service.ID == "x`, "unterminated"},
		{`Service.ID == "x" and`, "nothing after and"},
		{``, "empty"},
	} {
		if _, err := parseFilter(c.expr); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: error %v, want one mentioning %q", c.expr, err, c.err)
		}
	}
}

func TestIndexMovesOnlyWithTheAnswer(t *testing.T) {
	s := &Server{answers: newAnswerCache(DefaultCacheBytes)}
	idx := func(key, body string, view uint64) uint64 {
		t.Helper()
		i, ok := s.indexFor(key, []byte(body), view)
		if !ok {
			t.Fatalf("%s %s at %d: not current", key, body, view)
		}
		return i
	}
	if got := idx("k", "a", 10); got != 10 {
		t.Fatalf("first answer: %d", got)
	}
	// Views moved on (another service changed), the answer did not.
	if got := idx("k", "a", 15); got != 10 {
		t.Fatalf("same answer: %d, want 10", got)
	}
	if got := idx("k", "b", 17); got != 17 {
		t.Fatalf("new answer: %d, want 17", got)
	}
	// A changed answer never reuses an index.
	if got := idx("k", "c", 17); got != 18 {
		t.Fatalf("changed answer at the same view index: %d, want 18", got)
	}
	// An answer built from older views than the remembered one is stale.
	if _, ok := s.indexFor("k", []byte("b"), 16); ok {
		t.Fatal("an answer from older views was taken as current")
	}
	if got := idx("other", "b", 0); got != 1 {
		t.Fatalf("index 0: %d, want 1", got)
	}
}
