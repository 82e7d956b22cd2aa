package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The bare handler in-process shares this process's Go runtime with the
// load generator: its garbage collections pause the server and the clients
// alike, and the two compete on one scheduler. The registry does not share
// them. `--bare child` therefore also runs the bare handler in a process of
// its own, started from this same binary with the hidden command
// `bare-serve`, so both servers are measured from outside.

// childEnv is set in a bare-serve child's environment; a test binary looks
// for it to act as the command rather than run tests.
const childEnv = "REGISTRY_BENCH_CHILD"

// childAnswer is one answer as handed to a child, in a JSON file.
type childAnswer struct {
	Body   []byte      `json:"body"`
	Header http.Header `json:"header"`
}

// startChildBare starts a bare-serve child serving b's answers and returns
// its base URL, its pid and a function that stops it.
func startChildBare(b *bareServer) (string, int, func(), error) {
	f, err := os.CreateTemp("", "registry-bench-answers-*.json")
	if err != nil {
		return "", 0, nil, fmt.Errorf("bare child: %w", err)
	}
	b.mu.RLock()
	answers := make(map[string]childAnswer, len(b.answers))
	for p, a := range b.answers {
		answers[p] = childAnswer{Body: a.body, Header: a.header}
	}
	b.mu.RUnlock()
	err = json.NewEncoder(f).Encode(answers)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, nil, fmt.Errorf("bare child: %w", err)
	}
	u, pid, stop, err := startChild("bare-serve", "--answers", f.Name(), "--hold="+strconv.FormatBool(b.hold))
	if err != nil {
		os.Remove(f.Name())
		return "", 0, nil, err
	}
	return u, pid, func() { stop(); os.Remove(f.Name()) }, nil
}

// startChild runs this binary's hidden command (bare-serve, bare-raft)
// with args, waits for its first line, "<command> listening <url>", and
// returns the URL, the child's pid and a function that stops it: closing
// its stdin asks it to exit, and it is killed if it has not after 5 s.
func startChild(command string, args ...string) (string, int, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, fmt.Errorf("%s child: %w", command, err)
	}
	cmd := exec.Command(exe, append([]string{command}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("%s child: %w", command, err)
	}
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-line:
		u, ok := strings.CutPrefix(strings.TrimSpace(s), command+" listening ")
		if !ok {
			stop()
			return "", 0, nil, fmt.Errorf("%s child: unexpected first line %q", command, s)
		}
		return u, cmd.Process.Pid, stop, nil
	case <-time.After(10 * time.Second):
		stop()
		return "", 0, nil, fmt.Errorf("%s child: not listening after 10s", command)
	}
}

// runBareServe is the child: it serves the answers in --answers on
// 127.0.0.1:0, prints its URL, and exits when its stdin closes.
func runBareServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("registry-bench bare-serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("answers", "", "JSON file of answers by path")
	hold := fs.Bool("hold", false, "also park GET /hold until POST /release (the watchers' baseline)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	var answers map[string]childAnswer
	if err := json.Unmarshal(raw, &answers); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	b := newBareServer()
	b.hold = *hold
	for p, a := range answers {
		b.set(p, a.Body, a.Header)
	}
	u, stop, err := b.start()
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "bare-serve listening %s\n", u)
	untilStdinCloses(ctx)
	return nil
}

// untilStdinCloses is a child's life: it returns when the parent closes
// the child's stdin (startChild's stop) or ctx ends.
func untilStdinCloses(ctx context.Context) {
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-eof:
	case <-ctx.Done():
	}
}
