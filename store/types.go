package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// DefaultNamespace always exists and cannot be deleted.
const DefaultNamespace = "default"

// Defaults applied to new instances and services.
const (
	DefaultWeight          = 100
	MaxWeight              = 10000
	DefaultMinHealthyRatio = 0.5
	DefaultBalancer        = "weighted_random"
	DefaultDNSTTL          = 5 * time.Second
)

// Balancers lists the accepted values of ServiceSettings.Balancer.
var Balancers = []string{"weighted_random", "round_robin", "least_loaded", "consistent_hash"}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("5s", "1m30s"); a bare number is taken as seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "5s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts "5s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: use a form like \"5s\" or \"1m\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("invalid duration %s: use a string like \"5s\" or a number of seconds", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Locality says where an instance or a caller runs.
type Locality struct {
	Region     string `json:"region,omitempty"`
	Datacenter string `json:"datacenter,omitempty"`
	Unit       string `json:"unit,omitempty"`
}

// Path renders the locality as near= takes it: "eu", "eu/eu-west-1",
// "eu/eu-west-1/a", or "" when unset.
func (l Locality) Path() string {
	switch {
	case l.Region == "":
		return ""
	case l.Datacenter == "":
		return l.Region
	case l.Unit == "":
		return l.Region + "/" + l.Datacenter
	}
	return l.Region + "/" + l.Datacenter + "/" + l.Unit
}

// String renders the locality as region/datacenter/unit, or "-" when unset.
func (l Locality) String() string {
	if l == (Locality{}) {
		return "-"
	}
	return l.Region + "/" + l.Datacenter + "/" + l.Unit
}

// Check types.
const (
	CheckTTL  = "ttl"  // heartbeats from the instance itself
	CheckHTTP = "http" // GET Target, 2xx is healthy
	CheckTCP  = "tcp"  // connect to Target
	CheckGRPC = "grpc" // grpc.health.v1 on Target
	CheckNone = "none" // always healthy
)

// Check describes how an instance's health is decided. Ephemeral instances
// use heartbeats (CheckTTL); persistent ones are checked by the servers.
type Check struct {
	Type                    string   `json:"type,omitempty"`
	Target                  string   `json:"target,omitempty"`
	Interval                Duration `json:"interval,omitempty"`
	Timeout                 Duration `json:"timeout,omitempty"`
	TTL                     Duration `json:"ttl,omitempty"`
	DeregisterAfter         Duration `json:"deregister_after,omitempty"`
	FailuresBeforeUnhealthy int      `json:"failures_before_unhealthy,omitempty"`
	SuccessesBeforeHealthy  int      `json:"successes_before_healthy,omitempty"`
}

// Probed reports whether the servers probe checks of this type (HTTP, TCP
// and gRPC; the instance must also be persistent to be probed).
func (c Check) Probed() bool {
	switch c.Type {
	case CheckHTTP, CheckTCP, CheckGRPC:
		return true
	}
	return false
}

// Instance is one registered endpoint of a service.
type Instance struct {
	ID        string            `json:"id"`
	Namespace string            `json:"namespace"`
	Service   string            `json:"service"`
	Address   string            `json:"address"`
	Port      int               `json:"port"`
	Weight    int               `json:"weight"`
	Enabled   bool              `json:"enabled"`
	Ephemeral bool              `json:"ephemeral"`
	Locality  Locality          `json:"locality"`
	Tags      []string          `json:"tags,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Check     Check             `json:"check"`
	// Healthy is computed by the servers, never taken from a client.
	Healthy bool `json:"healthy"`
	// HealthChangedAt is when the servers last changed Healthy (zero until
	// then, and again after a registration): a heartbeat older than that
	// does not make the instance healthy again.
	HealthChangedAt time.Time `json:"health_changed_at,omitzero"`
	// RegisteredAt is stamped by the leader when the instance first appears.
	RegisteredAt time.Time `json:"registered_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	CreateIndex  uint64    `json:"create_index"`
	ModifyIndex  uint64    `json:"modify_index"`
}

// Probed reports whether the servers probe the instance's health: it is
// persistent and its check is one they run.
func (i *Instance) Probed() bool { return !i.Ephemeral && i.Check.Probed() }

// sameSpec reports whether two instances describe the same registration,
// ignoring bookkeeping fields, so that an idempotent re-registration does
// not wake watchers.
func (i *Instance) sameSpec(o *Instance) bool {
	if i.Address != o.Address || i.Port != o.Port || i.Weight != o.Weight ||
		i.Enabled != o.Enabled || i.Ephemeral != o.Ephemeral || i.Locality != o.Locality ||
		i.Check != o.Check || i.Healthy != o.Healthy || len(i.Tags) != len(o.Tags) ||
		len(i.Metadata) != len(o.Metadata) {
		return false
	}
	for k, t := range i.Tags {
		if o.Tags[k] != t {
			return false
		}
	}
	for k, v := range i.Metadata {
		if ov, ok := o.Metadata[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// ServiceSettings are the operator-controlled settings of a service.
type ServiceSettings struct {
	// ProtectThreshold (0..1): below this healthy share, lookups return all
	// enabled instances, unhealthy ones included.
	ProtectThreshold float64 `json:"protect_threshold"`
	// MinHealthyRatio (0..1): a locality level serves alone while at least
	// this share of it is healthy.
	MinHealthyRatio float64 `json:"min_healthy_ratio"`
	// Balancer is the default picking policy, one of Balancers.
	Balancer string `json:"balancer"`
	// DNSTTL is the TTL of DNS answers for this service.
	DNSTTL Duration `json:"dns_ttl"`
}

// DefaultServiceSettings returns the settings a service gets when it is
// created implicitly by its first registration.
func DefaultServiceSettings() ServiceSettings {
	return ServiceSettings{
		MinHealthyRatio: DefaultMinHealthyRatio,
		Balancer:        DefaultBalancer,
		DNSTTL:          Duration(DefaultDNSTTL),
	}
}

// Service is a name in a namespace with its settings.
type Service struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	ServiceSettings
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// NamespaceSettings are the operator-controlled settings of a namespace.
type NamespaceSettings struct {
	// Fallback names the parent namespace whose instances are borrowed when
	// this one has no usable instance of a service ("" for none).
	Fallback    string `json:"fallback,omitempty"`
	Description string `json:"description,omitempty"`
}

// Namespace is an environment or tenant.
type Namespace struct {
	Name string `json:"name"`
	NamespaceSettings
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// SelfPreservation is the cluster's self-preservation mode: entered when a
// large share of ephemeral instances falls silent at once (more likely a
// network problem near the registry than mass death). While it is active,
// silent instances are still marked unhealthy but none is removed.
type SelfPreservation struct {
	Active bool `json:"active"`
	// Since is when the mode was last entered; Reason says why.
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// EndedAt and EndedBy ("heartbeats" or "operator") record the last exit.
	EndedAt time.Time `json:"ended_at,omitzero"`
	EndedBy string    `json:"ended_by,omitempty"`
	// Index is the log index of the last change.
	Index uint64 `json:"index"`
}

// Server is a registry server as recorded in the catalog: how to reach its
// HTTP API and where it runs. Raft membership itself lives in Raft.
type Server struct {
	ID       string   `json:"id"`
	RaftAddr string   `json:"raft_addr"`
	HTTPAddr string   `json:"http_addr"`
	Locality Locality `json:"locality"`
	// Protocol is the newest server-to-server protocol the server speaks
	// and the log entries it reads (raft.ProtocolVersion; 0 for versions
	// before it was recorded, which speak protocol 1).
	Protocol int `json:"protocol,omitempty"`
	// Role is the server's configured role: RoleVoter ("" from versions
	// before roles) may vote, RoleRead never does (a Raft non-voter that
	// holds the catalog and answers reads).
	Role string `json:"role,omitempty"`
}

// Server roles (Server.Role, `registry server --role`).
const (
	RoleVoter = "voter"
	RoleRead  = "read"
)

// ValidRole reports whether r names a server role ("" is a voter of a
// version before roles).
func ValidRole(r string) bool { return r == "" || r == RoleVoter || r == RoleRead }

// ServerRole is the role r names, "" (a version before roles) read as
// RoleVoter.
func ServerRole(r string) string {
	if r == "" {
		return RoleVoter
	}
	return r
}
