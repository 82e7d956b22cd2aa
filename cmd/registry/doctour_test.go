package main

// The request examples of docs/api.md, docs/consul-compat.md and
// docs/dns.md run here, as the README's curl tour does (system_test.go):
// every ```sh block of a document, top to bottom, against one fresh
// `registry dev` of its own, with real curl, dig and registry commands.
// Where a ```json or ```text block follows a ```sh block (nothing but blank
// lines between them), it is what the block prints, and the test compares.
//
// A block that cannot run here says so, and why, on the line before it:
//
//	<!-- not run: needs a three-node cluster -->
//
// What the blocks may assume, the test provides: a dev server (started with
// the flags of a `go run ./cmd/registry dev …` block, when the document has
// one before its other blocks), its HTTP API where the documents say
// 127.0.0.1:7400 and its DNS where they say port 7453 (the test's servers
// listen on free ports, and the blocks and their outputs are rewritten to
// and from them), the registry command on PATH (for `go run ./cmd/registry`
// too), REGISTRY_SERVER for the client commands, and $ADMIN.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/internal/testtool"
)

// --- Markdown ------------------------------------------------------------------

// mdBlock is one fenced code block of a Markdown file.
type mdBlock struct {
	lang     string // the opening fence's info string: sh, json, text…
	body     string
	line     int    // line of the opening fence, from 1
	section  string // the last "## " heading before it
	before   string // the line just before the opening fence
	adjacent bool   // only blank lines since the previous block closed
}

// markdownBlocks returns the fenced code blocks of the Markdown file at path.
func markdownBlocks(t *testing.T, path string) []mdBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks      []mdBlock
		cur         *mdBlock
		body        strings.Builder
		section     string
		prev        string
		textSince   bool
		openingLine int
	)
	for i, line := range strings.Split(string(b), "\n") {
		if cur != nil {
			if strings.TrimSpace(line) == "```" {
				cur.body = body.String()
				blocks = append(blocks, *cur)
				cur, textSince, prev = nil, false, line
				body.Reset()
				continue
			}
			body.WriteString(line + "\n")
			continue
		}
		if info, ok := strings.CutPrefix(line, "```"); ok {
			openingLine = i + 1
			cur = &mdBlock{lang: strings.TrimSpace(info), line: openingLine, section: section, before: prev,
				adjacent: len(blocks) > 0 && !textSince}
			continue
		}
		if h, ok := strings.CutPrefix(line, "## "); ok {
			section = strings.TrimSpace(h)
		}
		if strings.TrimSpace(line) != "" {
			textSince = true
		}
		prev = line
	}
	if cur != nil {
		t.Fatalf("%s:%d: code block never closed", path, openingLine)
	}
	return blocks
}

// notRunMarker is the comment that keeps the next block out of the test.
var notRunMarker = regexp.MustCompile(`^<!--\s*not run\b\s*:?(.*?)-->\s*$`)

// notRun returns whether the line before a block marks it not run, and why.
func notRun(before string) (marked bool, reason string) {
	m := notRunMarker.FindStringSubmatch(strings.TrimSpace(before))
	if m == nil {
		return false, ""
	}
	return true, strings.TrimSpace(m[1])
}

// --- the tour ------------------------------------------------------------------

func TestDocTour(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: builds and runs the registry binary, curl and dig")
	}
	for tool, pkg := range map[string]string{"bash": "bash", "curl": "curl", "dig": "dnsutils"} {
		testtool.Find(t, pkg, tool) // the documents' examples run them
	}
	bin := buildRegistry(t)
	for _, doc := range []struct {
		name    string
		minRuns int // a floor, so that a parsing mistake cannot pass by running nothing
	}{
		{"api.md", 40},
		{"consul-compat.md", 2},
		{"dns.md", 2},
	} {
		t.Run(doc.name, func(t *testing.T) {
			t.Parallel()
			d := runDocTour(t, bin, filepath.Join("docs", doc.name))
			if d.ran < doc.minRuns {
				t.Errorf("docs/%s: %d blocks ran; want at least %d", doc.name, d.ran, doc.minRuns)
			}
		})
	}
}

// docTour runs the blocks of one document against its own dev server.
type docTour struct {
	t        *testing.T
	doc      string // the document's path from the repository root
	httpAddr string // the dev server's, for 127.0.0.1:7400
	dnsAddr  string // the dev server's, for 127.0.0.1:7453
	dir      string // the blocks' working directory
	env      []string
	ran      int
	notRun   []string // "line: reason"
}

// docDevBlock is a block that starts the dev server the examples run against.
var docDevBlock = regexp.MustCompile(`^go run \./cmd/registry dev((?: [^\s;&|]+)*)\n$`)

var docBannerDNS = regexp.MustCompile(`Switchyard dev server ready: http://\S+, dns (\S+), xds \S+ `)

func runDocTour(t *testing.T, bin, doc string) *docTour {
	blocks := markdownBlocks(t, filepath.Join("..", "..", doc))
	d := &docTour{t: t, doc: doc, dir: t.TempDir()}

	// The sh blocks, each with the output blocks right after it.
	type step struct {
		block   mdBlock
		outputs []mdBlock
		notRun  bool
		reason  string
	}
	var steps []step
	for i, b := range blocks {
		if marked, reason := notRun(b.before); marked && (b.lang != "sh" || reason == "") {
			t.Errorf("%s:%d: a not-run marker needs a reason and a ```sh block: %q before a ```%s block", doc, b.line, b.before, b.lang)
		}
		if b.lang != "sh" {
			continue
		}
		s := step{block: b}
		s.notRun, s.reason = notRun(b.before)
		for _, o := range blocks[i+1:] {
			if !o.adjacent || (o.lang != "json" && o.lang != "text") {
				break
			}
			s.outputs = append(s.outputs, o)
		}
		steps = append(steps, s)
	}

	// The dev server: started as the document's first block says, if it
	// has one; it listens where the test says.
	args := []string{"dev"}
	first := slices.IndexFunc(steps, func(s step) bool { return !s.notRun })
	if first >= 0 {
		if m := docDevBlock.FindStringSubmatch(steps[first].block.body); m != nil {
			args = append(args, strings.Fields(m[1])...)
			d.ran++
			steps = slices.Delete(steps, first, first+1)
		}
	}
	d.httpAddr = freeAddr(t)
	p := startProc(t, bin, nil, append(args, "--http-addr", d.httpAddr, "--dns-addr", "127.0.0.1:0")...)
	waitHealthy(t, p, d.httpAddr, 20*time.Second)
	waitBanner(t, p)
	m := docBannerDNS.FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("no DNS address in the dev server's banner:\n%s", p.stdout.String())
	}
	d.dnsAddr = m[1]

	// A secret for $ADMIN, as the access control examples use it: the dev
	// server runs with access control off, so that the other examples need
	// no token, and takes the header without checking it.
	admin := strings.TrimSpace(cli(t, bin, "token", "secret").stdout)
	d.env = append(os.Environ(),
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"REGISTRY_SERVER=http://"+d.httpAddr,
		"ADMIN="+admin,
		"LC_ALL=C")

	for _, s := range steps {
		if s.notRun {
			d.notRun = append(d.notRun, fmt.Sprintf("line %d: %s", s.block.line, s.reason))
			continue
		}
		d.ran++
		d.run(s.block, s.outputs)
	}
	t.Logf("%s: %d blocks run, %d not run", doc, d.ran, len(d.notRun))
	for _, r := range d.notRun {
		t.Logf("%s: not run: %s", doc, r)
	}
	return d
}

// rewrite points a block at the test's server and binary.
func (d *docTour) rewrite(script string) string {
	_, dnsPort, _ := strings.Cut(d.dnsAddr, ":")
	return strings.NewReplacer(
		"127.0.0.1:7400", d.httpAddr,
		"127.0.0.1:7453", d.dnsAddr,
		"-p 7453", "-p "+dnsPort,
		"go run ./cmd/registry", "registry",
	).Replace(script)
}

// unrewrite turns the test server's addresses in an output back into the
// documents' ones.
func (d *docTour) unrewrite(out string) string {
	_, dnsPort, _ := strings.Cut(d.dnsAddr, ":")
	return strings.NewReplacer(
		d.httpAddr, "127.0.0.1:7400",
		d.dnsAddr, "127.0.0.1:7453",
		"127.0.0.1#"+dnsPort, "127.0.0.1#7453", // dig's SERVER line
	).Replace(strings.ReplaceAll(out, "\r\n", "\n"))
}

// run runs one block and compares what it prints with outputs, if any.
func (d *docTour) run(b mdBlock, outputs []mdBlock) {
	t := d.t
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n"+d.rewrite(b.body))
	cmd.Dir, cmd.Env = d.dir, d.env
	// The block's background jobs are in its process group: a timeout
	// ends them all, and none outlives the block.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	took := time.Since(began).Round(time.Millisecond)
	where := fmt.Sprintf("%s:%d", d.doc, b.line)
	if err != nil {
		t.Errorf("%s: the block failed after %s: %v\n%s--- stdout ---\n%s--- stderr ---\n%s", where, took, err, indent(b.body), stdout.String(), stderr.String())
		return
	}
	t.Logf("%s: ran in %s", where, took)
	if len(outputs) == 0 {
		return
	}
	got := d.unrewrite(stdout.String())
	if diffs := compareOutput(outputs, got); len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("… and %d more", len(diffs)-20))
		}
		t.Errorf("%s: the output differs from the document's (line %d):\n%s--- differences (document, then actual; after normalising) ---\n%s\n--- actual output ---\n%s--- stderr ---\n%s",
			where, outputs[0].line, indent(b.body), strings.Join(diffs, "\n"), got, stderr.String())
	}
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString("    " + line)
	}
	return b.String()
}

// --- comparing outputs -----------------------------------------------------------

// compareOutput compares a block's output with the document's output blocks,
// in order: a text block takes as many lines as it has (the last one takes
// the rest), a json block as many JSON values as it holds. It returns the
// differences, none if the output matches.
func compareOutput(outputs []mdBlock, got string) []string {
	var diffs []string
	rest := got
	for i, o := range outputs {
		at := fmt.Sprintf("```%s at line %d", o.lang, o.line)
		switch o.lang {
		case "json":
			dec := json.NewDecoder(strings.NewReader(o.body))
			dec.UseNumber()
			for n := 0; ; n++ {
				var want any
				if err := dec.Decode(&want); err != nil {
					if !errors.Is(err, io.EOF) {
						diffs = append(diffs, fmt.Sprintf("%s: the document's JSON does not parse: %v", at, err))
					}
					break
				}
				gd := json.NewDecoder(strings.NewReader(rest))
				gd.UseNumber()
				var g any
				if err := gd.Decode(&g); err != nil {
					return append(diffs, fmt.Sprintf("%s: value %d: the output holds no JSON value here (%v): %q", at, n+1, err, rest))
				}
				rest = rest[gd.InputOffset():]
				diffJSON("", normJSON("", want), normJSON("", g), &diffs)
			}
		case "text":
			want := strings.Split(strings.TrimSuffix(o.body, "\n"), "\n")
			rest = strings.TrimLeft(rest, "\n")
			var lines []string
			if i == len(outputs)-1 {
				lines = strings.Split(strings.TrimRight(rest, "\n"), "\n")
				rest = ""
			} else {
				for range want {
					line, after, _ := strings.Cut(rest, "\n")
					lines, rest = append(lines, line), after
				}
			}
			for j := range max(len(want), len(lines)) {
				var w, g string
				if j < len(want) {
					w = normText(want[j])
				}
				if j < len(lines) {
					g = normText(lines[j])
				}
				switch {
				case j >= len(lines):
					diffs = append(diffs, fmt.Sprintf("%s, line %d: document %q, actual: no such line", at, j+1, w))
				case j >= len(want):
					diffs = append(diffs, fmt.Sprintf("%s, line %d: document: no such line, actual %q", at, j+1, g))
				case w != g:
					diffs = append(diffs, fmt.Sprintf("%s, line %d: document %q, actual %q", at, j+1, w, g))
				}
			}
		default:
			diffs = append(diffs, fmt.Sprintf("%s: not an output block", at))
		}
	}
	if strings.TrimSpace(rest) != "" {
		diffs = append(diffs, fmt.Sprintf("the output goes on past what the document shows: %q", rest))
	}
	return diffs
}

// What varies from run to run, and is normalised on both sides before
// comparing:
//
//   - indexes (X-Switchyard-Index, X-Consul-Index, JSON keys "index",
//     "*_index" and Consul's "*Index", switchyard_raft_applied_index, and
//     "modify_index is N" in a conflict's message): how many log entries a
//     dev server writes as it starts, and whether the leader's health
//     judgements of two instances fall in one round or two, vary; and the
//     delta token of a lookup (X-Switchyard-Delta-Token), which holds one;
//   - times (any RFC 3339 string, the Date header): the clock;
//   - durations the server measures (duration_ms, last_heartbeat_age_ms);
//   - the random accessor IDs and secrets of tokens (a 32-digit hex
//     accessor_id, a secret starting with swy_);
//   - ports the kernel picks (127.0.0.1:N but for the documents' 7400 and
//     7453: the Raft and gossip ports of a dev server);
//   - the address of the host's resolver in a probe's output ("lookup NAME
//     on ADDRESS:"; the documents write "on …:");
//   - sizes that follow from the above (Content-Length, a snapshot's
//     "bytes");
//   - the width of a table's columns, which follows those values, and
//     dig's tabs: a run of spaces or tabs counts as one space.
var (
	normPort      = regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	normHeader    = regexp.MustCompile(`(?i)^(date|content-length|x-switchyard-index|x-switchyard-delta-token|x-consul-index): .*$`)
	normMetric    = regexp.MustCompile(`^(switchyard_raft_applied_index) \d+$`)
	normSpaces    = regexp.MustCompile(`[ \t]+`)
	normIndexIs   = regexp.MustCompile(`\b(\w*index) is \d+`)
	normResolver  = regexp.MustCompile(`(lookup \S+ on )(?:\S+?:\d+|…):`)
	normAccessor  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	normDurations = map[string]bool{"duration_ms": true, "last_heartbeat_age_ms": true}
)

// normString normalises what varies within a string, in text or JSON.
func normString(s string) string {
	s = normIndexIs.ReplaceAllString(s, "$1 is <index>")
	s = normResolver.ReplaceAllString(s, "${1}…:")
	return normPort.ReplaceAllStringFunc(s, func(a string) string {
		if p := strings.TrimPrefix(a, "127.0.0.1:"); p == "7400" || p == "7453" {
			return a
		}
		return "127.0.0.1:<port>"
	})
}

func normText(line string) string {
	line = strings.TrimRight(line, " \t")
	line = normHeader.ReplaceAllString(line, "$1: <varies>")
	line = normMetric.ReplaceAllString(line, "$1 <index>")
	return normSpaces.ReplaceAllString(normString(line), " ")
}

// normJSON normalises a decoded JSON value found under key.
func normJSON(key string, v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normJSON(k, x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normJSON(key, x)
		}
		return out
	case json.Number:
		switch {
		case strings.HasSuffix(strings.ToLower(key), "index"):
			return "<index>"
		case normDurations[key]:
			return "<duration>"
		case key == "bytes":
			return "<size>"
		}
		return v
	case string:
		switch {
		case key == "accessor_id" && normAccessor.MatchString(v):
			return "<accessor>"
		case key == "secret" && strings.HasPrefix(v, "swy_"):
			return "<secret>"
		}
		if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return "<time>"
		}
		return normString(v)
	}
	return v
}

// diffJSON appends the differences between two normalised JSON values.
func diffJSON(path string, want, got any, diffs *[]string) {
	show := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	at := path
	if at == "" {
		at = "."
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*diffs = append(*diffs, fmt.Sprintf("%s: document %s, actual %s", at, show(want), show(got)))
			return
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inG:
				*diffs = append(*diffs, fmt.Sprintf("%s.%s: document %s, actual: absent", path, k, show(wv)))
			case !inW:
				*diffs = append(*diffs, fmt.Sprintf("%s.%s: document: absent, actual %s", path, k, show(gv)))
			default:
				diffJSON(path+"."+k, wv, gv, diffs)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			*diffs = append(*diffs, fmt.Sprintf("%s: document %s, actual %s", at, show(want), show(got)))
			return
		}
		for i := range max(len(w), len(g)) {
			p := path + "[" + strconv.Itoa(i) + "]"
			switch {
			case i >= len(g):
				*diffs = append(*diffs, fmt.Sprintf("%s: document %s, actual: absent", p, show(w[i])))
			case i >= len(w):
				*diffs = append(*diffs, fmt.Sprintf("%s: document: absent, actual %s", p, show(g[i])))
			default:
				diffJSON(p, w[i], g[i], diffs)
			}
		}
	case json.Number:
		if g, ok := got.(json.Number); ok {
			wf, err1 := w.Float64()
			gf, err2 := g.Float64()
			if err1 == nil && err2 == nil && wf == gf {
				return
			}
		}
		*diffs = append(*diffs, fmt.Sprintf("%s: document %s, actual %s", at, show(want), show(got)))
	default:
		if show(want) != show(got) {
			*diffs = append(*diffs, fmt.Sprintf("%s: document %s, actual %s", at, show(want), show(got)))
		}
	}
}
