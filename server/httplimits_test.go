package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
)

// A URI over --max-request-line-bytes is refused with 414 and the JSON
// error before routing; one over --max-header-bytes gets net/http's 431.
func TestLongRequestLineAndHeaders(t *testing.T) {
	c := startCluster(t, 1)
	s := c.servers[0]
	base := "http://" + s.HTTPAddr()

	t.Run("20KB URI is 414", func(t *testing.T) {
		resp, err := c.hc.Get(base + "/v1/namespaces/default/services/web/instances?near=" + strings.Repeat("a", 20<<10))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e wire.ErrorBody
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("status %d, body not the JSON error: %v", resp.StatusCode, err)
		}
		if resp.StatusCode != http.StatusRequestURITooLong || e.Code != "uri_too_long" || !strings.Contains(e.Error, "--max-request-line-bytes") {
			t.Fatalf("got %d %s: %.200s, want 414 uri_too_long naming the flag", resp.StatusCode, e.Code, e.Error)
		}
	})
	t.Run("a URI under the cap is served", func(t *testing.T) {
		resp, err := c.hc.Get(base + "/v1/health?pad=" + strings.Repeat("a", 4<<10))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
	})
	t.Run("100KB of headers is 431", func(t *testing.T) {
		var req strings.Builder
		req.WriteString("GET /v1/health HTTP/1.1\r\nHost: x\r\n")
		for i := range 100 {
			fmt.Fprintf(&req, "X-Pad-%d: %s\r\n", i, strings.Repeat("b", 1000))
		}
		req.WriteString("\r\n")
		resp := rawRequest(t, s.HTTPAddr(), req.String())
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %d, want 431", resp.StatusCode)
		}
	})
}

// rawRequest writes req on a new connection and reads one answer.
func rawRequest(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The server may answer and stop reading before all is written.
	go func() { _, _ = io.WriteString(conn, req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// dribble sends head at once, then the rest one byte every 100 ms until the
// server closes the connection, and returns how long after head the
// server closed it. It gives up after limit.
func dribble(t *testing.T, addr, head, rest string, limit time.Duration) time.Duration {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan struct{})
	go func() {
		// Whatever the server says (nothing, or an error answer), the end
		// is its close.
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(limit)
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start)
		case <-giveUp:
			t.Fatalf("the server still reads after %v (%d bytes dribbled)", limit, i)
		case <-tick.C:
			if i < len(rest) {
				if _, err := conn.Write([]byte{rest[i]}); err != nil && !errors.Is(err, net.ErrClosed) {
					// A reset: the server closed; the reader sees it too.
					continue
				}
			}
		}
	}
}

// A client that sends its headers a byte at a time is cut off after the
// read-header timeout; one that sends its body slower than the read
// timeout is cut off after that; a blocking query still waits its whole
// wait, well past both.
func TestSlowClientsAreCutOff(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) {
		cfg.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
		cfg.HTTP.ReadTimeout = 600 * time.Millisecond
	})
	s := c.servers[0]

	t.Run("slowloris headers", func(t *testing.T) {
		took := dribble(t, s.HTTPAddr(), "GET /v1/health HTTP/1.1\r\n", "Host: x\r\nX-Slow: "+strings.Repeat("s", 200)+"\r\n\r\n", 5*time.Second)
		if took < 250*time.Millisecond {
			t.Fatalf("closed after %v, before the header timeout", took)
		}
		t.Logf("closed %v after the request line", took)
	})
	t.Run("slow body", func(t *testing.T) {
		body := `{"address":"10.0.0.1","port":80}` + strings.Repeat(" ", 500)
		head := fmt.Sprintf("PUT /v1/namespaces/default/services/web/instances/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		took := dribble(t, s.HTTPAddr(), head, body, 5*time.Second)
		if took < 500*time.Millisecond {
			t.Fatalf("closed after %v, before the read timeout", took)
		}
		t.Logf("closed %v after the headers", took)
		if _, err := c.instances(s, "default", "web"); err == nil {
			t.Fatal("the dribbled registration was applied")
		}
	})
	t.Run("a blocking query outlives the read timeout", func(t *testing.T) {
		if err := c.do(s, http.MethodPut, "/v1/namespaces/default/services/api/instances/a", map[string]any{"address": "10.0.0.1", "port": 80}, nil); err != nil {
			t.Fatal(err)
		}
		resp, err := c.hc.Get("http://" + s.HTTPAddr() + "/v1/namespaces/default/services/api/instances")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		idx := resp.Header.Get("X-Switchyard-Index")
		start := time.Now()
		resp, err = c.hc.Get("http://" + s.HTTPAddr() + "/v1/namespaces/default/services/api/instances?index=" + idx + "&wait=1500ms")
		if err != nil {
			t.Fatalf("the long poll was cut: %v", err)
		}
		resp.Body.Close()
		if took := time.Since(start); resp.StatusCode != http.StatusOK || took < 1400*time.Millisecond {
			t.Fatalf("long poll: %d after %v, want 200 after its 1.5 s wait", resp.StatusCode, took)
		}
	})
}

// A kept-alive connection that sends no next request is closed after the
// idle timeout, not held until the (much longer) read timeout.
func TestIdleConnectionsAreClosed(t *testing.T) {
	c := startCluster(t, 1, func(cfg *Config) {
		cfg.HTTP.IdleTimeout = 200 * time.Millisecond
		cfg.HTTP.ReadHeaderTimeout = 10 * time.Second
		cfg.HTTP.ReadTimeout = 10 * time.Second
	})
	conn, err := net.Dial("tcp", c.servers[0].HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatal("the server did not keep the connection alive")
	}
	answered := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(8 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: %v, want it closed by the server", err)
	}
	if d := time.Since(answered); d > 5*time.Second {
		t.Fatalf("idle connection closed after %v, want about the 200 ms idle timeout", d)
	}
}
