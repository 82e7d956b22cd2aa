package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

func setHealthCmd(changes ...HealthChange) *Command {
	return &Command{Type: CommandSetHealth, Health: changes}
}

func TestSetHealth(t *testing.T) {
	s := New()
	mustApply(t, s, 1, registerCmd(1, "default", "web", "a", persistent("10.0.0.1", 80)))
	mustApply(t, s, 2, registerCmd(2, "default", "web", "b", persistent("10.0.0.2", 80)))
	v0, _ := s.Service("default", "web")
	nv0, _, _ := s.Services("default")

	// One command carries changes for several instances; the ones that
	// no longer hold are skipped, not errors.
	n := mustApply(t, s, 3, setHealthCmd(
		HealthChange{Namespace: "default", Service: "web", ID: "a", Healthy: false, IfIndex: 1},
		HealthChange{Namespace: "default", Service: "web", ID: "b", Healthy: false, IfIndex: 1}, // b is at index 2
		HealthChange{Namespace: "default", Service: "web", ID: "gone", Healthy: false},
		HealthChange{Namespace: "default", Service: "nope", ID: "a", Healthy: false},
		HealthChange{Namespace: "nope", Service: "web", ID: "a", Healthy: false},
	))
	if n != 1 {
		t.Fatalf("set-health applied %v changes, want 1", n)
	}
	v, _ := s.Service("default", "web")
	a, b := v.Instances()[0], v.Instances()[1]
	if a.Healthy || a.ModifyIndex != 3 || a.CreateIndex != 1 || a.Address != "10.0.0.1" {
		t.Fatalf("a after set-health: %+v", a)
	}
	if !b.Healthy || b.ModifyIndex != 2 {
		t.Fatalf("b changed although its if_index did not match: %+v", b)
	}
	if v.Index != 3 || v.Healthy() != 1 {
		t.Fatalf("view index %d healthy %d, want 3 and 1", v.Index, v.Healthy())
	}
	select {
	case <-v0.WatchCh():
	default:
		t.Fatal("service watchers not woken by a health change")
	}
	select {
	case <-nv0.WatchCh():
	default:
		t.Fatal("namespace watchers not woken (the service list shows healthy counts)")
	}
	// The old view is untouched.
	if !v0.Instances()[0].Healthy {
		t.Fatal("published view modified in place")
	}

	// Setting the health it already has changes nothing and wakes no one.
	n = mustApply(t, s, 4, setHealthCmd(HealthChange{Namespace: "default", Service: "web", ID: "a", Healthy: false}))
	if n != 0 {
		t.Fatalf("no-op set-health applied %v changes", n)
	}
	if v2, _ := s.Service("default", "web"); v2 != v {
		t.Fatal("no-op set-health replaced the view")
	}
	// Unconditional change back.
	mustApply(t, s, 5, setHealthCmd(HealthChange{Namespace: "default", Service: "web", ID: "a", Healthy: true}))
	if v, _ := s.Service("default", "web"); !v.Instances()[0].Healthy || v.Instances()[0].ModifyIndex != 5 {
		t.Fatalf("a not healthy again: %+v", v.Instances()[0])
	}
}

func TestSetHealthRejected(t *testing.T) {
	for _, c := range []*Command{
		setHealthCmd(),
		setHealthCmd(make([]HealthChange, MaxHealthChanges+1)...),
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%d changes) = %v, want ErrInvalid", len(c.Health), err)
		}
	}
	c := setHealthCmd(HealthChange{Namespace: "default", Service: "web", ID: "a", Healthy: true, IfIndex: 7})
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeCommand(b)
	if err != nil || len(d.Health) != 1 || d.Health[0] != c.Health[0] {
		t.Fatalf("round trip: %+v, %v", d, err)
	}
}

func TestDeregisterIfIndex(t *testing.T) {
	s := New()
	mustApply(t, s, 1, registerCmd(1, "default", "web", "a", persistent("10.0.0.1", 80)))
	mustApply(t, s, 2, registerCmd(2, "default", "web", "a", persistent("10.0.0.1", 81)))

	c := deregisterCmd("default", "web", "a")
	c.IfIndex = 1 // judged before the re-registration at 2
	if _, err := s.Apply(3, c); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale conditional deregister: %v, want ErrConflict", err)
	}
	if v, _ := s.Service("default", "web"); v.Len() != 1 {
		t.Fatal("stale conditional deregister removed the instance")
	}
	c.IfIndex = 2
	mustApply(t, s, 4, c)
	if v, _ := s.Service("default", "web"); v.Len() != 0 {
		t.Fatal("conditional deregister with the right index did not remove")
	}
}

func TestProtected(t *testing.T) {
	mk := func(threshold float64, states ...string) *ServiceView {
		v := &ServiceView{Service: Service{ServiceSettings: ServiceSettings{ProtectThreshold: threshold}}}
		for i, st := range states {
			v.list.push(&Instance{ID: fmt.Sprintf("i-%03d", i), Healthy: st == "up", Enabled: st != "off"})
		}
		return v
	}
	for _, c := range []struct {
		name string
		v    *ServiceView
		want bool
	}{
		{"off by default", mk(0, "down", "down", "down"), false},
		{"30% healthy under 0.5", mk(0.5, "up", "up", "up", "down", "down", "down", "down", "down", "down", "down"), true},
		{"exactly at the threshold", mk(0.5, "up", "down"), false},
		{"disabled instances do not count", mk(0.5, "up", "off", "off", "off"), false},
		{"disabled healthy do not count", mk(0.6, "up", "down", "off"), true},
		{"no enabled instance", mk(1, "off"), false},
		{"empty", mk(1), false},
		{"threshold 1, one down", mk(1, "up", "up", "down"), true},
	} {
		if got := c.v.Protected(); got != c.want {
			t.Errorf("%s: Protected() = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSelfPreservationStateSurvivesSnapshot(t *testing.T) {
	s := New()
	if sp := s.SelfPreservation(); sp.Active {
		t.Fatal("new store in self-preservation")
	}
	on := SelfPreservation{Active: true, Since: t0, Reason: "40% of 100 ephemeral instances fell silent within 1m0s"}
	mustApply(t, s, 3, &Command{Type: CommandSetSelfPreservation, SelfPreservation: &on})
	got := s.SelfPreservation()
	if !got.Active || got.Index != 3 || got.Reason != on.Reason || !got.Since.Equal(t0) {
		t.Fatalf("mode %+v", got)
	}
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if r.SelfPreservation() != got {
		t.Fatalf("restored %+v, want %+v", r.SelfPreservation(), got)
	}
	off := SelfPreservation{EndedAt: t0.Add(time.Minute), EndedBy: "operator", Since: got.Since, Reason: got.Reason}
	mustApply(t, s, 4, &Command{Type: CommandSetSelfPreservation, SelfPreservation: &off})
	if sp := s.SelfPreservation(); sp.Active || sp.EndedBy != "operator" || sp.Index != 4 {
		t.Fatalf("after the operator ended it: %+v", sp)
	}
	bad := SelfPreservation{EndedBy: "someone"}
	if err := (&Command{Type: CommandSetSelfPreservation, SelfPreservation: &bad}).Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ended_by someone: %v", err)
	}
}
