// Command registry is Switchyard's one binary: servers (`dev`, `server`) and
// client commands over the HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "registry:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	root := &ffcli.Command{
		ShortUsage: "registry <command> [flags]",
		LongHelp:   "Switchyard: a service registry and mid-tier load balancer.",
		Subcommands: []*ffcli.Command{
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
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
	return root.ParseAndRun(ctx, args)
}
