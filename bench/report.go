package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// table is a markdown table: the output is meant to be pasted into
// docs/benchmarks/history.md as it is.
type table struct {
	title  string
	header []string
	rows   [][]string
	notes  []string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	width := make([]int, len(t.header))
	for i, h := range t.header {
		width[i] = len(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	if t.title != "" {
		fmt.Fprintf(&b, "%s\n\n", t.title)
	}
	line := func(cells []string, fill func(i int, c string) string) {
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + fill(i, c) + " |")
		}
		b.WriteString("\n")
	}
	line(t.header, func(i int, c string) string { return pad(c, width[i], i > 0) })
	sep := make([]string, len(t.header))
	line(sep, func(i int, _ string) string {
		if i == 0 {
			return strings.Repeat("-", width[i])
		}
		return strings.Repeat("-", width[i]-1) + ":"
	})
	for _, r := range t.rows {
		line(r, func(i int, c string) string { return pad(c, width[i], i > 0) })
	}
	for _, n := range t.notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func pad(s string, n int, right bool) string {
	if len(s) >= n {
		return s
	}
	if right {
		return strings.Repeat(" ", n-len(s)) + s
	}
	return s + strings.Repeat(" ", n-len(s))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fmtRate renders ops/s with a thousands separator.
func fmtRate(v float64) string { return thousands(int64(v + 0.5)) }

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func fmtMs(v float64) string {
	switch {
	case v < 0 && v > -10, v >= 0 && v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100 && v > -100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// fmtCPU renders the servers' CPU per operation, "-" when not measured.
func fmtCPU(r loadResult) string {
	if r.ServerCPUs == 0 {
		return "-"
	}
	return thousands(int64(r.CPUPerOpUs + 0.5))
}

// fmtCores renders the servers' average CPU use in cores.
func fmtCores(r loadResult) string {
	if r.ServerCPUs == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r.ServerCores)
}

// fmtSelfCPU renders the load generator's own CPU per operation.
func fmtSelfCPU(r loadResult) string {
	if r.SelfCPUPerOpUs == 0 {
		return "-"
	}
	return thousands(int64(r.SelfCPUPerOpUs + 0.5))
}

// fmtCPUPrecise renders CPU per operation with one decimal below 100 µs.
func fmtCPUPrecise(r loadResult) string {
	if r.ServerCPUs == 0 {
		return "-"
	}
	if r.CPUPerOpUs < 100 {
		return fmt.Sprintf("%.1f", r.CPUPerOpUs)
	}
	return thousands(int64(r.CPUPerOpUs + 0.5))
}
