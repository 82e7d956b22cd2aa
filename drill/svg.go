package drill

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The report's picture: what the drill's callers and writer lived through,
// second by second. One panel per caller (the xDS caller too): its calls
// each second stacked by the datacenter that served them, failed calls on
// top in red, and its median call latency as a line on its own scale; then
// the writer's acknowledged and failed registrations, with the longest gap
// marked. Time runs left to right in seconds from the fault's start, the
// fault shaded. Bars and points carry data-* attributes (caller, serving
// datacenter, second, count), so a test reads the picture as numbers.

const (
	svgWidth  = 960
	svgLeft   = 64  // room for the calls axis and the panel's name
	svgRight  = 64  // room for the latency axis
	svgTop    = 56  // title and legend
	svgPanelH = 110 // one caller's panel
	svgGapH   = 34  // between panels (axis labels)
)

// palette colours serving datacenters in their sorted order; failed calls
// are red whatever the datacenters.
var palette = []string{"#4e79a7", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac", "#ff9da7"}

const failedColour = "#e15759"

type panel struct {
	name string // "caller in dc-a", "xDS caller in dc-a"
	secs []CallerSecond
}

// SVG draws the report as a picture (see above). faultStart and faultEnd
// bound the fault, unix seconds.
func (r Report) SVG(faultStart, faultEnd int64) string {
	var panels []panel
	for _, dc := range sortedKeys(r.Callers) {
		panels = append(panels, panel{"caller in " + dc, r.Callers[dc].Timeline})
	}
	if r.XDS != nil {
		panels = append(panels, panel{"xDS caller in " + r.XDS.Datacenter, r.XDS.Timeline})
	}
	// The time axis covers every second recorded.
	t0, t1 := int64(math.MaxInt64), int64(math.MinInt64)
	served := map[string]bool{}
	for _, p := range panels {
		for _, s := range p.secs {
			t0, t1 = min(t0, s.At), max(t1, s.At)
			for dc := range s.ByDC {
				served[dc] = true
			}
		}
	}
	for _, w := range r.Writes {
		t0, t1 = min(t0, w.At), max(t1, w.At)
	}
	if t0 > t1 {
		t0, t1 = faultStart, faultEnd
	}
	t1++ // the last second has a width
	dcs := sortedKeys(served)
	colour := map[string]string{}
	for i, dc := range dcs {
		colour[dc] = palette[i%len(palette)]
	}
	plotW := float64(svgWidth - svgLeft - svgRight)
	x := func(t int64) float64 { return svgLeft + float64(t-t0)/float64(max(t1-t0, 1))*plotW }
	barW := max(plotW/float64(max(t1-t0, 1))-1, 1)

	rows := len(panels)
	if len(r.Writes) > 0 {
		rows++
	}
	height := svgTop + rows*(svgPanelH+svgGapH) + 40
	var b strings.Builder
	verdict := "passed"
	if len(r.Failures) > 0 {
		verdict = "FAILED"
	}
	title := fmt.Sprintf("Drill %s: %s", r.Scenario, verdict)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11" role="img" aria-labelledby="t d">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<title id="t">%s</title>`+"\n", esc(title))
	fmt.Fprintf(&b, `<desc id="d">%s</desc>`+"\n", esc(r.summary()))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", svgWidth, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", svgLeft, esc(title))

	// Legend: serving datacenters, failed calls, latency, the fault.
	lx := float64(svgLeft)
	item := func(swatch, label string) {
		fmt.Fprintf(&b, `<g class="legend">%s<text x="%.1f" y="42">%s</text></g>`+"\n", swatch, lx+16, esc(label))
		lx += 16 + 6.2*float64(len(label)) + 16
	}
	for _, dc := range dcs {
		item(fmt.Sprintf(`<rect x="%.1f" y="33" width="12" height="12" fill="%s"/>`, lx, colour[dc]), "served by "+dc)
	}
	item(fmt.Sprintf(`<rect x="%.1f" y="33" width="12" height="12" fill="%s"/>`, lx, failedColour), "failed")
	item(fmt.Sprintf(`<line x1="%.1f" x2="%.1f" y1="39" y2="39" stroke="#222" stroke-width="2"/>`, lx, lx+12), "median call, ms (right axis)")
	item(fmt.Sprintf(`<rect x="%.1f" y="33" width="12" height="12" fill="#fbe3e3" stroke="#c00" stroke-dasharray="3 2"/>`, lx), "fault (between the dashed lines)")

	top := svgTop
	for _, p := range panels {
		r.callerPanel(&b, p, top, x, barW, colour, faultStart, faultEnd, t0, t1)
		top += svgPanelH + svgGapH
	}
	if len(r.Writes) > 0 {
		r.writesPanel(&b, top, x, barW, faultStart, faultEnd, t0, t1)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// summary is the picture in words, for its description.
func (r Report) summary() string {
	var parts []string
	for _, dc := range sortedKeys(r.Callers) {
		c := r.Callers[dc]
		parts = append(parts, fmt.Sprintf("caller in %s: %s before, %s during, %s after the fault; served by %s", dc, pct(c.Before), pct(c.During), pct(c.After), counts(c.ByDC)))
	}
	if x := r.XDS; x != nil {
		parts = append(parts, fmt.Sprintf("xDS caller in %s: %s during the fault; served by %s", x.Datacenter, pct(x.During), counts(x.ByDC)))
	}
	parts = append(parts, fmt.Sprintf("%d writes acknowledged, %d lost, longest gap %.1f s", r.WritesAcked, len(r.WritesLost), r.WriteGapS))
	return strings.Join(parts, ". ") + "."
}

// axes draws a panel's frame: the fault, the time axis in seconds from the
// fault's start, the left axis up to yMax (unit) and its name.
func axes(b *strings.Builder, name, unit string, top int, yMax float64, x func(int64) float64, faultStart, faultEnd, t0, t1 int64) {
	bottom := float64(top + svgPanelH)
	fmt.Fprintf(b, `<rect class="fault" x="%.1f" y="%d" width="%.1f" height="%d" fill="#fbe3e3"/>`+"\n",
		x(faultStart), top, max(x(faultEnd)-x(faultStart), 1), svgPanelH)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", svgLeft, top-4, esc(name))
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#444"/>`+"\n", svgLeft, svgWidth-svgRight, bottom, bottom)
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%.1f" stroke="#444"/>`+"\n", svgLeft, svgLeft, top, bottom)
	// Left axis: 0, half, max.
	for _, f := range []float64{0, 0.5, 1} {
		y := bottom - f*svgPanelH
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-4, y+4, trimFloat(f*yMax))
		if f > 0 {
			fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", svgLeft, svgWidth-svgRight, y, y)
		}
	}
	fmt.Fprintf(b, `<text transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", float64(top)+svgPanelH/2, esc(unit))
	// Time axis: a tick every 5 s (10 s past a minute), labelled in
	// seconds from the fault's start.
	step := int64(5)
	if t1-t0 > 60 {
		step = 10
	}
	for t := faultStart - (faultStart-t0)/step*step; t <= t1; t += step {
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#444"/>`+"\n", x(t), x(t), bottom, bottom+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%+d s</text>`+"\n", x(t), bottom+15, t-faultStart)
	}
}

func (r Report) callerPanel(b *strings.Builder, p panel, top int, x func(int64) float64, barW float64, colour map[string]string, faultStart, faultEnd, t0, t1 int64) {
	yMax := 1.0
	latMax := 0.0
	med := make([]float64, len(p.secs))
	for i, s := range p.secs {
		yMax = max(yMax, float64(s.OK+s.Failed))
		var all []int
		for _, v := range s.Latency {
			all = append(all, v...)
		}
		med[i] = medianMs(all)
		latMax = max(latMax, med[i])
	}
	yMax = niceCeil(yMax)
	latMax = niceCeil(max(latMax, 1))
	axes(b, p.name, "calls per second", top, yMax, x, faultStart, faultEnd, t0, t1)
	bottom := float64(top + svgPanelH)
	h := func(n int) float64 { return float64(n) / yMax * svgPanelH }
	for _, s := range p.secs {
		y := bottom
		dcs := sortedKeys(s.ByDC)
		for _, dc := range dcs {
			n := s.ByDC[dc]
			if n == 0 {
				continue
			}
			y -= h(n)
			fmt.Fprintf(b, `<rect class="calls" data-caller="%s" data-served="%s" data-at="%d" data-n="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
				esc(p.name), esc(dc), s.At, n, x(s.At), y, barW, h(n), colour[dc])
		}
		if s.Failed > 0 {
			y -= h(s.Failed)
			fmt.Fprintf(b, `<rect class="failed" data-caller="%s" data-at="%d" data-n="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
				esc(p.name), s.At, s.Failed, x(s.At), y, barW, h(s.Failed), failedColour)
		}
	}
	// The median call latency, on the right axis.
	var pts []string
	for i, s := range p.secs {
		if med[i] == 0 {
			continue
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.At)+barW/2, bottom-med[i]/latMax*svgPanelH))
	}
	if len(pts) > 0 {
		fmt.Fprintf(b, `<polyline class="latency" data-caller="%s" fill="none" stroke="#222" stroke-width="1.5" points="%s"/>`+"\n", esc(p.name), strings.Join(pts, " "))
	}
	faultLines(b, top, x, faultStart, faultEnd)
	right := svgWidth - svgRight
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%.1f" stroke="#444"/>`+"\n", right, right, top, bottom)
	for _, f := range []float64{0, 0.5, 1} {
		fmt.Fprintf(b, `<text x="%d" y="%.1f">%s ms</text>`+"\n", right+4, bottom-f*svgPanelH+4, trimFloat(f*latMax))
	}
}

func (r Report) writesPanel(b *strings.Builder, top int, x func(int64) float64, barW float64, faultStart, faultEnd, t0, t1 int64) {
	yMax := 1.0
	for _, w := range r.Writes {
		yMax = max(yMax, float64(w.Acked+w.Failed))
	}
	yMax = niceCeil(yMax)
	name := fmt.Sprintf("writes: %d acknowledged, %d lost afterwards, longest gap %.1f s", r.WritesAcked, len(r.WritesLost), r.WriteGapS)
	axes(b, name, "writes per second", top, yMax, x, faultStart, faultEnd, t0, t1)
	bottom := float64(top + svgPanelH)
	h := func(n int) float64 { return float64(n) / yMax * svgPanelH }
	for _, w := range r.Writes {
		if w.Acked > 0 {
			fmt.Fprintf(b, `<rect class="writes" data-at="%d" data-n="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#8c8c8c"/>`+"\n",
				w.At, w.Acked, x(w.At), bottom-h(w.Acked), barW, h(w.Acked))
		}
		if w.Failed > 0 {
			fmt.Fprintf(b, `<rect class="writes-failed" data-at="%d" data-n="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
				w.At, w.Failed, x(w.At), bottom-h(w.Acked)-h(w.Failed), barW, h(w.Failed), failedColour)
		}
	}
	faultLines(b, top, x, faultStart, faultEnd)
	if r.WriteGapS > 0 && r.WriteGapStart > 0 {
		// The longest gap, as a bracket over the panel. x takes whole
		// seconds; the gap's ends are fractions of one.
		scale := (x(t0+1) - x(t0))
		from := x(t0) + (r.WriteGapStart-float64(t0))*scale
		to := from + r.WriteGapS*scale
		y := float64(top) + 8
		fmt.Fprintf(b, `<path class="write-gap" data-seconds="%.1f" d="M%.1f,%.1f v-5 H%.1f v5" fill="none" stroke="#c00" stroke-width="1.5"/>`+"\n", r.WriteGapS, from, y+5, to)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#c00" text-anchor="middle">no write acknowledged for %.1f s</text>`+"\n", (from+to)/2, y+16, r.WriteGapS)
	}
}

// faultLines marks the fault's start and end over a panel's bars, which
// may hide its shading.
func faultLines(b *strings.Builder, top int, x func(int64) float64, faultStart, faultEnd int64) {
	for _, t := range []int64{faultStart, faultEnd} {
		fmt.Fprintf(b, `<line class="fault-edge" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#c00" stroke-dasharray="4 3"/>`+"\n", x(t), x(t), top, top+svgPanelH)
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

func esc(s string) string { return html.EscapeString(s) }
