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
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile("`((?:[a-z]+/)+)((?:Test|Fuzz)[A-Za-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1)
	if len(refs) < 20 {
		t.Fatalf("docs/security.md names %d tests; it should name one per attack", len(refs))
	}
	for _, r := range refs {
		if src := testFiles(t, filepath.Join(root, strings.TrimSuffix(r[1], "/"))); !strings.Contains(src, "func "+r[2]+"(") {
			t.Errorf("docs/security.md names %s%s, which is not a test there", r[1], r[2])
		}
	}
	for _, r := range regexp.MustCompile("`((?:[a-z]+/)+)((?:Test|Fuzz)[A-Za-z0-9_]*)\\*`").FindAllStringSubmatch(string(doc), -1) {
		if src := testFiles(t, filepath.Join(root, strings.TrimSuffix(r[1], "/"))); !strings.Contains(src, "func "+r[2]) {
			t.Errorf("docs/security.md names %s%s*, and no test there begins so", r[1], r[2])
		}
	}
	cases := regexp.MustCompile("the `([a-z0-9-]+)` case of `((?:[a-z]+/)+)(Test[A-Za-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1)
	if len(cases) == 0 {
		t.Fatal("docs/security.md names no subtest; the pattern above has gone stale")
	}
	for _, r := range cases {
		if src := testFiles(t, filepath.Join(root, strings.TrimSuffix(r[2], "/"))); !strings.Contains(src, "t.Run(\""+r[1]+"\"") {
			t.Errorf("docs/security.md names the %q case of %s%s, which has no such subtest", r[1], r[2], r[3])
		}
	}
}
