package consulcompat

// DefaultCacheBytes bounds the remembered answers (see answerCache) unless
// Config.CacheBytes says otherwise.
const DefaultCacheBytes = 32 << 20

// entryOverhead is what an entry costs besides its key's bytes: the map
// slot, the entry and its list links, rounded up.
const entryOverhead = 128

// answerCache remembers, per normalised query, the hash and index of its
// last answer (see Server.indexFor); the answer itself is not kept. Keys
// come from callers, so the cache is bounded in bytes, not in entries: an
// entry costs its key's length plus entryOverhead, the least recently used
// entries go first, and a key longer than a 64th of the bound is not
// remembered at all (its query gets its views' index each time, so it is
// woken by any change of them: correct, only less quiet).
//
// Callers hold Server.mu.
type answerCache struct {
	max, maxEntry int64
	bytes         int64
	m             map[string]*answerEntry
	head, tail    *answerEntry // head: most recently used
}

type answerEntry struct {
	key        string
	a          answerIndex
	prev, next *answerEntry
}

func newAnswerCache(maxBytes int64) *answerCache {
	return &answerCache{max: maxBytes, maxEntry: maxBytes / 64, m: map[string]*answerEntry{}}
}

func entrySize(key string) int64 { return int64(len(key)) + entryOverhead }

// get returns the entry of key and marks it used.
func (c *answerCache) get(key string) (answerIndex, bool) {
	e, ok := c.m[key]
	if !ok {
		return answerIndex{}, false
	}
	c.unlink(e)
	c.pushFront(e)
	return e.a, true
}

// put remembers a for key, evicting the least recently used entries to
// stay within the bound; a key too long for the cache is not remembered.
func (c *answerCache) put(key string, a answerIndex) {
	if e, ok := c.m[key]; ok {
		e.a = a
		c.unlink(e)
		c.pushFront(e)
		return
	}
	size := entrySize(key)
	if size > c.maxEntry {
		return
	}
	for c.tail != nil && c.bytes+size > c.max {
		c.remove(c.tail)
	}
	e := &answerEntry{key: key, a: a}
	c.m[key] = e
	c.pushFront(e)
	c.bytes += size
}

func (c *answerCache) delete(key string) {
	if e, ok := c.m[key]; ok {
		c.remove(e)
	}
}

func (c *answerCache) remove(e *answerEntry) {
	c.unlink(e)
	delete(c.m, e.key)
	c.bytes -= entrySize(e.key)
}

func (c *answerCache) unlink(e *answerEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *answerCache) pushFront(e *answerEntry) {
	e.next = c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

// CacheStats reports how many answers the server remembers and the bytes
// they are counted as (what Config.CacheBytes bounds).
func (s *Server) CacheStats() (entries int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.answers.m), s.answers.bytes
}
