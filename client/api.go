// Package client talks to Switchyard servers over the HTTP API. It is what
// applications embed, so it depends on neither gin nor raft.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

// APIError is an error answer from a server.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
}

// IsDenied reports whether err is a 401 or 403 from a server: a token is
// missing, unknown, or lacks the access.
func IsDenied(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden)
}

// IsNotFound reports whether err is a 404 from a server.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// Registration is the body of a register call. Nil pointers take the
// server's defaults (weight 100, enabled, ephemeral).
type Registration = wire.RegisterRequest

// Instances is the answer of a lookup.
type Instances = wire.InstancesResponse

// Member is one server of the cluster.
type Member = wire.Member

// API is a thin client of one server's HTTP API.
type API struct {
	base  string
	hc    *http.Client
	token string
}

// WithToken returns a client that sends secret as its token on every
// request (X-Switchyard-Token); "" sends none.
func (a *API) WithToken(secret string) *API {
	b := *a
	b.token = secret
	return &b
}

// NewAPI returns a client of the server at base (e.g. http://127.0.0.1:7400).
// A nil hc uses a client with a 15 s timeout.
func NewAPI(base string, hc *http.Client) (*API, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server address %q must look like http://host:port", base)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	return &API{base: strings.TrimRight(base, "/"), hc: hc}, nil
}

func (a *API) do(ctx context.Context, method, path string, body any, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("client: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("X-Switchyard-Token", a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return resp.Header, fmt.Errorf("client: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(data))
		}
		return resp.Header, &APIError{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.Header, fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func instancePath(ns, svc, id string) string {
	return "/v1/namespaces/" + url.PathEscape(ns) + "/services/" + url.PathEscape(svc) + "/instances/" + url.PathEscape(id)
}

// Register registers or updates an instance and returns it as stored.
func (a *API) Register(ctx context.Context, ns, svc, id string, r Registration) (*store.Instance, error) {
	var out store.Instance
	if _, err := a.do(ctx, http.MethodPut, instancePath(ns, svc, id), r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Deregister removes an instance.
func (a *API) Deregister(ctx context.Context, ns, svc, id string) error {
	_, err := a.do(ctx, http.MethodDelete, instancePath(ns, svc, id), nil, nil)
	return err
}

// ServerPickOptions refine a pick made by the server (API.Pick).
type ServerPickOptions struct {
	Near     string
	Key      string
	Balancer string
}

// Pick asks the server to choose one instance for a caller.
func (a *API) Pick(ctx context.Context, ns, svc string, o ServerPickOptions) (*wire.PickResponse, error) {
	q := url.Values{}
	if o.Near != "" {
		q.Set("near", o.Near)
	}
	if o.Key != "" {
		q.Set("key", o.Key)
	}
	if o.Balancer != "" {
		q.Set("balancer", o.Balancer)
	}
	path := "/v1/namespaces/" + url.PathEscape(ns) + "/services/" + url.PathEscape(svc) + "/pick"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out wire.PickResponse
	if _, err := a.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteService deletes a service and its instances.
func (a *API) DeleteService(ctx context.Context, ns, svc string) error {
	_, err := a.do(ctx, http.MethodDelete, "/v1/namespaces/"+url.PathEscape(ns)+"/services/"+url.PathEscape(svc), nil, nil)
	return err
}

// Heartbeat reports an instance alive.
func (a *API) Heartbeat(ctx context.Context, ns, svc, id string) error {
	_, err := a.do(ctx, http.MethodPut, instancePath(ns, svc, id)+"/heartbeat", nil, nil)
	return err
}

// LookupOptions refine a lookup.
type LookupOptions struct {
	HealthyOnly bool
	// Near asks for a selection for a caller at this locality
	// ("region/datacenter/unit"; trailing parts may be left out).
	Near       string
	Consistent bool
	// Index and Wait make a blocking query: the call returns when the
	// answer's index passes Index, or after Wait.
	Index uint64
	Wait  time.Duration
}

// Lookup lists a service's instances.
func (a *API) Lookup(ctx context.Context, ns, svc string, o LookupOptions) (*Instances, error) {
	out, _, err := a.lookup(ctx, ns, svc, o, "")
	return out, err
}

// LookupDelta is Lookup for a caller that keeps the last full answer: with
// token "" it asks for the full answer and a delta token; with the token
// of the last answer, the server may answer only what changed since
// (Instances.Delta): ApplyDelta on the last full answer makes the new one.
// Either way it returns the token to send next. A token the server cannot
// use (another question, an answer too old) gets the full answer.
func (a *API) LookupDelta(ctx context.Context, ns, svc string, o LookupOptions, token string) (*Instances, string, error) {
	if token == "" {
		token = "true"
	}
	return a.lookup(ctx, ns, svc, o, token)
}

// HeaderDeltaToken is the answer header that carries the delta token.
const HeaderDeltaToken = "X-Switchyard-Delta-Token"

func (a *API) lookup(ctx context.Context, ns, svc string, o LookupOptions, delta string) (*Instances, string, error) {
	q := url.Values{}
	if o.HealthyOnly {
		q.Set("healthy", "true")
	}
	if o.Near != "" {
		q.Set("near", o.Near)
	}
	if o.Consistent {
		q.Set("consistent", "true")
	}
	if o.Index > 0 {
		q.Set("index", strconv.FormatUint(o.Index, 10))
		if o.Wait > 0 {
			q.Set("wait", o.Wait.String())
		}
	}
	if delta != "" {
		q.Set("delta", delta)
	}
	path := "/v1/namespaces/" + url.PathEscape(ns) + "/services/" + url.PathEscape(svc) + "/instances"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out Instances
	hdr, err := a.do(ctx, http.MethodGet, path, nil, &out)
	if err != nil {
		return nil, "", err
	}
	return &out, hdr.Get(HeaderDeltaToken), nil
}

// Members lists the servers of the cluster.
func (a *API) Members(ctx context.Context) ([]Member, error) {
	var out struct {
		Members []Member `json:"members"`
	}
	if _, err := a.do(ctx, http.MethodGet, "/v1/cluster/members", nil, &out); err != nil {
		return nil, err
	}
	return out.Members, nil
}

// Join asks the server to add another server as a voter.
func (a *API) Join(ctx context.Context, id, raftAddr string) error {
	_, err := a.do(ctx, http.MethodPost, "/v1/cluster/join", map[string]string{"id": id, "raft_addr": raftAddr}, nil)
	return err
}

// CreateToken creates a token with rules (ACCESS:NAMESPACE[/PREFIX]); the
// answer carries its secret, shown this once.
func (a *API) CreateToken(ctx context.Context, description string, rules []string) (*wire.Token, error) {
	var out wire.Token
	_, err := a.do(ctx, http.MethodPost, "/v1/acl/tokens", wire.TokenRequest{Description: &description, Rules: rules}, &out)
	return &out, err
}

// UpdateToken changes a token (nil fields keep their values).
func (a *API) UpdateToken(ctx context.Context, accessor string, r wire.TokenRequest) (*wire.Token, error) {
	var out wire.Token
	_, err := a.do(ctx, http.MethodPut, "/v1/acl/tokens/"+url.PathEscape(accessor), r, &out)
	return &out, err
}

// Tokens lists the cluster's tokens (without secrets).
func (a *API) Tokens(ctx context.Context) (*wire.TokensResponse, error) {
	var out wire.TokensResponse
	_, err := a.do(ctx, http.MethodGet, "/v1/acl/tokens", nil, &out)
	return &out, err
}

// RevokeToken removes a token; its secret stops working at once.
func (a *API) RevokeToken(ctx context.Context, accessor string) error {
	_, err := a.do(ctx, http.MethodDelete, "/v1/acl/tokens/"+url.PathEscape(accessor), nil, nil)
	return err
}

// TokenSelf shows the token this client sends.
func (a *API) TokenSelf(ctx context.Context) (*wire.Token, error) {
	var out wire.Token
	_, err := a.do(ctx, http.MethodGet, "/v1/acl/self", nil, &out)
	return &out, err
}

// Keyring shows the answering server's gossip keyring (fingerprints only).
func (a *API) Keyring(ctx context.Context) (*wire.KeyringResponse, error) {
	var out wire.KeyringResponse
	_, err := a.do(ctx, http.MethodGet, "/v1/operator/keyring", nil, &out)
	return &out, err
}

// ChangeKeyring installs, uses or removes a gossip key (base64) on the
// answering server only.
func (a *API) ChangeKeyring(ctx context.Context, op, key string) (*wire.KeyringResponse, error) {
	var out wire.KeyringResponse
	_, err := a.do(ctx, http.MethodPut, "/v1/operator/keyring", wire.KeyringRequest{Op: op, Key: key}, &out)
	return &out, err
}

func namespacePath(ns string) string { return "/v1/namespaces/" + url.PathEscape(ns) }

func servicePath(ns, svc string) string {
	return namespacePath(ns) + "/services/" + url.PathEscape(svc)
}

// Namespaces lists the namespaces.
func (a *API) Namespaces(ctx context.Context) ([]store.Namespace, error) {
	var out wire.NamespacesResponse
	if _, err := a.do(ctx, http.MethodGet, "/v1/namespaces", nil, &out); err != nil {
		return nil, err
	}
	return out.Namespaces, nil
}

// Namespace returns one namespace.
func (a *API) Namespace(ctx context.Context, ns string) (*store.Namespace, error) {
	var out store.Namespace
	if _, err := a.do(ctx, http.MethodGet, namespacePath(ns), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutNamespace creates a namespace or changes its settings (fields left
// nil keep their value) and returns it as stored.
func (a *API) PutNamespace(ctx context.Context, ns string, r wire.NamespaceRequest) (*store.Namespace, error) {
	var out store.Namespace
	if _, err := a.do(ctx, http.MethodPut, namespacePath(ns), r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteNamespace deletes an empty namespace.
func (a *API) DeleteNamespace(ctx context.Context, ns string) error {
	_, err := a.do(ctx, http.MethodDelete, namespacePath(ns), nil, nil)
	return err
}

// Services lists a namespace's services with their instance counts.
func (a *API) Services(ctx context.Context, ns string) (*wire.ServicesResponse, error) {
	var out wire.ServicesResponse
	if _, err := a.do(ctx, http.MethodGet, namespacePath(ns)+"/services", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Service returns a service's settings.
func (a *API) Service(ctx context.Context, ns, svc string) (*store.Service, error) {
	var out store.Service
	if _, err := a.do(ctx, http.MethodGet, servicePath(ns, svc), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutService changes a service's settings (fields left nil keep their
// value) and returns them as stored.
func (a *API) PutService(ctx context.Context, ns, svc string, r wire.ServiceRequest) (*store.Service, error) {
	var out store.Service
	if _, err := a.do(ctx, http.MethodPut, servicePath(ns, svc), r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PatchInstance changes an instance's weight or traffic, leaving its
// health alone, and returns it as stored.
func (a *API) PatchInstance(ctx context.Context, ns, svc, id string, r wire.PatchRequest) (*store.Instance, error) {
	var out store.Instance
	if _, err := a.do(ctx, http.MethodPatch, instancePath(ns, svc, id), r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health is the server's own view: live, ready, the leader it knows, the
// index it applied.
func (a *API) Health(ctx context.Context) (*wire.Health, error) {
	var out wire.Health
	if _, err := a.do(ctx, http.MethodGet, "/v1/health", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
