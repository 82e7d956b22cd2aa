package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/store"
)

// Keyring is this server's gossip keyring; *gossip.Pool provides it. Each
// server changes its own: `registry keyring` walks every server.
type Keyring interface {
	Keys() ([]gossip.KeyInfo, error)
	InstallKey(k []byte) error
	UseKey(k []byte) error
	RemoveKey(k []byte) error
}

func (s *Server) keyringAnswer(c *gin.Context, status int) {
	keys, err := s.cfg.Keyring.Keys()
	if err != nil {
		s.fail(c, err)
		return
	}
	out := wire.KeyringResponse{Keys: make([]wire.GossipKey, len(keys))}
	for i, k := range keys {
		out.Keys[i] = wire.GossipKey{Fingerprint: k.Fingerprint, Primary: k.Primary}
	}
	c.JSON(status, out)
}

func (s *Server) getKeyring(c *gin.Context) {
	if s.cfg.Keyring == nil {
		s.fail(c, gossip.ErrNotEncrypted)
		return
	}
	s.keyringAnswer(c, http.StatusOK)
}

func (s *Server) putKeyring(c *gin.Context) {
	if s.cfg.Keyring == nil {
		s.fail(c, gossip.ErrNotEncrypted)
		return
	}
	b, ok := s.body(c)
	if !ok {
		return
	}
	var req wire.KeyringRequest
	if err := decodeStrict(b, &req); err != nil {
		s.fail(c, err)
		return
	}
	key, err := base64.StdEncoding.DecodeString(req.Key)
	if err != nil {
		s.fail(c, fmt.Errorf("%w: key is not base64 (registry keygen makes one)", store.ErrInvalid))
		return
	}
	if err := gossip.CheckKey(key); err != nil {
		s.fail(c, fmt.Errorf("%w: %w", store.ErrInvalid, err))
		return
	}
	switch req.Op {
	case "install":
		err = s.cfg.Keyring.InstallKey(key)
	case "use":
		err = s.cfg.Keyring.UseKey(key)
	case "remove":
		err = s.cfg.Keyring.RemoveKey(key)
	default:
		err = fmt.Errorf("%w: op %q: use install, use or remove", store.ErrInvalid, req.Op)
	}
	if err != nil {
		if !errors.Is(err, store.ErrInvalid) && !errors.Is(err, gossip.ErrNotEncrypted) {
			err = fmt.Errorf("%w: %w", ErrKeyring, err)
		}
		s.fail(c, err)
		return
	}
	s.logger.Warn("gossip keyring changed", "op", req.Op, "key", gossip.Fingerprint(key), "client", s.clientIP(c))
	s.keyringAnswer(c, http.StatusOK)
}
