package api

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/store"
)

// saveSnapshot answers GET /v1/snapshot: a backup file of the whole catalog
// (store.WriteBackup), as of a read confirmed by a quorum, so it holds every
// write acknowledged before the request.
// The caughtUp middleware has refused it already if this server is behind.
func (s *Server) saveSnapshot(c *gin.Context) {
	if err := s.node.ConsistentRead(c.Request.Context()); err != nil {
		s.fail(c, err)
		return
	}
	sn := s.node.Store().Snapshot()
	var b bytes.Buffer
	if err := store.WriteBackup(&b, sn); err != nil {
		s.fail(c, err)
		return
	}
	setIndex(c, sn.Index())
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="switchyard-%d.snap"`, sn.Index()))
	c.Data(http.StatusOK, "application/octet-stream", b.Bytes())
}

// restoreSnapshot answers PUT /v1/snapshot: the body is a backup file; it
// replaces the catalog's namespaces, services and instances on every
// server. Only the leader restores (409 names it otherwise); a file that is
// not a backup, or is corrupt, gets 400 and changes nothing.
func (s *Server) restoreSnapshot(c *gin.Context) {
	r := http.MaxBytesReader(c.Writer, c.Request.Body, store.MaxBackupBytes+64)
	body, err := store.ReadBackup(r)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = fmt.Errorf("%w: a backup is at most %d bytes", ErrBodyTooLarge, store.MaxBackupBytes)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.node.Restore(c.Request.Context(), body); err != nil {
		if id, _ := s.node.Leader(); id != "" {
			if ms, merr := s.node.Members(); merr == nil {
				for _, m := range ms {
					if m.ID == id && m.HTTPAddr != "" {
						c.Header("X-Switchyard-Leader", m.HTTPAddr)
					}
				}
			}
		}
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"restored": true, "bytes": len(body)})
}
