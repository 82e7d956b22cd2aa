package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/store"
)

// The catalog's namespaces, services and instances, as an operator
// changes them: namespace, service, instance, watch, info.

// clientRun is what a client command does, with an API client ready; fs
// tells which flags were given.
type clientRun func(ctx context.Context, c *common, a *client.API, args []string, fs *pflag.FlagSet) error

// clientSpec is a client command: the common flags, then extra flags, and
// run. args says how many positional arguments it takes and names them
// for the usage error.
func clientSpec(stdout io.Writer, name, usage, help string, args []string, extra func(fs *pflag.FlagSet), run clientRun) *cobra.Command {
	var c common
	fs := pflag.NewFlagSet("registry "+name, pflag.ContinueOnError)
	c.flags(fs)
	if extra != nil {
		extra(fs)
	}
	return spec{Name: name, ShortUsage: usage, ShortHelp: help, FlagSet: fs,
		Exec: func(ctx context.Context, got []string) error {
			if len(got) != len(args) {
				return usagef("%s takes %s, got %d arguments%s", usage, strings.Join(args, " and "), len(got), quoted(got))
			}
			a, err := c.api()
			if err != nil {
				return err
			}
			return run(ctx, &c, a, got, fs)
		}}.command()
}

func quoted(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s)", strings.Join(args, " "))
}

func group(name, usage, help string, subs ...*cobra.Command) *cobra.Command {
	return spec{Name: name, ShortUsage: usage, ShortHelp: help, Subcommands: subs}.command()
}

// table writes rows under a header, columns aligned.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func namespaceCommand(stdout io.Writer) *cobra.Command {
	show := func(c *common, ns ...store.Namespace) error {
		if c.output == "json" {
			if len(ns) == 1 {
				return printJSON(stdout, ns[0])
			}
			return printJSON(stdout, ns)
		}
		rows := make([][]string, len(ns))
		for i, n := range ns {
			rows[i] = []string{n.Name, orDash(n.Fallback), orDash(n.Description), strconv.FormatUint(n.ModifyIndex, 10)}
		}
		return table(stdout, "NAME\tFALLBACK\tDESCRIPTION\tMODIFIED", rows)
	}
	var fallback, description string
	settings := func(fs *pflag.FlagSet) {
		fs.StringVar(&fallback, "fallback", "", "the namespace lookups fall back to when this one has no usable instance (\"-\": none)")
		fs.StringVar(&description, "description", "", "what the namespace is for")
	}
	// put creates or updates: a flag not given keeps the namespace's value.
	put := func(ctx context.Context, c *common, a *client.API, args []string, fs *pflag.FlagSet) error {
		var r wire.NamespaceRequest
		if fs.Changed("fallback") {
			f := fallback
			if f == "-" {
				f = ""
			}
			r.Fallback = &f
		}
		if fs.Changed("description") {
			r.Description = &description
		}
		ns, err := a.PutNamespace(ctx, args[0], r)
		if err != nil {
			return err
		}
		return show(c, *ns)
	}
	create := clientSpec(stdout, "create", "registry namespace create NAME [--fallback NS] [--description D]", "create a namespace",
		[]string{"NAME"}, settings, func(ctx context.Context, c *common, a *client.API, args []string, fs *pflag.FlagSet) error {
			if _, err := a.Namespace(ctx, args[0]); err == nil {
				return fmt.Errorf("namespace %q exists already; change it with registry namespace update", args[0])
			}
			return put(ctx, c, a, args, fs)
		})
	update := clientSpec(stdout, "update", "registry namespace update NAME [--fallback NS|-] [--description D]", "change a namespace's fallback or description",
		[]string{"NAME"}, settings, func(ctx context.Context, c *common, a *client.API, args []string, fs *pflag.FlagSet) error {
			if !fs.Changed("fallback") && !fs.Changed("description") {
				return usagef("give --fallback or --description (or both)")
			}
			if _, err := a.Namespace(ctx, args[0]); err != nil {
				return err
			}
			return put(ctx, c, a, args, fs)
		})
	return group("namespace", "registry namespace list|get|create|update|delete", "manage namespaces",
		clientSpec(stdout, "list", "registry namespace list", "list the namespaces", nil, nil,
			func(ctx context.Context, c *common, a *client.API, _ []string, _ *pflag.FlagSet) error {
				ns, err := a.Namespaces(ctx)
				if err != nil {
					return err
				}
				return show(c, ns...)
			}),
		clientSpec(stdout, "get", "registry namespace get NAME", "show a namespace", []string{"NAME"}, nil,
			func(ctx context.Context, c *common, a *client.API, args []string, _ *pflag.FlagSet) error {
				ns, err := a.Namespace(ctx, args[0])
				if err != nil {
					return err
				}
				return show(c, *ns)
			}),
		create, update,
		clientSpec(stdout, "delete", "registry namespace delete NAME", "delete an empty namespace", []string{"NAME"}, nil,
			func(ctx context.Context, c *common, a *client.API, args []string, _ *pflag.FlagSet) error {
				if err := a.DeleteNamespace(ctx, args[0]); err != nil {
					return err
				}
				if c.output == "json" {
					return printJSON(stdout, map[string]string{"deleted": args[0]})
				}
				_, err := fmt.Fprintf(stdout, "deleted namespace %s\n", args[0])
				return err
			}),
	)
}

func serviceCommand(stdout io.Writer) *cobra.Command {
	showSettings := func(c *common, s *store.Service) error {
		if c.output == "json" {
			return printJSON(stdout, s)
		}
		return table(stdout, "NAMESPACE\tSERVICE\tPROTECT_THRESHOLD\tMIN_HEALTHY_RATIO\tBALANCER\tDNS_TTL\tMODIFIED", [][]string{{
			s.Namespace, s.Name, strconv.FormatFloat(s.ProtectThreshold, 'f', -1, 64), strconv.FormatFloat(s.MinHealthyRatio, 'f', -1, 64),
			s.Balancer, time.Duration(s.DNSTTL).String(), strconv.FormatUint(s.ModifyIndex, 10)}})
	}
	var (
		protect, ratio float64
		balancer       string
		ttl            time.Duration
	)
	set := clientSpec(stdout, "set", "registry service set SERVICE [--protect-threshold X] [--min-healthy-ratio X] [--balancer B] [--dns-ttl D]",
		"change a service's settings (creating the service if need be)", []string{"SERVICE"}, func(fs *pflag.FlagSet) {
			fs.Float64Var(&protect, "protect-threshold", 0, "0..1: below this healthy share, lookups return unhealthy instances too")
			fs.Float64Var(&ratio, "min-healthy-ratio", 0, "0..1: a locality level serves alone while this share of it is healthy")
			fs.StringVar(&balancer, "balancer", "", strings.Join(store.Balancers, ", "))
			fs.DurationVar(&ttl, "dns-ttl", 0, "TTL of the service's DNS answers")
		}, func(ctx context.Context, c *common, a *client.API, args []string, fs *pflag.FlagSet) error {
			var r wire.ServiceRequest
			if fs.Changed("protect-threshold") {
				r.ProtectThreshold = &protect
			}
			if fs.Changed("min-healthy-ratio") {
				r.MinHealthyRatio = &ratio
			}
			if fs.Changed("balancer") {
				r.Balancer = &balancer
			}
			if fs.Changed("dns-ttl") {
				d := store.Duration(ttl)
				r.DNSTTL = &d
			}
			if r == (wire.ServiceRequest{}) {
				return usagef("give at least one of --protect-threshold, --min-healthy-ratio, --balancer, --dns-ttl")
			}
			s, err := a.PutService(ctx, c.namespace, args[0], r)
			if err != nil {
				return err
			}
			return showSettings(c, s)
		})
	return group("service", "registry service list|get|set", "list services and change their settings",
		clientSpec(stdout, "list", "registry service list [--namespace NS]", "list a namespace's services with their instance counts", nil, nil,
			func(ctx context.Context, c *common, a *client.API, _ []string, _ *pflag.FlagSet) error {
				res, err := a.Services(ctx, c.namespace)
				if err != nil {
					return err
				}
				if c.output == "json" {
					return printJSON(stdout, res)
				}
				rows := make([][]string, len(res.Services))
				for i, s := range res.Services {
					rows[i] = []string{s.Name, strconv.Itoa(s.Instances), strconv.Itoa(s.Healthy), strconv.FormatBool(s.Protected), s.Balancer}
				}
				return table(stdout, "SERVICE\tINSTANCES\tHEALTHY\tPROTECTED\tBALANCER", rows)
			}),
		clientSpec(stdout, "get", "registry service get SERVICE", "show a service's settings", []string{"SERVICE"}, nil,
			func(ctx context.Context, c *common, a *client.API, args []string, _ *pflag.FlagSet) error {
				s, err := a.Service(ctx, c.namespace, args[0])
				if err != nil {
					return err
				}
				return showSettings(c, s)
			}),
		set,
	)
}

func instanceCommand(stdout io.Writer) *cobra.Command {
	patch := func(name, usage, help string, args []string, req func(args []string) (wire.PatchRequest, error)) *cobra.Command {
		return clientSpec(stdout, name, usage, help, args, nil,
			func(ctx context.Context, c *common, a *client.API, args []string, _ *pflag.FlagSet) error {
				r, err := req(args[2:])
				if err != nil {
					return err
				}
				in, err := a.PatchInstance(ctx, c.namespace, args[0], args[1], r)
				if err != nil {
					return err
				}
				if c.output == "json" {
					return printJSON(stdout, in)
				}
				return printInstances(stdout, []wire.Instance{{Instance: in}})
			})
	}
	enabled := func(on bool) func([]string) (wire.PatchRequest, error) {
		return func([]string) (wire.PatchRequest, error) { return wire.PatchRequest{Enabled: &on}, nil }
	}
	return group("instance", "registry instance list|enable|disable|weight|maintenance", "list instances and change their traffic",
		clientSpec(stdout, "list", "registry instance list SERVICE", "list a service's instances (as lookup does)", []string{"SERVICE"}, nil,
			func(ctx context.Context, c *common, a *client.API, args []string, _ *pflag.FlagSet) error {
				res, err := a.Lookup(ctx, c.namespace, args[0], client.LookupOptions{})
				if err != nil {
					return err
				}
				if c.output == "json" {
					return printJSON(stdout, res)
				}
				return printInstances(stdout, res.Instances)
			}),
		patch("enable", "registry instance enable SERVICE ID", "give an instance traffic again", []string{"SERVICE", "ID"}, enabled(true)),
		patch("disable", "registry instance disable SERVICE ID", "take an instance out of traffic; it stays registered and checked", []string{"SERVICE", "ID"}, enabled(false)),
		patch("weight", "registry instance weight SERVICE ID WEIGHT", "set an instance's weight (0..10000; 0 drains it)", []string{"SERVICE", "ID", "WEIGHT"},
			func(args []string) (wire.PatchRequest, error) {
				w, err := strconv.Atoi(args[0])
				if err != nil || w < 0 || w > store.MaxWeight {
					return wire.PatchRequest{}, usagef("WEIGHT %q: want a whole number from 0 to %d", args[0], store.MaxWeight)
				}
				return wire.PatchRequest{Weight: &w}, nil
			}),
		patch("maintenance", "registry instance maintenance SERVICE ID on|off", "put an instance in maintenance (out of traffic, as Consul's maintenance mode) or back",
			[]string{"SERVICE", "ID", "on|off"}, func(args []string) (wire.PatchRequest, error) {
				switch args[0] {
				case "on":
					return enabled(false)(nil)
				case "off":
					return enabled(true)(nil)
				}
				return wire.PatchRequest{}, usagef("%q: say on or off", args[0])
			}),
	)
}

// watchCommand streams a service's instances as they change: a blocking
// query held on the server, answered as soon as the answer changes.
func watchCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		healthy    bool
		near       string
		maxAnswers int
		wait       time.Duration
	)
	return clientSpec(stdout, "watch", "registry watch SERVICE [--healthy] [--near R/D/U] [--max-answers N]",
		"print a service's instances now and again each time they change, until ^C (table, or JSON lines)", []string{"SERVICE"},
		func(fs *pflag.FlagSet) {
			fs.BoolVar(&healthy, "healthy", false, "only healthy, enabled instances")
			fs.StringVar(&near, "near", "", "select for a caller at region/datacenter/unit: nearest first, with spill-over")
			fs.IntVar(&maxAnswers, "max-answers", 0, "stop after this many answers, the first included (0: never)")
			fs.DurationVar(&wait, "wait", 5*time.Minute, "how long one blocking query may wait for a change")
		},
		func(ctx context.Context, c *common, a *client.API, args []string, _ *pflag.FlagSet) error {
			if maxAnswers < 0 || wait <= 0 {
				return usagef("--max-answers must be 0 or more and --wait positive")
			}
			var index uint64
			backoff := 100 * time.Millisecond
			for n := 0; maxAnswers == 0 || n < maxAnswers; {
				res, err := a.Lookup(ctx, c.namespace, args[0], client.LookupOptions{HealthyOnly: healthy, Near: near, Index: index, Wait: wait})
				switch {
				case ctx.Err() != nil:
					return nil // ^C: a watch ends cleanly
				case err != nil && index == 0:
					return err // nothing to watch: say why at once
				case err != nil:
					fmt.Fprintf(stderr, "registry: watch: %s; retrying in %v\n", describe(err), backoff)
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(backoff):
					}
					backoff = min(2*backoff, 10*time.Second)
					continue
				case res.Index == index:
					continue // the wait ran out without a change
				}
				backoff = 100 * time.Millisecond
				index = res.Index
				n++
				if c.output == "json" {
					b, err := json.Marshal(res)
					if err != nil {
						return err
					}
					if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(stdout, "# %s  %s/%s  index %d  %d instances\n", time.Now().Format(time.RFC3339), c.namespace, args[0], res.Index, len(res.Instances))
				if err := printInstances(stdout, res.Instances); err != nil {
					return err
				}
			}
			return nil
		})
}

// infoCommand is one server's view of the cluster.
func infoCommand(stdout io.Writer) *cobra.Command {
	return clientSpec(stdout, "info", "registry info [--server URL]", "show the server's view: leader, applied index, servers, what the catalog holds",
		nil, nil, func(ctx context.Context, c *common, a *client.API, _ []string, _ *pflag.FlagSet) error {
			h, err := a.Health(ctx)
			if err != nil {
				return err
			}
			ms, err := a.Members(ctx)
			if err != nil {
				return err
			}
			nss, err := a.Namespaces(ctx)
			if err != nil {
				return err
			}
			type counts struct {
				Namespaces int `json:"namespaces"`
				Services   int `json:"services"`
				Instances  int `json:"instances"`
				Healthy    int `json:"healthy"`
			}
			cat := counts{Namespaces: len(nss)}
			for _, ns := range nss {
				res, err := a.Services(ctx, ns.Name)
				if err != nil {
					return err
				}
				cat.Services += len(res.Services)
				for _, s := range res.Services {
					cat.Instances += s.Instances
					cat.Healthy += s.Healthy
				}
			}
			roles := map[string]int{}
			for _, m := range ms {
				roles[serverRole(m)]++
			}
			if c.output == "json" {
				return printJSON(stdout, struct {
					Server  string         `json:"server"`
					Health  *wire.Health   `json:"health"`
					Servers map[string]int `json:"servers_by_role"`
					Catalog counts         `json:"catalog"`
				}{serverURL(c.server), h, roles, cat})
			}
			var rs []string
			for _, r := range []string{"leader", "voter", "standby", "read", "read (not joined)", "none"} {
				if roles[r] > 0 {
					rs = append(rs, fmt.Sprintf("%s %d", r, roles[r]))
				}
			}
			sp := "off"
			if h.SelfPreservation.Active {
				sp = "ON: " + h.SelfPreservation.Reason
			}
			return table(stdout, "WHAT\tVALUE", [][]string{
				{"server", serverURL(c.server)},
				{"leader", orDash(h.Leader)},
				{"ready", strconv.FormatBool(h.Ready)},
				{"applied index", strconv.FormatUint(h.AppliedIndex, 10)},
				{"servers", fmt.Sprintf("%d (%s)", len(ms), strings.Join(rs, ", "))},
				{"namespaces", strconv.Itoa(cat.Namespaces)},
				{"services", strconv.Itoa(cat.Services)},
				{"instances", fmt.Sprintf("%d (%d healthy)", cat.Instances, cat.Healthy)},
				{"self-preservation", sp},
			})
		})
}
