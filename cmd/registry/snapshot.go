package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/store"
)

func snapshotCommand(stdout io.Writer) *cobra.Command {
	fs := pflag.NewFlagSet("registry snapshot", pflag.ContinueOnError)
	return spec{
		Name:        "snapshot",
		ShortUsage:  "registry snapshot save|restore|inspect [--server URL] FILE",
		ShortHelp:   "back up the catalog to a file, restore it from one, or say what one holds",
		FlagSet:     fs,
		Subcommands: []*cobra.Command{snapshotSaveCommand(stdout), snapshotRestoreCommand(stdout), snapshotInspectCommand(stdout)},
	}.command()
}

func serverURL(s string) string {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/")
}

// apiError turns an error answer into a message.
func apiError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Error string }
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
}

func snapshotSaveCommand(stdout io.Writer) *cobra.Command {
	fs := pflag.NewFlagSet("registry snapshot save", pflag.ContinueOnError)
	server := fs.String("server", "http://127.0.0.1:7400", "HTTP address of any server")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	var tf tlsClientFlags
	tf.flags(fs)
	return spec{
		Name:       "save",
		ShortUsage: "registry snapshot save [--server URL] FILE",
		ShortHelp:  "write a checksummed backup of the whole catalog to FILE",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usagef("give the file to write")
			}
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, serverURL(*server)+"/v1/snapshot", nil)
			if err != nil {
				return err
			}
			hc, err := tf.client()
			if err != nil {
				return err
			}
			tf.authorize(req)
			resp, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("snapshot: %w", apiError(resp))
			}
			b, err := io.ReadAll(io.LimitReader(resp.Body, store.MaxBackupBytes+64))
			if err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			// Check it before keeping it: a backup found bad only when it
			// is needed is no backup.
			if _, err := store.ReadBackup(bytes.NewReader(b)); err != nil {
				return fmt.Errorf("snapshot: the server's answer: %w", err)
			}
			if err := writeFileAtomic(args[0], b); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "saved %s: %d bytes, catalog index %s\n", args[0], len(b), resp.Header.Get("X-Switchyard-Index"))
			return nil
		},
	}.command()
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the folder that names the file is synced.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func snapshotRestoreCommand(stdout io.Writer) *cobra.Command {
	fs := pflag.NewFlagSet("registry snapshot restore", pflag.ContinueOnError)
	server := fs.String("server", "http://127.0.0.1:7400", "HTTP address of any server (the leader restores: another server names it)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	var tf tlsClientFlags
	tf.flags(fs)
	return spec{
		Name:       "restore",
		ShortUsage: "registry snapshot restore [--server URL] FILE",
		ShortHelp:  "replace the cluster's namespaces, services and instances with FILE's",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usagef("give the backup file to restore")
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			// Refuse a bad file here, before any server sees it.
			if _, err := store.ReadBackup(bytes.NewReader(b)); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			hc, err := tf.client()
			if err != nil {
				return err
			}
			target := serverURL(*server)
			for attempt := 0; ; attempt++ {
				req, err := http.NewRequestWithContext(ctx, http.MethodPut, target+"/v1/snapshot", bytes.NewReader(b))
				if err != nil {
					return err
				}
				tf.authorize(req)
				resp, err := hc.Do(req)
				if err != nil {
					return fmt.Errorf("restore: %w", err)
				}
				leader := resp.Header.Get("X-Switchyard-Leader")
				if resp.StatusCode == http.StatusOK {
					resp.Body.Close()
					fmt.Fprintf(stdout, "restored %s through %s\n", args[0], target)
					return nil
				}
				err = apiError(resp)
				resp.Body.Close()
				// A follower names the leader; go there once.
				if resp.StatusCode == http.StatusConflict && leader != "" && attempt == 0 {
					if host, port, serr := net.SplitHostPort(leader); serr == nil {
						if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
							scheme := "http://"
							if strings.HasPrefix(target, "https://") {
								scheme = "https://"
							}
							target = scheme + net.JoinHostPort(host, port)
							continue
						}
					}
					return fmt.Errorf("restore: %w; the leader listens on %s: pass its address with --server", err, leader)
				}
				return fmt.Errorf("restore: %w", err)
			}
		},
	}.command()
}

// snapshotInspectCommand checks a backup file as restore would (magic,
// version, checksum, every record) and says what it holds, without a
// server.
func snapshotInspectCommand(stdout io.Writer) *cobra.Command {
	fs := pflag.NewFlagSet("registry snapshot inspect", pflag.ContinueOnError)
	output := fs.String("output", "table", "table or json")
	return spec{
		Name:       "inspect",
		ShortUsage: "registry snapshot inspect FILE",
		ShortHelp:  "check a backup file and say what it holds (no server needed)",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return usagef("give the backup FILE to inspect, got %d arguments", len(args))
			}
			if *output != "table" && *output != "json" {
				return usagef("--output %q: use table or json", *output)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			body, err := store.ReadBackup(f)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			st := store.New()
			if err := st.Restore(bytes.NewReader(body)); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			type content struct {
				File       string `json:"file"`
				Bytes      int64  `json:"bytes"`
				Index      uint64 `json:"index"`
				Namespaces int    `json:"namespaces"`
				Services   int    `json:"services"`
				Instances  int    `json:"instances"`
				Healthy    int    `json:"healthy"`
				Tokens     int    `json:"tokens"`
			}
			_, nss, _ := st.Namespaces()
			c := content{File: args[0], Bytes: fi.Size(), Index: st.Index(), Namespaces: len(nss)}
			for _, ns := range nss {
				_, svcs, err := st.Services(ns.Name)
				if err != nil {
					return err
				}
				c.Services += len(svcs)
				for _, v := range svcs {
					c.Instances += v.Len()
					c.Healthy += v.Healthy()
				}
			}
			_, _, toks := st.Tokens()
			c.Tokens = len(toks)
			if *output == "json" {
				return printJSON(stdout, c)
			}
			return table(stdout, "WHAT\tVALUE", [][]string{
				{"file", c.File}, {"bytes", fmt.Sprint(c.Bytes)}, {"checksum", "ok"}, {"index", fmt.Sprint(c.Index)},
				{"namespaces", fmt.Sprint(c.Namespaces)}, {"services", fmt.Sprint(c.Services)},
				{"instances", fmt.Sprintf("%d (%d healthy when taken)", c.Instances, c.Healthy)}, {"tokens", fmt.Sprint(c.Tokens)},
			})
		},
	}.command()
}
