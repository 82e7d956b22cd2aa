package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestScaleShortForm runs `registry-bench scale` at a small size against a
// real cluster of registry processes: every phase, its baselines and its
// child processes (watchers over three processes, bare long-poll servers),
// and checks what each row says.
func TestScaleShortForm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of registry processes")
	}
	bin := filepath.Join(t.TempDir(), "registry")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/registry").CombinedOutput(); err != nil {
		t.Fatalf("build registry: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	err := Run(ctx, []string{"scale", "--registry", bin, "--dir", t.TempDir(), "--output", "json",
		"--register-duration", "1s", "--clients", "16",
		"--instances", "3000", "--services", "40", "--big-services", "2", "--big-size", "300",
		"--watchers", "300", "--cluster-watchers", "500", "--readers", "1", "--watchers-per-process", "200",
		"--heartbeat-instances", "400", "--heartbeat-interval", "1s", "--heartbeat-duration", "2s", "--heartbeat-ttl", "2s",
		"--silence-samples", "10"}, &out, &progress)
	if err != nil {
		t.Fatalf("scale: %v\n%s", err, progress.String())
	}
	var got struct {
		Rows []scaleRow `json:"rows"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("scale output: %v\n%s", err, out.String())
	}
	byPhase := map[string][]scaleRow{}
	for _, r := range got.Rows {
		byPhase[r.Phase] = append(byPhase[r.Phase], r)
	}
	for phase, want := range map[string]int{"disk": 1, "register": 12, "fill": 2, "snapshot": 5, "watch": 6, "heartbeat": 4} {
		if len(byPhase[phase]) != want {
			t.Errorf("phase %s: %d rows, want %d: %+v", phase, len(byPhase[phase]), want, byPhase[phase])
		}
	}
	for _, r := range got.Rows {
		// Resident sets (in the figures, not the values) may shrink as the
		// collector returns memory; no value may.
		if r.Value < 0 {
			t.Errorf("%s %q: negative value %v", r.Phase, r.What, r.Value)
		}
	}
	for _, r := range byPhase["register"] {
		if r.Value <= 0 || r.Ratio <= 0 {
			t.Errorf("register row without a rate or a ratio to the bare handler: %+v", r)
		}
	}
	if f := byPhase["fill"]; len(f) == 2 {
		if f[0].Value <= 0 || f[0].Ratio <= 0 {
			t.Errorf("fill: no rate or no last/first ratio: %+v", f[0])
		}
		if f[1].Value <= 0 {
			t.Errorf("fill: a catalog of 3,000 instances took no memory: %+v", f[1])
		}
	}
	if sn := byPhase["snapshot"]; len(sn) == 5 {
		// The fill took snapshots (the run sets the threshold low).
		if sn[0].Value <= 0 || strings.Contains(sn[0].Figure, "none") {
			t.Errorf("no snapshot taken during the fill: %+v", sn[0])
		}
		if sn[4].Value != 0 {
			t.Errorf("requests failed while a snapshot was taken or installed: %+v", sn[4])
		}
	}
	// Every parked watcher woke, none failed, none missed the write.
	woken := regexp.MustCompile(`; ([0-9,]+) woken, 0 missed, 0 failed`)
	for _, r := range byPhase["watch"] {
		if !strings.Contains(r.What, "all woken by one write") {
			continue
		}
		m := woken.FindStringSubmatch(r.Figure)
		if m == nil {
			t.Errorf("watch: not every watcher woke: %s", r.Figure)
			continue
		}
		if n := strings.ReplaceAll(m[1], ",", ""); n != "300" && n != "500" {
			t.Errorf("watch: %s woken, want 300 or 500: %s", m[1], r.Figure)
		}
		if r.Ratio <= 0 {
			t.Errorf("watch: no ratio to the bare long-poll servers: %+v", r)
		}
	}
	if hb := byPhase["heartbeat"]; len(hb) == 4 {
		if hb[0].Value <= 0 || hb[0].Ratio <= 0 {
			t.Errorf("heartbeat: no rate: %+v", hb[0])
		}
		if !strings.Contains(hb[2].Figure, "; 0 Raft entries") {
			t.Errorf("heartbeats caused Raft entries: %s", hb[2].Figure)
		}
		if !strings.Contains(hb[3].Figure, "; 0 never seen unhealthy everywhere") || hb[3].Value <= 0 {
			t.Errorf("heartbeat: silent instances not all seen unhealthy: %s", hb[3].Figure)
		}
	}
	if t.Failed() {
		t.Logf("progress:\n%s", progress.String())
	}
}

// TestScaleRefusals: flags that cannot make a run are refused before any
// server starts, each naming what to change.
func TestScaleRefusals(t *testing.T) {
	used := t.TempDir()
	if err := os.WriteFile(filepath.Join(used, "s1.log"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dir", used}, "holds an earlier run's files (s1.log…)"},
		{[]string{"--raft-log-store", "rocksdb"}, `--raft-log-store "rocksdb": use bolt or wal`},
		{[]string{"--clients", "0"}, "--clients, --register-duration and --fill-max-duration must be positive"},
	} {
		var out, errb bytes.Buffer
		// A path that exists: the binary is not started before the flags pass.
		err := Run(context.Background(), append([]string{"scale", "--registry", "/bin/true", "--quiet"}, tc.args...), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("scale %v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
