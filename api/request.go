package api

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// DefaultMaxRequestLineBytes is the default cap on a request's URI: far
// above any lookup the registry serves (names are DNS labels), far below
// the HTTP server's header cap, so that a long URI gets a 414 that says
// why rather than the bare 431 net/http answers above MaxHeaderBytes.
const DefaultMaxRequestLineBytes = 8 << 10

// requestLine answers 414 to a request whose URI is over the cap, before
// routing and access control spend anything on it. net/http has already
// read the line (it is bounded by MaxHeaderBytes), so this bounds what the
// router, the query parser and the logs see, not what the socket reads.
func (s *Server) requestLine(c *gin.Context) {
	max := s.cfg.MaxRequestLineBytes
	if n := len(c.Request.RequestURI); max > 0 && n > max {
		s.fail(c, fmt.Errorf("%w: the request URI is %d bytes, this server takes at most %d (--max-request-line-bytes); send long inputs in a body", ErrURITooLong, n, max))
		return
	}
	c.Next()
}

// beforeReady are the GET routes a server answers while it catches up
// with the leader: they report on the server itself (its health, the
// leader it sees, the members, its metrics, its gossip keys and RTTs, the
// drill reports on its disk, the console's files, the API's own contract),
// not on the catalog.
// Consul's status and agent/self endpoints (consulcompat) are of that
// kind too. Every other read is refused until the node is ready.
var beforeReady = map[string]bool{
	"/v1/health": true, "/v1/openapi.yaml": true, "/v1/cluster/leader": true, "/v1/cluster/members": true, "/v1/cluster/rtt": true,
	"/metrics": true, "/v1/operator/keyring": true,
	"/v1/drills": true, "/v1/drills/:name": true, "/v1/drills/:name/timeline": true,
	"/ui/*file": true, "/ui": true, "/": true,
	"/v1/status/leader": true, "/v1/status/peers": true, "/v1/agent/self": true,
}

// caughtUp answers 503 not_ready to every read of the catalog (native or
// Consul's) while this server has not caught up with the leader since it
// started: its replica could lack acknowledged writes, and a stale 200 (or
// a 404 for something that exists) is worse than a refusal the client
// retries elsewhere. /v1/health answers 503 then too, by its own status.
// Writes pass: they are applied by the leader.
func (s *Server) caughtUp(c *gin.Context) {
	if m := c.Request.Method; m != http.MethodGet && m != http.MethodHead {
		return
	}
	if p := c.FullPath(); p == "" || beforeReady[p] {
		return // unknown routes get their 404
	}
	s.ready(c)
}
