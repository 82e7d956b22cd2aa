package store

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// tricky holds strings encoding/json escapes: quotes, backslashes, control
// and HTML characters, line and paragraph separators, invalid UTF-8.
var tricky = []string{
	"", "a", "web-1", `"quoted"`, `back\slash`, "<b>&amp;</b>", "tab\tnew\nline\rcr",
	"\x00\x01\x1f\x7f", "\b\f", "é café ☕ 😀", "\u2028\u2029", "bad\xffutf8\xc3", "\xe2\x80", "x\u2028y",
}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return tricky[r.IntN(len(tricky))]
	}
	b := make([]byte, r.IntN(12))
	for k := range b {
		b[k] = byte(r.IntN(256))
	}
	return string(b)
}

func randInstance(r *rand.Rand) *Instance {
	d := func() Duration {
		if r.IntN(2) == 0 {
			return 0
		}
		return Duration(time.Duration(r.Int64N(int64(time.Hour))))
	}
	tm := func() time.Time {
		if r.IntN(4) == 0 {
			return time.Time{}
		}
		loc := []*time.Location{time.UTC, time.FixedZone("x", 3600+1800), time.FixedZone("y", -7*3600)}[r.IntN(3)]
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)*int64(r.IntN(2))).In(loc)
	}
	in := &Instance{
		ID: randString(r), Namespace: randString(r), Service: randString(r), Address: randString(r),
		Port: r.IntN(70000) - 100, Weight: r.IntN(10001), Enabled: r.IntN(2) == 0, Ephemeral: r.IntN(2) == 0,
		Healthy: r.IntN(2) == 0, HealthChangedAt: tm(), RegisteredAt: tm(), UpdatedAt: tm(),
		CreateIndex: r.Uint64(), ModifyIndex: uint64(r.IntN(1000)),
	}
	if r.IntN(2) == 0 {
		in.Locality = Locality{Region: randString(r), Datacenter: randString(r), Unit: randString(r)}
	}
	switch r.IntN(3) {
	case 0:
		in.Tags = []string{}
	case 1:
		for range r.IntN(4) + 1 {
			in.Tags = append(in.Tags, randString(r))
		}
	}
	switch r.IntN(3) {
	case 0:
		in.Metadata = map[string]string{}
	case 1:
		in.Metadata = map[string]string{}
		for range r.IntN(6) + 1 {
			in.Metadata[randString(r)] = randString(r)
		}
	}
	if r.IntN(2) == 0 {
		in.Check = Check{Type: randString(r), Target: randString(r), Interval: d(), Timeout: d(), TTL: d(), DeregisterAfter: d(),
			FailuresBeforeUnhealthy: r.IntN(3) - 1, SuccessesBeforeHealthy: r.IntN(3)}
	}
	return in
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 20000 {
		in := randInstance(r)
		want, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := in.AppendJSON([]byte("prefix")); !bytes.Equal(got[len("prefix"):], want) || string(got[:len("prefix")]) != "prefix" {
			t.Fatalf("instance %d: %#v\nAppendJSON: %s\njson:       %s", n, in, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json: %s", s, got, want)
		}
	})
}

func BenchmarkInstanceJSON(b *testing.B) {
	in := &Instance{ID: "web-12", Namespace: "default", Service: "web", Address: "10.0.3.17", Port: 8080, Weight: 100,
		Enabled: true, Ephemeral: true, Locality: Locality{Region: "eu", Datacenter: "eu-west-1", Unit: "a"},
		Tags: []string{"v2", "canary"}, Metadata: map[string]string{"version": "2.4.1", "zone": "a"},
		Check: Check{Type: CheckTTL, TTL: Duration(15 * time.Second)}, Healthy: true,
		RegisteredAt: time.Now(), UpdatedAt: time.Now(), CreateIndex: 1234, ModifyIndex: 5678}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = in.AppendJSON(buf[:0])
		}
	})
}
