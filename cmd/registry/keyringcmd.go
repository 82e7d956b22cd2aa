package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/internal/certs"
)

// keyringCommand rotates the gossip key on every server: each server keeps
// its own keyring (in its data directory), so the command asks one server
// for the members and then walks all of them.
func keyringCommand(stdout io.Writer) *cobra.Command {
	var c common
	fs := pflag.NewFlagSet("registry keyring", pflag.ContinueOnError)
	c.flags(fs)
	return spec{
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
			"Needs an admin:* token (--token or REGISTRY_TOKEN). The token and the key go only to servers\n" +
			"of the Raft configuration, over TLS to a server certificate issued to that server's id\n" +
			"(--ca-cert), or in plaintext to loopback addresses; members known to gossip only are skipped.",
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return usagef("usage: registry keyring list | install KEY | use KEY | remove KEY")
			}
			op := args[0]
			switch {
			case op == "list" && len(args) == 1:
			case (op == "install" || op == "use" || op == "remove") && len(args) == 2:
			default:
				return usagef("usage: registry keyring list | install KEY | use KEY | remove KEY")
			}
			return runKeyring(ctx, stdout, &c, op, args[1:])
		},
	}.command()
}

func runKeyring(ctx context.Context, stdout io.Writer, c *common, op string, args []string) error {
	u, err := url.Parse(serverURL(c.server))
	if err != nil {
		return usagef("--server: %w", err)
	}
	// The first request, for the members, carries the token too: the same
	// rule as for every server below.
	if u.Scheme != "https" && !loopback(u.Host) {
		return usagef("--server %s is plaintext and not loopback: the admin token would cross the network in the clear. "+
			"Serve the API over TLS (--tls-cert) and give https:// and --ca-cert here, or run the command on a server against 127.0.0.1", c.server)
	}
	seed, err := c.api()
	if err != nil {
		return err
	}
	ms, err := seed.Members(ctx)
	if err != nil {
		return fmt.Errorf("list the servers: %w", err)
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
		switch {
		case m.Role != "leader" && m.Role != "voter" && m.Role != "nonvoter":
			// Gossip alone says nothing of who a member is: the token
			// and the key go to servers of the Raft configuration only.
			r.err = errors.New("skipped: known to gossip only, not a server of the Raft configuration")
		case m.HTTPAddr == "":
			r.err = errors.New("no HTTP address recorded in the catalog")
		case u.Scheme != "https" && !loopback(m.HTTPAddr):
			r.err = fmt.Errorf("skipped: the API at %s is plaintext, so nothing proves it is %s; serve the API over TLS (--tls-cert) and give --ca-cert here", m.HTTPAddr, m.ID)
		}
		if r.err != nil {
			results = append(results, r)
			continue
		}
		a, err := client.NewAPI(u.Scheme+"://"+m.HTTPAddr, serverClient(hc, m.ID))
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

// serverClient returns a client that sends a request only over a TLS
// connection whose certificate, besides chaining to the trusted CA, is a
// server's (certs.RoleServer) issued to id: the token and a gossip key
// must reach that server and no other that happens to hold a certificate
// of the same CA. Plaintext requests pass through (the caller allows them
// to loopback only).
func serverClient(base *http.Client, id string) *http.Client {
	var tr *http.Transport
	if t, ok := base.Transport.(*http.Transport); ok {
		tr = t.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if tr.TLSClientConfig != nil {
		tc = tr.TLSClientConfig.Clone()
	}
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server presented no certificate")
		}
		return certs.CheckServerNamed(cs.PeerCertificates[0], id)
	}
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr, Timeout: base.Timeout}
}
