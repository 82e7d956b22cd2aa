//go:build linux

package delay

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/internal/testtool"
)

// The test delays real UDP packets on loopback: a host firewall rule sends
// datagrams to one port of 127.77.0.1 through the queue. It needs root and
// iptables (as the drills do; CI runs as root).
func TestQueueDelaysPacketsByTheSetTime(t *testing.T) {
	if os.Geteuid() != 0 {
		testtool.Unavailable(t, "iptables and NFQUEUE need root")
	}
	testtool.Find(t, "iptables", "iptables")
	srv, err := net.ListenPacket("udp", "127.77.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(buf[:n], from)
		}
	}()
	port := strconv.Itoa(srv.LocalAddr().(*net.UDPAddr).Port)
	const num = 4711
	rule := []string{"OUTPUT", "-d", "127.77.0.1", "-p", "udp", "--dport", port,
		"-j", "NFQUEUE", "--queue-num", strconv.Itoa(num), "--queue-bypass"}

	c, err := net.Dial("udp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	median := func(n int) time.Duration {
		t.Helper()
		var d []time.Duration
		buf := make([]byte, 64)
		for i := range n {
			start := time.Now()
			msg := []byte("ping " + strconv.Itoa(i))
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := c.Read(buf)
				if err != nil {
					t.Fatalf("ping %d: %v", i, err)
				}
				if string(buf[:m]) == string(msg) {
					break
				}
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		return d[len(d)/2]
	}

	before := median(20)
	q, err := Open(num, 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	iptables(t, "-I", rule)
	defer iptables(t, "-D", rule)
	during := median(20)
	if during < 30*time.Millisecond || during >= 55*time.Millisecond {
		t.Fatalf("median round trip %v with a 30ms delay on the way out (without: %v)", during, before)
	}
	if got := q.Stats().Delayed.Load(); got < 20 {
		t.Fatalf("%d packets went through the queue, want at least 20", got)
	}
	// A verdict for a packet the kernel no longer holds (a killed
	// container's) gets an error back; the queue must go on reading, or
	// every later packet would be held for good.
	q.accept(1 << 31)
	again := median(20)
	if again < 30*time.Millisecond || again >= 55*time.Millisecond {
		t.Fatalf("median round trip %v after a refused verdict, want the 30ms delay still", again)
	}
	if q.Stats().Errors.Load() == 0 {
		t.Fatalf("the refused verdict was not seen: the test did not test anything")
	}
	if err := q.Err(); err != nil {
		t.Fatalf("the queue stopped: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// The rule stays, the queue is gone: --queue-bypass lets packets through.
	after := median(20)
	if after > 10*time.Millisecond {
		t.Fatalf("median round trip %v after Close, want undelayed (before: %v)", after, before)
	}
	t.Logf("median round trip: %v without, %v with a 30ms delay, %v after Close", before, during, after)
}

func iptables(t *testing.T, op string, rule []string) {
	t.Helper()
	out, err := exec.Command("iptables", append([]string{op}, rule...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("iptables %s %s: %v: %s", op, strings.Join(rule, " "), err, out)
	}
}
