package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/api"
	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/internal/certs"
	"github.com/switchyard-io/switchyard/store"
)

// common are the flags every client command takes.
type common struct {
	server    string
	output    string
	namespace string
	tls       tlsClientFlags
}

func (c *common) flags(fs *pflag.FlagSet) {
	fs.StringVar(&c.server, "server", "http://127.0.0.1:7400", "HTTP address of any server (https://… for a server with --tls-cert)")
	fs.StringVar(&c.output, "output", "table", "table or json")
	fs.StringVar(&c.namespace, "namespace", store.DefaultNamespace, "namespace")
	c.tls.flags(fs)
}

func (c *common) api() (*client.API, error) {
	if c.output != "table" && c.output != "json" {
		return nil, usagef("--output %q: use table or json", c.output)
	}
	hc, err := c.tls.client()
	if err != nil {
		return nil, err
	}
	a, err := client.NewAPI(serverURL(c.server), hc)
	if err != nil {
		return nil, err
	}
	return a.WithToken(c.tls.token), nil
}

// tlsClientFlags: how a client command trusts an HTTPS server and proves
// itself to one that verifies clients, and the token it sends.
type tlsClientFlags struct{ ca, cert, key, token, tokenFile string }

// loadToken reads --token-file when no --token was given: a file keeps
// the secret out of the process list and the shell's history.
func (t *tlsClientFlags) loadToken() error {
	if t.token != "" || t.tokenFile == "" {
		return nil
	}
	b, err := os.ReadFile(t.tokenFile)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	t.token = strings.TrimSpace(string(b))
	if t.token == "" {
		return usagef("--token-file %s is empty", t.tokenFile)
	}
	return nil
}

// authorize adds the token to a request made by hand.
func (t *tlsClientFlags) authorize(req *http.Request) {
	if t.token != "" {
		req.Header.Set(api.HeaderToken, t.token)
	}
}

func (t *tlsClientFlags) flags(fs *pflag.FlagSet) {
	fs.StringVar(&t.token, "token", "", "token secret for a server with access control (or REGISTRY_TOKEN)")
	fs.StringVar(&t.tokenFile, "token-file", "", "file holding the token secret, used when no --token is given (or REGISTRY_TOKEN_FILE)")
	fs.StringVar(&t.ca, "ca-cert", "", "CA certificate that signed the server's (HTTPS)")
	fs.StringVar(&t.cert, "client-cert", "", "client certificate, for a server with --tls-verify-clients")
	fs.StringVar(&t.key, "client-key", "", "the key of --client-cert")
}

// client is the HTTP client the flags ask for (the default one when none
// is set).
func (t *tlsClientFlags) client() (*http.Client, error) {
	if err := t.loadToken(); err != nil {
		return nil, err
	}
	if t.ca == "" && t.cert == "" && t.key == "" {
		return http.DefaultClient, nil
	}
	pems, err := readFiles(t.cert, t.key, t.ca)
	if err != nil {
		return nil, err
	}
	tc, err := certs.ClientConfig(pems[0], pems[1], pems[2])
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr}, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
func (l *listFlag) Type() string       { return "list" }

func registerCommand(stdout io.Writer) *cobra.Command {
	var (
		c                        common
		service, id, address     string
		port, weight             int
		persistent, disabled     bool
		region, datacenter, unit string
		tags, meta               listFlag
	)
	fs := pflag.NewFlagSet("registry register", pflag.ContinueOnError)
	c.flags(fs)
	fs.StringVar(&service, "service", "", "service name (required)")
	fs.StringVar(&id, "id", "", "instance id (required)")
	fs.StringVar(&address, "address", "", "IP address or host name (required)")
	fs.IntVar(&port, "port", 0, "port (required)")
	fs.IntVar(&weight, "weight", store.DefaultWeight, "weight 0-10000 (0 drains the instance)")
	fs.BoolVar(&persistent, "persistent", false, "persistent instance (checked by servers) instead of ephemeral (heartbeats)")
	fs.BoolVar(&disabled, "disabled", false, "register disabled: listed, but given no traffic")
	fs.StringVar(&region, "region", "", "locality: region")
	fs.StringVar(&datacenter, "datacenter", "", "locality: datacenter")
	fs.StringVar(&unit, "unit", "", "locality: unit")
	fs.Var(&tags, "tag", "tag (repeatable)")
	fs.Var(&meta, "meta", "metadata key=value (repeatable)")
	return spec{
		Name:       "register",
		ShortUsage: "registry register --service S --id I --address A --port P [flags]",
		ShortHelp:  "register or update an instance",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			a, err := c.api()
			if err != nil {
				return err
			}
			if service == "" || id == "" || address == "" || port == 0 {
				return usagef("--service, --id, --address and --port are required")
			}
			r := client.Registration{Address: address, Port: port, Weight: &weight,
				Locality: store.Locality{Region: region, Datacenter: datacenter, Unit: unit}, Tags: tags}
			eph, en := !persistent, !disabled
			r.Ephemeral, r.Enabled = &eph, &en
			for _, kv := range meta {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return usagef("--meta %q: use key=value", kv)
				}
				if r.Metadata == nil {
					r.Metadata = map[string]string{}
				}
				r.Metadata[k] = v
			}
			in, err := a.Register(ctx, c.namespace, service, id, r)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(stdout, in)
			}
			return printInstances(stdout, []wire.Instance{{Instance: in}})
		},
	}.command()
}

func deregisterCommand(stdout io.Writer) *cobra.Command {
	var (
		c           common
		service, id string
	)
	fs := pflag.NewFlagSet("registry deregister", pflag.ContinueOnError)
	c.flags(fs)
	fs.StringVar(&service, "service", "", "service name (required)")
	fs.StringVar(&id, "id", "", "instance id (required)")
	return spec{
		Name:       "deregister",
		ShortUsage: "registry deregister --service S --id I",
		ShortHelp:  "remove an instance",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			a, err := c.api()
			if err != nil {
				return err
			}
			if service == "" || id == "" {
				return usagef("--service and --id are required")
			}
			if err := a.Deregister(ctx, c.namespace, service, id); err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(stdout, map[string]string{"deregistered": id})
			}
			fmt.Fprintf(stdout, "deregistered %s from %s/%s\n", id, c.namespace, service)
			return nil
		},
	}.command()
}

func lookupCommand(stdout io.Writer) *cobra.Command {
	var (
		c                   common
		healthy, consistent bool
		near, cacheDir      string
	)
	fs := pflag.NewFlagSet("registry lookup", pflag.ContinueOnError)
	fs.StringVar(&cacheDir, "cache-dir", "", "answer through the SDK, with a disk snapshot in this folder: when no server answers, from the snapshot (and say how old it is)")
	c.flags(fs)
	fs.BoolVar(&healthy, "healthy", false, "only healthy, enabled instances")
	fs.BoolVar(&consistent, "consistent", false, "linearizable read")
	fs.StringVar(&near, "near", "", "select for a caller at region/datacenter/unit: nearest first, with spill-over")
	return spec{
		Name:       "lookup",
		ShortUsage: "registry lookup [flags] SERVICE",
		ShortHelp:  "list a service's instances",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			a, err := c.api()
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return usagef("give exactly one SERVICE, got %d arguments (%s)", len(args), strings.Join(args, " "))
			}
			if cacheDir != "" {
				return sdkLookup(ctx, stdout, c, cacheDir, near, args[0], false, client.PickOptions{})
			}
			res, err := a.Lookup(ctx, c.namespace, args[0], client.LookupOptions{HealthyOnly: healthy, Near: near, Consistent: consistent})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(stdout, res)
			}
			return printInstances(stdout, res.Instances)
		},
	}.command()
}

func membersCommand(stdout io.Writer) *cobra.Command {
	var c common
	fs := pflag.NewFlagSet("registry members", pflag.ContinueOnError)
	c.flags(fs)
	return spec{
		Name:       "members",
		ShortUsage: "registry members [--server URL] [--output table|json]",
		ShortHelp:  "list the cluster's servers",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			a, err := c.api()
			if err != nil {
				return err
			}
			ms, err := a.Members(ctx)
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(stdout, ms)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tSTATUS\tRTT\tHTTP\tRAFT\tGOSSIP\tLOCALITY")
			for _, m := range ms {
				rtt := "-"
				if m.RTTMs > 0 {
					rtt = strconv.FormatFloat(m.RTTMs, 'f', 2, 64) + "ms"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, serverRole(m), m.Status, rtt, m.HTTPAddr, m.RaftAddr, m.GossipAddr, m.Locality)
			}
			return tw.Flush()
		},
	}.command()
}

func printInstances(w io.Writer, ins []wire.Instance) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	levels := false
	for _, in := range ins {
		levels = levels || in.Level != ""
	}
	head := "ID\tADDRESS\tWEIGHT\tHEALTHY\tENABLED\tLOCALITY\tTAGS"
	if levels {
		head += "\tLEVEL"
	}
	fmt.Fprintln(tw, head)
	for _, in := range ins {
		fmt.Fprintf(tw, "%s\t%s:%d\t%d\t%v\t%v\t%s\t%s", in.ID, in.Address, in.Port, in.Weight, in.Healthy,
			in.Enabled, in.Locality, strings.Join(in.Tags, ","))
		if levels {
			fmt.Fprintf(tw, "\t%s", in.Level)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func pickCommand(stdout io.Writer) *cobra.Command {
	var (
		c                             common
		near, key, balancer, cacheDir string
	)
	fs := pflag.NewFlagSet("registry pick", pflag.ContinueOnError)
	fs.StringVar(&cacheDir, "cache-dir", "", "pick through the SDK, with a disk snapshot in this folder (see lookup --cache-dir)")
	c.flags(fs)
	fs.StringVar(&near, "near", "", "the caller's region/datacenter/unit (default: the server's)")
	fs.StringVar(&key, "key", "", "stickiness key for consistent_hash (a session or user id)")
	fs.StringVar(&balancer, "balancer", "", "weighted_random, round_robin, least_loaded or consistent_hash (default: the service's)")
	return spec{
		Name:       "pick",
		ShortUsage: "registry pick [flags] SERVICE",
		ShortHelp:  "choose one instance of a service for a caller",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			a, err := c.api()
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return usagef("give exactly one SERVICE, got %d arguments (%s)", len(args), strings.Join(args, " "))
			}
			if cacheDir != "" {
				return sdkLookup(ctx, stdout, c, cacheDir, near, args[0], true, client.PickOptions{Key: key, Balancer: balancer})
			}
			res, err := a.Pick(ctx, c.namespace, args[0], client.ServerPickOptions{Near: near, Key: key, Balancer: balancer})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(stdout, res)
			}
			return printInstances(stdout, []wire.Instance{res.Instance})
		},
	}.command()
}

// sdkLookup answers a lookup (or a pick) through the SDK, which falls back
// to its disk snapshot in cacheDir when no server answers, and says where
// the answer came from.
func sdkLookup(ctx context.Context, stdout io.Writer, c common, cacheDir, near, service string, pick bool, o client.PickOptions) error {
	if c.output != "table" && c.output != "json" {
		return usagef("--output %q: use table or json", c.output)
	}
	loc, err := api.ParseLocality(near)
	if err != nil {
		return usagef("--near: %w", err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("--cache-dir: %w", err)
	}
	cfg := client.Config{Servers: []string{serverURL(c.server)}, Namespace: c.namespace, Locality: loc, CacheDir: cacheDir, Token: c.tls.token}
	if c.tls.ca != "" || c.tls.cert != "" || c.tls.key != "" {
		// Otherwise the SDK's own client, which keeps connections for it.
		if cfg.HTTPClient, err = c.tls.client(); err != nil {
			return err
		}
	}
	cl, err := client.New(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a, err := cl.Lookup(lctx, service)
	if err != nil {
		return err
	}
	ins := a.Instances
	if pick {
		in, err := cl.Pick(lctx, service, o)
		if err != nil {
			return err
		}
		cl.Done(service, in, nil)
		ins = []wire.Instance{in}
	}
	if c.output == "json" {
		return printJSON(stdout, struct {
			Service   string          `json:"service"`
			Source    client.Source   `json:"source"`
			AgeSecs   float64         `json:"age_seconds"`
			ServedBy  string          `json:"served_by"`
			Instances []wire.Instance `json:"instances"`
		}{service, a.Source, a.Age.Seconds(), a.ServedBy, ins})
	}
	if err := printInstances(stdout, ins); err != nil {
		return err
	}
	if a.Source != client.SourceLive {
		fmt.Fprintf(stdout, "(answered from %s, %s old)\n", a.Source, a.Age.Round(time.Second))
	}
	return nil
}

// readFiles reads each named file; an empty name gives nil.
func readFiles(paths ...string) ([][]byte, error) {
	out := make([][]byte, len(paths))
	for i, p := range paths {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// serverRole says what a server is: leader or voter; read (never votes);
// standby (of role voter, waiting without a vote to replace one); or none
// (known to gossip only).
func serverRole(m client.Member) string {
	switch {
	case m.ServerRole == store.RoleRead && m.Role == "none":
		return "read (not joined)"
	case m.ServerRole == store.RoleRead:
		return "read"
	case m.Role == "nonvoter":
		return "standby"
	}
	return m.Role
}
