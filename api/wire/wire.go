// Package wire holds the JSON shapes of the HTTP API that both the server
// (api) and its clients (client) use. It imports only the store's plain
// types, so a client can share them without pulling in gin or raft.
package wire

import "github.com/switchyard-io/switchyard/store"

// RegisterRequest is the body of PUT …/instances/{id}. Pointer fields tell
// "absent" (take the default: weight 100, enabled, ephemeral) from zero.
type RegisterRequest struct {
	Address   string            `json:"address"`
	Port      int               `json:"port"`
	Weight    *int              `json:"weight,omitempty"`
	Enabled   *bool             `json:"enabled,omitempty"`
	Ephemeral *bool             `json:"ephemeral,omitempty"`
	Locality  store.Locality    `json:"locality"`
	Tags      []string          `json:"tags,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Check     store.Check       `json:"check"`
}

// InstancesResponse is the answer of GET …/services/{svc}/instances.
type InstancesResponse struct {
	Namespace string                `json:"namespace"`
	Service   string                `json:"service"`
	Settings  store.ServiceSettings `json:"settings"`
	Index     uint64                `json:"index"`
	// Protected: a healthy-only lookup found the healthy share of the
	// enabled instances below the service's protect threshold, and so
	// returned every enabled instance, unhealthy ones included (each with
	// its real healthy flag).
	Protected bool              `json:"protected,omitempty"`
	Instances []*store.Instance `json:"instances"`
}

// Member is one server of the cluster, as GET /v1/cluster/members lists it:
// its place in the Raft configuration and what gossip says of it, seen from
// the server that answers.
type Member struct {
	ID         string         `json:"id"`
	RaftAddr   string         `json:"raft_addr,omitempty"`
	HTTPAddr   string         `json:"http_addr,omitempty"`
	GossipAddr string         `json:"gossip_addr,omitempty"`
	Locality   store.Locality `json:"locality"`
	// Role in Raft: leader, voter, nonvoter, or none (known to gossip only,
	// not yet or no longer in the Raft configuration).
	Role string `json:"role"`
	// Status in gossip: alive, suspect, dead, left, or unknown (in the
	// Raft configuration but never heard of by gossip).
	Status string `json:"status"`
	// StatusSince is when the answering server saw the status change.
	StatusSince string `json:"status_since,omitempty"`
	// RTTMs is the smoothed round-trip time of gossip probes from the
	// answering server, in milliseconds (0: itself, or not yet measured).
	RTTMs float64 `json:"rtt_ms"`
	Self  bool    `json:"self,omitempty"`
}

// MembersResponse is the answer of GET /v1/cluster/members.
type MembersResponse struct {
	Members []Member `json:"members"`
}
