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
	Instances []*store.Instance     `json:"instances"`
}
