package api

import (
	"fmt"

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
