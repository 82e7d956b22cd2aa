package gossip

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/memberlist"
)

// Key rotation. The keyring of a running pool changes in three steps, each
// run on every server before the next starts: install the new key (every
// server reads it), use it (every server seals with it), remove the old one.
// With a KeyringFile the keys survive restarts; the file then wins over
// Config.Keys, so a server restarted with its old --gossip-key flag keeps
// the rotated keys.

// ErrNotEncrypted: the pool runs without keys, so there is no keyring to
// change (encryption is turned on at start, on every server).
var ErrNotEncrypted = errors.New("gossip runs without encryption: start every server with --gossip-key first")

// KeyInfo describes one key of the keyring without showing it.
type KeyInfo struct {
	// Fingerprint is the first 8 bytes of the key's SHA-256, in hex.
	Fingerprint string `json:"fingerprint"`
	Primary     bool   `json:"primary"`
}

// Fingerprint names a key in lists and logs without showing it.
func Fingerprint(k []byte) string {
	h := sha256.Sum256(k)
	return hex.EncodeToString(h[:8])
}

// Encrypted reports whether the pool seals its messages.
func (p *Pool) Encrypted() bool { return p.kr != nil }

func (p *Pool) keyring() (*memberlist.Keyring, error) {
	if p.kr == nil {
		return nil, ErrNotEncrypted
	}
	return p.kr, nil
}

// Keys lists the keyring, the primary key first.
func (p *Pool) Keys() ([]KeyInfo, error) {
	kr, err := p.keyring()
	if err != nil {
		return nil, err
	}
	primary := kr.GetPrimaryKey()
	out := []KeyInfo{{Fingerprint: Fingerprint(primary), Primary: true}}
	for _, k := range kr.GetKeys() {
		if !bytes.Equal(k, primary) {
			out = append(out, KeyInfo{Fingerprint: Fingerprint(k)})
		}
	}
	return out, nil
}

// InstallKey adds a key that opens messages; the primary one still seals.
func (p *Pool) InstallKey(k []byte) error {
	return p.changeKeys(k, func(kr *memberlist.Keyring) error { return kr.AddKey(k) })
}

// UseKey makes an installed key the one that seals.
func (p *Pool) UseKey(k []byte) error {
	return p.changeKeys(k, func(kr *memberlist.Keyring) error {
		for _, have := range kr.GetKeys() {
			if bytes.Equal(have, k) {
				return kr.UseKey(k)
			}
		}
		return fmt.Errorf("gossip: key %s is not installed: install it on every server first", Fingerprint(k))
	})
}

// RemoveKey drops a key that no longer seals.
func (p *Pool) RemoveKey(k []byte) error {
	return p.changeKeys(k, func(kr *memberlist.Keyring) error {
		if bytes.Equal(kr.GetPrimaryKey(), k) {
			return fmt.Errorf("gossip: key %s is the primary one: use another key first", Fingerprint(k))
		}
		return kr.RemoveKey(k)
	})
}

func (p *Pool) changeKeys(k []byte, change func(*memberlist.Keyring) error) error {
	if err := CheckKey(k); err != nil {
		return err
	}
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	kr, err := p.keyring()
	if err != nil {
		return err
	}
	if err := change(kr); err != nil {
		return err
	}
	return p.saveKeyring()
}

// keyringFile is the JSON of Config.KeyringFile.
type keyringFile struct {
	// Keys are base64, the primary first.
	Keys []string `json:"keys"`
}

// loadKeyring reads the keyring file, if there is one.
func loadKeyring(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gossip: keyring file: %w", err)
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil || len(f.Keys) == 0 {
		return nil, fmt.Errorf("gossip: keyring file %s is damaged (%v): restore it, or remove it and start with --gossip-key", path, err)
	}
	var keys [][]byte
	for _, s := range f.Keys {
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("gossip: keyring file %s: %w", path, err)
		}
		if err := CheckKey(k); err != nil {
			return nil, fmt.Errorf("gossip: keyring file %s: %w", path, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// saveKeyring writes the keyring to Config.KeyringFile (if set), atomically
// and readable by this user alone.
func (p *Pool) saveKeyring() error {
	path := p.cfg.KeyringFile
	if path == "" || p.kr == nil {
		return nil
	}
	primary := p.kr.GetPrimaryKey()
	f := keyringFile{Keys: []string{base64.StdEncoding.EncodeToString(primary)}}
	for _, k := range p.kr.GetKeys() {
		if !bytes.Equal(k, primary) {
			f.Keys = append(f.Keys, base64.StdEncoding.EncodeToString(k))
		}
	}
	b, _ := json.Marshal(f)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyring-*")
	if err != nil {
		return fmt.Errorf("gossip: save keyring: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("gossip: save keyring: %w", err)
	}
	return nil
}

// KeySize is the length of a gossip key.
const KeySize = 32

// CheckKey refuses a key that is not 32 bytes, or is no secret at all
// (every byte the same, as in an all-zero or placeholder key).
func CheckKey(k []byte) error {
	if len(k) != KeySize {
		return fmt.Errorf("gossip: key is %d bytes, want %d (registry keygen makes one)", len(k), KeySize)
	}
	same := true
	for _, b := range k[1:] {
		same = same && b == k[0]
	}
	if same {
		return errors.New("gossip: key is one byte repeated, not a secret: make one with registry keygen")
	}
	return nil
}
