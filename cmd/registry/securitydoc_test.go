package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/security.md names, for each attack, the test that performs it: every
// name must be a test or fuzz target of the package it names, so that the
// page cannot point at a test that was renamed or removed.
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
		dir, name := filepath.Join(root, strings.TrimSuffix(r[1], "/")), r[2]
		found := false
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || found {
				return err
			}
			if d.IsDir() && p != dir {
				return filepath.SkipDir
			}
			if strings.HasSuffix(p, "_test.go") {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				found = strings.Contains(string(b), "func "+name+"(")
			}
			return nil
		})
		if err != nil || !found {
			t.Errorf("docs/security.md names %s%s, which is not a test there (%v)", r[1], name, err)
		}
	}
}
