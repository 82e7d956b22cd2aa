package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoServerDependencies: applications embed this package, so it must not
// pull in the HTTP framework or Raft that the servers use.
func TestNoServerDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(dep, "github.com/gin-gonic/"),
			strings.HasPrefix(dep, "github.com/hashicorp/raft"),
			dep == "github.com/switchyard-io/switchyard/raft",
			dep == "github.com/switchyard-io/switchyard/api":
			t.Errorf("client depends on %s", dep)
		}
	}
}
