package consulcompat

import (
	"slices"
	"strings"

	"github.com/switchyard-io/switchyard/store"
)

// The JSON shapes of Consul's API (field names as Consul writes them).

type weights struct {
	Passing int
	Warning int
}

type agentService struct {
	Kind              string `json:",omitempty"`
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]any `json:",omitempty"`
	Weights           weights
	EnableTagOverride bool
	Datacenter        string `json:",omitempty"`
	Namespace         string `json:",omitempty"`
	CreateIndex       uint64 `json:",omitempty"`
	ModifyIndex       uint64 `json:",omitempty"`
}

type node struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceID                string
	ServiceName              string
	ServiceAddress           string
	ServiceTags              []string
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceWeights           weights
	ServiceEnableTagOverride bool
	Namespace                string `json:",omitempty"`
	CreateIndex              uint64
	ModifyIndex              uint64
}

type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Namespace   string `json:",omitempty"`
	CreateIndex uint64
	ModifyIndex uint64
}

type serviceEntry struct {
	Node    node
	Service agentService
	Checks  []healthCheck
}

// Consul's check states.
const (
	statePassing  = "passing"
	stateWarning  = "warning"
	stateCritical = "critical"
)

// view is an instance as Consul sees it.
type view struct {
	in *store.Instance
	dc string
}

func (s *Server) view(in *store.Instance) view {
	dc := in.Locality.Datacenter
	if dc == "" {
		dc = s.cfg.Locality.Datacenter
	}
	return view{in: in, dc: dc}
}

// nodeName: the agent an instance was registered through, else its host.
func (v view) nodeName() string {
	if n := v.in.Metadata[metaNode]; n != "" {
		return n
	}
	return v.in.Address
}

// meta is the instance's metadata without the reserved keys.
func (v view) meta() map[string]string {
	out := make(map[string]string, len(v.in.Metadata))
	for k, val := range v.in.Metadata {
		if !strings.HasPrefix(k, metaPrefix) {
			out[k] = val
		}
	}
	return out
}

func (v view) tags() []string {
	if v.in.Tags == nil {
		return []string{}
	}
	return slices.Clone(v.in.Tags)
}

func (v view) node() node {
	meta := map[string]string{}
	if l := v.in.Locality; l.Region != "" {
		meta["region"] = l.Region
		if l.Unit != "" {
			meta["unit"] = l.Unit
		}
	}
	return node{Node: v.nodeName(), Address: v.in.Address, Datacenter: v.dc,
		TaggedAddresses: map[string]string{"lan": v.in.Address, "wan": v.in.Address}, Meta: meta,
		CreateIndex: v.in.CreateIndex, ModifyIndex: v.in.ModifyIndex}
}

func (v view) service() agentService {
	return agentService{ID: v.in.ID, Service: v.in.Service, Tags: v.tags(), Meta: v.meta(), Port: v.in.Port,
		Address: v.in.Address, Weights: weights{Passing: v.in.Weight, Warning: 1}, Datacenter: v.dc,
		CreateIndex: v.in.CreateIndex, ModifyIndex: v.in.ModifyIndex}
}

func (v view) catalog() catalogService {
	n := v.node()
	return catalogService{Node: n.Node, Address: n.Address, Datacenter: v.dc, TaggedAddresses: n.TaggedAddresses,
		NodeMeta: n.Meta, ServiceID: v.in.ID, ServiceName: v.in.Service, ServiceAddress: v.in.Address,
		ServiceTags: v.tags(), ServiceMeta: v.meta(), ServicePort: v.in.Port,
		ServiceWeights: weights{Passing: v.in.Weight, Warning: 1},
		CreateIndex:    v.in.CreateIndex, ModifyIndex: v.in.ModifyIndex}
}

// checkID is the Consul id of the instance's check.
func checkID(in *store.Instance) string {
	if id := in.Metadata[metaCheckID]; id != "" {
		return id
	}
	return "service:" + in.ID
}

// checks are the instance's checks: its own (none for check type none),
// and a critical maintenance check while it is disabled.
func (v view) checks() []healthCheck {
	in := v.in
	out := []healthCheck{}
	base := healthCheck{Node: v.nodeName(), ServiceID: in.ID, ServiceName: in.Service, ServiceTags: v.tags(),
		CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex}
	if in.Check.Type != store.CheckNone && in.Check.Type != "" || in.Ephemeral {
		c := base
		c.CheckID = checkID(in)
		c.Name = in.Metadata[metaCheck]
		if c.Name == "" {
			c.Name = "Service '" + in.Service + "' check"
		}
		c.Type = in.Check.Type
		if c.Type == "" && in.Ephemeral {
			c.Type = store.CheckTTL
		}
		c.Status = statePassing
		if !in.Healthy {
			c.Status = stateCritical
		}
		out = append(out, c)
	}
	if !in.Enabled {
		c := base
		c.CheckID = "_service_maintenance:" + in.ID
		c.Name = "Service Maintenance Mode"
		c.Status = stateCritical
		c.Notes = in.Metadata[metaReason]
		if c.Notes == "" {
			c.Notes = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
		}
		c.Type = "maintenance"
		out = append(out, c)
	}
	return out
}

// passing: every check passes (an instance without checks passes).
func passing(checks []healthCheck) bool {
	for _, c := range checks {
		if c.Status != statePassing {
			return false
		}
	}
	return true
}

func hasTags(in *store.Instance, want []string) bool {
	for _, t := range want {
		if !slices.Contains(in.Tags, t) {
			return false
		}
	}
	return true
}
