package drill

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// secs makes a caller's timeline from t0: ok/failed per second and the
// datacenter that served.
func secs(t0 int64, dc string, pattern ...[2]int) []CallerSecond {
	var out []CallerSecond
	for k, p := range pattern {
		out = append(out, CallerSecond{At: t0 + int64(k), OK: p[0], Failed: p[1], ByDC: map[string]int{dc: p[0]}, Sources: map[string]int{"live": p[0] + p[1]},
			Latency: map[string][]int{dc: {700, 800, 900}}})
	}
	return out
}

func repeat(n, ok, failed int) [][2]int {
	out := make([][2]int, n)
	for k := range out {
		out[k] = [2]int{ok, failed}
	}
	return out
}

func TestJudgeCriteria(t *testing.T) {
	clean := secs(100, "dc-a", repeat(30, 50, 0)...)
	for _, c := range []struct {
		name string
		in   Input
		fail string // "" passes
	}{
		{"kill-all clean", Input{Scenario: "kill-all-servers", Callers: map[string][]CallerSecond{"dc-a": clean}, FaultStart: 110, FaultEnd: 120}, ""},
		{"kill-all losing calls", Input{Scenario: "kill-all-servers", FaultStart: 110, FaultEnd: 120,
			Callers: map[string][]CallerSecond{"dc-a": secs(100, "dc-a", append(repeat(10, 50, 0), repeat(20, 49, 1)...)...)}}, "success during the outage"},
		{"a lost write fails any drill", Input{Scenario: "pause-server", Callers: map[string][]CallerSecond{"dc-a": clean}, FaultStart: 110, FaultEnd: 120,
			WritesAcked: 10, WritesPresent: 9, WritesLost: []string{"w-7"}}, "lost"},
		{"pause noticed", Input{Scenario: "pause-server", FaultStart: 110, FaultEnd: 120,
			Callers: map[string][]CallerSecond{"dc-a": secs(100, "dc-a", append(repeat(12, 50, 0), repeat(18, 50, 1)...)...)}}, "noticed"},
		{"leader writes resume late", Input{Scenario: "kill-leader", Callers: map[string][]CallerSecond{"dc-a": clean}, FaultStart: 110, FaultEnd: 120,
			WriteGap: 7 * time.Second}, "writes stopped"},
		{"cut: others routed to the cut datacenter too long", Input{Scenario: "cut-datacenter", CutDatacenter: "dc-b", TTL: 3 * time.Second,
			FaultStart: 110, FaultEnd: 140,
			Callers: map[string][]CallerSecond{"dc-a": secs(100, "dc-b", repeat(50, 50, 0)...), "dc-b": secs(100, "dc-b", repeat(50, 50, 0)...)}}, "routed to it"},
		{"cut: clean", Input{Scenario: "cut-datacenter", CutDatacenter: "dc-b", TTL: 3 * time.Second, FaultStart: 110, FaultEnd: 140,
			Callers: map[string][]CallerSecond{"dc-a": secs(100, "dc-a", repeat(50, 50, 0)...), "dc-b": secs(100, "dc-b", repeat(50, 50, 0)...)}}, ""},
		{"cut: slow convergence", Input{Scenario: "cut-datacenter", CutDatacenter: "dc-b", TTL: 3 * time.Second, FaultStart: 110, FaultEnd: 120,
			Callers: map[string][]CallerSecond{"dc-a": secs(100, "dc-a", append(repeat(20, 50, 0), repeat(15, 49, 1)...)...), "dc-b": secs(100, "dc-b", repeat(35, 50, 0)...)}}, "converged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Judge(c.in)
			got := strings.Join(r.Failures, "; ")
			if (c.fail == "") != (got == "") || !strings.Contains(got, c.fail) {
				t.Fatalf("failures %q, want one mentioning %q", got, c.fail)
			}
			if md := r.Markdown(); !strings.Contains(md, c.in.Scenario) || !strings.Contains(md, "0.80 ms") {
				t.Fatalf("markdown without the scenario:\n%s", md)
			}
			if svg := r.SVG(c.in.FaultStart, c.in.FaultEnd); !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "polyline") {
				t.Fatalf("svg: %s", svg)
			}
		})
	}
}

func TestJudgeBackHome(t *testing.T) {
	b := append(secs(100, "dc-b", repeat(20, 50, 0)...), secs(120, "dc-a", repeat(3, 50, 0)...)...)
	b = append(b, secs(123, "dc-b", repeat(7, 50, 0)...)...)
	r := Judge(Input{Scenario: "cut-datacenter", CutDatacenter: "dc-b", TTL: 3 * time.Second, FaultStart: 110, FaultEnd: 120,
		Callers: map[string][]CallerSecond{"dc-b": b, "dc-a": secs(100, "dc-a", repeat(30, 50, 0)...)}})
	if got := r.Callers["dc-b"].BackHomeS; got != 3 {
		t.Fatalf("dc-b back home after %v s, want 3", got)
	}
	if got := r.Callers["dc-a"].BackHomeS; got != 0 {
		t.Fatalf("dc-a back home after %v s, want 0", got)
	}
}

func TestJudgeLatency(t *testing.T) {
	// probed gives each second direct calls of own ms to the caller's
	// datacenter and other ms to the rest.
	probed := func(ss []CallerSecond, dc string, own, other int) []CallerSecond {
		for k := range ss {
			ss[k].Probe = map[string][]int{}
			for _, to := range []string{"dc-a", "dc-b", "dc-c"} {
				us := other * 1000
				if to == dc {
					us = own * 1000
				}
				ss[k].Probe[to] = []int{us, us, us}
			}
		}
		return ss
	}
	// Calls served by dc (0.8 ms) or, for a caller spread over the
	// datacenters, at a 40 ms round trip.
	home := func(dc string) []CallerSecond { return probed(secs(100, dc, repeat(30, 50, 0)...), dc, 1, 41) }
	spread := probed(secs(100, "dc-a", repeat(30, 50, 0)...), "dc-a", 1, 41)
	for k := range spread {
		spread[k].Latency = map[string][]int{"dc-a": {700}, "dc-b": {40800, 41000}, "dc-c": {40900}}
	}
	for _, c := range []struct {
		name    string
		callers map[string][]CallerSecond
		fail    string
	}{
		{"every caller served at home", map[string][]CallerSecond{"dc-a": home("dc-a"), "dc-b": home("dc-b"), "dc-c": home("dc-c")}, ""},
		{"calls spread over datacenters", map[string][]CallerSecond{"dc-a": spread, "dc-b": home("dc-b")}, "median call 40.90 ms"},
		{"latency not in place", map[string][]CallerSecond{"dc-a": probed(secs(100, "dc-a", repeat(30, 50, 0)...), "dc-a", 1, 1)}, "not in place"},
		{"no direct calls", map[string][]CallerSecond{"dc-a": secs(100, "dc-a", repeat(30, 50, 0)...)}, "no direct call"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Judge(Input{Scenario: "pause-server", FaultStart: 120, FaultEnd: 125, Latency: 20 * time.Millisecond, Callers: c.callers})
			got := strings.Join(r.Failures, "; ")
			if (c.fail == "") != (got == "") || !strings.Contains(got, c.fail) {
				t.Fatalf("failures %q, want one mentioning %q", got, c.fail)
			}
			if md := r.Markdown(); !strings.Contains(md, "20 ms added") {
				t.Fatalf("markdown without the latency table:\n%s", md)
			}
		})
	}
	// Without added latency nothing is judged about it.
	if r := Judge(Input{Scenario: "pause-server", FaultStart: 120, FaultEnd: 125, Callers: map[string][]CallerSecond{"dc-a": spread}}); len(r.Failures) != 0 {
		t.Fatalf("failures without latency: %v", r.Failures)
	}
}

func TestJudgeCutNeedsCallersBackHome(t *testing.T) {
	// dc-b's caller is sent to dc-a for 12 s after the heal.
	b := append(secs(100, "dc-b", repeat(20, 50, 0)...), secs(120, "dc-a", repeat(12, 50, 0)...)...)
	b = append(b, secs(132, "dc-b", repeat(5, 50, 0)...)...)
	r := Judge(Input{Scenario: "cut-datacenter", CutDatacenter: "dc-b", TTL: 3 * time.Second, FaultStart: 110, FaultEnd: 120,
		Callers: map[string][]CallerSecond{"dc-b": b, "dc-a": secs(100, "dc-a", repeat(37, 50, 0)...)}})
	if got := strings.Join(r.Failures, "; "); !strings.Contains(got, "caller in dc-b served by its own datacenter only 12 s after the heal") {
		t.Fatalf("failures %q", got)
	}
}

func TestJudgeUnhealthyAtEnd(t *testing.T) {
	clean := secs(100, "dc-a", repeat(30, 50, 0)...)
	r := Judge(Input{Scenario: "pause-server", FaultStart: 110, FaultEnd: 120, Callers: map[string][]CallerSecond{"dc-a": clean},
		UnhealthyAtEnd: []string{"reg-a: echo-b1"}})
	if got := strings.Join(r.Failures, "; "); !strings.Contains(got, "still unhealthy when the drill ended: reg-a: echo-b1") {
		t.Fatalf("failures %q", got)
	}
}

func TestJudgeXDSCaller(t *testing.T) {
	// seg is n seconds from t0 served by dc, ok and failed calls each.
	type seg struct {
		n, ok, failed int
		dc            string
	}
	timeline := func(segs ...seg) []CallerSecond {
		var out []CallerSecond
		at := int64(100)
		for _, s := range segs {
			out = append(out, secs(at, s.dc, repeat(s.n, s.ok, s.failed)...)...)
			at += int64(s.n)
		}
		return out
	}
	sdk := map[string][]CallerSecond{"dc-a": secs(100, "dc-a", repeat(50, 50, 0)...), "dc-c": secs(100, "dc-c", repeat(50, 50, 0)...)}
	// The cut lasts from 110 to 130.
	cut := func(xds []CallerSecond) Input {
		return Input{Scenario: "cut-datacenter", CutDatacenter: "dc-b", TTL: 3 * time.Second, FaultStart: 110, FaultEnd: 130,
			Callers: sdk, XDS: xds, XDSDatacenter: "dc-a", XDSHome: "dc-b"}
	}
	outage := func(xds []CallerSecond) Input {
		return Input{Scenario: "kill-all-servers", FaultStart: 110, FaultEnd: 130, Callers: sdk, XDS: xds, XDSDatacenter: "dc-a", XDSHome: "dc-b"}
	}
	for _, c := range []struct {
		name string
		in   Input
		fail string
	}{
		{"cut: leaves, calls elsewhere, comes back", cut(timeline(seg{10, 50, 0, "dc-b"}, seg{1, 20, 1, "dc-b"}, seg{4, 0, 1, ""},
			seg{15, 50, 0, "dc-c"}, seg{2, 50, 0, "dc-c"}, seg{18, 50, 0, "dc-b"})), ""},
		{"cut: stays with the cut datacenter", cut(timeline(seg{10, 50, 0, "dc-b"}, seg{12, 20, 30, "dc-b"}, seg{8, 50, 0, "dc-c"},
			seg{20, 50, 0, "dc-b"})), "only 12 s after dc-b was cut, more than TTL + the longest write gap + 5 s (8.0 s)"},
		{"cut: the leader was cut, an election first", func() Input {
			in := cut(timeline(seg{10, 50, 0, "dc-b"}, seg{10, 0, 1, ""}, seg{10, 50, 0, "dc-c"}, seg{20, 50, 0, "dc-b"}))
			in.WriteGap = 2500 * time.Millisecond
			return in
		}(), ""},
		{"cut: fails for long", cut(timeline(seg{10, 50, 0, "dc-b"}, seg{10, 0, 1, ""}, seg{10, 50, 0, "dc-c"},
			seg{20, 50, 0, "dc-b"})), "only 10 s after dc-b was cut"},
		{"cut: fails after leaving", cut(timeline(seg{10, 50, 0, "dc-b"}, seg{4, 20, 5, "dc-b"}, seg{1, 50, 0, "dc-c"}, seg{15, 45, 5, "dc-c"},
			seg{20, 50, 0, "dc-b"})), "after leaving dc-b"},
		{"cut: goes back to the cut datacenter", cut(timeline(seg{10, 50, 0, "dc-b"}, seg{4, 20, 5, "dc-b"}, seg{8, 50, 0, "dc-c"}, seg{1, 50, 0, "dc-b"},
			seg{7, 50, 0, "dc-c"}, seg{20, 50, 0, "dc-b"})), "50 went back to it"},
		{"cut: not back home", cut(timeline(seg{10, 50, 0, "dc-b"}, seg{4, 20, 5, "dc-b"}, seg{16, 50, 0, "dc-c"},
			seg{12, 50, 0, "dc-c"}, seg{8, 50, 0, "dc-b"})), "only 12 s after the heal"},
		{"not at home before the fault", cut(timeline(seg{10, 50, 0, "dc-c"}, seg{20, 50, 0, "dc-c"}, seg{20, 50, 0, "dc-b"})),
			"served by dc-b, want ≥ 99%"},
		{"servers gone: calls go on at home", outage(timeline(seg{50, 50, 0, "dc-b"})), ""},
		{"servers gone: calls fail", outage(timeline(seg{10, 50, 0, "dc-b"}, seg{20, 49, 1, "dc-b"}, seg{20, 50, 0, "dc-b"})), "during the fault"},
		{"servers gone: calls move", outage(timeline(seg{10, 50, 0, "dc-b"}, seg{20, 50, 0, "dc-c"}, seg{20, 50, 0, "dc-b"})), "0 were served by dc-b"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Judge(c.in)
			got := strings.Join(r.Failures, "; ")
			if (c.fail == "") != (got == "") || !strings.Contains(got, c.fail) {
				t.Fatalf("failures %q, want one mentioning %q", got, c.fail)
			}
			if r.XDS == nil || !strings.Contains(r.Markdown(), "xDS caller in dc-a") {
				t.Fatalf("no xDS caller in the report:\n%s", r.Markdown())
			}
		})
	}
	r := Judge(cut(timeline(seg{10, 50, 0, "dc-b"}, seg{1, 20, 1, "dc-b"}, seg{4, 0, 1, ""}, seg{15, 50, 0, "dc-c"}, seg{2, 50, 0, "dc-c"}, seg{18, 50, 0, "dc-b"})))
	if x := r.XDS; x.LeftCutS != 5 || x.BackHomeS != 2 || x.AwayRate != 1 || x.HomeBefore != 1 {
		t.Fatalf("xDS report %+v, want calls elsewhere after 5 s, back after 2 s, all calls away and before at home succeeding", *x)
	}
}

// The report's picture tells the drill second by second: every caller's
// calls stacked by serving datacenter with the failed ones on top, the
// writer's acknowledged and failed writes with the longest gap marked,
// axes and a legend. Its bars carry their numbers, so the test reads them.
func TestReportPicture(t *testing.T) {
	a := secs(100, "dc-a", repeat(10, 40, 0)...)
	b := append(secs(100, "dc-b", repeat(3, 20, 0)...), secs(103, "dc-c", repeat(7, 10, 0)...)...)
	b[4].Failed = 5
	in := Input{Scenario: "cut-datacenter", CutDatacenter: "dc-b", TTL: 3 * time.Second, FaultStart: 102, FaultEnd: 107,
		Callers: map[string][]CallerSecond{"dc-a": a, "dc-b": b}, WritesAcked: 40, WriteGap: 2500 * time.Millisecond,
		WriteGapStart: time.Unix(104, 0), Writes: []WriteSecond{{At: 100, Acked: 6}, {At: 104, Failed: 3}, {At: 107, Acked: 6}}}
	svg := Judge(in).SVG(in.FaultStart, in.FaultEnd)

	type rect struct {
		Class  string  `xml:"class,attr"`
		Caller string  `xml:"data-caller,attr"`
		Served string  `xml:"data-served,attr"`
		At     int64   `xml:"data-at,attr"`
		N      int     `xml:"data-n,attr"`
		Height float64 `xml:"height,attr"`
	}
	var doc struct {
		Title string `xml:"title"`
		Desc  string `xml:"desc"`
		Rects []rect `xml:"rect"`
		Texts []struct {
			Text string `xml:",chardata"`
		} `xml:"text"`
		Groups []struct {
			Texts []string `xml:"text"`
		} `xml:"g"`
		Paths []struct {
			Class   string `xml:"class,attr"`
			Seconds string `xml:"data-seconds,attr"`
		} `xml:"path"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatalf("the picture is not well-formed SVG: %v", err)
	}
	if !strings.Contains(doc.Title, "cut-datacenter") || !strings.Contains(doc.Desc, "caller in dc-b") {
		t.Errorf("title %q, description %q", doc.Title, doc.Desc)
	}
	bars := map[string]rect{}
	for _, r := range doc.Rects {
		bars[fmt.Sprintf("%s/%s/%s/%d", r.Class, r.Caller, r.Served, r.At)] = r
	}
	for key, want := range map[string]int{
		"calls/caller in dc-a/dc-a/100": 40, "calls/caller in dc-b/dc-b/102": 20, "calls/caller in dc-b/dc-c/103": 10,
		"failed/caller in dc-b//104": 5, "writes///100": 6, "writes-failed///104": 3,
	} {
		if got, ok := bars[key]; !ok || got.N != want {
			t.Errorf("bar %s: %+v (found %v), want %d", key, got, ok, want)
		}
	}
	// Heights are to scale within a panel: 20 calls stand twice as high as 10.
	if h20, h10 := bars["calls/caller in dc-b/dc-b/102"].Height, bars["calls/caller in dc-b/dc-c/103"].Height; h10 <= 0 || math.Abs(h20-2*h10) > 0.2 {
		t.Errorf("heights %.1f for 20 calls and %.1f for 10, want twice", h20, h10)
	}
	var texts []string
	for _, x := range doc.Texts {
		texts = append(texts, x.Text)
	}
	for _, g := range doc.Groups {
		texts = append(texts, g.Texts...)
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{"served by dc-a", "served by dc-b", "served by dc-c", "failed", "median call, ms (right axis)",
		"calls per second", "writes per second", "+0 s", "+5 s", "no write acknowledged for 2.5 s", "caller in dc-b"} {
		if !strings.Contains(all, want) {
			t.Errorf("the picture does not say %q", want)
		}
	}
	if len(doc.Paths) != 1 || doc.Paths[0].Class != "write-gap" || doc.Paths[0].Seconds != "2.5" {
		t.Errorf("the write gap's bracket: %+v", doc.Paths)
	}
}
