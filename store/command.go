package store

import (
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
}

// Encode renders the command as a log entry: one type byte, then JSON.
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
		CommandPutNamespace, CommandDeleteNamespace, CommandPutServer, CommandRemoveServer:
	default:
		if t&IgnorableFlag != 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("store: decode %s: %w", t, ErrUnknownCommand)
	}
	c := &Command{Type: t}
	if err := json.Unmarshal(b[1:], c); err != nil {
		return nil, fmt.Errorf("store: decode %s: %w", t, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("store: decode %s: %w", t, err)
	}
	return c, nil
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
	}
	return nil
}
