package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/client"
)

// keyringCommand rotates the gossip key on every server: each server keeps
// its own keyring (in its data directory), so the command asks one server
// for the members and then walks all of them.
func keyringCommand(stdout io.Writer) *ffcli.Command {
	var c common
	fs := flag.NewFlagSet("registry keyring", flag.ContinueOnError)
	c.flags(fs)
	return &ffcli.Command{
		Name:       "keyring",
		ShortUsage: "registry keyring list | install KEY | use KEY | remove KEY",
		ShortHelp:  "rotate the gossip encryption key on every server",
		LongHelp: "Rotates the key that seals gossip, on every server of the cluster, without a restart:\n" +
			"  key=$(registry keygen)\n" +
			"  registry keyring install $key   # every server reads the new key\n" +
			"  registry keyring use $key       # every server seals with it\n" +
			"  registry keyring remove OLDKEY  # the old key no longer opens anything\n" +
			"Run each step to completion before the next. Each server keeps its keyring in its\n" +
			"data directory, so the rotated keys survive restarts (and win over --gossip-key).\n" +
			"Needs an admin:* token (--token or REGISTRY_TOKEN).",
		FlagSet: fs,
		Options: []ff.Option{ff.WithEnvVarPrefix("REGISTRY")},
		Exec: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return flag.ErrHelp
			}
			op := args[0]
			switch {
			case op == "list" && len(args) == 1:
			case (op == "install" || op == "use" || op == "remove") && len(args) == 2:
			default:
				return fmt.Errorf("usage: registry keyring list | install KEY | use KEY | remove KEY")
			}
			return runKeyring(ctx, stdout, &c, op, args[1:])
		},
	}
}

func runKeyring(ctx context.Context, stdout io.Writer, c *common, op string, args []string) error {
	seed, err := c.api()
	if err != nil {
		return err
	}
	ms, err := seed.Members(ctx)
	if err != nil {
		return fmt.Errorf("list the servers: %w", err)
	}
	u, err := url.Parse(serverURL(c.server))
	if err != nil {
		return err
	}
	hc, err := c.tls.client()
	if err != nil {
		return err
	}
	type result struct {
		id   string
		keys *wire.KeyringResponse
		err  error
	}
	var results []result
	for _, m := range ms {
		r := result{id: m.ID}
		if m.HTTPAddr == "" {
			r.err = errors.New("no HTTP address known (not in the gossip pool?)")
			results = append(results, r)
			continue
		}
		a, err := client.NewAPI(u.Scheme+"://"+m.HTTPAddr, hc)
		if err != nil {
			r.err = err
		} else if a = a.WithToken(c.tls.token); op == "list" {
			r.keys, r.err = a.Keyring(ctx)
		} else {
			r.keys, r.err = a.ChangeKeyring(ctx, op, strings.TrimSpace(args[0]))
		}
		results = append(results, r)
	}
	failed := 0
	if c.output == "json" {
		type out struct {
			Server string           `json:"server"`
			Keys   []wire.GossipKey `json:"keys,omitempty"`
			Error  string           `json:"error,omitempty"`
		}
		var all []out
		for _, r := range results {
			o := out{Server: r.id}
			if r.err != nil {
				o.Error, failed = r.err.Error(), failed+1
			} else {
				o.Keys = r.keys.Keys
			}
			all = append(all, o)
		}
		if err := printJSON(stdout, all); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tKEYS (primary first)")
		for _, r := range results {
			if r.err != nil {
				failed++
				fmt.Fprintf(tw, "%s\tFAILED: %v\n", r.id, r.err)
				continue
			}
			var fps []string
			for _, k := range r.keys.Keys {
				fp := k.Fingerprint
				if k.Primary {
					fp += " (primary)"
				}
				fps = append(fps, fp)
			}
			fmt.Fprintf(tw, "%s\t%s\n", r.id, strings.Join(fps, ", "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%s failed on %d of %d servers: fix them and run it again before the next step", op, failed, len(results))
	}
	return nil
}
