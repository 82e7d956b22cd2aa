package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	warned := map[string]bool{}
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
			if m.Meta.BootstrapExpect != want {
				if warned[m.Name] {
					continue
				}
				warned[m.Name] = true
				s.logger.Warn("server with another bootstrap-expect; not counting it", "member", m.Name, "its", m.Meta.BootstrapExpect, "ours", want)
				continue
			}
			peers = append(peers, raft.Peer{ID: m.Name, RaftAddr: m.Meta.RaftAddr})
		}
		if len(peers) < want {
			continue
		}
		if err := s.node.BootstrapWith(peers); err != nil {
			s.logger.Error("bootstrap failed", "err", err)
		}
		return
	}
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
		}
		s.forgetRemoved()
	}
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
	inRaft := map[string]bool{}
	voters := 0
	for _, m := range rms {
		inRaft[m.ID] = true
		if m.Role != "nonvoter" {
			voters++
		}
	}
	now := time.Now()
	for _, g := range s.pool.Members() {
		if g.Self || s.ctx.Err() != nil {
			continue
		}
		switch {
		case g.Live() && !inRaft[g.Name] && g.Meta.RaftAddr != "":
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := s.node.Join(ctx, g.Name, g.Meta.RaftAddr)
			cancel()
			if err != nil {
				s.logger.Warn("could not add a server found by gossip", "server", g.Name, "err", err)
			} else {
				s.logger.Info("added a server found by gossip", "server", g.Name, "raft", g.Meta.RaftAddr)
			}
		case inRaft[g.Name] && (g.Status == gossip.StatusLeft ||
			(g.Status == gossip.StatusDead && s.cfg.DeadServerAfter > 0 && now.Sub(g.Since) > s.cfg.DeadServerAfter)):
			if voters-1 < s.cfg.MinQuorum {
				s.logger.Debug("keeping a dead server: removing it would leave fewer voters than min-quorum",
					"server", g.Name, "voters", voters, "min_quorum", s.cfg.MinQuorum)
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := s.node.RemoveServer(ctx, g.Name)
			if err == nil {
				voters--
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
		if !g.Live() && !inRaft[g.Name] && (g.Status == gossip.StatusLeft || now.Sub(g.Since) > s.cfg.DeadServerAfter) {
			s.pool.Forget(g.Name)
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
