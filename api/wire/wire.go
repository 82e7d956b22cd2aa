// Package wire holds the JSON shapes of the HTTP API that both the server
// (api) and its clients (client) use. It imports only the store's plain
// types, so a client can share them without pulling in gin or raft.
package wire

import (
	"time"

	"github.com/switchyard-io/switchyard/store"
)

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
	// Near is the caller's locality a selection was made for (absent in a
	// plain listing).
	Near *store.Locality `json:"near,omitempty"`
	// ServedBy is the namespace whose instances a selection returns: the
	// one asked for, or the first of its fallback chain that had a usable
	// instance.
	ServedBy string `json:"served_by,omitempty"`
	// Levels are the locality levels a selection drew from, nearest first
	// (unit, datacenter, region, region+1, …, anywhere): more than one
	// after spill-over.
	Levels []string `json:"levels,omitempty"`
	// Protected: the healthy share of the chosen scope is below the
	// service's protect threshold, so every enabled instance of it is
	// returned, unhealthy ones included (each with its real healthy flag).
	Protected bool `json:"protected,omitempty"`
	// Delta: the answer holds only what changed since the answer whose
	// delta token the request sent (delta=): Instances are the instances
	// added or changed since, in answer order, and Removed the ids no
	// longer in the answer. ApplyDelta makes the full answer of it.
	Delta     bool       `json:"delta,omitempty"`
	Instances []Instance `json:"instances"`
	// Removed lists, in a delta, the ids of instances no longer in the
	// answer, in id order (it may name ids the older answer did not hold).
	Removed []string `json:"removed,omitempty"`
}

// Instance is an instance in an answer: the stored instance and, in a
// selection, the locality level that chose it.
type Instance struct {
	*store.Instance
	Level string `json:"level,omitempty"`
}

// PickResponse is the answer of GET …/services/{svc}/pick.
type PickResponse struct {
	Namespace string          `json:"namespace"`
	Service   string          `json:"service"`
	ServedBy  string          `json:"served_by"`
	Near      *store.Locality `json:"near,omitempty"`
	Balancer  string          `json:"balancer"`
	Protected bool            `json:"protected,omitempty"`
	Instance  Instance        `json:"instance"`
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
	// ServerRole is the role the server was started with (--role): voter
	// (a nonvoter with it is a standby, given a vote when one is due) or
	// read (never votes). From the catalog for servers of the Raft
	// configuration, from gossip for the others.
	ServerRole string `json:"server_role,omitempty"`
	// Protocol is the protocol version the server announced in the catalog
	// (omitted until it has: a server of protocol 1 never does).
	Protocol int `json:"protocol,omitempty"`
	// Status in gossip: alive, suspect, dead, or unknown (in the
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

// CheckStatus is the answer of GET …/instances/{id}/check: what the server
// that checks the instance last saw. It lives in that server's memory, not
// in Raft.
type CheckStatus struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	ID        string `json:"id"`
	Type      string `json:"type"`
	Target    string `json:"target,omitempty"`
	// Healthy is the catalog's verdict.
	Healthy bool `json:"healthy"`
	// CheckedBy is the server that runs the check (persistent instances)
	// or that answered (ephemeral ones).
	CheckedBy string `json:"checked_by,omitempty"`
	// For persistent instances: the last probe and the damping streaks.
	LastOK *bool `json:"last_ok,omitempty"`
	// Reason is the last probe's verdict in a few words ("HTTP 503",
	// "unreachable"); Output and DurationMs, the full detail, are shown
	// to cluster admins only (and to everyone while access control is
	// off).
	Reason               string  `json:"reason,omitempty"`
	Output               string  `json:"output,omitempty"`
	CheckedAt            string  `json:"checked_at,omitempty"`
	DurationMs           float64 `json:"duration_ms,omitempty"`
	ConsecutiveFailures  int     `json:"consecutive_failures,omitempty"`
	ConsecutiveSuccesses int     `json:"consecutive_successes,omitempty"`
	// For ephemeral instances: how long ago any server last heard from it
	// (-1: not since the answering server started).
	LastHeartbeatAgeMs *float64 `json:"last_heartbeat_age_ms,omitempty"`
}

// TokenRequest is the body of POST /v1/acl/tokens and PUT
// /v1/acl/tokens/{accessor}. Rules read ACCESS:NAMESPACE[/SERVICE-PREFIX]
// ("read:default", "write:payments/checkout-", "admin:*"). In a PUT, absent
// (or null) fields keep their values; "rules": [] removes every rule.
type TokenRequest struct {
	Description *string  `json:"description,omitempty"`
	Rules       []string `json:"rules"`
	// RotateSecret gives the token a new secret (PUT only); the old one
	// stops working at once.
	RotateSecret bool `json:"rotate_secret,omitempty"`
}

// Token is an access token as the API shows it. Secret is set only in the
// answer that created it (or rotated it): it is not stored and cannot be
// shown again.
type Token struct {
	AccessorID  string    `json:"accessor_id"`
	Secret      string    `json:"secret,omitempty"`
	Description string    `json:"description,omitempty"`
	Rules       []string  `json:"rules"`
	CreateTime  time.Time `json:"create_time"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// TokensResponse is the answer of GET /v1/acl/tokens.
type TokensResponse struct {
	// AccessControl says whether the answering server checks tokens.
	AccessControl bool    `json:"access_control"`
	Bootstrapped  bool    `json:"bootstrapped"`
	Tokens        []Token `json:"tokens"`
}

// WireToken renders a stored token.
func WireToken(t *store.Token) Token {
	out := Token{AccessorID: t.AccessorID, Description: t.Description, Rules: make([]string, len(t.Rules)),
		CreateTime: t.CreateTime, CreateIndex: t.CreateIndex, ModifyIndex: t.ModifyIndex}
	for i, r := range t.Rules {
		out.Rules[i] = r.String()
	}
	return out
}

// KeyringRequest is the body of PUT /v1/operator/keyring: op is install,
// use or remove, key a base64 32-byte gossip key.
type KeyringRequest struct {
	Op  string `json:"op"`
	Key string `json:"key"`
}

// GossipKey is one key of a server's gossip keyring, shown by fingerprint
// (the first 8 bytes of its SHA-256) only.
type GossipKey struct {
	Fingerprint string `json:"fingerprint"`
	Primary     bool   `json:"primary"`
}

// KeyringResponse is the answer of GET and PUT /v1/operator/keyring: the
// answering server's keyring, the primary key first.
type KeyringResponse struct {
	Keys []GossipKey `json:"keys"`
}

// HeartbeatsResponse is the answer of GET …/services/{svc}/heartbeats: how
// long ago the answering server last heard each ephemeral instance.
type HeartbeatsResponse struct {
	Namespace string             `json:"namespace"`
	Service   string             `json:"service"`
	AgeMs     map[string]float64 `json:"age_ms"`
}

// RTTMatrix is the answer of GET /v1/cluster/rtt: the round-trip time
// between datacenters, as the servers of each measure it (or as configured
// with --datacenter-rtt). RTTMs[from][to] is absent when nobody knows.
type RTTMatrix struct {
	Datacenters []string                      `json:"datacenters"`
	RTTMs       map[string]map[string]float64 `json:"rtt_ms"`
}

// Topology is the answer of GET /v1/topology: the instances the token may
// read, counted by locality.
type Topology struct {
	// Index is the catalog's index the counts were taken at.
	Index      uint64          `json:"index"`
	Localities []LocalityCount `json:"localities"`
}

// LocalityCount is the instances of one locality and how many of them are
// healthy; an instance registered without a locality counts under empty
// names.
type LocalityCount struct {
	store.Locality
	Count
}

// InstanceHistory is the answer of GET …/instances/{id}/history.
type InstanceHistory struct {
	Namespace string        `json:"namespace"`
	Service   string        `json:"service"`
	ID        string        `json:"id"`
	Events    []store.Event `json:"events"`
}

// ServiceHistory is the answer of GET …/services/{svc}/history.
type ServiceHistory struct {
	Namespace string          `json:"namespace"`
	Service   string          `json:"service"`
	Samples   []HistorySample `json:"samples"`
}

// HistorySample is a service's counts at a moment of the last hour.
type HistorySample struct {
	Time      time.Time `json:"time"`
	Instances int       `json:"instances"`
	Healthy   int       `json:"healthy"`
}

// DrillSummary is one entry of GET /v1/drills.
type DrillSummary struct {
	Name     string   `json:"name"`
	Scenario string   `json:"scenario"`
	Time     string   `json:"time"`
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures"`
	// Timeline says whether GET /v1/drills/{name}/timeline serves an SVG.
	Timeline bool `json:"timeline"`
}

// PatchRequest is the body of PATCH …/instances/{id}: an operator's change
// to weight or traffic that leaves health and liveness alone (a
// registration is a sign of life; this is not). IfIndex, when set, applies
// it only while the instance's modify_index is still that: 409 otherwise.
type PatchRequest struct {
	Weight  *int   `json:"weight,omitempty"`
	Enabled *bool  `json:"enabled,omitempty"`
	IfIndex uint64 `json:"if_index,omitempty"`
}

// Health is the answer of GET /v1/health.
type Health struct {
	Live             bool                   `json:"live"`
	Ready            bool                   `json:"ready"`
	Leader           string                 `json:"leader"`
	AppliedIndex     uint64                 `json:"applied_index"`
	SelfPreservation store.SelfPreservation `json:"self_preservation"`
}

// LeaderInfo is the answer of GET /v1/cluster/leader.
type LeaderInfo struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
}

// JoinRequest is the body of POST /v1/cluster/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
}

// NamespacesResponse is the answer of GET /v1/namespaces.
type NamespacesResponse struct {
	Namespaces []store.Namespace `json:"namespaces"`
}

// ServiceSummary is one entry of GET /v1/namespaces/{ns}/services.
type ServiceSummary struct {
	store.Service
	Instances int `json:"instances"`
	Healthy   int `json:"healthy"`
	// Protected: the healthy share is below the protect threshold, so
	// lookups are widened to unhealthy instances.
	Protected bool `json:"protected"`
	// Datacenters counts the instances by datacenter ("" for none).
	Datacenters map[string]Count `json:"datacenters"`
}

// Count is a number of instances and how many of them are healthy.
type Count struct {
	Instances int `json:"instances"`
	Healthy   int `json:"healthy"`
}

// ServicesResponse is the answer of GET /v1/namespaces/{ns}/services.
type ServicesResponse struct {
	Namespace string           `json:"namespace"`
	Services  []ServiceSummary `json:"services"`
}

// HeartbeatResponse is the answer of PUT …/instances/{id}/heartbeat.
type HeartbeatResponse struct {
	ID      string `json:"id"`
	Healthy bool   `json:"healthy"`
}

// ServiceRequest is the body of PUT …/services/{svc}. Absent fields keep
// their current value (or the default for a new service).
type ServiceRequest struct {
	ProtectThreshold *float64        `json:"protect_threshold,omitempty"`
	MinHealthyRatio  *float64        `json:"min_healthy_ratio,omitempty"`
	Balancer         *string         `json:"balancer,omitempty"`
	DNSTTL           *store.Duration `json:"dns_ttl,omitempty"`
}

// NamespaceRequest is the body of PUT /v1/namespaces/{ns}.
type NamespaceRequest struct {
	Fallback    *string `json:"fallback,omitempty"`
	Description *string `json:"description,omitempty"`
}

// ErrorBody is the JSON shape of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}
