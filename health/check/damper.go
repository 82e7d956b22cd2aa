package check

// Damping defaults, used when a Check leaves its thresholds at 0.
const (
	DefaultFailuresBeforeUnhealthy = 3
	DefaultSuccessesBeforeHealthy  = 2
)

// Damper turns a stream of probe results into a state that does not flap:
// a healthy instance turns unhealthy only after failuresBeforeUnhealthy
// consecutive failures, an unhealthy one turns healthy only after
// successesBeforeHealthy consecutive successes, and any result of the other
// kind breaks the streak. An instance that alternates ok and fail therefore
// keeps its state (with the default thresholds, or any threshold above 1).
//
// A Damper is a plain value with no clock or goroutine; it is not safe for
// concurrent use.
type Damper struct {
	healthy   bool
	failN     int // failures before unhealthy
	succN     int // successes before healthy
	failures  int // current streak of failures
	successes int // current streak of successes
}

// NewDamper returns a Damper in the given state. A threshold of 0 or less
// takes its default (DefaultFailuresBeforeUnhealthy,
// DefaultSuccessesBeforeHealthy).
func NewDamper(healthy bool, failuresBeforeUnhealthy, successesBeforeHealthy int) *Damper {
	if failuresBeforeUnhealthy <= 0 {
		failuresBeforeUnhealthy = DefaultFailuresBeforeUnhealthy
	}
	if successesBeforeHealthy <= 0 {
		successesBeforeHealthy = DefaultSuccessesBeforeHealthy
	}
	return &Damper{healthy: healthy, failN: failuresBeforeUnhealthy, succN: successesBeforeHealthy}
}

// Observe records one probe result and returns the state after it, and
// whether this result changed the state.
func (d *Damper) Observe(ok bool) (healthy bool, changed bool) {
	if ok {
		d.failures = 0
		d.successes++
		if !d.healthy && d.successes >= d.succN {
			d.healthy, changed = true, true
		}
	} else {
		d.successes = 0
		d.failures++
		if d.healthy && d.failures >= d.failN {
			d.healthy, changed = false, true
		}
	}
	return d.healthy, changed
}

// Healthy reports the current state.
func (d *Damper) Healthy() bool { return d.healthy }

// Streaks returns the current numbers of consecutive failures and
// successes; at most one of them is non-zero.
func (d *Damper) Streaks() (failures, successes int) { return d.failures, d.successes }

// Reset puts the Damper in the given state with both streaks at zero, as
// NewDamper would, keeping its thresholds.
func (d *Damper) Reset(healthy bool) {
	d.healthy, d.failures, d.successes = healthy, 0, 0
}
