package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

// Every server keeps an instance's recent events and a service's counts
// over the hour, from the log it applies: a follower tells the same story
// as the leader. Here an ephemeral instance falls silent and comes back,
// then is taken out of traffic.
func TestHistoryOfAnInstanceAndAService(t *testing.T) {
	c := startCluster(t, 3)
	l := c.leader()
	var f *Server
	for _, s := range c.servers {
		if s != l {
			f = s
			break
		}
	}
	const path = "/v1/namespaces/default/services/web/instances/w1"
	body := wire.RegisterRequest{Address: "10.0.0.1", Port: 80, Check: store.Check{TTL: store.Duration(time.Second)}}
	if err := c.do(l, http.MethodPut, path, body, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.do(l, http.MethodPut, "/v1/namespaces/default/services/web/instances/w2", wire.RegisterRequest{Address: "10.0.0.2", Port: 80, Ephemeral: new(bool)}, nil); err != nil {
		t.Fatal(err)
	}
	kinds := func(s *Server) string {
		var h wire.InstanceHistory
		if err := c.do(s, http.MethodGet, path+"/history", nil, &h); err != nil {
			t.Fatal(err)
		}
		var k []string
		for _, e := range h.Events {
			k = append(k, string(e.Kind))
		}
		return strings.Join(k, " ")
	}
	eventually(t, 10*time.Second, "w1 unhealthy after its TTL", func() error {
		return wantString(kinds(f), "registered unhealthy")
	})
	if err := c.do(l, http.MethodPut, path+"/heartbeat", nil, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "w1 healthy again after a heartbeat", func() error {
		return wantString(kinds(f), "registered unhealthy healthy")
	})
	if err := c.do(l, http.MethodPatch, path, map[string]any{"enabled": false}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "w1 disabled", func() error {
		return wantString(kinds(f), "registered unhealthy healthy disabled")
	})
	if got, want := kinds(l), kinds(f); got != want {
		t.Errorf("the leader tells %q, the follower %q", got, want)
	}
	var sh wire.ServiceHistory
	if err := c.do(f, http.MethodGet, "/v1/namespaces/default/services/web/history", nil, &sh); err != nil {
		t.Fatal(err)
	}
	if len(sh.Samples) == 0 {
		t.Fatal("no samples of web's counts")
	}
	if last := sh.Samples[len(sh.Samples)-1]; last.Instances != 2 || last.Healthy != 2 || time.Since(last.Time) > time.Minute {
		t.Errorf("web's last sample %+v, want 2 of 2 healthy, moments ago", last)
	}
}

func wantString(got, want string) error {
	if got != want {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	return nil
}
