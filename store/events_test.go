package store

import (
	"fmt"
	"strings"
	"testing"
)

// The sink is told every change to an instance, in log order, after its
// batch is published (a reader sees the change by then), and nothing for a
// command that changes nothing.
func TestEventsTellWhatHappened(t *testing.T) {
	s := New()
	var got []string
	s.SetEventSink(func(es []Event) {
		for _, e := range es {
			v, err := s.Service(e.Namespace, e.Service)
			published := err == nil && v.Index >= e.Index || e.Kind == EventDeregistered
			got = append(got, fmt.Sprintf("%d %s/%s %s w%d %v", e.Index, e.Service, e.ID, e.Kind, e.Weight, published))
		}
	})
	w, off := 7, false
	mustApply(t, s, 1, registerCmd(1, "default", "web", "w1", persistent("10.0.0.1", 80)))
	mustApply(t, s, 2, registerCmd(2, "default", "web", "w1", persistent("10.0.0.1", 80))) // the same: nothing
	mustApply(t, s, 3, registerCmd(3, "default", "web", "w1", persistent("10.0.0.1", 81)))
	mustApply(t, s, 4, &Command{Type: CommandSetHealth, Time: at(4), Health: []HealthChange{{Namespace: "default", Service: "web", ID: "w1", Healthy: false}}})
	mustApply(t, s, 5, &Command{Type: CommandSetHealth, Time: at(5), Health: []HealthChange{{Namespace: "default", Service: "web", ID: "w1", Healthy: false}}}) // no change
	mustApply(t, s, 6, &Command{Type: CommandPatchInstance, Time: at(6), Namespace: "default", Service: "web", ID: "w1", Patch: &InstancePatch{Weight: &w, Enabled: &off}})
	mustApply(t, s, 7, &Command{Type: CommandDeregister, Time: at(7), Namespace: "default", Service: "web", ID: "w1"})
	want := []string{"1 web/w1 registered w100 true", "3 web/w1 updated w100 true", "4 web/w1 unhealthy w100 true",
		"6 web/w1 weight w7 true", "6 web/w1 disabled w7 true", "7 web/w1 deregistered w7 true"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	s.SetEventSink(nil)
	mustApply(t, s, 8, registerCmd(8, "default", "web", "w2", persistent("10.0.0.2", 80)))
	if len(got) != len(want) {
		t.Fatalf("events after the sink was removed: %v", got[len(want):])
	}
}
