package route

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"sync"
)

// Balancers, as named in the service setting `balancer` and in requests.
const (
	WeightedRandom = "weighted_random"
	RoundRobin     = "round_robin"     // smooth weighted round robin
	LeastLoaded    = "least_loaded"    // power of two choices on in-flight load
	ConsistentHash = "consistent_hash" // weighted rendezvous hashing with bounded load
)

// Balancers lists every balancer.
var Balancers = []string{WeightedRandom, RoundRobin, LeastLoaded, ConsistentHash}

// ErrNoCandidate: the selection holds no instance that may receive traffic.
var ErrNoCandidate = errors.New("no instance may receive traffic")

// ErrUnknownBalancer: a balancer name that is not one of Balancers.
var ErrUnknownBalancer = errors.New("unknown balancer")

// DefaultLoadFactor is ε of consistent hashing with bounded load: no
// instance takes more than (1+ε) times its fair share of the load.
const DefaultLoadFactor = 0.25

// PickOptions say how to pick.
type PickOptions struct {
	// Balancer is one of Balancers; "" means WeightedRandom.
	Balancer string
	// Rand returns uniformly random 64-bit numbers (math/rand/v2's Uint64
	// will do). Required by WeightedRandom and LeastLoaded.
	Rand func() uint64
	// Key makes ConsistentHash sticky: the same key picks the same instance
	// while the candidates do not change (and its load allows).
	Key string
	// InFlight returns the requests in flight to an instance, for
	// LeastLoaded and the load bound of ConsistentHash (nil: all zero).
	InFlight func(id string) int
	// LoadFactor is ε of ConsistentHash's bound; 0 means DefaultLoadFactor.
	LoadFactor float64
}

// Picker picks instances from one Selection. Build it once per selection
// (the selection of an unchanged view is the same) and share it: it is safe
// for concurrent use, and round robin keeps its state in it.
type Picker struct {
	cands []Candidate
	w     []int64 // weights
	cum   []int64 // cumulative weights
	total int64
	ids   []uint64 // hash of each candidate's id, for rendezvous hashing

	mu      sync.Mutex
	current []int64 // smooth weighted round robin
}

var idSeed = maphash.MakeSeed()

// NewPicker prepares picks over sel's candidates.
func NewPicker(sel Selection) *Picker {
	n := len(sel.Candidates)
	p := &Picker{cands: sel.Candidates, w: make([]int64, n), cum: make([]int64, n), ids: make([]uint64, n)}
	for k, c := range sel.Candidates {
		p.w[k] = int64(c.Instance.Weight)
		p.total += p.w[k]
		p.cum[k] = p.total
		p.ids[k] = hashString(c.Instance.ID)
	}
	return p
}

// hashString hashes with a fixed seed so that every process (server, SDK)
// maps a key to the same instance.
func hashString(s string) uint64 {
	// FNV-1a, then a finaliser: deterministic across processes, unlike
	// maphash's per-process seeds.
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Len returns the number of candidates.
func (p *Picker) Len() int { return len(p.cands) }

// Pick chooses one candidate.
func (p *Picker) Pick(o PickOptions) (Candidate, error) {
	k, err := p.PickIndex(o)
	if err != nil {
		return Candidate{}, err
	}
	return p.cands[k], nil
}

// PickIndex is Pick, returning the candidate's position in the selection.
func (p *Picker) PickIndex(o PickOptions) (int, error) {
	if len(p.cands) == 0 {
		return 0, ErrNoCandidate
	}
	switch o.Balancer {
	case "", WeightedRandom:
		if o.Rand == nil {
			return 0, errors.New("route: weighted random needs a random source")
		}
		return p.weighted(o.Rand()), nil
	case RoundRobin:
		return p.roundRobin(), nil
	case LeastLoaded:
		if o.Rand == nil {
			return 0, errors.New("route: least loaded needs a random source")
		}
		return p.leastLoaded(o), nil
	case ConsistentHash:
		return p.consistent(o), nil
	}
	return 0, fmt.Errorf("%w %q: use one of %s", ErrUnknownBalancer, o.Balancer, strings.Join(Balancers, ", "))
}

// weighted maps r to a candidate with probability weight/total, exactly
// for integer weights (up to the negligible bias of r mod total).
func (p *Picker) weighted(r uint64) int {
	x := int64(r % uint64(p.total))
	k, _ := slices.BinarySearch(p.cum, x+1)
	return k
}

// roundRobin is nginx's smooth weighted round robin: over any total-weight
// consecutive picks each candidate is chosen exactly weight times, spread
// out rather than in runs.
func (p *Picker) roundRobin() int {
	p.mu.Lock()
	if p.current == nil {
		p.current = make([]int64, len(p.cands))
	}
	cur, best, bestV := p.current, 0, int64(math.MinInt64)
	for k, w := range p.w {
		v := cur[k] + w
		cur[k] = v
		if v > bestV {
			best, bestV = k, v
		}
	}
	cur[best] -= p.total
	p.mu.Unlock()
	return best
}

// leastLoaded draws two candidates by weight and keeps the one with less
// in-flight load per unit of weight.
func (p *Picker) leastLoaded(o PickOptions) int {
	a := p.weighted(o.Rand())
	if len(p.cands) == 1 || o.InFlight == nil {
		return a
	}
	b := p.weighted(o.Rand())
	for tries := 0; b == a && tries < 4; tries++ {
		b = p.weighted(o.Rand())
	}
	la, lb := int64(o.InFlight(p.cands[a].Instance.ID)), int64(o.InFlight(p.cands[b].Instance.ID))
	wa, wb := int64(p.cands[a].Instance.Weight), int64(p.cands[b].Instance.Weight)
	// la/wa < lb/wb without division.
	if lb*wa < la*wb {
		return b
	}
	return a
}

// consistent is weighted rendezvous hashing: each candidate scores
// weight / -ln(u), u uniform from hash(key, id); the highest score wins,
// which gives each candidate weight/total of the keys, and a candidate that
// joins takes only the keys it now wins. With loads known, a candidate at
// its bound ((1+ε) × its fair share of the load, rounded up) is passed over
// for the next best.
func (p *Picker) consistent(o PickOptions) int {
	kh := hashString(o.Key)
	eps := o.LoadFactor
	if eps <= 0 {
		eps = DefaultLoadFactor
	}
	var totalLoad int64
	if o.InFlight != nil {
		for _, c := range p.cands {
			totalLoad += int64(o.InFlight(c.Instance.ID))
		}
	}
	best, bestScore := -1, 0.0
	first, firstScore := 0, -1.0
	for k, c := range p.cands {
		h := mix(kh ^ p.ids[k])
		u := (float64(h>>11) + 0.5) / (1 << 53) // in (0, 1)
		score := float64(p.w[k]) / -math.Log(u)
		if score > firstScore {
			first, firstScore = k, score
		}
		if o.InFlight != nil {
			w := float64(c.Instance.Weight)
			bound := math.Ceil((1 + eps) * float64(totalLoad+1) * w / float64(p.total))
			if float64(o.InFlight(c.Instance.ID)+1) > bound {
				continue
			}
		}
		if best < 0 || score > bestScore {
			best, bestScore = k, score
		}
	}
	if best < 0 {
		return first
	}
	return best
}
