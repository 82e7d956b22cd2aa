// Package testtool finds the outside programs some tests drive (dig,
// Chromium, curl, bash, iptables). On a machine that has only Go such a
// test skips, naming the Debian package to install; with
// REGISTRY_TEST_REQUIRE_TOOLS=1 (as .ci/run sets) a missing program fails
// the test instead, so that CI never passes by skipping.
package testtool

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireEnv names the environment variable that turns a missing program
// into a failure.
const RequireEnv = "REGISTRY_TEST_REQUIRE_TOOLS"

// Required reports whether missing programs fail tests.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Find returns the path of the first of names found on PATH. When none is,
// the test skips (or fails, when Required) with a message naming the
// Debian package that provides it.
func Find(t testing.TB, debianPackage string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	Unavailable(t, strings.Join(names, " or ")+" is not installed (Debian package "+debianPackage+")")
	return ""
}

// Unavailable ends the test because something it drives is missing: a
// skip that says why, or a failure when Required.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s; %s=1 requires it", why, RequireEnv)
		return
	}
	t.Skipf("%s; install it, or set %s=1 to make this a failure", why, RequireEnv)
}
