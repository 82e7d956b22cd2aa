package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall"
	"time"
)

// runDetect kills a server process (SIGKILL: no goodbye) and measures how
// long another server takes to show it suspect, then dead, in its members
// list.
func runDetect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c       commonFlags
		server  string
		member  string
		pid     int
		maxWait time.Duration
	)
	fs := newFlagSet("detect", stderr)
	c.register(fs)
	fs.StringVar(&server, "server", "http://127.0.0.1:7410", "server whose members list is watched")
	fs.StringVar(&member, "member", "n3", "id of the server that is killed")
	fs.IntVar(&pid, "kill-pid", 0, "pid of that server's process (required)")
	fs.DurationVar(&maxWait, "max-wait", time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if pid <= 0 {
		return fmt.Errorf("--kill-pid is required")
	}
	hc := &http.Client{Timeout: c.timeout, Transport: withToken(http.DefaultTransport)}
	status := func() (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/v1/cluster/members", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var body struct {
			Members []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"members"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return "", err
		}
		for _, m := range body.Members {
			if m.ID == member {
				return m.Status, nil
			}
		}
		return "", fmt.Errorf("%s is not a member", member)
	}
	if st, err := status(); err != nil || st != "alive" {
		return fmt.Errorf("%s before the kill: status %q, %v", member, st, err)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	progress(&c, stderr, "detect: killed %s (pid %d), watching %s", member, pid, server)
	var suspect, dead time.Duration
	for dead == 0 {
		if time.Since(start) > maxWait {
			return fmt.Errorf("%s not dead after %v", member, maxWait)
		}
		st, err := status()
		if err == nil {
			if st == "suspect" && suspect == 0 {
				suspect = time.Since(start)
			}
			if st == "dead" {
				dead = time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c.output == "json" {
		return writeJSON(stdout, map[string]any{"bench": "detect", "member": member, "suspect_ms": ms(suspect), "dead_ms": ms(dead)})
	}
	t := &table{title: "Dead server detection (SIGKILL → status in another server's members list)",
		header: []string{"server killed", "suspect after ms", "dead after ms"}}
	sus := "-"
	if suspect > 0 {
		sus = fmtMs(ms(suspect))
	}
	t.add(member, sus, fmtMs(ms(dead)))
	return t.write(stdout)
}
