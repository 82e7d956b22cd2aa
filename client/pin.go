package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// PinFile is the manual failover file in Config.CacheDir: an operator's
// last resort. While it names a service, Lookup and Pick answer that
// service with its instances, whatever the servers say:
//
//	{"services": {"orders": [{"id": "o-1", "address": "10.0.0.1", "port": 8080, "weight": 100}]}}
//
// The client reads it at start and whenever it changes (checked every
// second); removing the file, or the service from it, ends the pin.
const PinFile = "switchyard-pinned.json"

// SourcePinned: the answer comes from PinFile.
const SourcePinned Source = "pinned"

type pinFile struct {
	Services map[string][]pinnedInstance `json:"services"`
}

type pinnedInstance struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Weight  *int   `json:"weight,omitempty"`
}

// pinned is the parsed file: answers and pickers by service.
type pinned struct {
	mod     time.Time
	answers map[string]Answer
	pickers map[string]*route.Picker
}

func readPins(dir string) (*pinned, error) {
	path := filepath.Join(dir, PinFile)
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f pinFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := &pinned{mod: st.ModTime(), answers: map[string]Answer{}, pickers: map[string]*route.Picker{}}
	for svc, list := range f.Services {
		var ins []wire.Instance
		var cands []route.Candidate
		for _, pi := range list {
			in := &store.Instance{ID: pi.ID, Service: svc, Address: pi.Address, Port: pi.Port, Weight: store.DefaultWeight, Enabled: true, Healthy: true}
			if pi.Weight != nil {
				in.Weight = *pi.Weight
			}
			if err := store.ValidateName("instance id", pi.ID); err != nil {
				return nil, fmt.Errorf("%s: service %q: %w", path, svc, err)
			}
			if err := store.ValidateHost(pi.Address); err != nil || pi.Port < 1 || pi.Port > 65535 || in.Weight < 0 || in.Weight > store.MaxWeight {
				return nil, fmt.Errorf("%s: service %q: instance %q needs a valid address, port 1-65535 and weight 0-%d", path, svc, pi.ID, store.MaxWeight)
			}
			ins = append(ins, wire.Instance{Instance: in})
			if in.Weight > 0 {
				cands = append(cands, route.Candidate{Instance: in})
			}
		}
		p.answers[svc] = Answer{Service: svc, Instances: ins, Source: SourcePinned}
		p.pickers[svc] = route.NewPicker(route.Selection{Candidates: cands})
	}
	return p, nil
}

// runPins watches the pin file.
func (c *Client) runPins() {
	defer c.wg.Done()
	c.loadPins()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.loadPins()
		}
	}
}

func (c *Client) loadPins() {
	cur := c.pins.Load()
	st, err := os.Stat(filepath.Join(c.cfg.CacheDir, PinFile))
	if errors.Is(err, os.ErrNotExist) {
		if cur != nil {
			c.logger.Warn("manual failover file removed: back to the registry's answers")
			c.pins.Store(nil)
		}
		return
	}
	if err != nil || (cur != nil && st.ModTime().Equal(cur.mod)) {
		return
	}
	p, err := readPins(c.cfg.CacheDir)
	if err != nil {
		c.logger.Error("manual failover file not used", "err", err)
		return
	}
	c.logger.Warn("manual failover file in force: pinned services answer from it", "services", len(p.answers))
	c.pins.Store(p)
}
