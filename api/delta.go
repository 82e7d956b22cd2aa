package api

import (
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// HeaderDeltaToken carries, on an answer to a lookup that sent delta=, the
// token to send as delta= with the next lookup.
const HeaderDeltaToken = "X-Switchyard-Delta-Token"

// A delta token reads "d1.<base>.<scope>": the token format's version,
// the index of the served service's view the answer was made from, and
// 32 hex digits of a 128-bit FNV-1a hash of the answer's scope
// (route.Result.Scope, or listScope). It is opaque to clients.
const (
	deltaTokenPrefix = "d1."
	// maxDeltaParam bounds delta='s value: a token is at most 56 bytes.
	maxDeltaParam = 64
)

// deltaQuery is what delta= asks for.
type deltaQuery struct {
	want  bool   // delta= given: the answer carries a token
	token bool   // a token was given: the answer may be a delta
	base  uint64 // the token's
	scope string // the token's scope hash, hex
}

// parseDelta reads delta=: absent or false asks for nothing; true for a
// full answer with a token; a token for the changes since its answer.
func parseDelta(c *gin.Context) (deltaQuery, error) {
	v, ok := c.GetQuery("delta")
	if !ok || v == "" {
		return deltaQuery{}, nil
	}
	if len(v) > maxDeltaParam {
		return deltaQuery{}, fmt.Errorf("%w: delta= is %d bytes: send delta=true, or the %s of the last answer (at most %d bytes)",
			ErrBadRequest, len(v), HeaderDeltaToken, maxDeltaParam)
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return deltaQuery{want: b}, nil
	}
	base, scope, ok := parseDeltaToken(v)
	if !ok {
		return deltaQuery{}, fmt.Errorf("%w: delta=%q is not a delta token: send delta=true for a full answer with one (header %s), then that header's value",
			ErrBadRequest, v, HeaderDeltaToken)
	}
	return deltaQuery{want: true, token: true, base: base, scope: scope}, nil
}

func parseDeltaToken(v string) (base uint64, scope string, ok bool) {
	rest, ok := strings.CutPrefix(v, deltaTokenPrefix)
	if !ok {
		return 0, "", false
	}
	b, scope, ok := strings.Cut(rest, ".")
	if !ok || len(scope) != 32 || strings.TrimLeft(scope, "0123456789abcdef") != "" {
		return 0, "", false
	}
	base, err := strconv.ParseUint(b, 10, 64)
	if err != nil || b != strconv.FormatUint(base, 10) {
		return 0, "", false
	}
	return base, scope, true
}

// scopeHash is the hex form of a scope's hash, as tokens carry it.
func scopeHash(scope string) string {
	h := fnv.New128a()
	h.Write([]byte(scope))
	return hex.EncodeToString(h.Sum(nil))
}

func deltaToken(base uint64, scopeHash string) string {
	return deltaTokenPrefix + strconv.FormatUint(base, 10) + "." + scopeHash
}

// usable reports whether the token's answer may be brought up to date
// with a delta: it had this scope. The served view then says whether it
// can tell its changes since the token's base.
func (q deltaQuery) usable(scopeHash string) bool { return q.token && q.scope == scopeHash }

// listScope is the scope of a plain listing: every instance of the
// service is in it, so only the question and the service's incarnation
// (its creation) matter.
func listScope(v *store.ServiceView) string {
	return "list\x00" + v.Service.Namespace + "\x00" + v.Service.Name + "\x00" + strconv.FormatUint(v.Service.CreateIndex, 10)
}

// listDeltaKey memoises a plain listing's delta per view and base.
type listDeltaKey struct{ base uint64 }

// answerList writes a plain listing for a lookup that sent delta=: the
// token, and the changes since the token's answer when the view can tell
// them, the full listing otherwise.
func answerList(c *gin.Context, v *store.ServiceView, q deltaQuery) {
	h := scopeHash(listScope(v))
	c.Header(HeaderDeltaToken, deltaToken(v.Index, h))
	if q.usable(h) {
		body := store.MemoKeyed(v, listDeltaKey{q.base}, route.MaxCachedPerView, func() []byte {
			changed, removed, ok := v.Changes(q.base)
			if !ok {
				return nil
			}
			out := listResponse(v, changed)
			out.Delta, out.Removed = true, removed
			return mustJSON(out)
		})
		if body != nil {
			c.Data(http.StatusOK, "application/json; charset=utf-8", body)
			return
		}
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", encodeInstances(v))
}

// selectionDeltaKey memoises a selection's delta per view, caller and
// base.
type selectionDeltaKey struct {
	caller store.Locality
	base   uint64
}

// answer writes a selection for a lookup that sent delta=: the token,
// and the changes since the token's answer when it had the same scope and
// the served view can tell them, the full selection otherwise.
func (r *selected) answer(c *gin.Context, q deltaQuery) {
	v := r.res.Served
	h := scopeHash(r.res.Scope(route.Query{Namespace: r.ns, Service: r.svc, Caller: r.caller}))
	c.Header(HeaderDeltaToken, deltaToken(v.Index, h))
	if q.usable(h) {
		var body []byte
		if r.memoable() {
			body = store.MemoKeyed(v, selectionDeltaKey{r.caller, q.base}, route.MaxCachedPerView, func() []byte { return r.delta(q.base) })
		} else {
			body = r.delta(q.base)
		}
		if body != nil {
			c.Data(http.StatusOK, "application/json; charset=utf-8", body)
			return
		}
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", r.body())
}

// delta encodes the selection's changes since base (route.Delta), or
// returns nil when the served view cannot tell them.
func (r *selected) delta(base uint64) []byte {
	up, removed, ok := route.Delta(r.res, base)
	if !ok {
		return nil
	}
	out := r.response(up)
	out.Delta, out.Removed = true, removed
	return mustJSON(out)
}
