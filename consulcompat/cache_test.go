package consulcompat

import (
	"fmt"
	"strings"
	"testing"
)

func TestAnswerCacheBoundedInBytes(t *testing.T) {
	const bound = 64 << 10
	c := newAnswerCache(bound)
	// Many keys of every length up to the share a key may take: the total
	// stays under the bound, and the newest are kept.
	for i := range 5000 {
		key := fmt.Sprintf("k%d-%s", i, strings.Repeat("x", i%900))
		c.put(key, answerIndex{index: uint64(i)})
		if c.bytes > bound {
			t.Fatalf("after %d keys: %d bytes, bound %d", i+1, c.bytes, bound)
		}
	}
	last := fmt.Sprintf("k%d-%s", 4999, strings.Repeat("x", 4999%900))
	if a, ok := c.get(last); !ok || a.index != 4999 {
		t.Fatalf("the newest key was evicted: %+v %v", a, ok)
	}
	var sum int64
	n := 0
	for e := c.lru.Front(); e != nil; e = e.Next() {
		sum += entrySize(e.Value.(*answerEntry).key)
		n++
	}
	if sum != c.bytes || n != len(c.m) {
		t.Fatalf("accounting: list %d entries, %d bytes; cache %d entries, %d bytes", n, sum, len(c.m), c.bytes)
	}

	// A key longer than a 64th of the bound is not remembered.
	c.put(strings.Repeat("y", bound/64), answerIndex{index: 1})
	if _, ok := c.get(strings.Repeat("y", bound/64)); ok {
		t.Fatal("an oversized key was remembered")
	}

	// Least recently used goes first: a key read keeps its place. Each key
	// here takes exactly the share one may, so 64 fit.
	c = newAnswerCache(64 * 256)
	key := func(i int) string { return fmt.Sprintf("%0*d", 256-entryOverhead, i) }
	for i := range 64 {
		c.put(key(i), answerIndex{index: uint64(i)})
	}
	if len(c.m) != 64 {
		t.Fatalf("%d entries of a 64th of the bound each, want 64", len(c.m))
	}
	c.get(key(0))
	c.put(key(64), answerIndex{})
	if _, ok := c.get(key(0)); !ok {
		t.Error("a key just read was evicted")
	}
	if _, ok := c.get(key(1)); ok {
		t.Error("the least recently used key was kept")
	}
	c.delete(key(0))
	if _, ok := c.get(key(0)); ok || len(c.m) != 63 || c.bytes != 63*256 {
		t.Errorf("after delete: %d entries, %d bytes", len(c.m), c.bytes)
	}
}

func TestFilterCanonical(t *testing.T) {
	same := []string{
		`Service.Tags contains "v1" and Service.Meta.version == "1"`,
		"Service.Meta.version   ==   `1` and Service.Tags contains \"v1\"",
		`"v1" in Service.Tags and Service.Meta.version == "1" and Service.Meta.version == "1"`,
	}
	var want string
	for i, s := range same {
		e, err := parseFilter(s)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = e.canonical()
		} else if got := e.canonical(); got != want {
			t.Errorf("%s: %q, want %q", s, got, want)
		}
	}
	other, _ := parseFilter(`Service.Tags not contains "v1" and Service.Meta.version == "1"`)
	if other.canonical() == want {
		t.Error("a negated clause reads as the plain one")
	}
	a := filters{tags: []string{"b", "a", "b"}, passed: true}
	b := filters{tags: []string{"a", "b"}, passed: true}
	if a.key() != b.key() || a.key() == (filters{tags: []string{"a"}, passed: true}).key() {
		t.Errorf("tag keys: %q %q", a.key(), b.key())
	}
}
