package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The command line is spf13/cobra's (as kubectl, etcdctl and helm use):
// flags anywhere on the line, unknown commands and flags named with
// suggestions, --help that never runs the command, shell completion. Each
// command is written as a spec (its usage, help, flags and what it runs),
// and spec.command makes the cobra command of it, with one rule for every
// command: a flag not given on the line takes its value from
// REGISTRY_<FLAG> (REGISTRY_NODE_ID for --node-id), then from the JSON
// config file (--config or REGISTRY_CONFIG), then its default.

// Exit codes: 0 done, 1 failed, 2 the command line was wrong.
const (
	exitFailed = 1
	exitUsage  = 2
)

// usageError is a command line that cannot be run: exit 2.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// usagef returns a usageError.
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// spec is one command.
type spec struct {
	Name string
	// ShortUsage is "registry <path> [flags] ARGS"; the part after the
	// command's own name is cobra's Use.
	ShortUsage  string
	ShortHelp   string
	LongHelp    string
	FlagSet     *pflag.FlagSet
	Subcommands []*cobra.Command
	// Exec runs the command; nil for a group of subcommands.
	Exec func(ctx context.Context, args []string) error
}

// command makes the cobra command.
func (s spec) command() *cobra.Command {
	use := s.Name
	if i := strings.Index(s.ShortUsage+" ", " "+s.Name+" "); i >= 0 {
		use = strings.TrimSpace(s.ShortUsage[i+1:])
	}
	cmd := &cobra.Command{Use: use, Short: s.ShortHelp, Long: strings.TrimSpace(s.ShortHelp + "\n\n" + s.LongHelp),
		SilenceUsage: true, SilenceErrors: true}
	if s.LongHelp == "" {
		cmd.Long = ""
	}
	if s.FlagSet != nil {
		cmd.Flags().AddFlagSet(s.FlagSet)
	}
	cmd.AddCommand(s.Subcommands...)
	switch {
	case s.Exec != nil:
		exec := s.Exec
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if err := settle(cmd); err != nil {
				return err
			}
			return exec(cmd.Context(), args)
		}
	case len(s.Subcommands) > 0:
		// A group: cobra would print its help and succeed; a missing or
		// unknown subcommand is a usage error.
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			var names []string
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
			if len(args) == 0 {
				return usagef("%s needs a subcommand: %s (see %s --help)", cmd.CommandPath(), strings.Join(names, ", "), cmd.CommandPath())
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if sug := cmd.SuggestionsFor(args[0]); len(sug) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", sug[0])
			}
			return usagef("%s (its subcommands: %s)", msg, strings.Join(names, ", "))
		}
	}
	return cmd
}

// envPrefix is the prefix of the environment variables that set flags.
const envPrefix = "REGISTRY_"

// envName is the variable that sets flag name: REGISTRY_NODE_ID for node-id.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// settle gives every flag of cmd not set on the line its value from the
// environment, then from the config file. A config file key that is no
// flag of any command is an error (a misspelt key must not pass silently);
// a key of another command's flag is left to that command, so one file
// serves them all.
func settle(cmd *cobra.Command) error {
	fs := cmd.Flags()
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok && f.Name != "config" {
			if e := fs.Set(f.Name, v); e != nil {
				err = usagef("%s=%q: %v", envName(f.Name), v, e)
			}
		}
	})
	if err != nil {
		return err
	}
	path, _ := fs.GetString("config")
	if path == "" {
		return nil
	}
	values, err := readConfig(path)
	if err != nil {
		return err
	}
	known := allFlags(cmd.Root())
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil {
			if !known[k] {
				return usagef("config file %s: %q is no flag of any registry command", path, k)
			}
			continue
		}
		if f.Changed {
			continue
		}
		if _, fromEnv := os.LookupEnv(envName(k)); fromEnv {
			continue
		}
		if err := fs.Set(k, values[k]); err != nil {
			return usagef("config file %s: %q: %v", path, k, err)
		}
	}
	return nil
}

// readConfig reads a JSON object of flag names and values: strings,
// numbers, booleans, or lists of them (a repeatable flag, or a
// comma-separated one).
func readConfig(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, usagef("config file %s: want a JSON object of flag names and values: %v", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		s, err := configValue(v)
		if err != nil {
			return nil, usagef("config file %s: %q: %v", path, k, err)
		}
		out[k] = s
	}
	return out, nil
}

func configValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, err := configValue(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("want a string, a number, a boolean or a list of them")
}

// allFlags names every flag of every command under root.
func allFlags(root *cobra.Command) map[string]bool {
	out := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { out[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { out[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return out
}
