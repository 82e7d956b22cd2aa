// Command registry-bench measures a running Switchyard registry over its
// HTTP API; the commands live in package bench ("registry-bench help" lists
// them, bench/DESIGN.md says how each measures).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchyard-io/switchyard/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "registry-bench:", err)
		}
		os.Exit(1)
	}
}
