package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
)

// reads lists every read endpoint over a catalog holding default/web/web-1.
var reads = []string{
	"/v1/namespaces",
	"/v1/namespaces/default",
	"/v1/namespaces/default/services",
	"/v1/namespaces/default/services/web",
	"/v1/namespaces/default/services/web/instances",
	"/v1/namespaces/default/services/web/instances?healthy=true",
	"/v1/namespaces/default/services/web/instances/web-1",
}

func TestReadHeaders(t *testing.T) {
	ts := newTestServer(t)
	ts.register(t, "default", "web", "web-1", `{"address":"10.0.0.1","port":8080}`)
	for _, path := range reads {
		for _, consistent := range []string{"", "consistent=true", "consistent=false"} {
			p := path
			if consistent != "" {
				sep := "?"
				if strings.Contains(p, "?") {
					sep = "&"
				}
				p += sep + consistent
			}
			t.Run(p, func(t *testing.T) {
				r := mustOK(t, "read", ts.get(t, p))
				index(t, r)
				if got := r.header.Get("X-Switchyard-Known-Leader"); got != "true" {
					t.Errorf("X-Switchyard-Known-Leader %q, want true", got)
				}
				lc := r.header.Get("X-Switchyard-Last-Contact")
				if n, err := strconv.ParseInt(lc, 10, 64); err != nil || n < 0 {
					t.Errorf("X-Switchyard-Last-Contact %q is not a non-negative integer", lc)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
			})
		}
	}

	// A consistent read gives the same answer as a local one here.
	a := mustOK(t, "local", ts.get(t, webList))
	b := mustOK(t, "consistent", ts.get(t, webList+"?consistent=true"))
	if string(a.body) != string(b.body) || index(t, a) != index(t, b) {
		t.Errorf("consistent read differs:\n%s\n%s", a.body, b.body)
	}
	// Writes carry the index they were applied at.
	w := ts.register(t, "default", "web", "web-2", `{"address":"10.0.0.2","port":8080}`)
	if wi, ri := index(t, w), ts.serviceIndex(t, "default", "web"); wi != ri {
		t.Errorf("register answered index %d, the service is at %d", wi, ri)
	}
}

func TestHealthAndCluster(t *testing.T) {
	ts := newTestServer(t)

	var h wire.Health
	r := mustOK(t, "health", ts.get(t, "/v1/health"))
	decode(t, r, &h)
	if !h.Live || !h.Ready || h.Leader != "t1" || h.AppliedIndex == 0 {
		t.Errorf("health %+v", h)
	}
	if got := index(t, r); got != h.AppliedIndex {
		t.Errorf("health index header %d, body applied_index %d", got, h.AppliedIndex)
	}

	var li wire.LeaderInfo
	r = mustOK(t, "leader", ts.get(t, "/v1/cluster/leader"))
	index(t, r)
	decode(t, r, &li)
	want := wire.LeaderInfo{ID: "t1", RaftAddr: ts.node.RaftAddr(), HTTPAddr: ts.addr}
	if li != want {
		t.Errorf("leader %+v, want %+v", li, want)
	}

	r = mustOK(t, "members", ts.get(t, "/v1/cluster/members"))
	index(t, r)
	var ms wire.MembersResponse
	decode(t, r, &ms)
	wantM := wire.Member{ID: "t1", RaftAddr: ts.node.RaftAddr(), HTTPAddr: ts.addr, Role: "leader", ServerRole: store.RoleVoter,
		Protocol: raft.ProtocolVersion, Locality: store.Locality{}}
	if len(ms.Members) != 1 || ms.Members[0] != wantM {
		t.Errorf("members %+v, want [%+v]", ms.Members, wantM)
	}

	// Joining the node itself again is a no-op that succeeds.
	mustOK(t, "join self", ts.do(t, http.MethodPost, "/v1/cluster/join",
		`{"id":"t1","raft_addr":"`+ts.node.RaftAddr()+`"}`))
	decode(t, mustOK(t, "members", ts.get(t, "/v1/cluster/members")), &ms)
	if len(ms.Members) != 1 {
		t.Errorf("members after a self join: %+v", ms.Members)
	}
}
