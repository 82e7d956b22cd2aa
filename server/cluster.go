package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
)

// runJoin joins the gossip pool through the configured addresses and the
// servers known at the last run, retrying until another server answers.
func (s *Server) runJoin() {
	addrs := slices.Clone(s.cfg.Join)
	for _, a := range s.peers.load() {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return
	}
	backoff := 200 * time.Millisecond
	for {
		s.joinOnce(addrs)
		if s.liveOthers() > 0 {
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (s *Server) liveOthers() int {
	n := 0
	for _, m := range s.pool.Members() {
		if !m.Self && m.Live() {
			n++
		}
	}
	return n
}

// joinOnce tries each address as a gossip address, then as an HTTP address
// whose members list gives the gossip addresses.
func (s *Server) joinOnce(addrs []string) {
	for _, a := range addrs {
		if s.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		n, err := s.pool.Join(ctx, []string{strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")})
		if err == nil && n > 0 && s.liveOthers() > 0 {
			cancel()
			s.logger.Info("joined the gossip pool", "via", a)
			continue
		}
		gas, herr := gossipAddrsVia(ctx, s.apiURL(a), s.apiClient())
		if herr == nil && len(gas) > 0 {
			if n, jerr := s.pool.Join(ctx, gas); jerr == nil && n > 0 {
				s.logger.Info("joined the gossip pool", "via", a, "gossip", gas)
				cancel()
				continue
			}
		}
		cancel()
		s.logger.Debug("join attempt failed", "addr", a, "gossip_err", err, "http_err", herr)
	}
}

// gossipAddrsVia asks the HTTP API at addr for the gossip addresses of the
// live servers.
func gossipAddrsVia(ctx context.Context, addr string, hc *http.Client) ([]string, error) {
	c, err := client.NewAPI(addr, hc)
	if err != nil {
		return nil, err
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.GossipAddr != "" && (m.Status == string(gossip.StatusAlive) || m.Status == string(gossip.StatusSuspect)) {
			out = append(out, m.GossipAddr)
		}
	}
	return out, nil
}

// runBootstrapExpect starts a new cluster once BootstrapExpect servers with
// the same setting see each other, unless a leader turns up first.
func (s *Server) runBootstrapExpect() {
	want := s.cfg.BootstrapExpect
	warned, warnedShared := map[string]bool{}, false
	proofs := &bootProofs{logger: s.logger, done: map[string]error{}}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if id, _ := s.node.Leader(); id != "" {
			return
		}
		var peers []raft.Peer
		for _, m := range s.pool.Members() {
			if !m.Live() {
				continue
			}
			if m.Meta.Role == store.RoleRead {
				continue // a read server never votes, so it is no founder
			}
			if m.Meta.BootstrapExpect != want {
				if warned[m.Name] {
					continue
				}
				warned[m.Name] = true
				s.logger.Warn("server with another bootstrap-expect; not counting it", "member", m.Name, "its", m.Meta.BootstrapExpect, "ours", want)
				continue
			}
			if !m.Self {
				if err := proofs.check(s.ctx, s.node, m.Name, m.Meta.RaftAddr); err != nil {
					continue
				}
			}
			peers = append(peers, raft.Peer{ID: m.Name, RaftAddr: m.Meta.RaftAddr})
		}
		if len(peers) < want {
			continue
		}
		if err := raft.CheckDistinctAddrs(s.ctx, peers); err != nil {
			if !warnedShared {
				warnedShared = true
				s.logger.Warn("not bootstrapping: two members name one raft address", "err", err)
			}
			continue
		}
		if err := s.node.BootstrapWith(peers); err != nil {
			s.logger.Error("bootstrap failed", "err", err)
		}
		return
	}
}

// bootProofs remembers which gossip members proved to be servers
// (raft.Node.ProveServer) while runBootstrapExpect waits: only those count
// towards bootstrap-expect. A failed proof is tried again on the next tick
// (the member's listener may not be up yet) and logged once.
type bootProofs struct {
	logger *slog.Logger
	done   map[string]error // name + raft address → result
}

func (b *bootProofs) check(ctx context.Context, n *raft.Node, name, raftAddr string) error {
	key := name + "\x00" + raftAddr
	if err, ok := b.done[key]; ok && err == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := n.ProveServer(pctx, name, raftAddr)
	cancel()
	if _, tried := b.done[key]; !tried && err != nil {
		b.logger.Warn("not counting a gossip member towards bootstrap-expect: it did not prove to be a server", "member", name, "err", err)
	}
	b.done[key] = err
	return err
}

// runReconcile keeps the peers file up to date and, on the leader, makes
// every live server of the pool a voter and removes servers dead longer
// than DeadServerAfter, never below MinQuorum voters.
func (s *Server) runReconcile() {
	t := time.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.changed:
		}
		s.savePeers()
		s.updateLiveProtocols()
		if s.node.IsLeader() && s.node.Ready() {
			s.reconcile()
			s.bootstrapACL()
			s.reconciled.Add(1)
		}
		s.forgetRemoved()
	}
}

// readdress moves a server of the Raft configuration to the address it now
// advertises in gossip: a server restarted elsewhere with its data (a pod
// rescheduled with a new IP) keeps its ID and its vote, and the leader must
// dial it where it is. It is proved at the new address as a joining server
// is, and keeps its suffrage (AddNonvoter on a voter only moves it).
func (s *Server) readdress(g gossip.Member, old string, now time.Time) {
	if !s.refusals.due(g.Name, g.Meta.RaftAddr, now) {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := s.node.JoinNonvoter(ctx, g.Name, g.Meta.RaftAddr); err != nil {
		if s.refusals.refused(g.Name, g.Meta.RaftAddr, now) {
			s.logger.Warn("did not move a server to the Raft address it now advertises", "server", g.Name, "from", old, "to", g.Meta.RaftAddr, "err", err)
		}
		return
	}
	s.refusals.forget(g.Name)
	s.logger.Info("a server came back at another Raft address", "server", g.Name, "from", old, "to", g.Meta.RaftAddr)
}

// updateLiveProtocols tells the node what protocol each server the pool
// sees alive (or suspect) runs now: a catalog record may be older than the
// binary running (raft.Node.SetLiveProtocols).
func (s *Server) updateLiveProtocols() {
	live := map[string]int{}
	for _, m := range s.pool.Members() {
		if m.Status == gossip.StatusAlive || m.Status == gossip.StatusSuspect {
			live[m.Name] = m.Meta.Protocol
		}
	}
	s.node.SetLiveProtocols(live)
}

func (s *Server) reconcile() {
	rms, err := s.node.Members()
	if err != nil {
		return
	}
	inRaft, votes := map[string]bool{}, map[string]bool{}
	raftAddr := map[string]string{}
	voters := 0
	for _, m := range rms {
		inRaft[m.ID] = true
		raftAddr[m.ID] = m.RaftAddr
		if m.Role != "nonvoter" {
			votes[m.ID] = true
			voters++
		}
	}
	now := time.Now()
	gms := s.pool.Members()
	for _, g := range gms {
		if g.Self || s.ctx.Err() != nil {
			continue
		}
		switch {
		case g.Live() && !inRaft[g.Name] && g.Meta.RaftAddr != "":
			if !s.refusals.due(g.Name, g.Meta.RaftAddr, now) {
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			voter, err := s.joinAs(ctx, g, voters)
			cancel()
			if err != nil {
				if s.refusals.refused(g.Name, g.Meta.RaftAddr, now) {
					s.logger.Warn("did not add a member found by gossip", "server", g.Name, "raft", g.Meta.RaftAddr, "err", err)
				}
			} else {
				s.refusals.forget(g.Name)
				s.logger.Info("added a server found by gossip", "server", g.Name, "raft", g.Meta.RaftAddr, "role", g.Meta.Role, "voter", voter)
				if voter {
					voters++
				}
			}
		case g.Live() && inRaft[g.Name] && g.Meta.RaftAddr != "" && g.Meta.RaftAddr != raftAddr[g.Name]:
			s.readdress(g, raftAddr[g.Name], now)
		case g.Live():
			if at, ok := s.node.Departed(g.Name); ok && g.Since.After(at) {
				s.node.ForgetDeparture(g.Name) // it came back
			}
		case inRaft[g.Name] && s.gone(g, now):
			// Min-quorum counts voters: a non-voter (a read server, a
			// standby, a voter whose vote went to a standby) always goes.
			if votes[g.Name] && voters-1 < s.cfg.MinQuorum {
				s.logger.Debug("keeping a dead server: removing it would leave fewer voters than min-quorum",
					"server", g.Name, "voters", voters, "min_quorum", s.cfg.MinQuorum)
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := s.node.RemoveServer(ctx, g.Name)
			if err == nil {
				if votes[g.Name] {
					voters--
				}
				s.pool.Forget(g.Name)
				_, err = s.node.Apply(ctx, &store.Command{Type: store.CommandRemoveServer, ID: g.Name})
				if errors.Is(err, store.ErrInvalid) {
					err = nil
				}
			}
			cancel()
			if err != nil {
				s.logger.Warn("could not remove a dead server", "server", g.Name, "err", err)
			} else {
				s.logger.Info("removed a dead server from the cluster", "server", g.Name, "status", g.Status, "since", g.Since)
			}
		}
	}
	if s.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		s.place(ctx, gms, now)
		cancel()
	}
}

// refusals paces the attempts to add a gossip member that failed to prove
// it is a server: the next try waits twice as long as the last, up to a
// minute, and the refusal is logged once per address. It holds only
// members of the gossip pool, which is bounded (gossip.Config.MaxMembers).
type refusals struct {
	mu sync.Mutex
	m  map[string]refusal
}

type refusal struct {
	addr  string
	next  time.Time
	delay time.Duration
}

func (r *refusals) due(name, addr string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.m[name]
	return !ok || f.addr != addr || !now.Before(f.next)
}

// refused records a failed attempt and reports whether it is the first
// for this address (worth a log line).
func (r *refusals) refused(name, addr string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]refusal{}
	}
	f, ok := r.m[name]
	first := !ok || f.addr != addr
	if first {
		f = refusal{addr: addr, delay: time.Second}
	} else {
		f.delay = min(2*f.delay, time.Minute)
	}
	f.next = now.Add(f.delay)
	r.m[name] = f
	return first
}

func (r *refusals) forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, name)
}

// gone reports whether a member the pool holds dead has left the cluster:
// it said so itself, over the Raft port (raft.Node.AnnounceLeave: gossip
// alone cannot tell who sent a message), or the failure detector has held
// it dead for DeadServerAfter.
func (s *Server) gone(g gossip.Member, now time.Time) bool {
	if g.Live() {
		return false
	}
	if at, ok := s.node.Departed(g.Name); ok && !g.Since.Before(at.Add(-time.Second)) {
		return true
	}
	return s.cfg.DeadServerAfter > 0 && now.Sub(g.Since) > s.cfg.DeadServerAfter
}

// forgetRemoved drops from the members list the servers that are dead or
// gone and no longer in the Raft configuration (the leader removed them,
// or they never made it in), once dead-server-after has passed.
func (s *Server) forgetRemoved() {
	rms, err := s.node.Members()
	if err != nil || s.cfg.DeadServerAfter == 0 {
		return
	}
	inRaft := map[string]bool{}
	for _, m := range rms {
		inRaft[m.ID] = true
	}
	now := time.Now()
	for _, g := range s.pool.Members() {
		if !g.Live() && !inRaft[g.Name] && now.Sub(g.Since) > s.cfg.DeadServerAfter {
			s.pool.Forget(g.Name)
			s.refusals.forget(g.Name)
		}
	}
}

// peerFile remembers the gossip addresses of the other servers, so that a
// restarted server finds its cluster without --join.
type peerFile struct {
	path string
	mu   sync.Mutex
	last []string
}

func peersPath(dataDir string) string { return filepath.Join(dataDir, "gossip-peers.json") }

func (p *peerFile) load() []string {
	b, err := os.ReadFile(p.path)
	if err != nil {
		return nil
	}
	var addrs []string
	if json.Unmarshal(b, &addrs) != nil {
		return nil
	}
	return addrs
}

func (s *Server) savePeers() {
	var addrs []string
	for _, m := range s.pool.Members() {
		if !m.Self && m.Live() {
			addrs = append(addrs, m.Addr)
		}
	}
	if len(addrs) == 0 {
		return // keep what we knew: alone is not a state worth remembering
	}
	slices.Sort(addrs)
	if err := s.peers.save(addrs); err != nil {
		s.logger.Warn("could not save the gossip peers", "err", err)
	}
}

func (p *peerFile) save(addrs []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.Equal(addrs, p.last) {
		return nil
	}
	b, _ := json.Marshal(addrs)
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	p.last = addrs
	return nil
}
