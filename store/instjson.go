package store

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the instance as encoding/json writes it, byte for
// byte (TestAppendJSONMatchesEncodingJSON), without reflection: the answer
// to every registration is one instance, and encoding/json spent 4 % of a
// server's CPU writing it.
func (i *Instance) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, i.ID)
	b = append(b, `,"namespace":`...)
	b = appendJSONString(b, i.Namespace)
	b = append(b, `,"service":`...)
	b = appendJSONString(b, i.Service)
	b = append(b, `,"address":`...)
	b = appendJSONString(b, i.Address)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(i.Port), 10)
	b = append(b, `,"weight":`...)
	b = strconv.AppendInt(b, int64(i.Weight), 10)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, i.Enabled)
	b = append(b, `,"ephemeral":`...)
	b = strconv.AppendBool(b, i.Ephemeral)
	b = append(b, `,"locality":{`...)
	first := true
	b = appendStringField(b, &first, "region", i.Locality.Region)
	b = appendStringField(b, &first, "datacenter", i.Locality.Datacenter)
	b = appendStringField(b, &first, "unit", i.Locality.Unit)
	b = append(b, '}')
	if len(i.Tags) > 0 {
		b = append(b, `,"tags":[`...)
		for k, t := range i.Tags {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, t)
		}
		b = append(b, ']')
	}
	if len(i.Metadata) > 0 {
		b = append(b, `,"metadata":{`...)
		keys := make([]string, 0, len(i.Metadata))
		for k := range i.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for n, k := range keys {
			if n > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, i.Metadata[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"check":{`...)
	first = true
	c := &i.Check
	b = appendStringField(b, &first, "type", c.Type)
	b = appendStringField(b, &first, "target", c.Target)
	b = appendDurationField(b, &first, "interval", c.Interval)
	b = appendDurationField(b, &first, "timeout", c.Timeout)
	b = appendDurationField(b, &first, "ttl", c.TTL)
	b = appendDurationField(b, &first, "deregister_after", c.DeregisterAfter)
	b = appendIntField(b, &first, "failures_before_unhealthy", c.FailuresBeforeUnhealthy)
	b = appendIntField(b, &first, "successes_before_healthy", c.SuccessesBeforeHealthy)
	b = append(b, `},"healthy":`...)
	b = strconv.AppendBool(b, i.Healthy)
	if !i.HealthChangedAt.IsZero() {
		b = append(b, `,"health_changed_at":`...)
		b = appendJSONTime(b, i.HealthChangedAt)
	}
	b = append(b, `,"registered_at":`...)
	b = appendJSONTime(b, i.RegisteredAt)
	b = append(b, `,"updated_at":`...)
	b = appendJSONTime(b, i.UpdatedAt)
	b = append(b, `,"create_index":`...)
	b = strconv.AppendUint(b, i.CreateIndex, 10)
	b = append(b, `,"modify_index":`...)
	b = strconv.AppendUint(b, i.ModifyIndex, 10)
	return append(b, '}')
}

// fieldName starts an object member, with its comma unless it is the
// first.
func fieldName(b []byte, first *bool, name string) []byte {
	if !*first {
		b = append(b, ',')
	}
	*first = false
	b = append(b, '"')
	b = append(b, name...)
	return append(b, `":`...)
}

// appendStringField appends an omitempty string member.
func appendStringField(b []byte, first *bool, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendJSONString(fieldName(b, first, name), v)
}

// appendDurationField appends an omitempty Duration member.
func appendDurationField(b []byte, first *bool, name string, d Duration) []byte {
	if d == 0 {
		return b
	}
	return appendJSONString(fieldName(b, first, name), time.Duration(d).String())
}

// appendIntField appends an omitempty int member.
func appendIntField(b []byte, first *bool, name string, v int) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendInt(fieldName(b, first, name), int64(v), 10)
}

// appendJSONTime appends t as time.Time's MarshalJSON does, for the years
// it accepts (0 to 9999): RFC 3339 with nanoseconds, quoted.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does by default: HTML
// characters (<, >, &) and U+2028, U+2029 escaped, invalid UTF-8 replaced
// by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
