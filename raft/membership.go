package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/switchyard-io/switchyard/store"
)

// Join adds a server as a voter, from any node (forwarded to the leader).
// Joining a server that is already a voter at the same address is a no-op.
func (n *Node) Join(ctx context.Context, id, raftAddr string) error {
	return n.join(ctx, joinRequest{ID: id, RaftAddr: raftAddr})
}

// JoinNonvoter adds a server without a vote: it receives the log and holds
// the catalog, and counts towards no quorum. A server already in the
// configuration at the same address, voter or not, stays as it is; one at
// another address moves to this one and keeps its vote, if it had one.
func (n *Node) JoinNonvoter(ctx context.Context, id, raftAddr string) error {
	return n.join(ctx, joinRequest{ID: id, RaftAddr: raftAddr, Nonvoter: true})
}

func (n *Node) join(ctx context.Context, j joinRequest) error {
	id, raftAddr := j.ID, j.RaftAddr
	if err := store.ValidateName("node id", id); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(raftAddr); err != nil {
		return fmt.Errorf("%w: raft address %q: %v", store.ErrInvalid, raftAddr, err)
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	payload, _ := json.Marshal(j)
	_, err := n.toLeader(ctx, false, func(ctx context.Context, leaderAddr string) (uint64, error) {
		if leaderAddr == "" {
			return 0, n.joinLocal(ctx, j)
		}
		return n.fwd.call(ctx, leaderAddr, opJoin, payload, true)
	})
	return err
}

func (n *Node) joinLocal(ctx context.Context, j joinRequest) error {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("raft: join %s: %w", j.ID, err)
	}
	servers := cf.Configuration().Servers
	for _, s := range servers {
		if s.ID == hraft.ServerID(j.ID) && s.Address == hraft.ServerAddress(j.RaftAddr) && (s.Suffrage == hraft.Voter || j.Nonvoter) {
			return nil
		}
	}
	// However the address is spelt, it must not be another member's: and
	// only a server may vote (proof.go).
	if err := checkAddrUnused(ctx, servers, j.ID, j.RaftAddr); err != nil {
		return fmt.Errorf("raft: join %s: %w", j.ID, err)
	}
	if err := n.ProveServer(ctx, j.ID, j.RaftAddr); err != nil {
		return fmt.Errorf("raft: join %s: %w", j.ID, err)
	}
	timeout := n.futureTimeout(ctx)
	add, how := n.raft.AddVoter, "voter"
	if j.Nonvoter {
		add, how = n.raft.AddNonvoter, "nonvoter"
	}
	if err := n.await(add(hraft.ServerID(j.ID), hraft.ServerAddress(j.RaftAddr), 0, timeout)); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) {
			return fmt.Errorf("raft: join %s: %w", j.ID, ErrNoLeader)
		}
		return fmt.Errorf("raft: join %s: %w", j.ID, err)
	}
	n.logger.Info("server joined", "id", j.ID, "raft_addr", j.RaftAddr, "as", how)
	return nil
}

// Promote gives a non-voter of the configuration a vote, and Demote takes
// a voter's away (it stays in the configuration and keeps receiving the
// log). Only the leader changes suffrage: they fail with ErrNotLeader
// elsewhere. The server's own reconcile decides who votes.
func (n *Node) Promote(ctx context.Context, id string) error {
	return n.changeSuffrage(ctx, id, true)
}

// Demote: see Promote.
func (n *Node) Demote(ctx context.Context, id string) error {
	return n.changeSuffrage(ctx, id, false)
}

func (n *Node) changeSuffrage(ctx context.Context, id string, vote bool) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("raft: suffrage of %s: %w", id, err)
	}
	var found *hraft.Server
	for _, s := range cf.Configuration().Servers {
		if s.ID == hraft.ServerID(id) {
			found = &s
			break
		}
	}
	if found == nil {
		return fmt.Errorf("raft: suffrage of %s: %w", id, ErrNotMember)
	}
	if (found.Suffrage == hraft.Voter) == vote {
		return nil
	}
	timeout := n.futureTimeout(ctx)
	var f hraft.IndexFuture
	if vote {
		f = n.raft.AddVoter(found.ID, found.Address, cf.Index(), timeout)
	} else {
		f = n.raft.DemoteVoter(found.ID, cf.Index(), timeout)
	}
	if err := n.await(f); err != nil {
		return fmt.Errorf("raft: suffrage of %s: %w", id, err)
	}
	n.logger.Info("server suffrage changed", "id", id, "voter", vote)
	return nil
}

// Member is one server of the Raft configuration.
type Member struct {
	ID       string         `json:"id"`
	RaftAddr string         `json:"raft_addr"`
	HTTPAddr string         `json:"http_addr,omitempty"`
	Locality store.Locality `json:"locality"`
	Role     string         `json:"role"` // leader, voter, nonvoter
	// ServerRole is the role the server was started with, as recorded in
	// the catalog: voter (may be given a vote; a nonvoter with it is a
	// standby) or read (never votes).
	ServerRole string `json:"server_role,omitempty"`
	// Protocol the server announced (0: not recorded; see ProtocolVersion).
	Protocol int `json:"protocol,omitempty"`
}

// Members lists the servers of the Raft configuration as this node knows
// it, with the HTTP address each recorded in the catalog.
func (n *Node) Members() ([]Member, error) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, fmt.Errorf("raft: members: %w", err)
	}
	_, servers := n.store.Servers()
	byID := make(map[string]store.Server, len(servers))
	for _, s := range servers {
		byID[s.ID] = s
	}
	_, leaderID := n.raft.LeaderWithID()
	var out []Member
	for _, s := range cf.Configuration().Servers {
		m := Member{ID: string(s.ID), RaftAddr: string(s.Address), Role: "voter"}
		if s.Suffrage != hraft.Voter {
			m.Role = "nonvoter"
		}
		if s.ID == leaderID {
			m.Role = "leader"
		}
		if rec, ok := byID[m.ID]; ok {
			m.HTTPAddr, m.Locality, m.Protocol, m.ServerRole = rec.HTTPAddr, rec.Locality, rec.Protocol, rec.Role
		}
		m.ServerRole = store.ServerRole(m.ServerRole)
		out = append(out, m)
	}
	return out, nil
}

// Peer is a server of a first Raft configuration.
type Peer struct {
	ID       string
	RaftAddr string
}

// BootstrapWith starts a new cluster whose voters are peers (this server
// among them). Every server found by the same discovery calls it with the
// same peers, so they agree on the first configuration. It does nothing on
// a server that already holds cluster state.
func (n *Node) BootstrapWith(peers []Peer) error {
	if n.hadState {
		return nil
	}
	cf := hraft.Configuration{}
	self := false
	for _, p := range peers {
		cf.Servers = append(cf.Servers, hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(p.ID), Address: hraft.ServerAddress(p.RaftAddr)})
		self = self || p.ID == n.cfg.ID
	}
	if !self {
		return fmt.Errorf("raft: bootstrap: this server (%s) is not among the peers", n.cfg.ID)
	}
	if err := n.raft.BootstrapCluster(cf).Error(); err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
		return fmt.Errorf("raft: bootstrap: %w", err)
	}
	n.logger.Info("bootstrapped a new cluster", "voters", len(peers))
	return nil
}

// RemoveServer takes a server out of the Raft configuration. Only the
// leader can; elsewhere it returns ErrNoLeader.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return fmt.Errorf("raft: remove %s: %w", id, ErrNoLeader)
	}
	timeout := n.futureTimeout(ctx)
	if err := n.await(n.raft.RemoveServer(hraft.ServerID(id), 0, timeout)); err != nil {
		return fmt.Errorf("raft: remove %s: %w", id, err)
	}
	n.logger.Info("server removed from the cluster", "id", id)
	return nil
}

// announce records this server's HTTP address, locality and protocol in
// the catalog, retrying until it succeeds, then checks the record every
// reannounceEvery until the node stops and writes it again if it differs:
// a leader of an older version re-encodes a forwarded record without the
// fields it does not know (the protocol), and the record must be put right
// once that leader has been upgraded, or the cluster would never move to
// the newer protocol.
func (n *Node) announce() {
	self := store.Server{ID: n.cfg.ID, RaftAddr: n.cfg.AdvertiseAddr, HTTPAddr: n.cfg.HTTPAddr, Locality: n.cfg.Locality,
		Protocol: n.Protocol(), Role: n.cfg.Role}
	backoff := 50 * time.Millisecond
	for {
		wait := reannounceEvery
		if rec, ok := n.store.Server(self.ID); !ok || rec != self {
			ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
			_, err := n.Apply(ctx, &store.Command{Type: store.CommandPutServer, Server: &self})
			cancel()
			if err == nil {
				backoff = 50 * time.Millisecond
			} else {
				n.logger.Debug("recording this server in the catalog", "err", err)
				wait = backoff
				backoff = min(backoff*2, 2*time.Second)
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// reannounceEvery is how often a server checks its catalog record.
var reannounceEvery = 10 * time.Second
