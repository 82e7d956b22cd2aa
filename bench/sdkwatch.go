package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/client"
)

// runSDKWatch measures how fast a write reaches an SDK watcher: the client
// watches a service (blocking queries against any server), the bench writes
// a new port for an instance through another server, and times the write's
// acknowledgement and the watcher's delivery of the new answer.
func runSDKWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		c        commonFlags
		servers  string
		writeSrv string
		samples  int
	)
	fs := newFlagSet("sdk-watch", stderr)
	c.register(fs)
	fs.StringVar(&servers, "servers", "http://127.0.0.1:7410,http://127.0.0.1:7420,http://127.0.0.1:7430", "servers the SDK client uses")
	fs.StringVar(&writeSrv, "write-server", "http://127.0.0.1:7410", "server the writes go to")
	fs.IntVar(&samples, "samples", 200, "writes to time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if samples <= 0 {
		return fmt.Errorf("--samples must be positive")
	}
	srvs, err := parseServers("servers", servers)
	if err != nil {
		return err
	}
	api, err := client.NewAPI(writeSrv, nil)
	if err != nil {
		return err
	}
	api = api.WithToken(benchToken())
	svc := "sdkwatch-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	f := false
	reg := func(port int) error {
		_, err := api.Register(ctx, c.namespace, svc, "w-1", client.Registration{Address: "10.4.0.1", Port: port, Ephemeral: &f})
		return err
	}
	if err := reg(1); err != nil {
		return err
	}
	cl, err := client.New(client.Config{Servers: srvs, Namespace: c.namespace, Token: benchToken()})
	if err != nil {
		return err
	}
	defer cl.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := cl.Watch(wctx, svc)
	waitPort := func(port int, timeout time.Duration) (time.Time, error) {
		t := time.After(timeout)
		for {
			select {
			case a, ok := <-w:
				if !ok {
					return time.Time{}, fmt.Errorf("watch closed")
				}
				if len(a.Instances) == 1 && a.Instances[0].Port == port {
					return time.Now(), nil
				}
			case <-t:
				return time.Time{}, fmt.Errorf("port %d not delivered within %v", port, timeout)
			}
		}
	}
	if _, err := waitPort(1, 10*time.Second); err != nil {
		return err
	}
	progress(&c, stderr, "sdk-watch: %d writes to %s, watched through the SDK over %s", samples, writeSrv, strings.Join(srvs, ","))
	var sendWake, ackWake []time.Duration
	for k := range samples {
		port := k + 2
		sent := time.Now()
		done := make(chan time.Time, 1)
		go func() {
			at, err := waitPort(port, 10*time.Second)
			if err != nil {
				at = time.Time{}
			}
			done <- at
		}()
		if err := reg(port); err != nil {
			return err
		}
		acked := time.Now()
		at := <-done
		if at.IsZero() {
			return fmt.Errorf("sample %d: the watcher never saw the write", k)
		}
		sendWake = append(sendWake, at.Sub(sent))
		ackWake = append(ackWake, at.Sub(acked))
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(sendWake)
	slices.Sort(ackWake)
	q := func(d []time.Duration, p int) float64 { return ms(d[min(len(d)-1, (len(d)*p+99)/100-1)]) }
	t := &table{title: "SDK propagation (write acknowledged by one server → the SDK's Watch delivers the new answer)",
		header: []string{"samples", "send→deliver p50 ms", "send→deliver p99 ms", "ack→deliver p50 ms", "ack→deliver p99 ms"}}
	t.add(strconv.Itoa(samples), fmtMs(q(sendWake, 50)), fmtMs(q(sendWake, 99)), fmtMs(q(ackWake, 50)), fmtMs(q(ackWake, 99)))
	t.notes = append(t.notes, "ack→deliver is negative when the watcher heard before the writer. Writes to "+writeSrv+".")
	return t.write(stdout)
}
