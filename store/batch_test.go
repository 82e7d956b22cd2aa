package store

import (
	"errors"
	"fmt"
	"math/rand"
	"sync/atomic"
	"testing"
)

// TestApplyBatchMatchesOneByOne: a batch at index N leaves the same catalog
// as applying its commands one by one at N, with the same per-command
// results, over random batches of random commands (namespace creations and
// deletions included).
func TestApplyBatchMatchesOneByOne(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	batched, single := New(), New()
	index := uint64(1)
	for range 600 {
		n := 1 + r.Intn(12)
		cmds := make([]*Command, n)
		for i := range cmds {
			switch r.Intn(20) {
			case 0:
				cmds[i] = putNamespaceCmd("prod", NamespaceSettings{Description: fmt.Sprint(r.Intn(3))})
			case 1:
				cmds[i] = deleteNamespaceCmd("prod")
			case 2:
				cmds[i] = putNamespaceCmd("stage", NamespaceSettings{Fallback: "prod"})
			case 3:
				cmds[i] = putServerCmd(Server{ID: fmt.Sprintf("s%d", r.Intn(3)), HTTPAddr: fmt.Sprint(r.Intn(2))})
			default:
				cmds[i] = propertyOp(r, index)
			}
		}
		got := batched.ApplyBatch(index, cmds)
		for i, c := range cmds {
			v, err := single.Apply(index, c)
			if (err == nil) != (got[i].Err == nil) || (err != nil && err.Error() != got[i].Err.Error()) {
				t.Fatalf("index %d command %d (%s): batch error %v, one by one %v", index, i, c.Type, got[i].Err, err)
			}
			if fmt.Sprint(v) != fmt.Sprint(got[i].Value) && !isPointerResult(v) {
				t.Fatalf("index %d command %d (%s): batch value %v, one by one %v", index, i, c.Type, got[i].Value, v)
			}
		}
		assertState(t, fmt.Sprintf("after batch at %d", index), captureState(t, batched), captureState(t, single))
		index++
	}
}

func isPointerResult(v any) bool {
	switch v.(type) {
	case *Instance, *Service, *Namespace:
		return true
	}
	return false
}

// TestApplyBatchIsAtomicForReaders: two services registered in one batch
// appear to a concurrent reader together or not at all.
func TestApplyBatchIsAtomicForReaders(t *testing.T) {
	s := New()
	var done atomic.Bool
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for !done.Load() {
			for i := range 500 {
				_, errB := s.Service(DefaultNamespace, fmt.Sprintf("b%d", i))
				_, errA := s.Service(DefaultNamespace, fmt.Sprintf("a%d", i))
				// a is read after b, so seeing b without a is a torn read.
				if errB == nil && errors.Is(errA, ErrServiceNotFound) {
					errs <- fmt.Errorf("batch %d seen half applied", i)
					return
				}
			}
		}
	}()
	for i := range 500 {
		idx := uint64(i + 1)
		res := s.ApplyBatch(idx, []*Command{
			registerCmd(idx, DefaultNamespace, fmt.Sprintf("a%d", i), "x", persistent("10.0.0.1", 80)),
			registerCmd(idx, DefaultNamespace, fmt.Sprintf("b%d", i), "x", persistent("10.0.0.1", 80)),
		})
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	done.Store(true)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func TestBatchEntryRoundTrip(t *testing.T) {
	cmds := []*Command{
		registerCmd(3, DefaultNamespace, "web", "w1", persistent("10.0.0.1", 80)),
		deregisterCmd(DefaultNamespace, "web", "w0"),
		putServiceCmd(DefaultNamespace, "web", DefaultServiceSettings()),
	}
	var enc [][]byte
	for _, c := range cmds {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		enc = append(enc, b)
	}
	// An ignorable command of a newer version rides along and decodes to nil.
	enc = append(enc, []byte{byte(IgnorableFlag | 0x11), '{', '}'})
	got, err := DecodeEntry(EncodeBatch(enc))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[3] != nil {
		t.Fatalf("decoded %d commands (last %v), want 4 with a nil last", len(got), got[len(got)-1])
	}
	for i := range cmds {
		again, err := got[i].Encode()
		if err != nil || string(again) != string(enc[i]) {
			t.Fatalf("command %d: re-encoded %s, want %s (%v)", i, again, enc[i], err)
		}
	}
	// A single-command entry decodes too.
	one, err := DecodeEntry(enc[0])
	if err != nil || len(one) != 1 || one[0].ID != "w1" {
		t.Fatalf("single entry: %v %v", one, err)
	}
	// Malformed batches are errors, never panics.
	b := EncodeBatch(enc)
	for _, bad := range [][]byte{{byte(CommandBatch)}, {byte(CommandBatch), 0xff}, b[:len(b)-1], {byte(CommandBatch), 5, 1}} {
		if _, err := DecodeEntry(bad); err == nil {
			t.Errorf("DecodeEntry(%x) accepted a malformed batch", bad)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	c, _ := registerCmd(3, DefaultNamespace, "web", "w1", persistent("10.0.0.1", 80)).Encode()
	f.Add(c)
	f.Add(EncodeBatch([][]byte{c, c}))
	f.Add([]byte{byte(CommandBatch), 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := DecodeEntry(b)
		if err == nil && len(cmds) == 0 {
			t.Fatalf("no error and no commands")
		}
	})
}

// TestPublishedViewsNeverChange applies batches of many registrations and
// deregistrations to services of hundreds of instances (chunks split and
// join inside a batch, and share the batch's copies) and checks, at the
// end, that every view published along the way still holds what it held
// when it was published.
func TestPublishedViewsNeverChange(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	s := New()
	type seen struct {
		v     *ServiceView
		ports map[string]int
	}
	var views []seen
	snapshot := func(v *ServiceView) map[string]int {
		m := map[string]int{}
		for in := range v.All {
			m[in.ID] = in.Port
		}
		return m
	}
	index := uint64(1)
	for range 300 {
		cmds := make([]*Command, 1+r.Intn(40))
		for i := range cmds {
			svc := fmt.Sprintf("svc-%d", r.Intn(2))
			id := fmt.Sprintf("i-%04d", r.Intn(900))
			if r.Intn(4) == 0 {
				cmds[i] = &Command{Type: CommandDeregister, Namespace: DefaultNamespace, Service: svc, ID: id}
			} else {
				cmds[i] = &Command{Type: CommandRegister, Namespace: DefaultNamespace, Service: svc, ID: id,
					Instance: &Instance{Address: "10.0.0.1", Port: 1 + r.Intn(65535)}}
			}
		}
		s.ApplyBatch(index, cmds)
		index++
		for _, svc := range []string{"svc-0", "svc-1"} {
			if v, err := s.Service(DefaultNamespace, svc); err == nil {
				views = append(views, seen{v, snapshot(v)})
			}
		}
	}
	big := 0
	for _, sv := range views {
		big = max(big, sv.v.Len())
		got := snapshot(sv.v)
		if len(got) != len(sv.ports) || len(got) != sv.v.Len() {
			t.Fatalf("view at index %d: %d instances now, %d when published (Len %d)", sv.v.Index, len(got), len(sv.ports), sv.v.Len())
		}
		for id, p := range sv.ports {
			if got[id] != p {
				t.Fatalf("view at index %d: %s has port %d now, %d when published", sv.v.Index, id, got[id], p)
			}
		}
	}
	if big < 3*chunkMax {
		t.Fatalf("services reached only %d instances: no chunk split", big)
	}
}
