package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/drill"
	"github.com/switchyard-io/switchyard/store"
)

// The drill runner drives the deployment of deploy/docker-compose.yml
// (started by scripts/drill.sh up): it writes continuously, applies a
// fault with the docker CLI, heals it, collects what the callers saw and
// judges it (drill.Judge).

// drillTopology is the deployment's fixed layout: datacenter dc-x is the
// subnet 172.30.N.0/24 (a=1, b=2, c=3), its voter at .11, its read server
// at .12, its caller at .31; dc-a's xDS caller is at .32, and its service
// (grpc-echo) runs in dc-b and dc-c only, dc-b being the nearer.
var drillTopology = struct {
	project string
	servers map[string]string // voter id → HTTP address
	readers map[string]string // read server id → HTTP address
	callers map[string]string // datacenter → caller stats address
	subnets map[string]string // datacenter → subnet
	// The xDS caller: its stats address, datacenter and home.
	xdsCaller, xdsDatacenter, xdsHome string
	// services are the example services every server must hold healthy
	// when a drill ends.
	services []string
}{
	xdsCaller: "172.30.1.32:8090", xdsDatacenter: "dc-a", xdsHome: "dc-b",
	services: []string{"echo", "grpc-echo"},
	project:  "switchyard-drill",
	servers:  map[string]string{"reg-a": "172.30.1.11:7400", "reg-b": "172.30.2.11:7400", "reg-c": "172.30.3.11:7400"},
	readers:  map[string]string{"reg-a-r": "172.30.1.12:7400", "reg-b-r": "172.30.2.12:7400", "reg-c-r": "172.30.3.12:7400"},
	callers:  map[string]string{"dc-a": "172.30.1.31:8090", "dc-b": "172.30.2.31:8090", "dc-c": "172.30.3.31:8090"},
	subnets:  map[string]string{"dc-a": "172.30.1.0/24", "dc-b": "172.30.2.0/24", "dc-c": "172.30.3.0/24"},
}

// drillAllServers is every server of the drill, voters and read servers:
// each must hold every acknowledged write and the same health.
func drillAllServers() map[string]string {
	all := maps.Clone(drillTopology.servers)
	maps.Copy(all, drillTopology.readers)
	return all
}

// cutRules are the host firewall rules that cut a datacenter's subnet off
// from everything else (traffic inside it still flows).
func cutRules(subnet string) [][]string {
	return [][]string{
		{"DOCKER-USER", "-s", subnet, "!", "-d", subnet, "-j", "DROP"},
		{"DOCKER-USER", "-d", subnet, "!", "-s", subnet, "-j", "DROP"},
	}
}

func iptables(ctx context.Context, op string, rule []string) error {
	args := append([]string{op}, rule...)
	out, err := exec.CommandContext(ctx, "iptables", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// container finds the drill's container of a compose service by the labels
// that Compose v1 and v2 both set: their names differ (v1
// "switchyard-drill_n1_1", v2 "switchyard-drill-n1-1").
func container(ctx context.Context, svc string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", "ps", "-aq",
		"--filter", "label=com.docker.compose.project="+drillTopology.project,
		"--filter", "label=com.docker.compose.service="+svc).Output()
	if err != nil {
		return "", fmt.Errorf("docker ps for the drill's %s: %w", svc, err)
	}
	ids := strings.Fields(string(out))
	if len(ids) != 1 {
		return "", fmt.Errorf("the drill's %s: %d containers of compose project %s (is the drill up? scripts/drill.sh up)", svc, len(ids), drillTopology.project)
	}
	return ids[0], nil
}

// dockerOn runs `docker <verb> [flags] <container of svc>`.
func dockerOn(ctx context.Context, svc string, args ...string) error {
	id, err := container(ctx, svc)
	if err != nil {
		return err
	}
	return docker(ctx, append(args, id)...)
}

func docker(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

var drillScenarios = []string{"cut-datacenter", "kill-leader", "pause-server", "kill-all-servers"}

func drillCommand(stdout io.Writer) *cobra.Command {
	fs := pflag.NewFlagSet("registry drill", pflag.ContinueOnError)
	fault := fs.Duration("fault", 60*time.Second, "how long the fault lasts (kill-leader and pause-server: 30 s is the drill's)")
	before := fs.Duration("before", 10*time.Second, "calls measured before the fault")
	after := fs.Duration("after", 20*time.Second, "calls measured after the heal")
	reportDir := fs.String("report-dir", "drill-reports", "where the report goes (JSON, Markdown, SVG)")
	latency := fs.Duration("latency", 20*time.Millisecond, "the delay added between datacenters (registry drill latency, started by scripts/drill.sh up); 0 when none")
	return spec{
		Name:        "drill",
		ShortUsage:  "registry drill [flags] " + strings.Join(drillScenarios, "|"),
		ShortHelp:   "run a disaster drill against the deployment of scripts/drill.sh up",
		FlagSet:     fs,
		Subcommands: []*cobra.Command{drillLatencyCommand(stdout)},
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 || !slices.Contains(drillScenarios, args[0]) {
				return usagef("give one scenario: %s", strings.Join(drillScenarios, ", "))
			}
			return runDrill(ctx, stdout, args[0], *before, *fault, *after, *latency, *reportDir)
		},
	}.command()
}

// writer registers and deregisters instances continuously, round robin
// over the servers, and remembers what was acknowledged.
type writer struct {
	mu       sync.Mutex
	present  map[string]bool // acknowledged registrations not sent a deregistration since
	acked    int
	unsure   int // deregistrations whose outcome is unknown
	lastAck  time.Time
	maxGap   time.Duration
	gapStart time.Time // when the longest gap began
	secs     []drill.WriteSecond
}

// second returns the record of the second t falls in; w.mu is held.
func (w *writer) second(t time.Time) *drill.WriteSecond {
	at := t.Unix()
	if len(w.secs) == 0 || w.secs[len(w.secs)-1].At != at {
		w.secs = append(w.secs, drill.WriteSecond{At: at})
	}
	return &w.secs[len(w.secs)-1]
}

func (w *writer) run(ctx context.Context) {
	apis := map[string]*client.API{}
	ids := []string{}
	// Like a real client: a server that does not accept a connection in
	// half a second is skipped, and a failed write goes to the next server
	// at once (a registration is idempotent).
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext}}
	for id, addr := range drillTopology.servers {
		a, _ := client.NewAPI("http://"+addr, hc)
		apis[id] = a
		ids = append(ids, id)
	}
	slices.Sort(ids)
	f := false
	w.lastAck = time.Now()
	for n := 0; ctx.Err() == nil; n++ {
		a := apis[ids[n%len(ids)]]
		id := fmt.Sprintf("w-%d", n)
		var err error
		for try := range len(ids) {
			a = apis[ids[(n+try)%len(ids)]]
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = a.Register(wctx, store.DefaultNamespace, "drill-writes", id, client.Registration{Address: "10.99.0.1", Port: 1 + n%60000, Ephemeral: &f})
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
		}
		now := time.Now()
		w.mu.Lock()
		if err == nil {
			w.present[id] = true
			w.acked++
			w.second(now).Acked++
			if gap := now.Sub(w.lastAck); gap > w.maxGap {
				w.maxGap, w.gapStart = gap, w.lastAck
			}
			w.lastAck = now
		} else if ctx.Err() == nil {
			w.second(now).Failed++
		}
		w.mu.Unlock()
		// Every fifth write removes an earlier acknowledged one.
		if err == nil && n%5 == 4 {
			old := fmt.Sprintf("w-%d", n-2)
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			derr := a.Deregister(dctx, store.DefaultNamespace, "drill-writes", old)
			cancel()
			// A failed deregistration may still have been applied (the
			// answer lost to a paused or killed server): the instance is
			// no longer owed, either way.
			w.mu.Lock()
			delete(w.present, old)
			if derr != nil {
				w.unsure++
			}
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50+rand.IntN(50)) * time.Millisecond):
		}
	}
}

func runDrill(ctx context.Context, stdout io.Writer, scenario string, before, fault, after, latency time.Duration, reportDir string) error {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "drill: "+format+"\n", args...) }
	w := &writer{present: map[string]bool{}}
	wctx, stopWriter := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	wwg.Add(1)
	go func() { defer wwg.Done(); w.run(wctx) }()
	defer stopWriter()

	// sleep waits, or ends the drill early when ctx does (^C).
	sleep := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	// The fault is undone whatever ends the drill, ^C included: hctx
	// outlives ctx, so that a cancelled drill can still heal.
	hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer hcancel()
	var heal func() error // nil once the fault is undone, or none was made
	defer func() {
		if heal != nil {
			if err := heal(); err != nil {
				logf("%s: the fault could not be undone: %v", scenario, err)
			} else {
				logf("%s: fault undone", scenario)
			}
		}
	}()

	logf("%s: measuring %v before the fault", scenario, before)
	if err := sleep(before); err != nil {
		return err
	}
	cut := ""
	switch scenario {
	case "cut-datacenter":
		cut = "dc-b"
		if leader, err := drillLeader(ctx); err == nil {
			logf("%s: %s, the leader %s", scenario, cut, leader)
		}
		var inserted [][]string
		heal = func() error {
			for _, r := range inserted {
				if err := iptables(hctx, "-D", r); err != nil {
					return err
				}
			}
			return nil
		}
		for _, r := range cutRules(drillTopology.subnets[cut]) {
			if err := iptables(ctx, "-I", r); err != nil {
				return err
			}
			inserted = append(inserted, r)
		}
	case "kill-leader", "pause-server":
		leader, err := drillLeader(ctx)
		if err != nil {
			return err
		}
		victim := leader
		if scenario == "pause-server" {
			for id := range drillTopology.servers {
				if id != leader {
					victim = id
					break
				}
			}
		}
		if scenario == "kill-leader" {
			heal = func() error { return dockerOn(hctx, victim, "start") }
			if err := dockerOn(ctx, victim, "kill", "-s", "KILL"); err != nil {
				return err
			}
		} else {
			heal = func() error { return dockerOn(hctx, victim, "unpause") }
			if err := dockerOn(ctx, victim, "pause"); err != nil {
				heal = nil
				return err
			}
		}
		logf("%s: %s", scenario, victim)
	case "kill-all-servers":
		heal = func() error {
			for id := range drillAllServers() {
				if err := dockerOn(hctx, id, "start"); err != nil {
					return err
				}
			}
			return nil
		}
		for id := range drillAllServers() {
			if err := dockerOn(ctx, id, "kill", "-s", "KILL"); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	logf("%s: fault on for %v", scenario, fault)
	if err := sleep(fault); err != nil {
		return err
	}
	h := heal
	heal = nil
	if err := h(); err != nil {
		return err
	}
	end := time.Now()
	logf("%s: healed; measuring %v after", scenario, after)
	if err := sleep(after); err != nil {
		return err
	}
	stopWriter()
	wwg.Wait()

	in := drill.Input{Scenario: scenario, Callers: map[string][]drill.CallerSecond{},
		FaultStart: start.Unix(), FaultEnd: end.Unix(), CutDatacenter: cut, TTL: 3 * time.Second, Latency: latency}
	for dc, addr := range drillTopology.callers {
		secs, err := callerStats(ctx, addr)
		if err != nil {
			return fmt.Errorf("caller in %s: %w", dc, err)
		}
		// Only this drill's seconds.
		secs = slices.DeleteFunc(secs, func(s drill.CallerSecond) bool { return s.At < start.Add(-before).Unix() })
		in.Callers[dc] = secs
	}
	xds, err := callerStats(ctx, drillTopology.xdsCaller)
	if err != nil {
		return fmt.Errorf("xDS caller in %s: %w", drillTopology.xdsDatacenter, err)
	}
	in.XDS = slices.DeleteFunc(xds, func(s drill.CallerSecond) bool { return s.At < start.Add(-before).Unix() })
	in.XDSDatacenter, in.XDSHome = drillTopology.xdsDatacenter, drillTopology.xdsHome
	w.mu.Lock()
	in.WritesAcked, in.WriteGap, in.DeregistrationsUnknown = w.acked, w.maxGap, w.unsure
	in.WriteGapStart = w.gapStart
	in.Writes = slices.DeleteFunc(slices.Clone(w.secs), func(s drill.WriteSecond) bool { return s.At < start.Add(-before).Unix() })
	want := make([]string, 0, len(w.present))
	for id := range w.present {
		want = append(want, id)
	}
	w.mu.Unlock()
	lost, present, err := drillCheckWrites(ctx, want)
	if err != nil {
		return err
	}
	in.WritesLost, in.WritesPresent = lost, present
	if in.UnhealthyAtEnd, err = drillUnhealthy(ctx); err != nil {
		return err
	}
	r := drill.Judge(in)
	if err := os.MkdirAll(reportDir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(reportDir, fmt.Sprintf("%s-%s", scenario, start.UTC().Format("20060102T150405Z")))
	js, _ := json.MarshalIndent(r, "", "  ")
	for ext, body := range map[string][]byte{".json": js, ".md": []byte(r.Markdown()), ".svg": []byte(r.SVG(in.FaultStart, in.FaultEnd))} {
		if err := os.WriteFile(base+ext, body, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprint(stdout, r.Markdown())
	fmt.Fprintf(stdout, "\nreport: %s.{json,md,svg}\n", base)
	if len(r.Failures) > 0 {
		return fmt.Errorf("drill %s failed: %s", scenario, strings.Join(r.Failures, "; "))
	}
	return nil
}

// drillLeader asks the servers for the leader's id.
func drillLeader(ctx context.Context) (string, error) {
	for _, addr := range drillTopology.servers {
		a, _ := client.NewAPI("http://"+addr, &http.Client{Timeout: 2 * time.Second})
		ms, err := a.Members(ctx)
		if err != nil {
			continue
		}
		for _, m := range ms {
			if m.Role == "leader" {
				return m.ID, nil
			}
		}
	}
	return "", fmt.Errorf("no server names a leader")
}

// drillCheckWrites waits (up to 30 s) for every server to hold exactly the
// acknowledged writes, and reports those missing anywhere.
func drillCheckWrites(ctx context.Context, want []string) (lost []string, present int, err error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := map[string]bool{}
		ok := true
		for _, addr := range drillAllServers() {
			a, _ := client.NewAPI("http://"+addr, &http.Client{Timeout: 2 * time.Second})
			res, err := a.Lookup(ctx, store.DefaultNamespace, "drill-writes", client.LookupOptions{})
			if err != nil {
				ok = false
				break
			}
			have := map[string]bool{}
			for _, in := range res.Instances {
				have[in.ID] = true
			}
			for _, id := range want {
				if !have[id] {
					missing[id] = true
				}
			}
		}
		if ok && len(missing) == 0 {
			return nil, len(want), nil
		}
		if time.Now().After(deadline) {
			for id := range missing {
				lost = append(lost, id)
			}
			slices.Sort(lost)
			return lost, len(want) - len(lost), nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// drillUnhealthy lists, server by server, the example service's instances
// not healthy there at the end of the drill ("reg-a: echo-b1").
func drillUnhealthy(ctx context.Context) ([]string, error) {
	var out []string
	all := drillAllServers()
	for _, id := range slices.Sorted(maps.Keys(all)) {
		a, _ := client.NewAPI("http://"+all[id], &http.Client{Timeout: 2 * time.Second})
		for _, svc := range drillTopology.services {
			// A server still catching up gets 10 s more; one that has not
			// caught up by then is a finding, not a reason to stop the report.
			var res *client.Instances
			var err error
			for deadline := time.Now().Add(10 * time.Second); ; {
				if res, err = a.Lookup(ctx, store.DefaultNamespace, svc, client.LookupOptions{}); err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if err != nil {
				out = append(out, fmt.Sprintf("%s: no answer for %s 10 s after the drill (%v)", id, svc, err))
				continue
			}
			for _, in := range res.Instances {
				if !in.Healthy {
					out = append(out, id+": "+svc+"/"+in.ID)
				}
			}
		}
	}
	return out, nil
}

func callerStats(ctx context.Context, addr string) ([]drill.CallerSecond, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stats", nil)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []drill.CallerSecond
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var s drill.CallerSecond
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, sc.Err()
}
