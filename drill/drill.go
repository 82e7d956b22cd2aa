// Package drill holds what the disaster drills share between the caller
// that records them and the runner that judges them: the record of one
// second of calls (CallerSecond), and the judge (Judge) that turns the
// records of a drill into a report with its failures. drill/delay adds
// latency between the drills' datacenters.
package drill

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The drill report: what callers saw during a fault. Pure: the runner
// collects the records (cmd/registry drill), this file judges them.

// CallerSecond is one second of one caller's calls.
type CallerSecond struct {
	At      int64          `json:"at"` // unix seconds
	OK      int            `json:"ok"`
	Failed  int            `json:"failed"`
	ByDC    map[string]int `json:"by_datacenter"`
	Sources map[string]int `json:"sources"`
	// Latency holds a sample of call latencies (µs) by serving datacenter.
	Latency map[string][]int `json:"latency_us_by_datacenter,omitempty"`
	// Probe holds round trips (µs) of plain HTTP calls the caller made,
	// outside the SDK, to one instance in each datacenter: what a call to
	// that datacenter costs, whichever instance the SDK would choose.
	Probe map[string][]int `json:"probe_us_by_datacenter,omitempty"`
}

// WriteSecond is one second of the drill's writer: registrations
// acknowledged, and those no server acknowledged.
type WriteSecond struct {
	At     int64 `json:"at"`
	Acked  int   `json:"acked"`
	Failed int   `json:"failed"`
}

// Input is everything a drill recorded.
type Input struct {
	Scenario string
	// Callers' records by the caller's datacenter.
	Callers map[string][]CallerSecond
	// FaultStart and FaultEnd bound the fault (unix seconds).
	FaultStart, FaultEnd int64
	// CutDatacenter is the datacenter cut off, for cut-datacenter.
	CutDatacenter string
	// WritesAcked are the writes acknowledged; WritesPresent those found
	// afterwards on every server; WritesLost the acknowledged ones missing.
	WritesAcked, WritesPresent int
	WritesLost                 []string
	// UnhealthyAtEnd lists the example services' instances some server
	// still holds unhealthy when the drill ends ("server: instance").
	UnhealthyAtEnd []string
	// DeregistrationsUnknown counts deregistrations that got no answer:
	// their instances are not owed afterwards.
	DeregistrationsUnknown int
	// WriteGap is the longest time no write was acknowledged, and
	// WriteGapStart when it began.
	WriteGap      time.Duration
	WriteGapStart time.Time
	// Writes are the writer's registrations, second by second.
	Writes []WriteSecond
	// TTL is the instances' TTL (for the routing criterion).
	TTL time.Duration
	// Latency is the delay added to every packet between datacenters
	// (0: none). With it, the drill also judges that callers' calls stay
	// at the in-datacenter latency.
	Latency time.Duration
	// XDS is the record of the caller that calls through grpc-go's xDS
	// resolver and balancers (nil: none); it runs in XDSDatacenter and,
	// while nothing is wrong, is served by XDSHome, the nearest datacenter
	// that runs its service.
	XDS                    []CallerSecond
	XDSDatacenter, XDSHome string
}

// XDSReport is the xDS caller's view of the drill.
type XDSReport struct {
	Datacenter string         `json:"datacenter"`
	Home       string         `json:"home"`
	Before     Phase          `json:"before"`
	During     Phase          `json:"during"`
	After      Phase          `json:"after"`
	ByDC       map[string]int `json:"by_datacenter"`
	Timeline   []CallerSecond `json:"timeline"`
	// HomeBefore is the share of its calls before the fault that its home
	// served.
	HomeBefore float64 `json:"home_share_before"`
	// LeftCutS: seconds after the cut until the first second whose calls
	// all succeeded elsewhere (-1: its home was not cut).
	LeftCutS float64 `json:"left_cut_s"`
	// AwayRate is its success rate from then until the heal.
	AwayRate float64 `json:"away_rate"`
	// BackHomeS: seconds after the fault ended until every call of a
	// second succeeded and was served by its home again.
	BackHomeS float64 `json:"back_home_s"`
}

// Phase is a caller's calls in one phase of the drill.
type Phase struct {
	OK, Failed int
	Rate       float64 // OK / (OK + Failed)
}

// CallerReport is one caller's view of the drill.
type CallerReport struct {
	Datacenter string         `json:"datacenter"`
	Before     Phase          `json:"before"`
	During     Phase          `json:"during"`
	After      Phase          `json:"after"`
	Sources    map[string]int `json:"sources"`
	ByDC       map[string]int `json:"by_datacenter"`
	Timeline   []CallerSecond `json:"timeline"`
	// MedianLatencyMs is the median call latency by serving datacenter.
	MedianLatencyMs map[string]float64 `json:"median_latency_ms"`
	// CallMedianMs is the median latency of all the caller's successful
	// calls before the fault, whichever datacenter served them.
	CallMedianMs float64 `json:"call_median_before_ms"`
	// ProbeMedianMs is the median round trip of a direct call to each
	// datacenter (see CallerSecond.Probe).
	ProbeMedianMs map[string]float64 `json:"probe_median_ms"`
	// BackHomeS is how long after the fault ended the caller's calls were
	// all served by its own datacenter again (0: at once).
	BackHomeS float64 `json:"back_home_s"`
}

// Report is the verdict.
type Report struct {
	Scenario string                  `json:"scenario"`
	Callers  map[string]CallerReport `json:"callers"`
	// StopRoutingToCut: seconds after the cut until no caller outside the
	// cut datacenter was served by it (-1: it never was).
	StopRoutingToCut float64 `json:"stop_routing_to_cut_s"`
	// Converged: seconds after the fault ended until every caller's
	// success rate was back to 100% in a second.
	Converged     float64  `json:"converged_s"`
	WritesAcked   int      `json:"writes_acked"`
	WritesPresent int      `json:"writes_present"`
	WritesLost    []string `json:"writes_lost"`
	// UnhealthyAtEnd: see Input.
	UnhealthyAtEnd []string `json:"unhealthy_at_end"`
	// DeregistrationsUnknown: see Input.
	DeregistrationsUnknown int     `json:"deregistrations_unknown"`
	WriteGapS              float64 `json:"write_gap_s"`
	// WriteGapStart is when the longest gap began (unix seconds, 0: none).
	WriteGapStart float64       `json:"write_gap_start"`
	Writes        []WriteSecond `json:"writes,omitempty"`
	// FaultStart and FaultEnd bound the fault (unix seconds).
	FaultStart int64 `json:"fault_start"`
	FaultEnd   int64 `json:"fault_end"`
	// LatencyAddedMs is the delay added to packets between datacenters.
	LatencyAddedMs float64 `json:"latency_added_ms"`
	// XDS: see Input.XDS (nil: none).
	XDS      *XDSReport `json:"xds_caller,omitempty"`
	Failures []string   `json:"failures"`
}

// judgeXDS reports on the xDS caller and checks it: before the fault its
// calls succeed and its home serves them; when its home is cut its calls
// succeed elsewhere within the TTL, the longest write gap and 5 s (until
// the registry finds the cut instances silent, calls to them hang until
// their deadline) and keep
// succeeding there, and it is back within 10 s of the heal; any other fault (servers killed, paused, all
// gone) it does not notice, since it keeps its last answer.
func (r *Report) judgeXDS(in Input, fail func(string, ...any)) {
	x := &XDSReport{Datacenter: in.XDSDatacenter, Home: in.XDSHome, ByDC: map[string]int{}, Timeline: in.XDS, LeftCutS: -1,
		Before: phase(in.XDS, 0, in.FaultStart), During: phase(in.XDS, in.FaultStart, in.FaultEnd), After: phase(in.XDS, in.FaultEnd, 1<<62)}
	r.XDS = x
	home, before, homeDuring := 0, 0, 0
	back := in.FaultEnd
	for _, s := range in.XDS {
		for k, v := range s.ByDC {
			x.ByDC[k] += v
		}
		if s.At < in.FaultStart {
			home, before = home+s.ByDC[in.XDSHome], before+s.OK+s.Failed
		} else if s.At < in.FaultEnd {
			homeDuring += s.ByDC[in.XDSHome]
		}
		if s.At >= in.FaultEnd && (s.Failed > 0 || s.ByDC[in.XDSHome] != s.OK) {
			back = max(back, s.At+1)
		}
	}
	x.HomeBefore = float64(home) / float64(max(before, 1))
	x.BackHomeS = float64(back - in.FaultEnd)
	who := fmt.Sprintf("xDS caller in %s", in.XDSDatacenter)
	if before == 0 || x.Before.Rate < 0.99 || x.HomeBefore < 0.99 {
		fail("%s before the fault: %.2f%% of %d calls succeeded and %.2f%% were served by %s, want ≥ 99%% each",
			who, 100*x.Before.Rate, before, 100*x.HomeBefore, in.XDSHome)
	}
	if in.Scenario != "cut-datacenter" || in.CutDatacenter != in.XDSHome {
		if d := x.During.OK + x.During.Failed; d == 0 || x.During.Rate < 0.999 || homeDuring < x.During.OK {
			fail("%s during the fault: %.2f%% of %d calls succeeded and %d were served by %s, want ≥ 99.9%% and all", who, 100*x.During.Rate, d, homeDuring, in.XDSHome)
		}
		return
	}
	// It has moved at the first second of the cut whose calls all
	// succeeded, none served by the cut datacenter; until then its calls
	// to the cut instances hang until their deadline.
	moved := in.FaultEnd
	for _, s := range in.XDS {
		if s.At >= in.FaultStart && s.At < in.FaultEnd && s.OK > 0 && s.Failed == 0 && s.ByDC[in.CutDatacenter] == 0 {
			moved = s.At
			break
		}
	}
	x.LeftCutS = float64(moved - in.FaultStart)
	away := phase(in.XDS, moved, in.FaultEnd)
	x.AwayRate = away.Rate
	returned := 0
	for _, s := range in.XDS {
		if s.At >= moved && s.At < in.FaultEnd {
			returned += s.ByDC[in.CutDatacenter]
		}
	}
	// The leader judges silence: with the leader cut off, the others elect
	// one first (the writes' longest gap measures it), which then waits a
	// TTL from its election before it believes anyone silent.
	if bound := in.TTL + in.WriteGap + 5*time.Second; x.LeftCutS > bound.Seconds() {
		fail("%s calls elsewhere without failing only %.0f s after %s was cut, more than TTL + the longest write gap + 5 s (%.1f s)",
			who, x.LeftCutS, in.CutDatacenter, bound.Seconds())
	}
	if away.OK+away.Failed == 0 || away.Rate < 0.99 || returned > 0 {
		fail("%s after leaving %s: %.2f%% of %d calls succeeded and %d went back to it, want ≥ 99%% and none", who, in.CutDatacenter, 100*away.Rate, away.OK+away.Failed, returned)
	}
	if x.BackHomeS > 10 {
		fail("%s served by %s again, without failures, only %.0f s after the heal, want ≤ 10 s", who, in.XDSHome, x.BackHomeS)
	}
}

// medianMs is the median of samples in µs, in ms (0 for none).
func medianMs(us []int) float64 {
	if len(us) == 0 {
		return 0
	}
	sort.Ints(us)
	return float64(us[len(us)/2]) / 1000
}

// judgeLatency checks, with latency added between datacenters, that it was
// really there (direct calls to every other datacenter take at least that
// long) and that locality-first selection kept each caller's median call,
// before the fault, within a quarter of that latency of a direct call to its
// own datacenter. Spreading calls over the three datacenters would put the
// median at twice the latency (a round trip) or more.
func (r *Report) judgeLatency(latency time.Duration, fail func(string, ...any)) {
	ms := float64(latency) / float64(time.Millisecond)
	for _, dc := range sortedKeys(r.Callers) {
		cr := r.Callers[dc]
		own, ok := cr.ProbeMedianMs[dc]
		if !ok || cr.CallMedianMs == 0 {
			fail("caller in %s: no direct call to its own datacenter or no call before the fault to compare", dc)
			continue
		}
		for other, m := range cr.ProbeMedianMs {
			if other != dc && m < ms {
				fail("caller in %s: direct calls to %s took %.2f ms, less than the %.0f ms added between datacenters: the latency was not in place", dc, other, m, ms)
			}
		}
		if len(cr.ProbeMedianMs) < 2 {
			fail("caller in %s: no direct call to another datacenter, so the added latency is not shown", dc)
		}
		if cr.CallMedianMs > own+ms/4 {
			fail("caller in %s: median call %.2f ms before the fault, want within %.1f ms of a call inside %s (%.2f ms)", dc, cr.CallMedianMs, ms/4, dc, own)
		}
	}
}

func phase(secs []CallerSecond, from, to int64) Phase {
	var p Phase
	for _, s := range secs {
		if s.At >= from && s.At < to {
			p.OK += s.OK
			p.Failed += s.Failed
		}
	}
	if p.OK+p.Failed > 0 {
		p.Rate = float64(p.OK) / float64(p.OK+p.Failed)
	}
	return p
}

// Judge computes the report and checks the scenario's criteria.
func Judge(in Input) Report {
	r := Report{Scenario: in.Scenario, Callers: map[string]CallerReport{}, StopRoutingToCut: -1,
		WritesAcked: in.WritesAcked, WritesPresent: in.WritesPresent, WritesLost: in.WritesLost, WriteGapS: in.WriteGap.Seconds(),
		DeregistrationsUnknown: in.DeregistrationsUnknown, UnhealthyAtEnd: in.UnhealthyAtEnd,
		Writes: in.Writes, FaultStart: in.FaultStart, FaultEnd: in.FaultEnd}
	if !in.WriteGapStart.IsZero() {
		r.WriteGapStart = float64(in.WriteGapStart.UnixMilli()) / 1000
	}
	dcs := make([]string, 0, len(in.Callers))
	for dc := range in.Callers {
		dcs = append(dcs, dc)
	}
	sort.Strings(dcs)
	var end int64
	for _, dc := range dcs {
		secs := in.Callers[dc]
		cr := CallerReport{Datacenter: dc, Timeline: secs, Sources: map[string]int{}, ByDC: map[string]int{},
			MedianLatencyMs: map[string]float64{}, ProbeMedianMs: map[string]float64{}}
		lat, probe := map[string][]int{}, map[string][]int{}
		var calls []int
		cr.Before = phase(secs, 0, in.FaultStart)
		cr.During = phase(secs, in.FaultStart, in.FaultEnd)
		cr.After = phase(secs, in.FaultEnd, 1<<62)
		for _, s := range secs {
			for k, v := range s.Sources {
				cr.Sources[k] += v
			}
			for k, v := range s.ByDC {
				cr.ByDC[k] += v
			}
			for k, v := range s.Latency {
				lat[k] = append(lat[k], v...)
				if s.At < in.FaultStart {
					calls = append(calls, v...)
				}
			}
			for k, v := range s.Probe {
				probe[k] = append(probe[k], v...)
			}
			end = max(end, s.At)
		}
		for k, v := range lat {
			cr.MedianLatencyMs[k] = medianMs(v)
		}
		for k, v := range probe {
			cr.ProbeMedianMs[k] = medianMs(v)
		}
		cr.CallMedianMs = medianMs(calls)
		home := in.FaultEnd
		for _, s := range secs {
			if s.At >= in.FaultEnd && (s.Failed > 0 || s.ByDC[dc] != s.OK) {
				home = max(home, s.At+1)
			}
		}
		cr.BackHomeS = float64(home - in.FaultEnd)
		r.Callers[dc] = cr
	}
	// Routing away from the cut datacenter: the last second, during the
	// fault, in which a caller elsewhere was served by it.
	if in.CutDatacenter != "" {
		last := int64(-1)
		for _, dc := range dcs {
			if dc == in.CutDatacenter {
				continue
			}
			for _, s := range in.Callers[dc] {
				if s.At >= in.FaultStart && s.At < in.FaultEnd && s.ByDC[in.CutDatacenter] > 0 {
					last = max(last, s.At)
				}
			}
		}
		if last >= 0 {
			r.StopRoutingToCut = float64(last + 1 - in.FaultStart)
		} else {
			r.StopRoutingToCut = 0
		}
	}
	// Convergence: the first second after the fault from which every
	// caller's every second is a clean success.
	conv := in.FaultEnd
	for _, dc := range dcs {
		for _, s := range in.Callers[dc] {
			if s.At >= in.FaultEnd && s.Failed > 0 {
				conv = max(conv, s.At+1)
			}
		}
	}
	r.Converged = float64(conv - in.FaultEnd)

	fail := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	if len(in.WritesLost) > 0 {
		fail("%d acknowledged writes lost: %s", len(in.WritesLost), strings.Join(in.WritesLost[:min(5, len(in.WritesLost))], ", "))
	}
	total := func(ph func(CallerReport) Phase) (ok, failed int) {
		for _, cr := range r.Callers {
			p := ph(cr)
			ok, failed = ok+p.OK, failed+p.Failed
		}
		return
	}
	r.LatencyAddedMs = float64(in.Latency) / float64(time.Millisecond)
	if len(in.UnhealthyAtEnd) > 0 {
		fail("instances still unhealthy when the drill ended: %s", strings.Join(in.UnhealthyAtEnd, ", "))
	}
	if in.Latency > 0 {
		r.judgeLatency(in.Latency, fail)
	}
	if in.XDS != nil {
		r.judgeXDS(in, fail)
	}
	switch in.Scenario {
	case "kill-all-servers":
		ok, failed := total(func(c CallerReport) Phase { return c.During })
		if rate := float64(ok) / float64(max(ok+failed, 1)); ok+failed == 0 || rate < 0.999 {
			fail("callers' success during the outage %.4f, want ≥ 0.999", rate)
		}
	case "cut-datacenter":
		if r.StopRoutingToCut > (in.TTL + 5*time.Second).Seconds() {
			fail("callers outside %s were routed to it for %.0f s, more than TTL + 5 s", in.CutDatacenter, r.StopRoutingToCut)
		}
		if cr, ok := r.Callers[in.CutDatacenter]; ok {
			inside := 0
			for _, s := range cr.Timeline {
				if s.At >= in.FaultStart && s.At < in.FaultEnd {
					inside += s.ByDC[in.CutDatacenter]
				}
			}
			if cr.During.OK+cr.During.Failed == 0 || float64(inside)/float64(cr.During.OK+cr.During.Failed) < 0.99 {
				fail("callers in %s reached its own instances in %d of %d calls during the cut, want ≥ 99%%", in.CutDatacenter, inside, cr.During.OK+cr.During.Failed)
			}
		}
		if r.Converged > 10 {
			fail("converged %.0f s after the heal, want ≤ 10 s", r.Converged)
		}
		// Converged also means every caller is served at home again.
		for _, dc := range dcs {
			if b := r.Callers[dc].BackHomeS; b > 10 {
				fail("caller in %s served by its own datacenter only %.0f s after the heal, want ≤ 10 s", dc, b)
			}
		}
	case "kill-leader":
		if in.WriteGap > 5*time.Second {
			fail("writes stopped for %v, want ≤ 5 s", in.WriteGap.Round(100*time.Millisecond))
		}
	case "pause-server":
		ok, failed := total(func(c CallerReport) Phase { return c.During })
		if failed > 0 || ok == 0 {
			fail("callers noticed the pause: %d failed calls (%d succeeded)", failed, ok)
		}
	}
	return r
}

// Markdown renders the report for people.
func (r Report) Markdown() string {
	var b strings.Builder
	verdict := "passed"
	if len(r.Failures) > 0 {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "# Drill %s: %s\n\n", r.Scenario, verdict)
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "- **%s**\n", f)
	}
	b.WriteString("\n| caller in | before | during | after | served by | answered from | median latency by serving datacenter |\n| --- | ---: | ---: | ---: | --- | --- | --- |\n")
	dcs := make([]string, 0, len(r.Callers))
	for dc := range r.Callers {
		dcs = append(dcs, dc)
	}
	sort.Strings(dcs)
	for _, dc := range dcs {
		c := r.Callers[dc]
		var lat []string
		for _, k := range sortedKeys(c.MedianLatencyMs) {
			lat = append(lat, fmt.Sprintf("%s %.2f ms", k, c.MedianLatencyMs[k]))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", dc, pct(c.Before), pct(c.During), pct(c.After), counts(c.ByDC), counts(c.Sources), strings.Join(lat, ", "))
	}
	if r.LatencyAddedMs > 0 {
		fmt.Fprintf(&b, "\nLatency: %.0f ms added to every packet between datacenters. Median call before the fault, next to a direct call (plain HTTP, outside the SDK) to each datacenter:\n\n", r.LatencyAddedMs)
		b.WriteString("| caller in | median call | " + strings.Join(dcs, " | ") + " |\n| --- | ---: |" + strings.Repeat(" ---: |", len(dcs)) + "\n")
		for _, dc := range dcs {
			c := r.Callers[dc]
			fmt.Fprintf(&b, "| %s | %.2f ms |", dc, c.CallMedianMs)
			for _, to := range dcs {
				if m, ok := c.ProbeMedianMs[to]; ok {
					fmt.Fprintf(&b, " %.2f ms |", m)
				} else {
					b.WriteString(" – |")
				}
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "\n- acknowledged writes: %d; present afterwards on every server: %d; lost: %d\n", r.WritesAcked, r.WritesPresent, len(r.WritesLost))
	if r.DeregistrationsUnknown > 0 {
		fmt.Fprintf(&b, "- deregistrations without an answer (their instances not owed): %d\n", r.DeregistrationsUnknown)
	}
	if len(r.UnhealthyAtEnd) == 0 {
		b.WriteString("- every instance of the example services healthy on every server at the end\n")
	}
	fmt.Fprintf(&b, "- longest time without an acknowledged write: %.1f s\n", r.WriteGapS)
	if r.StopRoutingToCut >= 0 {
		fmt.Fprintf(&b, "- callers elsewhere stopped being sent to the cut datacenter after: %.0f s\n", r.StopRoutingToCut)
	}
	fmt.Fprintf(&b, "- every caller clean again %.0f s after the fault ended\n", r.Converged)
	if x := r.XDS; x != nil {
		fmt.Fprintf(&b, "- xDS caller in %s (grpc-go, xds:///), home %s: before %s, during %s, after %s; served by %s",
			x.Datacenter, x.Home, pct(x.Before), pct(x.During), pct(x.After), counts(x.ByDC))
		if x.LeftCutS >= 0 {
			fmt.Fprintf(&b, "; calls succeeded elsewhere %.0f s after the cut, then %.2f%% of them", x.LeftCutS, 100*x.AwayRate)
		}
		fmt.Fprintf(&b, "; back home %.0f s after the fault ended\n", x.BackHomeS)
	}
	for _, dc := range dcs {
		fmt.Fprintf(&b, "- caller in %s served by its own datacenter only, again, %.0f s after the fault ended\n", dc, r.Callers[dc].BackHomeS)
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func pct(p Phase) string {
	if p.OK+p.Failed == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%% of %d", 100*p.Rate, p.OK+p.Failed)
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
