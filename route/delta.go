package route

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Scope returns what, besides an instance's own fields, decides whether
// the selection of r holds that instance and at which level, as a string
// that two different scopes never share: the question (namespace asked,
// service, the caller's locality, the tag), the namespace that served and
// its service's creation, whether the protect threshold is tripped, and
// the levels of the chosen scope, with the region each other-region level
// stands for.
//
// Why that is enough: an instance is a candidate when it is serving
// (enabled, weight above 0), its level is one of the scope's, and it is
// healthy or the scope is protected. Its level follows from its own
// locality and the caller's, except for another region's, whose number
// comes from the ranking of regions by round-trip time; the scope names
// the region of each such level, so an instance of a region it names is
// at that level and one of a region it does not name is outside. Two
// answers of equal scope therefore agree on every instance that did not
// change between them, and list them in the same order (level, then id):
// see Delta.
func (r Result) Scope(q Query) string {
	var b []byte
	field := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	num := func(n int64) { field(strconv.FormatInt(n, 10)) }
	field("selection")
	field(q.Namespace)
	field(q.Service)
	field(q.Caller.Region)
	field(q.Caller.Datacenter)
	field(q.Caller.Unit)
	field(q.Tag)
	if r.Served == nil || r.Chosen == nil {
		return string(b)
	}
	field(r.Served.Service.Namespace)
	num(int64(r.Served.Service.CreateIndex))
	sel := &r.Chosen.Selection
	if sel.Protected {
		field("protected")
	} else {
		field("")
	}
	for k, l := range sel.Levels {
		num(int64(l))
		region := ""
		if k < len(sel.Regions) {
			region = sel.Regions[k]
		}
		field(region)
	}
	return string(b)
}

// Find returns the candidate with the given id, if the selection holds
// it: a binary search per level, the candidates being in level, then id,
// order.
func (s *Selection) Find(id string) (Candidate, bool) {
	type key struct {
		level Level
		id    string
	}
	for _, l := range s.Levels {
		i, ok := slices.BinarySearchFunc(s.Candidates, key{l, id}, func(c Candidate, k key) int {
			if c.Level != k.level {
				return cmp.Compare(c.Level, k.level)
			}
			return strings.Compare(c.Instance.ID, k.id)
		})
		if ok {
			return s.Candidates[i], true
		}
	}
	return Candidate{}, false
}

// Delta tells how the selection of r differs from the selection a caller
// got from the served view at index since, provided that answer had the
// same Scope: up are the candidates added or changed since, in answer
// order (level, then id), and removed the ids, in id order, of instances
// that changed or left since and are not candidates now (some may never
// have been in the caller's answer). ok is false when the served view
// cannot tell its changes since then (store.ServiceView.Changes).
//
// The caller's answer, without the removed ids and with up put in by
// (level, id), is then exactly r's selection: an instance that did not
// change is a candidate of both or of neither, at the same level (Scope),
// and every one that changed is in up or removed.
func Delta(r Result, since uint64) (up []Candidate, removed []string, ok bool) {
	if r.Served == nil || r.Chosen == nil {
		return nil, nil, false
	}
	changed, gone, ok := r.Served.Changes(since)
	if !ok {
		return nil, nil, false
	}
	sel := &r.Chosen.Selection
	var out []string
	for _, in := range changed {
		if c, ok := sel.Find(in.ID); ok {
			up = append(up, c)
		} else {
			out = append(out, in.ID)
		}
	}
	slices.SortFunc(up, func(a, b Candidate) int {
		if a.Level != b.Level {
			return cmp.Compare(a.Level, b.Level)
		}
		return strings.Compare(a.Instance.ID, b.Instance.ID)
	})
	// Both lists are in id order and share no id (one holds instances
	// present now, the other ids gone): merge them.
	removed = make([]string, 0, len(out)+len(gone))
	for len(out) > 0 || len(gone) > 0 {
		if len(gone) == 0 || len(out) > 0 && out[0] < gone[0] {
			removed, out = append(removed, out[0]), out[1:]
		} else {
			removed, gone = append(removed, gone[0]), gone[1:]
		}
	}
	return up, removed, true
}
