package server

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/store"
)

// candidate is a server of the Raft configuration that may be given a vote:
// of role voter, and alive in gossip (the leader always is).
type candidate struct {
	id, dc string
	voter  bool // votes now
	leader bool
}

// chooseVoters picks want voters among cands, spread over datacenters: it
// takes one server from each datacenter in turn, so that no datacenter
// holds more than one voter more than another while each still has
// candidates left. Within a datacenter it keeps the leader and the current
// voters first (no change for its own sake), then goes by id. The
// datacenters take turns leader's first, then those with more voters now,
// then by name, so the choice is stable from one pass to the next.
func chooseVoters(cands []candidate, want int) map[string]bool {
	byDC := map[string][]candidate{}
	for _, c := range cands {
		byDC[c.dc] = append(byDC[c.dc], c)
	}
	type dcQueue struct {
		name   string
		leader bool
		voters int
		queue  []candidate
	}
	var dcs []*dcQueue
	for name, cs := range byDC {
		q := &dcQueue{name: name, queue: cs}
		slices.SortFunc(q.queue, func(a, b candidate) int {
			return cmp.Or(trueFirst(a.leader, b.leader), trueFirst(a.voter, b.voter), cmp.Compare(a.id, b.id))
		})
		for _, c := range cs {
			q.leader = q.leader || c.leader
			if c.voter {
				q.voters++
			}
		}
		dcs = append(dcs, q)
	}
	slices.SortFunc(dcs, func(a, b *dcQueue) int {
		return cmp.Or(trueFirst(a.leader, b.leader), cmp.Compare(b.voters, a.voters), cmp.Compare(a.name, b.name))
	})
	chosen := map[string]bool{}
	for len(chosen) < want {
		took := false
		for _, q := range dcs {
			if len(chosen) == want {
				break
			}
			if len(q.queue) > 0 {
				chosen[q.queue[0].id] = true
				q.queue = q.queue[1:]
				took = true
			}
		}
		if !took {
			break
		}
	}
	return chosen
}

// trueFirst orders true before false.
func trueFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// place keeps Config.Voters voters spread over datacenters (leader only).
// A server of role read is never a candidate; a server of role voter that
// waits as a non-voter (a standby) is promoted once it has been alive for
// ServerStabilization, which is how a dead voter is replaced without
// waiting for dead-server-after. Promotions come first, then demotions, and
// a demotion never leaves fewer voters than were chosen or than MinQuorum,
// so the cluster's fault tolerance never drops on the way. A dead voter
// with no standby to replace it loses its vote too when that floor allows:
// its vote only made the quorum harder to reach.
func (s *Server) place(ctx context.Context, gms []gossip.Member, now time.Time) {
	rms, err := s.node.Members() // again: reconcile may have added servers
	if err != nil {
		return
	}
	gm := make(map[string]gossip.Member, len(gms))
	for _, g := range gms {
		gm[g.Name] = g
	}
	var cands []candidate
	voters := 0
	for _, m := range rms {
		isVoter := m.Role != "nonvoter"
		if isVoter {
			voters++
		}
		if m.ServerRole == store.RoleRead {
			continue
		}
		g, ok := gm[m.ID]
		leader := m.Role == "leader"
		if !leader && (!ok || !g.Live()) {
			continue
		}
		if !leader && !isVoter && (g.Status != gossip.StatusAlive || now.Sub(g.Since) < s.cfg.ServerStabilization) {
			continue // a standby votes only once it has been up a while
		}
		dc := m.Locality.Datacenter
		if dc == "" && ok {
			dc = g.Meta.Datacenter
		}
		cands = append(cands, candidate{id: m.ID, dc: dc, voter: isVoter, leader: leader})
	}
	want := min(s.cfg.Voters, len(cands))
	chosen := chooseVoters(cands, want)
	for _, c := range cands {
		if chosen[c.id] && !c.voter {
			if err := s.node.Promote(ctx, c.id); err != nil {
				s.logger.Warn("could not give a standby server a vote", "server", c.id, "err", err)
				continue
			}
			voters++
			s.logger.Info("gave a standby server a vote", "server", c.id, "datacenter", c.dc, "voters", voters)
		}
	}
	floor := max(want, s.cfg.MinQuorum)
	for _, m := range rms {
		if m.Role != "voter" || chosen[m.ID] || voters-1 < floor {
			continue
		}
		if err := s.node.Demote(ctx, m.ID); err != nil {
			s.logger.Warn("could not take a vote away", "server", m.ID, "err", err)
			continue
		}
		voters--
		s.logger.Info("took a server's vote: another keeps the voters spread, or it is gone", "server", m.ID, "voters", voters)
	}
}

// joinAs says how a server found by gossip enters the configuration: a
// read server and a voter beyond Config.Voters as non-voters; place gives
// the latter a vote when one is due. It reports whether the server joined
// with a vote.
func (s *Server) joinAs(ctx context.Context, g gossip.Member, voters int) (voter bool, err error) {
	if g.Meta.Role == store.RoleRead || voters >= s.cfg.Voters {
		return false, s.node.JoinNonvoter(ctx, g.Name, g.Meta.RaftAddr)
	}
	return true, s.node.Join(ctx, g.Name, g.Meta.RaftAddr)
}
