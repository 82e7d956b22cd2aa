package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// testFiles returns the text of the _test.go files of dir (not of its
// subdirectories), joined.
func testFiles(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, "_test.go") {
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(src)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// docs/security.md names, for each attack, the test that performs it: every
// name must be a test or fuzz target of the package it names (a name
// ending in * at least one), and every "the X case of" a subtest of that
// test, so that the page cannot point at a test that was renamed or
// removed.
func TestSecurityDocNamesRealTests(t *testing.T) {
	if n := checkNamedTests(t, filepath.Join("docs", "security.md")); n < 20 {
		t.Fatalf("docs/security.md names %d tests; it should name one per attack", n)
	}
}

// The README's comparison table makes only claims a test, drill or
// benchmark shows: every test it names exists, and every file it links to.
func TestReadmeClaimsPointAtRealTests(t *testing.T) {
	if n := checkNamedTests(t, "README.md"); n < 5 {
		t.Fatalf("README.md names %d tests; its comparison table should name the tests behind its claims", n)
	}
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\]\(([^)#:]+)(#[^)]*)?\)`).FindAllStringSubmatch(string(doc), -1) {
		if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
			t.Errorf("README.md links to %s: %v", m[1], err)
		}
	}
}

// checkNamedTests checks every `pkg/TestName` (and `pkg/Fuzz*`, and "the
// `X` case of `pkg/TestName`") named in the document at path (from the
// repository's root), and returns how many tests it names.
func checkNamedTests(t *testing.T, path string) int {
	t.Helper()
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile("`((?:[a-z]+/)+)((?:Test|Fuzz)[A-Za-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1)
	for _, r := range refs {
		if src := testFiles(t, filepath.Join(root, strings.TrimSuffix(r[1], "/"))); !strings.Contains(src, "func "+r[2]+"(") {
			t.Errorf("%s names %s%s, which is not a test there", path, r[1], r[2])
		}
	}
	for _, r := range regexp.MustCompile("`((?:[a-z]+/)+)((?:Test|Fuzz)[A-Za-z0-9_]*)\\*`").FindAllStringSubmatch(string(doc), -1) {
		if src := testFiles(t, filepath.Join(root, strings.TrimSuffix(r[1], "/"))); !strings.Contains(src, "func "+r[2]) {
			t.Errorf("%s names %s%s*, and no test there begins so", path, r[1], r[2])
		}
	}
	for _, r := range regexp.MustCompile("the `([a-z0-9-]+)` case of `((?:[a-z]+/)+)(Test[A-Za-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		if src := testFiles(t, filepath.Join(root, strings.TrimSuffix(r[2], "/"))); !strings.Contains(src, "t.Run(\""+r[1]+"\"") {
			t.Errorf("%s names the %q case of %s%s, which has no such subtest", path, r[1], r[2], r[3])
		}
	}
	return len(refs)
}
