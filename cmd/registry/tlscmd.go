package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/internal/certs"
)

func tlsCommand(stdout io.Writer) *cobra.Command {
	return spec{
		Name:        "tls",
		ShortUsage:  "registry tls ca|cert [flags]",
		ShortHelp:   "make a certificate authority and certificates for the servers",
		FlagSet:     pflag.NewFlagSet("registry tls", pflag.ContinueOnError),
		Subcommands: []*cobra.Command{tlsCACommand(stdout), tlsCertCommand(stdout)},
	}.command()
}

// writeNew writes a file that must not exist yet (keys are never
// overwritten by mistake); private keys are readable by the owner only.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func tlsCACommand(stdout io.Writer) *cobra.Command {
	fs := pflag.NewFlagSet("registry tls ca", pflag.ContinueOnError)
	dir := fs.String("out-dir", ".", "where ca.pem and ca-key.pem go")
	days := fs.Int("days", 1825, "validity in days")
	return spec{
		Name: "ca", ShortUsage: "registry tls ca [--out-dir DIR]", ShortHelp: "make the cluster's certificate authority", FlagSet: fs,
		Exec: func(context.Context, []string) error {
			c, k, err := certs.NewCA("Switchyard CA", time.Duration(*days)*24*time.Hour)
			if err != nil {
				return err
			}
			if err := writeNew(filepath.Join(*dir, "ca.pem"), c, 0o644); err != nil {
				return err
			}
			if err := writeNew(filepath.Join(*dir, "ca-key.pem"), k, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s and %s (keep the key offline)\n", filepath.Join(*dir, "ca.pem"), filepath.Join(*dir, "ca-key.pem"))
			return nil
		},
	}.command()
}

func tlsCertCommand(stdout io.Writer) *cobra.Command {
	fs := pflag.NewFlagSet("registry tls cert", pflag.ContinueOnError)
	caDir := fs.String("ca-dir", ".", "where ca.pem and ca-key.pem are")
	dir := fs.String("out-dir", ".", "where NAME.pem and NAME-key.pem go")
	role := fs.String("role", "server", "server or client")
	name := fs.String("name", "", "the certificate's name, e.g. the server's node id (required)")
	hosts := fs.String("hosts", "127.0.0.1,localhost", "comma-separated IP addresses and DNS names it serves")
	days := fs.Int("days", 365, "validity in days")
	return spec{
		Name: "cert", ShortUsage: "registry tls cert --name NAME [--role server|client] [--hosts A,B]", ShortHelp: "make a certificate signed by the CA", FlagSet: fs,
		Exec: func(context.Context, []string) error {
			if *name == "" {
				return usagef("--name is required")
			}
			r := map[string]string{"server": certs.RoleServer, "client": certs.RoleClient}[*role]
			if r == "" {
				return usagef("--role %q: use server or client", *role)
			}
			caCert, err := os.ReadFile(filepath.Join(*caDir, "ca.pem"))
			if err != nil {
				return err
			}
			caKey, err := os.ReadFile(filepath.Join(*caDir, "ca-key.pem"))
			if err != nil {
				return err
			}
			c, k, err := certs.Issue(caCert, caKey, r, *name, strings.Split(*hosts, ","), time.Duration(*days)*24*time.Hour)
			if err != nil {
				return err
			}
			cp, kp := filepath.Join(*dir, *name+".pem"), filepath.Join(*dir, *name+"-key.pem")
			if err := writeNew(cp, c, 0o644); err != nil {
				return err
			}
			if err := writeNew(kp, k, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s and %s (%s)\n", cp, kp, r)
			return nil
		},
	}.command()
}
