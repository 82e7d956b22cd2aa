package server

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/switchyard-io/switchyard/api/wire"
)

func dnsA(addr, name string) ([]string, int, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	c := &mdns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, 0, err
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out, r.Rcode, nil
}

// DNS answers from the local replica: with two of three servers gone (no
// leader, no quorum) the last one keeps answering.
func TestDNSAnswersWithoutALeader(t *testing.T) {
	c := startCluster(t, 3)
	body := wire.RegisterRequest{Address: "10.7.0.1", Port: 8080, Ephemeral: new(bool)}
	if err := c.do(c.servers[0], http.MethodPut, "/v1/namespaces/default/services/pay/instances/p-1", body, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range c.servers {
		eventually(t, 5*time.Second, "DNS answer on "+s.cfg.NodeID, func() error {
			ips, rc, err := dnsA(s.DNSAddr(), "pay.svc.switchyard.")
			if err != nil || rc != mdns.RcodeSuccess || len(ips) != 1 || ips[0] != "10.7.0.1" {
				return fmt.Errorf("%v %s %v", ips, mdns.RcodeToString[rc], err)
			}
			return nil
		})
	}
	var last *Server
	for _, s := range c.servers {
		if s.Node().IsLeader() || last != nil {
			if err := s.Kill(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		last = s
	}
	eventually(t, 10*time.Second, "no leader on the last server", func() error {
		if id, _ := last.Node().Leader(); id != "" {
			return fmt.Errorf("leader %s", id)
		}
		return nil
	})
	for range 20 {
		ips, rc, err := dnsA(last.DNSAddr(), "pay.svc.switchyard.")
		if err != nil || rc != mdns.RcodeSuccess || len(ips) != 1 {
			t.Fatalf("without a leader: %v %s %v", ips, mdns.RcodeToString[rc], err)
		}
	}
}

// The metrics of Raft, gossip, health and DNS move with what happens.
func TestOperationalMetrics(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	if got := c.metric(t, s, "switchyard_raft_leadership_changes_total"); got == "0" {
		t.Fatalf("leadership changes %s after an election", got)
	}
	if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/pay/instances/p-1", map[string]any{
		"address": "10.7.0.1", "port": 80, "ephemeral": false}, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.metric(t, s, "switchyard_raft_commit_seconds_count"); got == "0" {
		t.Fatalf("commit time observed %s times after a write", got)
	}
	if _, code, err := dnsA(s.DNSAddr(), "nobody.default.svc.switchyard."); err != nil || code != mdns.RcodeNameError {
		t.Fatalf("DNS for an unknown service: rcode %d, %v", code, err)
	}
	if _, code, err := dnsA(s.DNSAddr(), "pay.default.svc.switchyard."); err != nil || code != mdns.RcodeSuccess {
		t.Fatalf("DNS for pay: rcode %d, %v", code, err)
	}
	if got := c.metric(t, s, `switchyard_dns_answers_total{rcode="NXDOMAIN"}`); got != "1" {
		t.Fatalf("NXDOMAIN answers %s, want 1", got)
	}
	if got := c.metric(t, s, `switchyard_dns_answers_total{rcode="NOERROR"}`); got != "1" {
		t.Fatalf("NOERROR answers %s, want 1", got)
	}
	for _, name := range []string{"switchyard_dns_truncated_total", "switchyard_gossip_member_failures_total", "switchyard_gossip_suspicions_total", "switchyard_services_protected"} {
		if got := c.metric(t, s, name); got != "0" {
			t.Fatalf("%s = %s, want 0", name, got)
		}
	}
}
