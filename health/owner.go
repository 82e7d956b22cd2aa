package health

import "hash/fnv"

// Owner picks the server that checks an instance among the live servers,
// by rendezvous (highest random weight) hashing: every server computes the
// same owner from the same list, a server that joins takes over only the
// instances it now wins (about 1/n of them), and one that leaves hands on
// only its own. It returns "" when servers is empty.
func Owner(k Key, servers []string) string {
	var best string
	var bestScore uint64
	for _, s := range servers {
		h := fnv.New64a()
		h.Write([]byte(s))
		h.Write([]byte{0})
		h.Write([]byte(k.Namespace))
		h.Write([]byte{0})
		h.Write([]byte(k.Service))
		h.Write([]byte{0})
		h.Write([]byte(k.ID))
		score := mix(h.Sum64())
		if best == "" || score > bestScore || (score == bestScore && s < best) {
			best, bestScore = s, score
		}
	}
	return best
}

// mix is the 64-bit finaliser of MurmurHash3: FNV's low bits alone are not
// well spread, and rendezvous hashing compares whole scores.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
