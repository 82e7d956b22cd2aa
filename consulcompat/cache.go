package consulcompat

import "container/list"

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
	m             map[string]*list.Element // of *answerEntry
	lru           list.List                // front: most recently used
}

type answerEntry struct {
	key string
	a   answerIndex
}

func newAnswerCache(maxBytes int64) *answerCache {
	return &answerCache{max: maxBytes, maxEntry: maxBytes / 64, m: map[string]*list.Element{}}
}

func entrySize(key string) int64 { return int64(len(key)) + entryOverhead }

// get returns the entry of key and marks it used.
func (c *answerCache) get(key string) (answerIndex, bool) {
	e, ok := c.m[key]
	if !ok {
		return answerIndex{}, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*answerEntry).a, true
}

// put remembers a for key, evicting the least recently used entries to
// stay within the bound; a key too long for the cache is not remembered.
func (c *answerCache) put(key string, a answerIndex) {
	if e, ok := c.m[key]; ok {
		e.Value.(*answerEntry).a = a
		c.lru.MoveToFront(e)
		return
	}
	size := entrySize(key)
	if size > c.maxEntry {
		return
	}
	for c.lru.Len() > 0 && c.bytes+size > c.max {
		c.remove(c.lru.Back())
	}
	c.m[key] = c.lru.PushFront(&answerEntry{key: key, a: a})
	c.bytes += size
}

func (c *answerCache) delete(key string) {
	if e, ok := c.m[key]; ok {
		c.remove(e)
	}
}

func (c *answerCache) remove(e *list.Element) {
	key := c.lru.Remove(e).(*answerEntry).key
	delete(c.m, key)
	c.bytes -= entrySize(key)
}

// CacheStats reports how many answers the server remembers and the bytes
// they are counted as (what Config.CacheBytes bounds).
func (s *Server) CacheStats() (entries int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.answers.m), s.answers.bytes
}
