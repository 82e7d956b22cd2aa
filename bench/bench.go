// Package bench is the registry-bench command: it measures a running
// Switchyard registry over its HTTP API: registrations/s on a cluster,
// lookups/s next to a bare net/http handler serving the same bytes, and
// blocking-query wake-up latency. cmd/registry-bench is its thin main.
//
//	registry-bench register --servers http://127.0.0.1:7410,... --clients 1,16,64 --duration 10s
//	registry-bench lookup   --server http://127.0.0.1:7400 --instances 10,1000 --clients 16,64 --duration 10s
//	registry-bench watch    --server http://127.0.0.1:7400 --samples 200
//	registry-bench delta    --server http://127.0.0.1:7400 --instances 5000 --watchers 1000 --changes 20
//	registry-bench xds      --server http://127.0.0.1:7400 --xds 127.0.0.1:7404 --samples 200
//
// Every loop is bounded both in count and in time. Results print as a
// markdown table (--output table, the default) or as JSON (--output json).
package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

const usage = `usage: registry-bench <command> [flags]

commands:
  register   registrations/s, p50, p99 at several client counts, round-robin over servers
  lookup     lookups/s of an N-instance service, next to a bare net/http handler
  watch      blocking-query wake-up latency after a write
  heartbeat  heartbeats/s a server absorbs, its CPU and the gossip they cost, Raft entries (none)
  silence    time from an instance's last heartbeat to unhealthy on every server (p50/p99)
  detect     SIGKILL a server and time until another shows it suspect, then dead
  sdk-watch  write → the Go SDK's Watch delivering it, p50/p99
  delta      bytes per change to many watchers of a big service: full answers vs deltas
  xds        write → an xDS client's new endpoints, next to a blocking query's wake-up
  scale      starts a cluster and measures it at scale: a million instances, snapshots,
             tens of thousands of watchers, 100,000 heartbeating instances (one table)

Run "registry-bench <command> -h" for its flags.
`

// Run runs one registry-bench command (args without the program name),
// printing results on stdout and progress on stderr. It returns
// flag.ErrHelp when it printed the usage because no command was given.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "register":
		return runRegister(ctx, args[1:], stdout, stderr)
	case "lookup":
		return runLookup(ctx, args[1:], stdout, stderr)
	case "watch":
		return runWatch(ctx, args[1:], stdout, stderr)
	case "heartbeat":
		return runHeartbeat(ctx, args[1:], stdout, stderr)
	case "silence":
		return runSilence(ctx, args[1:], stdout, stderr)
	case "detect":
		return runDetect(ctx, args[1:], stdout, stderr)
	case "sdk-watch":
		return runSDKWatch(ctx, args[1:], stdout, stderr)
	case "delta":
		return runDelta(ctx, args[1:], stdout, stderr)
	case "xds":
		return runXDS(ctx, args[1:], stdout, stderr)
	case "scale":
		return runScale(ctx, args[1:], stdout, stderr)
	case "watch-hold":
		// Hidden: a process of parked blocking queries (scale).
		return runWatchHold(ctx, args[1:], stdout, stderr)
	case "dns-bare":
		// Hidden: the baseline DNS server of scripts/bench-dns.sh.
		return runDNSBare(ctx, args[1:], stdout, stderr)
	case "bare-serve":
		// Hidden: the baseline server of `lookup --bare child`.
		return runBareServe(ctx, args[1:], stdout, stderr)
	case "bare-raft":
		// Hidden: a node of the bare replicated baseline of `scale`.
		return runBareRaft(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// commonFlags are taken by every command.
type commonFlags struct {
	output    string
	namespace string
	timeout   time.Duration
	quiet     bool
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.output, "output", "table", "table (markdown) or json")
	fs.StringVar(&c.namespace, "namespace", "default", "namespace to register into (must exist)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of one HTTP request")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
}

func (c *commonFlags) validate() error {
	if c.output != "table" && c.output != "json" {
		return fmt.Errorf("--output %q: use table or json", c.output)
	}
	if c.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive")
	}
	return nil
}

// parseInts reads a comma-separated list of positive integers ("1,16,64").
func parseInts(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--%s: %q is not a positive integer", flagName, f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: give at least one value", flagName)
	}
	return out, nil
}

// parseServers reads a comma-separated list of base URLs.
func parseServers(flagName, s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimRight(strings.TrimSpace(f), "/")
		if f == "" {
			continue
		}
		if !strings.Contains(f, "://") {
			f = "http://" + f
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: give at least one server", flagName)
	}
	return out, nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("registry-bench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func progress(c *commonFlags, stderr io.Writer, format string, args ...any) {
	if !c.quiet {
		fmt.Fprintf(stderr, "# "+format+"\n", args...)
	}
}
