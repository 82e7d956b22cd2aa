package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
)

// putClient sends the register benchmark's writes. Two implementations: one
// on fasthttp's client, the default, and one on net/http's.
//
// The load generator shares the machine with the three servers it measures.
// net/http's client spent 57-59 µs of CPU per registration there (a reader
// and a writer goroutine per connection, a request and a response object,
// header maps); fasthttp's, which load generators such as bombardier use,
// reuses its requests, answers and buffers and spent 26-30 µs
// (docs/benchmarks/history.md#a-lighter-load-generator-answers-that-share-a-write-a-fair-script-cluster-26-november-2026-1240-utc).
// What the generator does not burn, the servers get. Both speak plain
// HTTP/1.1 with keep-alive over TCP, and both send the same request bytes
// but for the User-Agent header.
type putClient interface {
	// put sends body to url with PUT and returns an *httpError for a non-2xx
	// answer. It gives up at ctx's deadline.
	put(ctx context.Context, url string, body []byte) error
	close()
}

// newPutClient returns the client kind names ("fasthttp" or "net/http"),
// able to keep conns connections to each server.
func newPutClient(kind string, conns int, timeout time.Duration) (putClient, error) {
	switch kind {
	case "fasthttp":
		return newFastPut(conns, timeout), nil
	case "net/http":
		return stdPut{newHTTPClient(conns, timeout)}, nil
	}
	return nil, fmt.Errorf("--http-client %q: use fasthttp or net/http", kind)
}

type stdPut struct{ hc *http.Client }

func (c stdPut) put(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, _, err = do(c.hc, req)
	return err
}

func (c stdPut) close() { c.hc.CloseIdleConnections() }

type fastPut struct {
	c       *fasthttp.Client
	timeout time.Duration
	token   string
}

func newFastPut(conns int, timeout time.Duration) *fastPut {
	return &fastPut{
		c: &fasthttp.Client{
			// One connection per worker and some spare, as newHTTPClient's
			// pool, so a closed-loop run never re-dials.
			MaxConnsPerHost:     conns + 8,
			MaxIdleConnDuration: 90 * time.Second,
			ReadTimeout:         timeout,
			WriteTimeout:        timeout,
			// Wait for a free connection rather than fail at once.
			MaxConnWaitTimeout: timeout,
		},
		timeout: timeout,
		token:   benchToken(),
	}
}

func (c *fastPut) put(ctx context.Context, url string, body []byte) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPut)
	req.Header.SetContentType("application/json")
	if c.token != "" {
		req.Header.Set("X-Switchyard-Token", c.token)
	}
	req.SetBodyRaw(body)
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.c.DoDeadline(req, resp, deadline); err != nil {
		return err
	}
	if code := resp.StatusCode(); code/100 != 2 {
		b := resp.Body()
		return &httpError{status: code, body: string(b[:min(len(b), 512)])}
	}
	return nil
}

func (c *fastPut) close() { c.c.CloseIdleConnections() }
