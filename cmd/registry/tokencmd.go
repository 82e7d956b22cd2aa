package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
)

func tokenCommand(stdout io.Writer) *cobra.Command {
	return spec{
		Name:       "token",
		ShortUsage: "registry token create|list|update|revoke|self|secret [flags]",
		ShortHelp:  "manage access tokens",
		LongHelp: "Tokens carry rules ACCESS:NAMESPACE[/SERVICE-PREFIX]:\n" +
			"  read   lookups, lists, settings     e.g. read:default, read:*\n" +
			"  write  register, heartbeat, deregister  e.g. write:payments/checkout-\n" +
			"  admin  settings; on * also tokens, backups and the cluster  e.g. admin:*\n" +
			"The anonymous token's rules apply to requests without a token, and to DNS.\n" +
			"Every command but secret needs an admin:* token (--token or REGISTRY_TOKEN).",
		FlagSet: pflag.NewFlagSet("registry token", pflag.ContinueOnError),
		Subcommands: []*cobra.Command{
			tokenCreateCommand(stdout), tokenListCommand(stdout), tokenUpdateCommand(stdout),
			tokenRevokeCommand(stdout), tokenSelfCommand(stdout), tokenSecretCommand(stdout),
		},
	}.command()
}

func tokenCreateCommand(stdout io.Writer) *cobra.Command {
	var (
		c           common
		rules       listFlag
		description string
	)
	fs := pflag.NewFlagSet("registry token create", pflag.ContinueOnError)
	c.flags(fs)
	fs.Var(&rules, "rule", "a rule ACCESS:NAMESPACE[/SERVICE-PREFIX] (repeatable, at least one)")
	fs.StringVar(&description, "description", "", "what the token is for")
	return spec{
		Name:       "create",
		ShortUsage: "registry token create --rule write:default/web --description D",
		ShortHelp:  "create a token; its secret is shown this once",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %q: this command takes only flags", args)
			}
			if len(rules) == 0 {
				return usagef("give at least one --rule, e.g. --rule read:default")
			}
			a, err := c.api()
			if err != nil {
				return err
			}
			t, err := a.CreateToken(ctx, description, rules)
			if err != nil {
				return err
			}
			return printToken(stdout, c.output, t)
		},
	}.command()
}

func tokenUpdateCommand(stdout io.Writer) *cobra.Command {
	var (
		c           common
		rules       listFlag
		description string
		rotate      bool
		noRules     bool
	)
	fs := pflag.NewFlagSet("registry token update", pflag.ContinueOnError)
	c.flags(fs)
	fs.Var(&rules, "rule", "the token's new rules (repeatable; absent: kept)")
	fs.StringVar(&description, "description", "", "a new description (absent: kept)")
	fs.BoolVar(&noRules, "no-rules", false, "remove every rule (e.g. anonymous: DNS and token-less requests get nothing)")
	fs.BoolVar(&rotate, "rotate-secret", false, "give the token a new secret, shown this once; the old one stops working")
	return spec{
		Name:       "update",
		ShortUsage: "registry token update ACCESSOR [--rule R]... [--description D] [--rotate-secret]",
		ShortHelp:  "change a token's rules or description, or rotate its secret (ACCESSOR anonymous: the rules of requests without a token, and of DNS)",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usagef("give the token's accessor (registry token list shows them)")
			}
			a, err := c.api()
			if err != nil {
				return err
			}
			var req wire.TokenRequest
			// Changed, not Visit: the command line is parsed into the
			// command's flag set, which shares these flags but not fs's
			// record of which were set.
			if fs.Changed("rule") {
				req.Rules = rules
			}
			if fs.Changed("description") {
				req.Description = &description
			}
			if noRules {
				if len(rules) > 0 {
					return usagef("--no-rules and --rule exclude each other")
				}
				req.Rules = []string{}
			}
			req.RotateSecret = rotate
			t, err := a.UpdateToken(ctx, args[0], req)
			if err != nil {
				return err
			}
			return printToken(stdout, c.output, t)
		},
	}.command()
}

func tokenListCommand(stdout io.Writer) *cobra.Command {
	var c common
	fs := pflag.NewFlagSet("registry token list", pflag.ContinueOnError)
	c.flags(fs)
	return spec{
		Name:       "list",
		ShortUsage: "registry token list",
		ShortHelp:  "list the tokens (never their secrets)",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			a, err := c.api()
			if err != nil {
				return err
			}
			out, err := a.Tokens(ctx)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(stdout, out)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCESSOR\tRULES\tDESCRIPTION\tCREATED")
			for _, t := range out.Tokens {
				created := "-"
				if !t.CreateTime.IsZero() {
					created = t.CreateTime.UTC().Format("2006-01-02 15:04:05Z")
				}
				rules := strings.Join(t.Rules, " ")
				if rules == "" {
					rules = "(none)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.AccessorID, rules, t.Description, created)
			}
			if !out.AccessControl {
				fmt.Fprintln(tw, "(access control is off on this server: tokens are kept but not checked)")
			}
			return tw.Flush()
		},
	}.command()
}

func tokenRevokeCommand(stdout io.Writer) *cobra.Command {
	var c common
	fs := pflag.NewFlagSet("registry token revoke", pflag.ContinueOnError)
	c.flags(fs)
	return spec{
		Name:       "revoke",
		ShortUsage: "registry token revoke ACCESSOR",
		ShortHelp:  "revoke a token: its secret stops working at once (the last admin:* token cannot be revoked)",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usagef("give the token's accessor (registry token list shows them)")
			}
			a, err := c.api()
			if err != nil {
				return err
			}
			if err := a.RevokeToken(ctx, args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "revoked %s\n", args[0])
			return err
		},
	}.command()
}

func tokenSelfCommand(stdout io.Writer) *cobra.Command {
	var c common
	fs := pflag.NewFlagSet("registry token self", pflag.ContinueOnError)
	c.flags(fs)
	return spec{
		Name:       "self",
		ShortUsage: "registry token self",
		ShortHelp:  "show the token given by --token: its accessor and rules",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			a, err := c.api()
			if err != nil {
				return err
			}
			t, err := a.TokenSelf(ctx)
			if err != nil {
				return err
			}
			return printToken(stdout, c.output, t)
		},
	}.command()
}

func tokenSecretCommand(stdout io.Writer) *cobra.Command {
	return spec{
		Name:       "secret",
		ShortUsage: "registry token secret",
		ShortHelp:  "print a new random secret, e.g. for registry server --bootstrap-token-file (talks to no server)",
		FlagSet:    pflag.NewFlagSet("registry token secret", pflag.ContinueOnError),
		Exec: func(context.Context, []string) error {
			_, err := fmt.Fprintln(stdout, api.NewSecret())
			return err
		},
	}.command()
}

func printToken(w io.Writer, output string, t *wire.Token) error {
	if output == "json" {
		return printJSON(w, t)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "accessor:\t%s\n", t.AccessorID)
	if t.Secret != "" {
		fmt.Fprintf(tw, "secret:\t%s\t(shown this once: store it now)\n", t.Secret)
	}
	fmt.Fprintf(tw, "rules:\t%s\n", strings.Join(t.Rules, " "))
	if t.Description != "" {
		fmt.Fprintf(tw, "description:\t%s\n", t.Description)
	}
	return tw.Flush()
}
