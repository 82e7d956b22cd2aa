package api

import (
	"errors"
	"testing"
)

func TestPublicMessageDropsGoPrefixes(t *testing.T) {
	for in, want := range map[string]string{
		`store: service "cart" in namespace "x": service not found`:     `service "cart" in namespace "x": service not found`,
		`store: deregister "x": store: service "web": not found`:        `deregister "x": service "web": not found`,
		`catalog: raft: no leader`:                                      `no leader`,
		`invalid value: service "Bad" must be a DNS label`:              `invalid value: service "Bad" must be a DNS label`,
		`backup restore: store: snapshot: datastore: checksum mismatch`: `backup restore: snapshot: datastore: checksum mismatch`,
	} {
		if got := PublicMessage(errors.New(in)); got != want {
			t.Errorf("PublicMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
