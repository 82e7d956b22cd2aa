package store

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors returned by the store. Callers match them with errors.Is; the API
// maps each to one HTTP status in one place.
var (
	// ErrNamespaceNotFound: the namespace does not exist (create it first).
	ErrNamespaceNotFound = errors.New("namespace not found")
	// ErrServiceNotFound: no such service in the namespace.
	ErrServiceNotFound = errors.New("service not found")
	// ErrInstanceNotFound: no such instance in the service.
	ErrInstanceNotFound = errors.New("instance not found")
	// ErrInvalid: a value breaks a rule; the wrapping message says which.
	ErrInvalid = errors.New("invalid value")
	// ErrNamespaceInUse: the namespace still holds services or is a fallback.
	ErrNamespaceInUse = errors.New("namespace in use")
	// ErrUnknownCommand: a log entry of a type this version does not know.
	ErrUnknownCommand = errors.New("unknown command type")
	// ErrConflict: a conditional command found the instance changed.
	ErrConflict = errors.New("instance changed")
)

// Limits on sizes, so that one registration cannot bloat the catalog.
const (
	MaxTags          = 64
	MaxTagLen        = 255
	MaxMetadataKeys  = 64
	MaxMetadataKey   = 128
	MaxMetadataValue = 512
	MaxHostLen       = 253
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ValidateName checks that s is a DNS label (RFC 1123): 1 to 63 lowercase
// letters, digits and hyphens, not starting or ending with a hyphen. what
// names the field in the error ("namespace", "service", "instance id").
func ValidateName(what, s string) error {
	if s == "" {
		return invalid("%s is empty", what)
	}
	if len(s) > 63 {
		return invalid("%s %q is longer than 63 characters", what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(s)-1 {
				return invalid("%s %q must not start or end with a hyphen", what, s)
			}
		default:
			return invalid("%s %q must be a DNS label: lowercase letters, digits and hyphens", what, s)
		}
	}
	return nil
}

// ValidateHost accepts an IP address or a DNS host name.
func ValidateHost(s string) error {
	if s == "" {
		return invalid("address is empty")
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	name := strings.TrimSuffix(s, ".")
	if len(name) > MaxHostLen {
		return invalid("address %q is longer than %d characters", s, MaxHostLen)
	}
	allDigits := true
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return invalid("address %q is neither an IP address nor a host name", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
				allDigits = false
			case c >= '0' && c <= '9':
			case c == '-' && i > 0 && i < len(label)-1:
				allDigits = false
			default:
				return invalid("address %q is neither an IP address nor a host name", s)
			}
		}
	}
	if allDigits {
		return invalid("address %q is neither an IP address nor a host name", s)
	}
	return nil
}

// Normalize fills defaults into an instance being registered and validates
// every field. The caller sets Namespace, Service and ID.
func (i *Instance) Normalize() error {
	if err := ValidateName("namespace", i.Namespace); err != nil {
		return err
	}
	if err := ValidateName("service", i.Service); err != nil {
		return err
	}
	if err := ValidateName("instance id", i.ID); err != nil {
		return err
	}
	if err := ValidateHost(i.Address); err != nil {
		return err
	}
	if i.Port < 1 || i.Port > 65535 {
		return invalid("port %d is outside 1-65535", i.Port)
	}
	if i.Weight < 0 || i.Weight > MaxWeight {
		return invalid("weight %d is outside 0-%d", i.Weight, MaxWeight)
	}
	for _, l := range []struct{ what, v string }{
		{"locality.region", i.Locality.Region},
		{"locality.datacenter", i.Locality.Datacenter},
		{"locality.unit", i.Locality.Unit},
	} {
		if l.v != "" {
			if err := ValidateName(l.what, l.v); err != nil {
				return err
			}
		}
	}
	if len(i.Tags) > MaxTags {
		return invalid("%d tags, at most %d allowed", len(i.Tags), MaxTags)
	}
	for _, t := range i.Tags {
		if t == "" || len(t) > MaxTagLen {
			return invalid("tag %q must be 1 to %d characters", t, MaxTagLen)
		}
	}
	if len(i.Metadata) > MaxMetadataKeys {
		return invalid("%d metadata keys, at most %d allowed", len(i.Metadata), MaxMetadataKeys)
	}
	for k, v := range i.Metadata {
		if k == "" || len(k) > MaxMetadataKey {
			return invalid("metadata key %q must be 1 to %d characters", k, MaxMetadataKey)
		}
		if len(v) > MaxMetadataValue {
			return invalid("metadata value of %q is longer than %d characters", k, MaxMetadataValue)
		}
	}
	return i.normalizeCheck()
}

func (i *Instance) normalizeCheck() error {
	c := &i.Check
	if c.Type == "" {
		if i.Ephemeral {
			c.Type = CheckTTL
		} else {
			c.Type = CheckNone
		}
	}
	switch c.Type {
	case CheckTTL:
		if !i.Ephemeral {
			return invalid("check type %q needs an ephemeral instance; persistent instances use http, tcp, grpc or none", c.Type)
		}
		if c.Target != "" {
			return invalid("check type ttl takes no target")
		}
	case CheckHTTP, CheckTCP, CheckGRPC:
		if i.Ephemeral {
			return invalid("check type %q is for persistent instances (ephemeral: false); ephemeral ones heartbeat", c.Type)
		}
		if c.Target == "" {
			return invalid("check type %q needs a target", c.Type)
		}
		if err := validateTarget(c.Type, c.Target); err != nil {
			return err
		}
	case CheckNone:
		if i.Ephemeral {
			return invalid("ephemeral instances must heartbeat: check type must be ttl")
		}
	default:
		return invalid("check type %q is not one of ttl, http, tcp, grpc, none", c.Type)
	}
	for _, d := range []struct {
		what string
		v    Duration
	}{{"interval", c.Interval}, {"timeout", c.Timeout}, {"ttl", c.TTL}, {"deregister_after", c.DeregisterAfter}} {
		if d.v < 0 || time.Duration(d.v) > 24*time.Hour {
			return invalid("check %s %s is outside 0-24h", d.what, time.Duration(d.v))
		}
	}
	if c.FailuresBeforeUnhealthy < 0 || c.FailuresBeforeUnhealthy > 100 ||
		c.SuccessesBeforeHealthy < 0 || c.SuccessesBeforeHealthy > 100 {
		return invalid("check failures_before_unhealthy and successes_before_healthy must be 0-100")
	}
	return nil
}

// MaxTargetLen bounds a check target.
const MaxTargetLen = 1024

// validateTarget checks the shape of a server-side check's target: an
// http(s) URL with a host, or host:port, with "/service" after it for gRPC.
func validateTarget(typ, target string) error {
	if len(target) > MaxTargetLen {
		return invalid("check target is longer than %d characters", MaxTargetLen)
	}
	hostPort := target
	switch typ {
	case CheckHTTP:
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("http check target %q must be a URL like http://10.0.0.1:8080/health", target)
		}
		return nil
	case CheckGRPC:
		hostPort, _, _ = strings.Cut(target, "/")
	}
	host, port, err := net.SplitHostPort(hostPort)
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		if typ == CheckGRPC {
			return invalid("grpc check target %q must be host:port or host:port/service", target)
		}
		return invalid("%s check target %q must be host:port", typ, target)
	}
	return nil
}

// Validate checks service settings.
func (s ServiceSettings) Validate() error {
	// Written so that NaN fails too.
	if !(s.ProtectThreshold >= 0 && s.ProtectThreshold <= 1) {
		return invalid("protect_threshold %v is outside 0-1", s.ProtectThreshold)
	}
	if !(s.MinHealthyRatio >= 0 && s.MinHealthyRatio <= 1) {
		return invalid("min_healthy_ratio %v is outside 0-1", s.MinHealthyRatio)
	}
	if !slices.Contains(Balancers, s.Balancer) {
		return invalid("balancer %q is not one of %s", s.Balancer, strings.Join(Balancers, ", "))
	}
	if s.DNSTTL < 0 || time.Duration(s.DNSTTL) > 24*time.Hour {
		return invalid("dns_ttl %s is outside 0-24h", time.Duration(s.DNSTTL))
	}
	return nil
}

// Validate checks namespace settings for the namespace named name.
func (n NamespaceSettings) Validate(name string) error {
	if n.Fallback != "" {
		if err := ValidateName("fallback", n.Fallback); err != nil {
			return err
		}
		if n.Fallback == name {
			return invalid("namespace %q cannot fall back to itself", name)
		}
	}
	if len(n.Description) > 1024 {
		return invalid("description is longer than 1024 characters")
	}
	return nil
}
