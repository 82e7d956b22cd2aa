package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// CommandType is the first byte of every Raft log entry the store applies.
type CommandType uint8

// Command types. Numbers are part of the on-disk format: never reuse one.
const (
	CommandRegister        CommandType = 1
	CommandDeregister      CommandType = 2
	CommandPutService      CommandType = 3
	CommandDeleteService   CommandType = 4
	CommandPutNamespace    CommandType = 5
	CommandDeleteNamespace CommandType = 6
	CommandPutServer       CommandType = 7
	CommandRemoveServer    CommandType = 8
	// CommandBatch is not a command of its own: the entry carries several
	// commands applied at one log index (see EncodeBatch).
	CommandBatch CommandType = 9
	// CommandSetHealth records health changes judged by the servers
	// (heartbeats gone silent or back, server-side check results).
	CommandSetHealth CommandType = 10
	// CommandSetSelfPreservation enters or ends self-preservation.
	CommandSetSelfPreservation CommandType = 11
	// CommandPutToken creates or updates an access token; CommandDeleteToken
	// revokes one; CommandBootstrapACL creates the first admin token, once.
	CommandPutToken     CommandType = 12
	CommandDeleteToken  CommandType = 13
	CommandBootstrapACL CommandType = 14
	// CommandPatchInstance changes an instance's weight or traffic switch
	// and nothing else: not its health, not its liveness (an operator's
	// change is no sign of life).
	CommandPatchInstance CommandType = 15

	// IgnorableFlag marks a command type that older versions may skip. Any
	// other unknown type must stop the state machine: skipping it would fork
	// replicas.
	IgnorableFlag CommandType = 0x80
)

func (t CommandType) String() string {
	switch t {
	case CommandRegister:
		return "register"
	case CommandDeregister:
		return "deregister"
	case CommandPutService:
		return "put-service"
	case CommandDeleteService:
		return "delete-service"
	case CommandPutNamespace:
		return "put-namespace"
	case CommandDeleteNamespace:
		return "delete-namespace"
	case CommandPutServer:
		return "put-server"
	case CommandRemoveServer:
		return "remove-server"
	case CommandBatch:
		return "batch"
	case CommandSetHealth:
		return "set-health"
	case CommandSetSelfPreservation:
		return "set-self-preservation"
	case CommandPutToken:
		return "put-token"
	case CommandDeleteToken:
		return "delete-token"
	case CommandBootstrapACL:
		return "bootstrap-acl"
	case CommandPatchInstance:
		return "patch-instance"
	}
	return fmt.Sprintf("command(%d)", uint8(t))
}

// Command is one change to the catalog. Everything that is not
// deterministic (the time) is stamped into it by the leader before it is
// appended to the log, so every replica applies the same bytes the same way.
type Command struct {
	Type              CommandType        `json:"-"`
	Time              time.Time          `json:"time"`
	Namespace         string             `json:"ns,omitempty"`
	Service           string             `json:"svc,omitempty"`
	ID                string             `json:"id,omitempty"`
	Instance          *Instance          `json:"instance,omitempty"`
	ServiceSettings   *ServiceSettings   `json:"service_settings,omitempty"`
	NamespaceSettings *NamespaceSettings `json:"namespace_settings,omitempty"`
	Server            *Server            `json:"server,omitempty"`
	// IfIndex makes a deregister conditional: it applies only while the
	// instance's modify_index is still IfIndex (0: unconditional). An
	// expiry carries it, so an instance re-registered after it was judged
	// silent is not removed.
	IfIndex uint64 `json:"if_index,omitempty"`
	// Health lists the changes of a set-health command.
	Health []HealthChange `json:"health,omitempty"`
	// SelfPreservation is the new mode of a set-self-preservation command.
	SelfPreservation *SelfPreservation `json:"self_preservation,omitempty"`
	// Token is the token of a put-token or bootstrap-acl command (a
	// delete-token names its accessor in ID).
	Token *Token `json:"token,omitempty"`
	// Patch is what a patch-instance command changes (IfIndex, when set,
	// makes it conditional on the instance's modify_index).
	Patch *InstancePatch `json:"patch,omitempty"`
}

// InstancePatch is an operator's change to a registered instance; absent
// fields stay as they are.
type InstancePatch struct {
	Weight  *int  `json:"weight,omitempty"`
	Enabled *bool `json:"enabled,omitempty"`
}

// HealthChange sets one instance's health. It applies only while the
// instance's modify_index is still IfIndex (0: unconditional); a change
// whose instance is gone, was re-registered since, or already has that
// health is skipped, not an error: the judge acted on a view that moved on.
type HealthChange struct {
	Namespace string `json:"ns"`
	Service   string `json:"svc"`
	ID        string `json:"id"`
	Healthy   bool   `json:"healthy"`
	IfIndex   uint64 `json:"if_index,omitempty"`
}

// MaxHealthChanges caps the changes of one set-health command.
const MaxHealthChanges = 4096

// Encode renders the command as a log entry in EntryFormatJSON: one type
// byte, then JSON. EncodeFormat may write a binary body instead.
func (c *Command) Encode() ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("store: encode %s: %w", c.Type, err)
	}
	out := make([]byte, 0, len(body)+1)
	out = append(out, byte(c.Type))
	return append(out, body...), nil
}

// DecodeCommand parses a log entry. An entry of an unknown type flagged
// ignorable returns (nil, nil); any other unknown type or a malformed body
// returns an error.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("store: decode: empty entry: %w", ErrUnknownCommand)
	}
	t := CommandType(b[0])
	switch t {
	case CommandRegister, CommandDeregister, CommandPutService, CommandDeleteService,
		CommandPutNamespace, CommandDeleteNamespace, CommandPutServer, CommandRemoveServer,
		CommandSetHealth, CommandSetSelfPreservation, CommandPutToken, CommandDeleteToken, CommandBootstrapACL, CommandPatchInstance:
	default:
		if t&IgnorableFlag != 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("store: decode %s: %w", t, ErrUnknownCommand)
	}
	var c *Command
	if len(b) > 1 && b[1] == binaryMarker {
		var err error
		if c, err = decodeBinary(b); err != nil {
			return nil, fmt.Errorf("store: decode %s: %w", t, err)
		}
	} else {
		c = &Command{Type: t}
		if err := json.Unmarshal(b[1:], c); err != nil {
			return nil, fmt.Errorf("store: decode %s: %w", t, err)
		}
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("store: decode %s: %w", t, err)
	}
	return c, nil
}

// Validate checks that a command can be appended to the log: a known type
// that is a single command, and the fields that type needs. Every replica
// must be able to decode what the leader appends.
func (c *Command) Validate() error {
	switch c.Type {
	case CommandRegister, CommandDeregister, CommandPutService, CommandDeleteService,
		CommandPutNamespace, CommandDeleteNamespace, CommandPutServer, CommandRemoveServer,
		CommandSetHealth, CommandSetSelfPreservation, CommandPutToken, CommandDeleteToken, CommandBootstrapACL, CommandPatchInstance:
	default:
		return fmt.Errorf("store: %s: %w", c.Type, ErrUnknownCommand)
	}
	if err := c.check(); err != nil {
		return fmt.Errorf("store: %s: %w", c.Type, err)
	}
	return nil
}

// Idempotent reports whether applying the command twice leaves the catalog
// as applying it once, with the same answer: puts are, removals are not
// (the second one answers "not found").
func (c *Command) Idempotent() bool {
	switch c.Type {
	case CommandRegister, CommandPutService, CommandPutNamespace, CommandPutServer, CommandSetHealth, CommandSetSelfPreservation, CommandPutToken:
		return true
	}
	return false
}

// check verifies that a decoded command carries what its type needs, so
// that Apply never dereferences a nil field.
func (c *Command) check() error {
	switch c.Type {
	case CommandRegister:
		if c.Instance == nil {
			return fmt.Errorf("%w: register without instance", ErrInvalid)
		}
	case CommandPutService:
		if c.ServiceSettings == nil {
			return fmt.Errorf("%w: put-service without settings", ErrInvalid)
		}
	case CommandPutNamespace:
		if c.NamespaceSettings == nil {
			return fmt.Errorf("%w: put-namespace without settings", ErrInvalid)
		}
	case CommandPutServer:
		if c.Server == nil {
			return fmt.Errorf("%w: put-server without server", ErrInvalid)
		}
	case CommandPatchInstance:
		if c.Patch == nil || (c.Patch.Weight == nil && c.Patch.Enabled == nil) {
			return fmt.Errorf("%w: patch-instance without a change", ErrInvalid)
		}
	case CommandPutToken, CommandBootstrapACL:
		if c.Token == nil {
			return fmt.Errorf("%w: %s without a token", ErrInvalid, c.Type)
		}
	case CommandSetHealth:
		if len(c.Health) == 0 {
			return fmt.Errorf("%w: set-health without changes", ErrInvalid)
		}
		if len(c.Health) > MaxHealthChanges {
			return fmt.Errorf("%w: set-health with %d changes, at most %d", ErrInvalid, len(c.Health), MaxHealthChanges)
		}
	case CommandSetSelfPreservation:
		sp := c.SelfPreservation
		if sp == nil {
			return fmt.Errorf("%w: set-self-preservation without a mode", ErrInvalid)
		}
		if len(sp.Reason) > 1024 {
			return fmt.Errorf("%w: self-preservation reason longer than 1024 characters", ErrInvalid)
		}
		if sp.EndedBy != "" && sp.EndedBy != "heartbeats" && sp.EndedBy != "operator" {
			return fmt.Errorf("%w: self-preservation ended_by %q is not heartbeats or operator", ErrInvalid, sp.EndedBy)
		}
	}
	return nil
}

// MaxBatch caps the commands of one batch entry.
const MaxBatch = 4096

// EncodeBatch renders several encoded commands as one log entry: the type
// byte CommandBatch, then each command as a uvarint length and its bytes.
func EncodeBatch(encoded [][]byte) []byte {
	size := 1
	for _, e := range encoded {
		size += binary.MaxVarintLen64 + len(e)
	}
	out := make([]byte, 1, size)
	out[0] = byte(CommandBatch)
	for _, e := range encoded {
		out = binary.AppendUvarint(out, uint64(len(e)))
		out = append(out, e...)
	}
	return out
}

// DecodeEntry parses a log entry holding one command or a batch. An
// ignorable command of a newer version decodes to a nil element, which the
// store skips.
func DecodeEntry(b []byte) ([]*Command, error) {
	if len(b) == 0 || CommandType(b[0]) != CommandBatch {
		c, err := DecodeCommand(b)
		if err != nil {
			return nil, err
		}
		return []*Command{c}, nil
	}
	var out []*Command
	rest := b[1:]
	for len(rest) > 0 {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, fmt.Errorf("store: decode batch: %w: bad length at command %d", ErrInvalid, len(out))
		}
		if len(out) == MaxBatch {
			return nil, fmt.Errorf("store: decode batch: %w: more than %d commands", ErrInvalid, MaxBatch)
		}
		c, err := DecodeCommand(rest[k : k+int(n)])
		if err != nil {
			return nil, fmt.Errorf("store: decode batch command %d: %w", len(out), err)
		}
		out = append(out, c)
		rest = rest[k+int(n):]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("store: decode batch: %w: no commands", ErrInvalid)
	}
	return out, nil
}
