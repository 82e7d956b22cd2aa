// Command registry is Switchyard's one binary: servers (`dev`, `server`) and
// client commands over the HTTP API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/switchyard-io/switchyard/api"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry:", describe(err))
		if isUsage(err) {
			os.Exit(exitUsage)
		}
		os.Exit(exitFailed)
	}
}

// describe is err as a person reads it: a server that cannot be reached
// is named with what to check, and Go package prefixes are dropped.
func describe(err error) string {
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ue) && errors.As(err, &oe) && oe.Op == "dial" {
		where := ue.URL
		if u, perr := url.Parse(ue.URL); perr == nil {
			where = u.Scheme + "://" + u.Host
		}
		return fmt.Sprintf("cannot reach a server at %s: %v (is it running? --server or REGISTRY_SERVER says where)", where, oe.Err)
	}
	return api.PublicMessage(err)
}

// isUsage reports whether err is a command line that cannot be run: a
// usageError, or cobra's own unknown command or flag.
func isUsage(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command ") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.Contains(msg, "flag needs an argument")
}

// rootCommand is the whole command line.
func rootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "registry",
		Short: "Switchyard: a service registry and mid-tier load balancer",
		Long: "Switchyard: a service registry and mid-tier load balancer.\n\n" +
			"Every flag can also be set as REGISTRY_<FLAG> (REGISTRY_SERVER for --server,\n" +
			"REGISTRY_NODE_ID for --node-id) or in a JSON config file (--config or\n" +
			"REGISTRY_CONFIG); the command line wins, then the environment, then the file.\n" +
			"Exit codes: 0 done, 1 failed, 2 the command line was wrong.",
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("give a command (see registry --help)")
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().String("config", os.Getenv("REGISTRY_CONFIG"), "JSON file of flag values, for any command (or REGISTRY_CONFIG)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
	})
	root.AddCommand(
		devCommand(stdout),
		serverCommand(stdout),
		registerCommand(stdout),
		deregisterCommand(stdout),
		lookupCommand(stdout),
		pickCommand(stdout),
		drillCommand(stdout),
		membersCommand(stdout),
		snapshotCommand(stdout),
		recoverCommand(stdout),
		keygenCommand(stdout),
		tlsCommand(stdout),
		tokenCommand(stdout),
		keyringCommand(stdout),
		versionCommand(stdout),
		namespaceCommand(stdout),
		serviceCommand(stdout),
		instanceCommand(stdout),
		watchCommand(stdout, stderr),
		infoCommand(stdout),
	)
	return root
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := rootCommand(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
