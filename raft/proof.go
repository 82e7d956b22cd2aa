package raft

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/switchyard-io/switchyard/internal/certs"
	"github.com/switchyard-io/switchyard/store"
)

// Only real servers vote, and a departure is believed only from the server
// that departs. Gossip is how servers find each other, but whoever can
// speak gossip is not thereby a server: before a gossip member becomes a
// voter (Join) or counts towards --bootstrap-expect (ProveServer), the
// leader dials the Raft address it advertises and, with TLS, requires the
// certificate there to carry the server role (certs.PeerConfig) and the
// member's own node name. Without TLS the gossip key is the only proof,
// which is why `registry server` refuses to start without one.

// ProveServer checks that the server at raftAddr is the server id: with
// TLS between servers, the certificate it presents there must be a server
// certificate of the cluster's CA (checked by the TLS configuration) whose
// common name or one of whose DNS names is id. Without TLS there is
// nothing to check on the Raft port and it returns nil. The error wraps
// store.ErrInvalid.
func (n *Node) ProveServer(ctx context.Context, id, raftAddr string) error {
	if n.cfg.TLS == nil {
		return nil
	}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	c, err := dialTyped(raftAddr, timeout, connForward, n.cfg.TLS)
	if err != nil {
		return fmt.Errorf("%w: %s at %s does not prove to be a server of this cluster: %v", store.ErrInvalid, id, raftAddr, err)
	}
	defer c.Close()
	tc, ok := c.(*tls.Conn)
	if !ok {
		return fmt.Errorf("%w: %s at %s: no TLS connection", store.ErrInvalid, id, raftAddr)
	}
	peer := tc.ConnectionState().PeerCertificates
	if len(peer) == 0 {
		return fmt.Errorf("%w: %s at %s presented no certificate", store.ErrInvalid, id, raftAddr)
	}
	if err := certs.CheckServerNamed(peer[0], id); err != nil {
		return fmt.Errorf("%w: the server at %s: %v", store.ErrInvalid, raftAddr, err)
	}
	return nil
}

// peerCert is the certificate a connection's far end presented over TLS
// (nil in plaintext).
func peerCert(c net.Conn) *x509.Certificate {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0]
	}
	return nil
}

// resolveRaftAddr returns the endpoints a Raft address stands for, in one
// spelling each: the port as a number (07401 is 7401), IPv4-mapped IPv6
// addresses as IPv4 (::ffff:10.0.0.2 is 10.0.0.2), and a host name as
// every address it resolves to. An unspecified or multicast address names
// no server and is refused.
func resolveRaftAddr(ctx context.Context, addr string) ([]netip.AddrPort, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: raft address %q: %v", store.ErrInvalid, addr, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("%w: raft address %q: bad port", store.ErrInvalid, addr)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, fmt.Errorf("%w: raft address %q: %v", store.ErrInvalid, addr, err)
		}
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		ip = ip.Unmap().WithZone("")
		if ip.IsUnspecified() || ip.IsMulticast() {
			return nil, fmt.Errorf("%w: raft address %q: %s is no server's address", store.ErrInvalid, addr, ip)
		}
		if !slices.Contains(out, netip.AddrPortFrom(ip, uint16(port))) {
			out = append(out, netip.AddrPortFrom(ip, uint16(port)))
		}
	}
	return out, nil
}

// checkAddrUnused refuses raftAddr when it stands for an endpoint of a
// server other than id in the configuration, however it is spelt: one
// server added twice under two names would count twice towards quorum.
func checkAddrUnused(ctx context.Context, servers []hraft.Server, id, raftAddr string) error {
	want, err := resolveRaftAddr(ctx, raftAddr)
	if err != nil {
		return err
	}
	for _, s := range servers {
		if string(s.ID) == id {
			continue
		}
		if string(s.Address) == raftAddr {
			return fmt.Errorf("%w: raft address %s is already used by server %q", store.ErrInvalid, raftAddr, s.ID)
		}
		have, err := resolveRaftAddr(ctx, string(s.Address))
		if err != nil {
			continue // a member whose own address no longer resolves overlaps nothing we can see
		}
		for _, a := range want {
			if slices.Contains(have, a) {
				return fmt.Errorf("%w: raft address %s is %s, already used by server %q (as %s)", store.ErrInvalid, raftAddr, a, s.ID, s.Address)
			}
		}
	}
	return nil
}

// CheckDistinctAddrs refuses a list of peers in which two names stand for
// one endpoint (a first configuration must not count a server twice).
func CheckDistinctAddrs(ctx context.Context, peers []Peer) error {
	seen := map[netip.AddrPort]string{}
	for _, p := range peers {
		eps, err := resolveRaftAddr(ctx, p.RaftAddr)
		if err != nil {
			return fmt.Errorf("peer %s: %w", p.ID, err)
		}
		for _, ep := range eps {
			if other, ok := seen[ep]; ok && other != p.ID {
				return fmt.Errorf("%w: peers %s and %s share the raft address %s", store.ErrInvalid, other, p.ID, ep)
			}
			seen[ep] = p.ID
		}
	}
	return nil
}

type leaveRequest struct {
	ID string `json:"id"`
}

// departures remembers, on the leader, the servers that announced their own
// departure (AnnounceLeave), and when. It holds only servers of the Raft
// configuration, so it is as small as the cluster.
type departures struct {
	mu sync.Mutex
	at map[string]time.Time
}

// AnnounceLeave tells the leader that this server is leaving on purpose, so
// that the leader may remove it from the Raft configuration at once rather
// than after --dead-server-after. The request goes over the Raft port,
// where (with TLS) the leader checks that the certificate of the caller
// names the server that leaves: nobody can announce another's departure.
// On the leader itself it is only recorded locally: the next leader will
// find the server dead and wait for dead-server-after.
func (n *Node) AnnounceLeave(ctx context.Context) error {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	payload, _ := json.Marshal(leaveRequest{ID: n.cfg.ID})
	_, err := n.toLeader(ctx, false, func(ctx context.Context, leaderAddr string) (uint64, error) {
		if leaderAddr == "" {
			return 0, n.leaveLocal(nil, leaveRequest{ID: n.cfg.ID}, true)
		}
		return n.fwd.call(ctx, leaderAddr, opLeave, payload, true)
	})
	return err
}

// leaveLocal records a departure on the leader. caller is the certificate
// the request came with (nil in plaintext or from this node itself).
func (n *Node) leaveLocal(caller *x509.Certificate, req leaveRequest, self bool) error {
	if !self && n.cfg.TLS != nil && (caller == nil || certs.CheckServerNamed(caller, req.ID) != nil) {
		name := ""
		if caller != nil {
			name = caller.Subject.CommonName
		}
		return fmt.Errorf("%w: %q may announce its own departure only, not %q's", store.ErrInvalid, name, req.ID)
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("raft: leave %s: %w", req.ID, err)
	}
	members := map[string]bool{}
	for _, s := range cf.Configuration().Servers {
		members[string(s.ID)] = true
	}
	if !members[req.ID] {
		return fmt.Errorf("%w: %q is not a server of the cluster", store.ErrInvalid, req.ID)
	}
	n.departed.mu.Lock()
	defer n.departed.mu.Unlock()
	if n.departed.at == nil {
		n.departed.at = map[string]time.Time{}
	}
	for id := range n.departed.at { // keep it as small as the configuration
		if !members[id] {
			delete(n.departed.at, id)
		}
	}
	n.departed.at[req.ID] = time.Now()
	n.logger.Info("server announced its departure", "id", req.ID)
	return nil
}

// Departed returns when server id announced its own departure to this node
// as leader, if it did (see AnnounceLeave).
func (n *Node) Departed(id string) (time.Time, bool) {
	n.departed.mu.Lock()
	defer n.departed.mu.Unlock()
	t, ok := n.departed.at[id]
	return t, ok
}

// ForgetDeparture drops a recorded departure: the server came back.
func (n *Node) ForgetDeparture(id string) {
	n.departed.mu.Lock()
	defer n.departed.mu.Unlock()
	delete(n.departed.at, id)
}
