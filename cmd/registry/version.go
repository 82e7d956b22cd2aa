package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is the module version the binary was built from
// (`go install …@v1.2.3`), "(devel)" for a build in a checkout; the
// revision and time of the checkout follow when Go recorded them.
func buildVersion() (version, revision, when string, modified bool) {
	version = "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return
}

// versionString is one line: version, revision, time, Go, platform.
func versionString() string {
	v, rev, when, modified := buildVersion()
	s := "registry " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += " " + rev
		if modified {
			s += "+modified"
		}
	}
	if when != "" {
		s += " " + when
	}
	return fmt.Sprintf("%s %s %s/%s", s, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func versionCommand(stdout io.Writer) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version of this binary (also --version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := settle(cmd); err != nil {
				return err
			}
			switch output {
			case "table":
				_, err := fmt.Fprintln(stdout, versionString())
				return err
			case "json":
				v, rev, when, modified := buildVersion()
				return printJSON(stdout, map[string]any{"version": v, "revision": rev, "time": when, "modified": modified,
					"go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH})
			}
			return usagef("--output %q: use table or json", output)
		},
	}
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	return cmd
}
