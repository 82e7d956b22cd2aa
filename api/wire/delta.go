package wire

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrBadDelta: a delta answer that cannot be applied to the answer given
// (not a delta, another service, a level the answer does not name). The
// caller should ask for a full answer again.
var ErrBadDelta = errors.New("delta does not apply")

// ApplyDelta returns the full answer that the delta answer d makes of r, a
// full answer to the same question: r's instances without those d removes
// or replaces, with d's instances put in, nearest level first (by d's
// Levels) and by id within a level, the order of a full answer; and every
// other field from d. r is not changed, and the result shares r's
// unchanged instances, so neither may be modified afterwards.
func (r *InstancesResponse) ApplyDelta(d *InstancesResponse) (*InstancesResponse, error) {
	switch {
	case r.Delta:
		return nil, fmt.Errorf("%w: the answer to apply it to is itself a delta", ErrBadDelta)
	case !d.Delta:
		return nil, fmt.Errorf("%w: the answer is not a delta", ErrBadDelta)
	case r.Namespace != d.Namespace || r.Service != d.Service:
		return nil, fmt.Errorf("%w: a delta of %s/%s to an answer of %s/%s", ErrBadDelta, d.Namespace, d.Service, r.Namespace, r.Service)
	}
	rank := make(map[string]int, len(d.Levels))
	for k, l := range d.Levels {
		rank[l] = k
	}
	rankOf := func(in Instance) (int, error) {
		if in.Level == "" && len(d.Levels) == 0 {
			return 0, nil // a plain listing: id order
		}
		k, ok := rank[in.Level]
		if !ok {
			return 0, fmt.Errorf("%w: instance %s at level %q, which the answer's levels %v do not name", ErrBadDelta, in.ID, in.Level, d.Levels)
		}
		return k, nil
	}
	type ranked struct {
		rank int
		in   Instance
	}
	order := func(a, b ranked) int {
		if a.rank != b.rank {
			return cmp.Compare(a.rank, b.rank)
		}
		return strings.Compare(a.in.ID, b.in.ID)
	}
	drop := make(map[string]bool, len(d.Removed)+len(d.Instances))
	for _, id := range d.Removed {
		drop[id] = true
	}
	up := make([]ranked, 0, len(d.Instances))
	for _, in := range d.Instances {
		if in.Instance == nil {
			return nil, fmt.Errorf("%w: an instance without its fields", ErrBadDelta)
		}
		k, err := rankOf(in)
		if err != nil {
			return nil, err
		}
		if drop[in.ID] {
			return nil, fmt.Errorf("%w: instance %s named twice", ErrBadDelta, in.ID)
		}
		drop[in.ID] = true
		up = append(up, ranked{k, in})
	}
	slices.SortFunc(up, order)
	// r's instances are in answer order already: one merge pass.
	out := make([]Instance, 0, len(r.Instances)+len(up))
	for _, in := range r.Instances {
		if in.Instance == nil || drop[in.ID] {
			continue
		}
		k, err := rankOf(in)
		if err != nil {
			return nil, err
		}
		for len(up) > 0 && order(up[0], ranked{k, in}) < 0 {
			out, up = append(out, up[0].in), up[1:]
		}
		out = append(out, in)
	}
	for _, u := range up {
		out = append(out, u.in)
	}
	full := *d
	full.Delta, full.Removed, full.Instances = false, nil, out
	full.Levels = slices.Clone(d.Levels)
	return &full, nil
}
