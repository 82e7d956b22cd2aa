package route

import (
	"fmt"
	"slices"

	"github.com/switchyard-io/switchyard/store"
)

// Catalog is what Lookup reads; *store.Store provides it. Both methods are
// lock-free reads of immutable views.
type Catalog interface {
	Namespace(ns string) (*store.NamespaceView, error)
	Service(ns, svc string) (*store.ServiceView, error)
}

// Query is a lookup: a service in a namespace, for a caller.
type Query struct {
	Namespace, Service string
	Caller             store.Locality
	// Tag, when set, keeps only the instances carrying it.
	Tag      string
	Topology Topology
	// NoWatch leaves Result.Watches empty (callers that do not block).
	NoWatch bool
}

// Chosen is a view's selection for one caller (and tag), with its picker.
// It is memoised on the view: the same view and caller give the same one.
type Chosen struct {
	Selection Selection
	Picker    *Picker
}

type chosenKey struct {
	caller store.Locality
	tag    string
}

// Choose returns v's selection for the caller and tag, computing it once
// per view.
func Choose(v *store.ServiceView, caller store.Locality, tag string, topo Topology) *Chosen {
	return store.MemoKeyed(v, chosenKey{caller, tag}, MaxCachedPerView, func() *Chosen {
		ins := v.Instances()
		if tag != "" {
			ins = slices.DeleteFunc(slices.Clone(ins), func(i *store.Instance) bool { return !slices.Contains(i.Tags, tag) })
		}
		sel := Select(Input{Caller: caller, Settings: v.Service.ServiceSettings, Instances: ins, Topology: topo})
		return &Chosen{Selection: sel, Picker: NewPicker(sel)}
	})
}

// MaxCachedPerView bounds the selections (and DNS record sets) kept per
// service view.
const MaxCachedPerView = 1024

// Result is the outcome of Lookup.
type Result struct {
	// Served is the view whose instances were chosen: the asked
	// namespace's, or the first of its fallback chain with a usable
	// instance. When no namespace of the chain had one, it is the first
	// view found (with an empty selection).
	Served *store.ServiceView
	Chosen *Chosen
	// Index is the highest index of every view the lookup read.
	Index uint64
	// Watches close when any view the lookup read changes.
	Watches []<-chan struct{}
}

// MaxFallback bounds a fallback chain walk (cycles are refused at write
// time; this guards the walk anyway).
const MaxFallback = 16

// Lookup finds the instances that may receive the caller's traffic: those
// of the asked namespace's service chosen by Select, or, when that has no
// usable instance (no such service, or nothing left after selection), those
// of the first namespace of its fallback chain that has one. Nothing else
// crosses namespaces. The error wraps store.ErrNamespaceNotFound for an
// unknown namespace, and store.ErrServiceNotFound when no namespace of the
// chain has the service; Watches are set even then.
func Lookup(cat Catalog, q Query) (Result, error) {
	var r Result
	cur := q.Namespace
	for hop := 0; cur != "" && hop < MaxFallback; hop++ {
		nv, err := cat.Namespace(cur)
		if err != nil {
			if hop == 0 {
				return r, err
			}
			break // a fallback deleted meanwhile: the chain ends here
		}
		v, err := cat.Service(cur, q.Service)
		if err == nil {
			ch := Choose(v, q.Caller, q.Tag, q.Topology)
			r.Index = max(r.Index, v.Index)
			if !q.NoWatch {
				r.Watches = append(r.Watches, v.WatchCh())
			}
			if len(ch.Selection.Candidates) > 0 {
				r.Served, r.Chosen = v, ch
				return r, nil
			}
			if r.Served == nil {
				r.Served, r.Chosen = v, ch
			}
		} else {
			r.Index = max(r.Index, nv.Index)
			if !q.NoWatch {
				r.Watches = append(r.Watches, nv.WatchCh())
			}
		}
		cur = nv.Namespace.Fallback
	}
	if r.Served == nil {
		return r, fmt.Errorf("service %q in namespace %q or its fallbacks: %w", q.Service, q.Namespace, store.ErrServiceNotFound)
	}
	return r, nil
}
