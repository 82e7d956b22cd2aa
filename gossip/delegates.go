package gossip

// The pool's side of memberlist's delegate interfaces: who may join
// (alive), membership events, ping round trips, and the metadata and
// messages servers exchange. Pool is the receiver under other names so
// that these methods stay off its public surface.

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/switchyard-io/switchyard/store"
)

// DefaultMaxMembers bounds a pool when Config.MaxMembers is 0: far more
// servers than a registry runs, voters and read servers of every
// datacenter together.
const DefaultMaxMembers = 1024

type alive Pool

// NotifyAlive decides whether memberlist lets a member in. A name must be a
// DNS label (what --node-id accepts), the metadata must read, and the pool
// must have room: everything here comes from the network.
func (a *alive) NotifyAlive(n *memberlist.Node) error {
	p := (*Pool)(a)
	if n.Name == p.cfg.Name {
		return nil
	}
	if err := store.ValidateName("member name", n.Name); err != nil {
		err = fmt.Errorf("gossip: %w", err)
		p.warnRefused(n, err)
		return err
	}
	if len(n.Meta) > 0 {
		var m Meta
		if err := json.Unmarshal(n.Meta, &m); err != nil {
			err = fmt.Errorf("gossip: member %q: metadata: %w", n.Name, err)
			p.warnRefused(n, err)
			return err
		}
		if !store.ValidRole(m.Role) {
			err := fmt.Errorf("gossip: member %q: metadata: role %q (want %s or %s)", n.Name, m.Role, store.RoleVoter, store.RoleRead)
			p.warnRefused(n, err)
			return err
		}
	}
	limit := p.cfg.MaxMembers
	if limit <= 0 {
		limit = DefaultMaxMembers
	}
	p.mu.Lock()
	_, known := p.members[n.Name]
	full := !known && len(p.members) >= limit
	p.mu.Unlock()
	if full {
		err := fmt.Errorf("gossip: the pool holds %d members, at most %d", limit, limit)
		p.warnRefused(n, err)
		return err
	}
	return nil
}

// warnRefused logs a refused member once (memberlist hears of it again
// with every gossip round); the names remembered for that are bounded too.
func (p *Pool) warnRefused(n *memberlist.Node, err error) {
	p.mu.Lock()
	seen := p.refused[n.Name]
	if !seen {
		if len(p.refused) >= 256 {
			clear(p.refused)
		}
		p.refused[n.Name] = true
	}
	p.mu.Unlock()
	if !seen {
		p.logger.Warn("refused a gossip member", "member", n.Name, "addr", n.Address(), "err", err)
	}
}

type events Pool

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Pool)(e).set(n, StatusAlive) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Pool)(e).set(n, StatusDead) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Pool)(e).set(n, StatusAlive) }

type pings Pool

func (p *pings) AckPayload() []byte { return nil }

// NotifyPingComplete keeps an exponentially weighted RTT (α = 1/4, like
// TCP's smoothed RTT) and the time of the last answer.
func (p *pings) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, _ []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.members[n.Name]
	if r == nil {
		return
	}
	now := time.Now()
	if !r.lastAck.IsZero() {
		alive := 0
		for _, o := range p.members {
			if o.m.Status == StatusAlive {
				alive++
			}
		}
		if now.Sub(r.lastAck) > (*Pool)(p).suspectAfter(alive) {
			p.suspects.Add(1)
		}
	}
	r.lastAck = now
	if r.m.RTT == 0 {
		r.m.RTT = rtt
	} else {
		r.m.RTT = (3*r.m.RTT + rtt) / 4
	}
}

type delegate Pool

func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}

func (d *delegate) NotifyMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	if b[0] == msgUser && d.cfg.Handler != nil {
		d.cfg.Handler.Message(b[1:])
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

func (d *delegate) LocalState(join bool) []byte {
	if d.cfg.Handler == nil {
		return nil
	}
	return d.cfg.Handler.LocalState()
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	if d.cfg.Handler != nil && len(buf) > 0 {
		d.cfg.Handler.MergeState(buf)
	}
}
