// Package archtest holds the test that keeps docs/architecture.md true to
// the code: the import graph of the module's own packages, the layers they
// sit in, the rules the document states about who imports what, and its
// list of DESIGN.md files. It has no other files: it is no part of the
// graph it checks.
package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// update rewrites the document's import graph block from the code
// (go test ./internal/archtest -update). The layers and rules are claims,
// and stay for a person to change.
var update = flag.Bool("update", false, "rewrite the import graph block of "+docPath+" from the code")

// docPath is the document checked, relative to the module's root.
const docPath = "docs/architecture.md"

// The fenced blocks of docPath this test reads, by their info string.
const (
	graphBlock  = "imports"
	layersBlock = "layers"
	rulesBlock  = "rules"
)

// platforms are the targets whose import graphs are joined: a file built
// for one system only (drill/delay, raft's lock) may import what the
// others do not, and the documented graph must not depend on the machine
// the test runs on.
var platforms = [][2]string{{"linux", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}}

// codeGraph is what `go list` says about the module's packages. Packages of
// the module are named relative to the module's path ("raft",
// "api/wire"); others by their full import path.
type codeGraph struct {
	module string
	// imports: a package's direct imports among the module's packages,
	// from its non-test files.
	imports map[string]map[string]bool
	// deps: every package of ours it depends on, directly or not; others:
	// every other package it depends on (the standard library's included),
	// by full path.
	deps, others map[string]map[string]bool
}

func (g *codeGraph) packages() []string { return slices.Sorted(maps.Keys(g.imports)) }

func TestImportGraphMatchesTheDocument(t *testing.T) {
	root := moduleRoot(t)
	g := loadGraph(t, root)
	doc := readDoc(t, root)
	paste := fmt.Sprintf("The code's graph, to paste over the old block (or run go test ./internal/archtest -update):\n\n%s", formatGraph(g))

	lines, at, err := fencedBlock(doc, graphBlock)
	if err != nil {
		t.Fatalf("%s: %v\n\n%s", docPath, err, paste)
	}
	if *update {
		rewriteBlock(t, root, doc, at, len(lines), formatGraph(g))
		return
	}
	documented, err := parseGraph(lines, at)
	if err != nil {
		t.Fatalf("%s: %v\n\n%s", docPath, err, paste)
	}
	if diff := diffGraphs(documented, g.imports); diff != "" {
		t.Errorf("the import graph in %s (```%s block, line %d) no longer matches the code:\n%s\n"+
			"If the change is meant, check the document's layers, rules and explanation too.\n%s",
			docPath, graphBlock, at, diff, paste)
	}
}

// rewriteBlock replaces the n lines after line at of the document (a
// fenced block's body, at its opening fence) with block's body.
func rewriteBlock(t *testing.T, root, doc string, at, n int, block string) {
	t.Helper()
	lines := strings.SplitAfter(doc, "\n")
	body := strings.SplitAfter(block, "\n")
	body = body[1 : len(body)-2] // without the fences and the empty tail
	out := slices.Concat(lines[:at], body, lines[at+n:])
	if err := os.WriteFile(filepath.Join(root, docPath), []byte(strings.Join(out, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("rewrote the import graph block of %s", docPath)
}

func TestLayersOfTheDocument(t *testing.T) {
	root := moduleRoot(t)
	g := loadGraph(t, root)
	lines, at, err := fencedBlock(readDoc(t, root), layersBlock)
	if err != nil {
		t.Fatalf("%s: %v", docPath, err)
	}
	layers, err := parseLayers(lines, at)
	if err != nil {
		t.Fatalf("%s: %v", docPath, err)
	}
	pkgs := g.packages()
	for _, l := range layers {
		for _, p := range l.patterns {
			if len(matching(p, pkgs)) == 0 {
				t.Errorf("%s line %d: layer %q names %s, which is no package of ours", docPath, l.line, l.name, p)
			}
		}
	}
	// Every package sits in exactly one layer.
	layerOf := map[string]int{}
	for _, p := range pkgs {
		var in []int
		for i, l := range layers {
			if slices.ContainsFunc(l.patterns, func(pat string) bool { return match(pat, p) }) {
				in = append(in, i)
			}
		}
		switch len(in) {
		case 0:
			t.Errorf("%s: package %s is in no layer of the ```%s block (line %d): add it to the layer it belongs to", docPath, p, layersBlock, at)
		case 1:
			layerOf[p] = in[0]
		default:
			var names []string
			for _, i := range in {
				names = append(names, layers[i].name)
			}
			t.Errorf("%s: package %s is in more than one layer: %s", docPath, p, strings.Join(names, ", "))
		}
	}
	// Dependencies point down only: a package imports only packages of the
	// layers below its own (the block lists the top layer first).
	for _, p := range pkgs {
		lp, ok := layerOf[p]
		if !ok {
			continue
		}
		for _, d := range slices.Sorted(maps.Keys(g.imports[p])) {
			if ld, ok := layerOf[d]; ok && ld <= lp {
				where := "its own layer"
				if ld < lp {
					where = "the layer above, " + layers[ld].name
				}
				t.Errorf("%s (%s) imports %s, which is in %s: dependencies must point down", p, layers[lp].name, d, where)
			}
		}
	}
}

func TestRulesOfTheDocument(t *testing.T) {
	root := moduleRoot(t)
	g := loadGraph(t, root)
	lines, at, err := fencedBlock(readDoc(t, root), rulesBlock)
	if err != nil {
		t.Fatalf("%s: %v", docPath, err)
	}
	if len(lines) == 0 {
		t.Fatalf("%s: the ```%s block (line %d) is empty", docPath, rulesBlock, at)
	}
	for i, line := range lines {
		if strings.TrimSpace(line) == "" {
			continue
		}
		n := at + 1 + i
		r, err := parseRule(line)
		if err != nil {
			t.Errorf("%s line %d: %v", docPath, n, err)
			continue
		}
		for _, problem := range r.check(g) {
			t.Errorf("%s line %d: %q: %s", docPath, n, strings.TrimSpace(line), problem)
		}
	}
}

// The document links every DESIGN.md of the repository, and nothing else
// by that name.
func TestDesignDocumentsLinked(t *testing.T) {
	root := moduleRoot(t)
	doc := readDoc(t, root)
	linked := map[string]bool{}
	for _, m := range regexp.MustCompile(`\]\(\.\./([^)#\s]*DESIGN\.md)\)`).FindAllStringSubmatch(doc, -1) {
		linked[m[1]] = true
	}
	onDisk := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "DESIGN.md" {
			rel, _ := filepath.Rel(root, path)
			onDisk[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range slices.Sorted(maps.Keys(linked)) {
		if !onDisk[f] {
			t.Errorf("%s links ../%s, which does not exist", docPath, f)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(onDisk)) {
		if !linked[f] {
			t.Errorf("%s does not link %s: add it to the list of DESIGN.md files", docPath, f)
		}
	}
}

// thinMains are programs whose main only hands over to a package that has
// the DESIGN.md: nothing is decided in them.
var thinMains = map[string]bool{"cmd/registry-bench": true}

// Every package says why it is the way it is, next to its code.
func TestEveryPackageHasADesignDocument(t *testing.T) {
	root := moduleRoot(t)
	g := loadGraph(t, root)
	for _, pkg := range g.packages() {
		if thinMains[pkg] {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(pkg), "DESIGN.md")); err != nil {
			t.Errorf("package %s has no DESIGN.md: write what it is for and the decisions in it, and link it from %s", pkg, docPath)
		}
	}
}

// The blocks' readers and the rules, on a small graph of their own.
func TestReadersAndRules(t *testing.T) {
	lines, at, err := fencedBlock("# x\n\n```imports\na → b, c\nb → (none)\nc -> b\n```\n", graphBlock)
	if err != nil || at != 3 || len(lines) != 3 {
		t.Fatalf("fencedBlock: %q at %d, %v", lines, at, err)
	}
	doc, err := parseGraph(lines, at)
	if err != nil {
		t.Fatal(err)
	}
	code := map[string]map[string]bool{"a": {"b": true}, "b": {}, "c": {"b": true}, "d": {}}
	diff := diffGraphs(doc, code)
	for _, want := range []string{"package d is in the code", "- a → c"} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff %q lacks %q", diff, want)
		}
	}
	for _, bad := range []string{"a b → c", "a → b c", "no arrow"} {
		if _, err := parseGraph([]string{bad}, 0); err == nil {
			t.Errorf("parseGraph(%q) took it", bad)
		}
	}
	if _, _, err := fencedBlock("```imports\na → b\n```\n```imports\n```\n", graphBlock); err == nil {
		t.Error("two graph blocks taken")
	}

	g := &codeGraph{
		imports: map[string]map[string]bool{"a": {"b": true}, "b": {}, "x/y": {"b": true}},
		deps:    map[string]map[string]bool{"a": {"b": true}, "b": {}, "x/y": {"b": true}},
		others: map[string]map[string]bool{"a": {"example.com/m": true, "example.com/m/sub": true},
			"b": {"example.com/m": true, "example.com/m/sub": true}, "x/y": {"example.com/mm": true}},
	}
	for line, want := range map[string]int{
		"b imports none of ours":               0,
		"a imports none of ours":               1,
		"a imports only b":                     0,
		"a, x/... imports only c":              1, // c is no package
		"x/... never depends on example.com/m": 0,
		"a never depends on example.com/m":     1,
		"nothing imports a, x/...":             0,
		"nothing imports b":                    2,
		"only a, x/y import b":                 0,
		"only a imports b":                     1,
	} {
		r, err := parseRule(line)
		if err != nil {
			t.Errorf("%q: %v", line, err)
			continue
		}
		if got := r.check(g); len(got) != want {
			t.Errorf("%q: %d problems %q, want %d", line, len(got), got, want)
		}
	}
	if _, err := parseRule("a should not import b"); err == nil {
		t.Error("a line that is no rule was taken")
	}
}

// moduleRoot is the directory holding go.mod, above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func readDoc(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, docPath))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listed is the part of `go list -json` this test reads.
type listed struct {
	ImportPath string
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
	Deps       []string
	Module     *struct{ Path string }
	Error      *struct{ Err string }
}

var loaded struct {
	once sync.Once
	g    *codeGraph
	err  error
}

// loadGraph runs `go list` once per platform and joins the graphs, once
// for all the tests.
func loadGraph(t *testing.T, root string) *codeGraph {
	t.Helper()
	loaded.once.Do(func() { loaded.g, loaded.err = listGraph(root) })
	if loaded.err != nil {
		t.Fatal(loaded.err)
	}
	return loaded.g
}

func listGraph(root string) (*codeGraph, error) {
	g := &codeGraph{imports: map[string]map[string]bool{}, deps: map[string]map[string]bool{}, others: map[string]map[string]bool{}}
	for _, pl := range platforms {
		pkgs, err := goList(root, pl[0], pl[1])
		if err != nil {
			return nil, fmt.Errorf("go list for %s/%s: %v", pl[0], pl[1], err)
		}
		for _, p := range pkgs {
			if p.Error != nil {
				return nil, fmt.Errorf("go list for %s/%s: %s: %s", pl[0], pl[1], p.ImportPath, p.Error.Err)
			}
			if p.Module == nil {
				return nil, fmt.Errorf("go list: %s belongs to no module", p.ImportPath)
			}
			if g.module == "" {
				g.module = p.Module.Path
			}
			if len(p.GoFiles)+len(p.CgoFiles) == 0 {
				continue // only test files (this package), or none for this platform
			}
			name := g.rel(p.ImportPath)
			if g.imports[name] == nil {
				g.imports[name], g.deps[name], g.others[name] = map[string]bool{}, map[string]bool{}, map[string]bool{}
			}
			for _, imp := range p.Imports {
				if g.ours(imp) {
					g.imports[name][g.rel(imp)] = true
				}
			}
			for _, d := range p.Deps {
				if g.ours(d) {
					g.deps[name][g.rel(d)] = true
				} else {
					g.others[name][d] = true
				}
			}
		}
	}
	if len(g.imports) == 0 {
		return nil, errors.New("go list found no package")
	}
	return g, nil
}

func goList(root, goos, goarch string) ([]listed, error) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,GoFiles,CgoFiles,Imports,Deps,Module,Error", "./...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, stderr.Bytes())
	}
	var pkgs []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs, nil
		} else if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
}

func (g *codeGraph) ours(path string) bool {
	return path == g.module || strings.HasPrefix(path, g.module+"/")
}

// rel names a package of the module relative to the module's path, and
// leaves any other path as it is.
func (g *codeGraph) rel(path string) string {
	if path == g.module {
		return "."
	}
	if rest, ok := strings.CutPrefix(path, g.module+"/"); ok {
		return rest
	}
	return path
}

// fencedBlock returns the lines of the one block fenced with ```info, and
// the line number of its opening fence.
func fencedBlock(doc, info string) ([]string, int, error) {
	var (
		lines  []string
		at     int
		inside bool
		found  int
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t")
		switch {
		case inside && strings.HasPrefix(strings.TrimSpace(line), "```"):
			inside = false
		case inside:
			lines = append(lines, line)
		case strings.TrimSpace(line) == "```"+info:
			inside, at = true, n
			found++
		}
	}
	switch {
	case found == 0:
		return nil, 0, fmt.Errorf("no block fenced with ```%s", info)
	case found > 1:
		return nil, 0, fmt.Errorf("%d blocks fenced with ```%s; want one", found, info)
	case inside:
		return nil, 0, fmt.Errorf("the ```%s block (line %d) is not closed", info, at)
	}
	return lines, at, nil
}

// none is written for a package that imports none of ours.
const none = "(none)"

// parseGraph reads lines of the form `pkg → dep, dep` (or `->`).
func parseGraph(lines []string, at int) (map[string]map[string]bool, error) {
	g := map[string]map[string]bool{}
	for i, line := range lines {
		n := at + 1 + i
		if strings.TrimSpace(line) == "" {
			continue
		}
		pkg, deps, ok := strings.Cut(line, "→")
		if !ok {
			pkg, deps, ok = strings.Cut(line, "->")
		}
		pkg = strings.TrimSpace(pkg)
		if !ok || pkg == "" || strings.ContainsAny(pkg, " ,") {
			return nil, fmt.Errorf("line %d: %q: want `package → dep, dep` or `package → %s`", n, line, none)
		}
		if g[pkg] != nil {
			return nil, fmt.Errorf("line %d: %s is listed twice", n, pkg)
		}
		g[pkg] = map[string]bool{}
		if strings.TrimSpace(deps) == none {
			continue
		}
		for _, d := range strings.Split(deps, ",") {
			d = strings.TrimSpace(d)
			if d == "" || strings.Contains(d, " ") {
				return nil, fmt.Errorf("line %d: %q: want `package → dep, dep` or `package → %s`", n, line, none)
			}
			g[pkg][d] = true
		}
	}
	return g, nil
}

// diffGraphs names every package and edge of one graph missing from the
// other ("" when they are the same).
func diffGraphs(doc, code map[string]map[string]bool) string {
	var b strings.Builder
	for _, p := range slices.Sorted(maps.Keys(code)) {
		if doc[p] == nil {
			fmt.Fprintf(&b, "  package %s is in the code, not in the document\n", p)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(doc)) {
		if code[p] == nil {
			fmt.Fprintf(&b, "  package %s is in the document, not in the code\n", p)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(code)) {
		for _, d := range slices.Sorted(maps.Keys(code[p])) {
			if doc[p] != nil && !doc[p][d] {
				fmt.Fprintf(&b, "  + %s → %s: imported in the code, not in the document\n", p, d)
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(doc)) {
		for _, d := range slices.Sorted(maps.Keys(doc[p])) {
			if code[p] != nil && !code[p][d] {
				fmt.Fprintf(&b, "  - %s → %s: in the document, not imported in the code\n", p, d)
			}
		}
	}
	return b.String()
}

// formatGraph writes the code's graph as the fenced block the document
// carries: one line per package, sorted, its imports sorted.
func formatGraph(g *codeGraph) string {
	pkgs := g.packages()
	width := 0
	for _, p := range pkgs {
		width = max(width, len(p))
	}
	var b strings.Builder
	b.WriteString("```" + graphBlock + "\n")
	for _, p := range pkgs {
		deps := slices.Sorted(maps.Keys(g.imports[p]))
		list := none
		if len(deps) > 0 {
			list = strings.Join(deps, ", ")
		}
		fmt.Fprintf(&b, "%-*s → %s\n", width, p, list)
	}
	b.WriteString("```\n")
	return b.String()
}

// A layer is one line of the layers block: `name: pkg, pkg/...`.
type layer struct {
	name     string
	patterns []string
	line     int
}

func parseLayers(lines []string, at int) ([]layer, error) {
	var out []layer
	for i, line := range lines {
		n := at + 1 + i
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, list, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("line %d: %q: want `layer name: package, package`", n, line)
		}
		l := layer{name: name, line: n}
		for _, p := range strings.Split(list, ",") {
			p = strings.TrimSpace(p)
			if p == "" || strings.Contains(p, " ") {
				return nil, fmt.Errorf("line %d: %q: want `layer name: package, package`", n, line)
			}
			l.patterns = append(l.patterns, p)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("the layers block is empty")
	}
	return out, nil
}

// match says whether a package name matches a pattern: the name itself,
// or with a trailing /... the package and every package under it.
func match(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

func matching(pattern string, pkgs []string) []string {
	var out []string
	for _, p := range pkgs {
		if match(pattern, p) {
			out = append(out, p)
		}
	}
	return out
}

// A rule is one line of the rules block:
//
//	P imports none of ours
//	P imports only A, B
//	P never depends on A, B      (directly or not; A may be another module's path)
//	nothing imports A, B
//	only P, Q import A, B        (or imports)
//
// Names of our packages may end in /... (the package and those under it).
type rule struct {
	kind     string // "none", "only", "never", "nothing", "importers"
	subjects []string
	objects  []string
}

func parseRule(line string) (rule, error) {
	line = strings.TrimSpace(line)
	list := func(s string) []string {
		var out []string
		for _, x := range strings.Split(s, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
		return out
	}
	if rest, ok := strings.CutPrefix(line, "nothing imports "); ok {
		return rule{kind: "nothing", objects: list(rest)}, nil
	}
	if rest, ok := strings.CutPrefix(line, "only "); ok {
		for _, verb := range []string{" imports ", " import "} {
			if subj, obj, ok := strings.Cut(rest, verb); ok {
				return rule{kind: "importers", subjects: list(subj), objects: list(obj)}, nil
			}
		}
	}
	if subj, ok := strings.CutSuffix(line, " imports none of ours"); ok {
		return rule{kind: "none", subjects: list(subj)}, nil
	}
	if subj, obj, ok := strings.Cut(line, " imports only "); ok {
		return rule{kind: "only", subjects: list(subj), objects: list(obj)}, nil
	}
	if subj, obj, ok := strings.Cut(line, " never depends on "); ok {
		return rule{kind: "never", subjects: list(subj), objects: list(obj)}, nil
	}
	return rule{}, fmt.Errorf("%q: not a rule; use `P imports none of ours`, `P imports only A, B`, "+
		"`P never depends on A, B`, `nothing imports A, B` or `only P import A, B`", line)
}

// external says whether a name is another module's package (its first
// element holds a dot, as import paths of other modules do).
func external(name string) bool {
	first, _, _ := strings.Cut(name, "/")
	return strings.Contains(first, ".")
}

// check returns what breaks the rule, each naming the offending edge.
func (r rule) check(g *codeGraph) []string {
	pkgs := g.packages()
	var problems []string
	// Every name of ours must name packages that exist: a rule about a
	// renamed or removed package must fail, not pass for lack of subject.
	expand := func(names []string) []string {
		var out []string
		for _, n := range names {
			if external(n) {
				continue
			}
			m := matching(n, pkgs)
			if len(m) == 0 {
				problems = append(problems, fmt.Sprintf("%s is no package of ours", n))
			}
			out = append(out, m...)
		}
		return out
	}
	subjects, objects := expand(r.subjects), expand(r.objects)
	if len(problems) > 0 {
		return problems
	}
	allowed := func(d string) bool {
		return slices.ContainsFunc(r.objects, func(o string) bool { return match(o, d) })
	}
	switch r.kind {
	case "none":
		for _, s := range subjects {
			for _, d := range slices.Sorted(maps.Keys(g.imports[s])) {
				problems = append(problems, fmt.Sprintf("%s imports %s", s, d))
			}
		}
	case "only":
		for _, s := range subjects {
			for _, d := range slices.Sorted(maps.Keys(g.imports[s])) {
				if !allowed(d) {
					problems = append(problems, fmt.Sprintf("%s imports %s", s, d))
				}
			}
		}
	case "never":
		for _, s := range subjects {
			for _, o := range r.objects {
				if p := g.dependency(s, o); p != "" {
					problems = append(problems, p)
				}
			}
		}
	case "nothing", "importers":
		for _, p := range pkgs {
			if r.kind == "importers" && slices.Contains(subjects, p) {
				continue
			}
			for _, d := range slices.Sorted(maps.Keys(g.imports[p])) {
				if slices.Contains(objects, d) {
					problems = append(problems, fmt.Sprintf("%s imports %s", p, d))
				}
			}
		}
	}
	return problems
}

// dependency says how package s depends on name, ours or another module's
// ("" when it does not): how many packages match, and through which of
// s's own imports.
func (g *codeGraph) dependency(s, name string) string {
	pattern := name
	if external(name) {
		// Another module's path names its packages and those under it:
		// github.com/hashicorp/raft, not raft-wal.
		pattern = name + "/..."
	}
	reaches := func(pkg string) int {
		deps := g.deps[pkg]
		if external(name) {
			deps = g.others[pkg]
		}
		n := 0
		for d := range deps {
			if match(pattern, d) {
				n++
			}
		}
		return n
	}
	n := reaches(s)
	if n == 0 {
		return ""
	}
	var through []string
	for _, d := range slices.Sorted(maps.Keys(g.imports[s])) {
		if match(pattern, d) || reaches(d) > 0 {
			through = append(through, d)
		}
	}
	how := "directly"
	if len(through) > 0 {
		how = "through " + strings.Join(through, ", ")
	}
	count := "1 package"
	if n > 1 {
		count = fmt.Sprintf("%d packages", n)
	}
	return fmt.Sprintf("%s depends on %s (%s), %s", s, name, count, how)
}
