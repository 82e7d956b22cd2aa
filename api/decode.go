package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

// readBody reads at most limit bytes of the request body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBodyTooLarge, r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: the limit is %d bytes", ErrBodyTooLarge, limit)
		}
		return nil, fmt.Errorf("%w: reading body: %v", ErrBadRequest, err)
	}
	return b, nil
}

// decodeStrict decodes one JSON object, refusing unknown fields and
// trailing data, with messages a person can act on.
func decodeStrict(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return fmt.Errorf("%w: empty body, expected a JSON object", ErrBadRequest)
	}
	if trimmed[0] != '{' {
		return fmt.Errorf("%w: expected a JSON object ({...}), got %s", ErrBadRequest, describeJSON(trimmed))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("%w: malformed JSON at byte %d: %v", ErrBadRequest, se.Offset, err)
		case errors.As(err, &te):
			return fmt.Errorf("%w: field %q must be %s, not %s", ErrBadRequest, te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return fmt.Errorf("%w: %s", ErrBadRequest, strings.TrimPrefix(err.Error(), "json: "))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("%w: truncated JSON", ErrBadRequest)
		}
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the JSON object", ErrBadRequest)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrBadRequest)
	}
	return nil
}

// describeJSON names the kind of a JSON value for an error message.
func describeJSON(b []byte) string {
	switch b[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	if b[0] == '-' || (b[0] >= '0' && b[0] <= '9') {
		return "a number"
	}
	return "something that is not JSON"
}

// DecodeRegister turns a register body into an instance, with the API's
// defaults for absent fields; the catalog validates it (catalog.Prepare).
func DecodeRegister(ns, svc, id string, body []byte) (*store.Instance, error) {
	var req wire.RegisterRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	in := &store.Instance{
		ID: id, Namespace: ns, Service: svc,
		Address: req.Address, Port: req.Port, Weight: store.DefaultWeight,
		Enabled: true, Ephemeral: true,
		Locality: req.Locality, Tags: req.Tags, Metadata: req.Metadata, Check: req.Check,
	}
	if req.Weight != nil {
		in.Weight = *req.Weight
	}
	if req.Enabled != nil {
		in.Enabled = *req.Enabled
	}
	if req.Ephemeral != nil {
		in.Ephemeral = *req.Ephemeral
	}
	return in, nil
}

// DecodeServiceSettings applies a settings body over the current settings;
// the catalog validates the result.
func DecodeServiceSettings(cur store.ServiceSettings, body []byte) (store.ServiceSettings, error) {
	var req wire.ServiceRequest
	if err := decodeStrict(body, &req); err != nil {
		return cur, err
	}
	if req.ProtectThreshold != nil {
		cur.ProtectThreshold = *req.ProtectThreshold
	}
	if req.MinHealthyRatio != nil {
		cur.MinHealthyRatio = *req.MinHealthyRatio
	}
	if req.Balancer != nil {
		cur.Balancer = *req.Balancer
	}
	if req.DNSTTL != nil {
		cur.DNSTTL = *req.DNSTTL
	}
	return cur, nil
}

// DecodeNamespaceSettings applies a settings body over the current settings;
// the catalog validates the result. An empty body is allowed: it creates a
// namespace with no settings.
func DecodeNamespaceSettings(cur store.NamespaceSettings, body []byte) (store.NamespaceSettings, error) {
	if len(bytes.TrimSpace(body)) > 0 {
		var req wire.NamespaceRequest
		if err := decodeStrict(body, &req); err != nil {
			return cur, err
		}
		if req.Fallback != nil {
			cur.Fallback = *req.Fallback
		}
		if req.Description != nil {
			cur.Description = *req.Description
		}
	}
	return cur, nil
}
