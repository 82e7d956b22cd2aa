package store

import (
	"slices"
	"strings"
)

// instList holds a service view's instances, sorted by id, in chunks of at
// most chunkMax. A published list never changes. A batch that changes one
// instance copies the chunk that holds it and the slice of chunk pointers:
// at 8,000 instances about 190 pointers, where one flat slice copied 8,000
// on every replica for every batch that touched the service (with the
// garbage and the write barriers that come with them, this was a fifth of
// each server's CPU under a registration load).
type instList struct {
	chunks []*instChunk // none empty; each one's ids sort after the one before
	n      int
	probed int // instances the servers probe (probed)
}

type instChunk struct {
	items []*Instance
	// last is the id of the last item: locate's search over chunks
	// compares it without loading the item (kept by every change, below).
	last string
	// maxMod is at least the ModifyIndex of every item (exact but after
	// an item is replaced by one with a lower index, which the store never
	// does): changedSince skips a chunk whose maxMod is not past its
	// index, so a delta of a few changes reads a few chunks, not every
	// instance.
	maxMod uint64
}

// setLast updates last after a change of items.
func (c *instChunk) setLast() {
	if len(c.items) > 0 {
		c.last = c.items[len(c.items)-1].ID
	}
}

// setMaxMod recomputes maxMod from the items.
func (c *instChunk) setMaxMod() {
	c.maxMod = 0
	for _, in := range c.items {
		c.maxMod = max(c.maxMod, in.ModifyIndex)
	}
}

// chunkMax is the most instances a chunk holds; a fuller one splits in two.
const chunkMax = 128

// Len is the number of instances.
func (l *instList) Len() int { return l.n }

// probed reports whether the servers probe in (nil: none).
func probed(in *Instance) bool { return in != nil && in.Probed() }

// probedDelta is the change in probed instances when old (nil: none)
// becomes new (nil: none).
func probedDelta(old, new *Instance) int {
	d := 0
	if probed(old) {
		d--
	}
	if probed(new) {
		d++
	}
	return d
}

// locate finds id: the chunk that holds it (found) or where it belongs,
// and the position in that chunk. An empty list gives chunk 0, position 0.
func (l *instList) locate(id string) (ci, i int, found bool) {
	if len(l.chunks) == 0 {
		return 0, 0, false
	}
	// The first chunk whose last id is not below id; past the end, the
	// last chunk (id goes at its end).
	ci, _ = slices.BinarySearchFunc(l.chunks, id, func(c *instChunk, id string) int {
		return strings.Compare(c.last, id)
	})
	if ci == len(l.chunks) {
		ci--
	}
	i, found = slices.BinarySearchFunc(l.chunks[ci].items, id, func(in *Instance, id string) int {
		return strings.Compare(in.ID, id)
	})
	return ci, i, found
}

// get returns the instance with the given id, or nil.
func (l *instList) get(id string) *Instance {
	ci, i, ok := l.locate(id)
	if !ok {
		return nil
	}
	return l.chunks[ci].items[i]
}

// appendTo appends the instances in id order to dst.
func (l *instList) appendTo(dst []*Instance) []*Instance {
	dst = slices.Grow(dst, l.n)
	for _, c := range l.chunks {
		dst = append(dst, c.items...)
	}
	return dst
}

// all calls yield for each instance in id order until it returns false.
func (l *instList) all(yield func(*Instance) bool) {
	for _, c := range l.chunks {
		for _, in := range c.items {
			if !yield(in) {
				return
			}
		}
	}
}

// listEdit changes a copy of a published list inside one batch: the chunk
// slice is its own, and so are the chunks in owned (made in this batch);
// any other chunk is copied before it changes.
type listEdit struct {
	l     *instList
	owned map[*instChunk]bool
}

func (e listEdit) own(ci int) *instChunk {
	c := e.l.chunks[ci]
	if !e.owned[c] {
		c = &instChunk{items: slices.Grow(slices.Clone(c.items), 1), last: c.last, maxMod: c.maxMod}
		e.owned[c] = true
		e.l.chunks[ci] = c
	}
	return c
}

// set puts in where its id belongs, replacing an instance with that id.
func (e listEdit) set(in *Instance) {
	l := e.l
	if len(l.chunks) == 0 {
		c := &instChunk{items: []*Instance{in}, last: in.ID, maxMod: in.ModifyIndex}
		e.owned[c] = true
		l.chunks = append(l.chunks, c)
		l.n = 1
		l.probed = probedDelta(nil, in)
		return
	}
	ci, i, found := l.locate(in.ID)
	c := e.own(ci)
	c.maxMod = max(c.maxMod, in.ModifyIndex)
	if found {
		l.probed += probedDelta(c.items[i], in)
		c.items[i] = in
		return
	}
	c.items = slices.Insert(c.items, i, in)
	l.n++
	l.probed += probedDelta(nil, in)
	if len(c.items) > chunkMax {
		half := len(c.items) / 2
		right := &instChunk{items: slices.Clone(c.items[half:])}
		right.setLast()
		right.setMaxMod()
		clear(c.items[half:]) // no stale pointers behind the length
		c.items = c.items[:half]
		c.setMaxMod()
		e.owned[right] = true
		l.chunks = slices.Insert(l.chunks, ci+1, right)
	}
	c.setLast()
}

// remove takes out the instance with the given id, if there is one.
func (e listEdit) remove(id string) {
	l := e.l
	ci, i, found := l.locate(id)
	if !found {
		return
	}
	c := e.own(ci)
	l.probed += probedDelta(c.items[i], nil)
	c.items = slices.Delete(c.items, i, i+1)
	c.setLast()
	c.setMaxMod()
	l.n--
	switch {
	case len(c.items) == 0:
		l.chunks = slices.Delete(l.chunks, ci, ci+1)
	case len(c.items) < chunkMax/4:
		// Removals must not leave a trail of tiny chunks: join a small
		// neighbour, into a chunk still far from splitting.
		for _, j := range []int{ci + 1, ci - 1} {
			if j < 0 || j >= len(l.chunks) || len(l.chunks[j].items)+len(c.items) > chunkMax/2 {
				continue
			}
			lo, hi := min(ci, j), max(ci, j)
			m := &instChunk{items: make([]*Instance, 0, len(l.chunks[lo].items)+len(l.chunks[hi].items)+1)}
			m.items = append(append(m.items, l.chunks[lo].items...), l.chunks[hi].items...)
			m.setLast()
			m.maxMod = max(l.chunks[lo].maxMod, l.chunks[hi].maxMod)
			e.owned[m] = true
			l.chunks[lo] = m
			l.chunks = slices.Delete(l.chunks, hi, hi+1)
			break
		}
	}
}

// push appends in, whose id sorts after every id in l: for building a
// list in order (a restore), never for a published one.
func (l *instList) push(in *Instance) {
	if k := len(l.chunks); k == 0 || len(l.chunks[k-1].items) >= chunkMax {
		l.chunks = append(l.chunks, &instChunk{items: make([]*Instance, 0, chunkMax)})
	}
	c := l.chunks[len(l.chunks)-1]
	c.items = append(c.items, in)
	c.last = in.ID
	c.maxMod = max(c.maxMod, in.ModifyIndex)
	l.n++
	l.probed += probedDelta(nil, in)
}

// changedSince calls yield, in id order, for each instance whose
// ModifyIndex is above since, until it returns false.
func (l *instList) changedSince(since uint64, yield func(*Instance) bool) {
	for _, c := range l.chunks {
		if c.maxMod <= since {
			continue
		}
		for _, in := range c.items {
			if in.ModifyIndex > since && !yield(in) {
				return
			}
		}
	}
}

// last is the instance with the highest id, or nil.
func (l *instList) last() *Instance {
	if len(l.chunks) == 0 {
		return nil
	}
	c := l.chunks[len(l.chunks)-1]
	return c.items[len(c.items)-1]
}
