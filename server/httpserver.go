package server

import (
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// HTTPLimits bound what one connection may cost the API and admin
// listeners, whatever the client sends or how slowly it sends it.
type HTTPLimits struct {
	// MaxHeaderBytes caps the request line and headers together; above it
	// net/http answers 431 before any handler runs. The API's own cap on
	// the URI (api.Config.MaxRequestLineBytes) sits below it, so a long URI
	// gets a 414 that says why.
	MaxHeaderBytes int
	// ReadHeaderTimeout is how long a client may take to send the request
	// line and headers (a slowloris client sending a byte a second is cut
	// off after it).
	ReadHeaderTimeout time.Duration
	// ReadTimeout is how long a client may take to send the whole request,
	// body included. It ends once the request has been read: net/http
	// lifts the read deadline when the body is consumed, so a blocking
	// query that waits minutes for a change is not cut by it.
	ReadTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration
}

// DefaultHTTPLimits returns the defaults of `registry server`.
func DefaultHTTPLimits() HTTPLimits {
	return HTTPLimits{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute}
}

// Validate checks the limits.
func (l HTTPLimits) Validate() error {
	if l.MaxHeaderBytes <= 0 || l.ReadHeaderTimeout <= 0 || l.ReadTimeout <= 0 || l.IdleTimeout <= 0 {
		return errors.New("max-header-bytes and the HTTP read-header, read and idle timeouts must be positive")
	}
	if l.ReadTimeout < l.ReadHeaderTimeout {
		return errors.New("the HTTP read timeout (whole request) must not be shorter than the read-header timeout")
	}
	return nil
}

// httpServer builds an http.Server with the limits. writeTimeout is the
// longest a response may take from the end of its request's headers (0:
// none). net/http starts that clock before the handler runs, so for the
// API it must exceed the longest blocking wait (api.Config.MaxWait): below
// it, every long poll that runs its full wait would be cut off before its
// answer. Above it, it still frees the connection and goroutine of a
// client that never reads its answer.
func httpServer(h http.Handler, l HTTPLimits, writeTimeout time.Duration, logger *slog.Logger) *http.Server {
	return &http.Server{Handler: h, MaxHeaderBytes: l.MaxHeaderBytes, ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout: l.ReadTimeout, IdleTimeout: l.IdleTimeout, WriteTimeout: writeTimeout,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
}
