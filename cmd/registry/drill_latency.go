package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/drill/delay"
)

// latencyQueue is the NFQUEUE number the drills' latency uses.
const latencyQueue = 2030

// latencyRules send every packet from one datacenter's subnet to another's
// through the queue. --queue-bypass lets packets through undelayed when no
// process holds the queue.
func latencyRules(queue uint16) [][]string {
	var rules [][]string
	for _, from := range slices.Sorted(maps.Keys(drillTopology.subnets)) {
		for _, to := range slices.Sorted(maps.Keys(drillTopology.subnets)) {
			if from != to {
				rules = append(rules, []string{"DOCKER-USER", "-s", drillTopology.subnets[from], "-d", drillTopology.subnets[to],
					"-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(queue)), "--queue-bypass"})
			}
		}
	}
	return rules
}

func drillLatencyCommand(stdout io.Writer) *cobra.Command {
	fs := pflag.NewFlagSet("registry drill latency", pflag.ContinueOnError)
	d := fs.Duration("delay", 20*time.Millisecond, "added to every packet between two datacenters (a round trip between them gains twice this)")
	queue := fs.Uint("queue", latencyQueue, "the NFQUEUE number")
	return spec{
		Name:       "latency",
		ShortUsage: "registry drill latency [--delay 20ms]",
		ShortHelp:  "delay traffic between the drill's datacenters until stopped (root, iptables)",
		LongHelp: "Sends every packet between two of the deployment's datacenter subnets through\n" +
			"an NFQUEUE (host firewall, chain DOCKER-USER) and lets each through after\n" +
			"--delay. Runs until interrupted, then removes its rules. Needs no netem.",
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("latency takes no arguments")
			}
			if *d <= 0 || *d > 10*time.Second {
				return usagef("--delay %v: want more than 0 and at most 10s", *d)
			}
			if *queue > 65535 {
				return usagef("--queue %d: want 0–65535", *queue)
			}
			return runLatency(ctx, stdout, slog.Default(), uint16(*queue), *d)
		},
	}.command()
}

func runLatency(ctx context.Context, stdout io.Writer, logger *slog.Logger, num uint16, d time.Duration) error {
	rules := latencyRules(num)
	// Rules left by a process that did not get to remove them.
	for _, r := range rules {
		for iptables(ctx, "-D", r) == nil {
		}
	}
	q, err := delay.Open(num, d)
	if err != nil {
		return err
	}
	defer q.Close()
	// Each rule goes in before any rule already there (a cut's DROP rules,
	// inserted later, go before these).
	bg := context.WithoutCancel(ctx)
	defer func() {
		for _, r := range rules {
			if err := iptables(bg, "-D", r); err != nil {
				logger.Error("removing a latency rule", "err", err)
			}
		}
	}()
	for _, r := range rules {
		if err := iptables(ctx, "-I", r); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "delaying packets between datacenters by %v (NFQUEUE %d); interrupt to stop\n", d, num)
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "stopped: %d packets delayed, %d errors\n", q.Stats().Delayed.Load(), q.Stats().Errors.Load())
			return nil
		case <-t.C:
			logger.Info("latency", "delayed", q.Stats().Delayed.Load(), "errors", q.Stats().Errors.Load())
		case <-q.Done():
			return fmt.Errorf("the queue stopped delaying (its rules are removed, so traffic flows undelayed): %w", q.Err())
		}
	}
}
