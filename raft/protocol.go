package raft

import "github.com/switchyard-io/switchyard/store"

// Protocol versions, announced by each server in its catalog record
// (store.Server.Protocol):
//
//  1. (or 0: a version before they were recorded) JSON log entry bodies;
//     forwarded requests one at a time per connection (connForward).
//  2. binary bodies for register and deregister entries; forwarded
//     requests multiplexed on one connection (connForwardMux).
//
// A server writes log entries that every server of the Raft configuration
// reads, and forwards to the leader in the protocol the leader announced,
// so servers of both versions work together during a rolling upgrade.
const ProtocolVersion = 2

// Protocol is the protocol version this server speaks and announces.
func (n *Node) Protocol() int {
	if n.cfg.Protocol > 0 {
		return min(n.cfg.Protocol, ProtocolVersion)
	}
	return ProtocolVersion
}

// SetLiveProtocols tells the node the protocol each running server
// announces now, by id, as the gossip pool sees it alive or suspect. Once
// set, a server counts at the lower of that and its catalog record, and a
// server missing from the map (stopped, unknown to gossip) counts as 1.
// The catalog record alone can be stale: a server rolled back to a version
// before protocols keeps the record its newer version wrote, while what it
// tells the pool at each start is its own. Without it (nil), the records
// alone decide.
func (n *Node) SetLiveProtocols(m map[string]int) { n.liveProtocols.Store(&m) }

// memberProtocol is the protocol a server of the configuration counts at.
func (n *Node) memberProtocol(id string) int {
	rec, _ := n.store.Server(id)
	p := max(rec.Protocol, 1)
	if live := n.liveProtocols.Load(); live != nil {
		p = min(p, max((*live)[id], 1))
	}
	return p
}

// ClusterProtocol is the protocol the cluster runs at, as this node sees
// it: the lowest protocol of the servers of the Raft configuration
// (memberProtocol): a server not recorded yet, or recorded by a version
// before protocols, counts as 1. So a rolling upgrade keeps writing what
// the oldest server reads, and the newer protocol starts once the last
// server has announced itself. Entries already in the log are read in
// whatever format they were written.
func (n *Node) ClusterProtocol() int {
	cfg := n.raft.GetConfiguration().Configuration()
	if len(cfg.Servers) == 0 {
		return 1
	}
	p := n.Protocol()
	for _, member := range cfg.Servers {
		p = min(p, n.memberProtocol(string(member.ID)))
	}
	return p
}

// speaksMux reports whether the server at raftAddr announced protocol 2,
// and so takes multiplexed forward requests.
func (n *Node) speaksMux(raftAddr string) bool {
	if n.Protocol() < 2 {
		return false
	}
	for _, member := range n.raft.GetConfiguration().Configuration().Servers {
		if string(member.Address) == raftAddr {
			return n.memberProtocol(string(member.ID)) >= 2
		}
	}
	return false
}

// entryFormat is the log entry format every server of the configuration
// reads.
func (n *Node) entryFormat() int {
	if n.ClusterProtocol() >= 2 {
		return store.EntryFormatBinary
	}
	return store.EntryFormatJSON
}
