package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/catalog"
	"github.com/switchyard-io/switchyard/gossip"
	"github.com/switchyard-io/switchyard/health/check"
	"github.com/switchyard-io/switchyard/raft"
	"github.com/switchyard-io/switchyard/store"
)

// Errors raised by the API itself (request shape, node state). Errors from
// the store and the node pass through errorStatus unchanged.
var (
	// ErrBadRequest: the request is malformed (JSON, query parameter, path).
	ErrBadRequest = errors.New("bad request")
	// ErrBodyTooLarge: the body is over the configured limit.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrURITooLong: the request's path and query are over the configured
	// limit (Config.MaxRequestLineBytes).
	ErrURITooLong = errors.New("request URI too long")
	// ErrNotReady: this server has not caught up with the leader (or, for
	// a heartbeat, could not pass it on to the leader's judge).
	ErrNotReady = catalog.ErrNotReady
	// ErrNoInstance: a pick found no instance that may take traffic.
	ErrNoInstance = errors.New("no instance available")
	// ErrTooManyInstances: the service is full
	// (catalog.Config.MaxInstancesPerService).
	ErrTooManyInstances = catalog.ErrTooManyInstances
	// ErrKeyring: a keyring change the keyring refused (a key not
	// installed, the primary key removed).
	ErrKeyring = errors.New("keyring change refused")
	// ErrHostNotAllowed: the Host header is not one of this server's names
	// (Config.AllowedHosts).
	ErrHostNotAllowed = errors.New("host not allowed")
	// ErrCrossSite: a browser sent a state-changing request from another
	// site, or a form.
	ErrCrossSite = errors.New("cross-site request refused")
)

// errorStatus maps an error to its HTTP status and code. It is the one place
// where errors meet status codes.
func errorStatus(err error) (int, string) {
	switch {
	case errors.As(err, new(*DeniedError)):
		var d *DeniedError
		errors.As(err, &d)
		if d.Status == http.StatusUnauthorized {
			return d.Status, "unauthorized"
		}
		return d.Status, "forbidden"
	case errors.Is(err, store.ErrTokenNotFound):
		return http.StatusNotFound, "token_not_found"
	case errors.Is(err, store.ErrLockout):
		return http.StatusConflict, "last_admin"
	case errors.Is(err, store.ErrBootstrapped):
		return http.StatusConflict, "bootstrapped"
	case errors.Is(err, ErrNoDrills):
		return http.StatusNotFound, "no_drills"
	case errors.Is(err, gossip.ErrNotEncrypted):
		return http.StatusConflict, "not_encrypted"
	case errors.Is(err, ErrKeyring):
		return http.StatusConflict, "keyring"
	case errors.Is(err, ErrHostNotAllowed):
		return http.StatusMisdirectedRequest, "host_not_allowed"
	case errors.Is(err, ErrCrossSite):
		return http.StatusForbidden, "cross_site"
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.Is(err, ErrURITooLong):
		return http.StatusRequestURITooLong, "uri_too_long"
	case errors.Is(err, ErrBadRequest), errors.Is(err, catalog.ErrNotEphemeral):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, check.ErrTargetDenied):
		return http.StatusBadRequest, "check_target_denied"
	case errors.Is(err, check.ErrIntervalTooShort):
		return http.StatusBadRequest, "check_interval_too_short"
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, "invalid"
	case errors.Is(err, store.ErrNamespaceNotFound):
		return http.StatusNotFound, "namespace_not_found"
	case errors.Is(err, store.ErrServiceNotFound):
		return http.StatusNotFound, "service_not_found"
	case errors.Is(err, store.ErrInstanceNotFound):
		return http.StatusNotFound, "instance_not_found"
	case errors.Is(err, store.ErrNamespaceInUse):
		return http.StatusConflict, "namespace_in_use"
	case errors.Is(err, ErrTooManyInstances):
		return http.StatusConflict, "too_many_instances"
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, store.ErrBadSnapshot):
		return http.StatusBadRequest, "bad_snapshot"
	case errors.Is(err, raft.ErrNotLeader):
		return http.StatusConflict, "not_leader"
	case errors.Is(err, ErrNoInstance):
		return http.StatusServiceUnavailable, "no_instance"
	case errors.Is(err, ErrNotReady):
		return http.StatusServiceUnavailable, "not_ready"
	case errors.Is(err, raft.ErrNoLeader):
		return http.StatusServiceUnavailable, "no_leader"
	case errors.Is(err, raft.ErrShutdown):
		return http.StatusServiceUnavailable, "shutting_down"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "timeout"
	case errors.Is(err, context.Canceled):
		// The client went away; the status is for the log only.
		return 499, "canceled"
	}
	return http.StatusInternalServerError, "internal"
}

func (s *Server) fail(c *gin.Context, err error) {
	status, code := errorStatus(err)
	if status >= 500 {
		s.logger.Warn("request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "1")
	}
	c.AbortWithStatusJSON(status, wire.ErrorBody{Error: PublicMessage(err), Code: code})
}

// goPrefix is a Go package's name at the start of an error or of one of
// its wrapped parts ("store: ", "raft: "): how the code says where an error
// came from, which tells the caller nothing.
var goPrefix = regexp.MustCompile(`(^|: )(?:store|catalog|raft|api|server|gossip|route|health|check|consulcompat|dns|xds|client): `)

// PublicMessage is err's text as a caller is told it: without the Go
// package prefixes of its parts.
func PublicMessage(err error) string {
	msg := err.Error()
	for {
		next := goPrefix.ReplaceAllString(msg, "$1")
		if next == msg {
			return msg
		}
		msg = next
	}
}
