package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// Go benchmarks of the lookup path on a real single-node registry in this
// process. Unlike the registry-bench command they can be profiled:
//
//	go test ./bench -run '^$' -bench Lookup -cpuprofile cpu.prof
//	go tool pprof -top bench.test cpu.prof
//
// BenchmarkLookup goes through a real HTTP client and TCP on loopback, next
// to the bare handler serving the same bytes; BenchmarkLookupHandler calls
// the gin handler directly, so its profile shows only the registry's code.

var lookupSizes = []int{10, 1000}

// lookupFixture registers n instances and returns the path of the lookup
// and the registry's answer to it.
func lookupFixture(b *testing.B, reg *testRegistry, n int) (string, []byte, http.Header) {
	b.Helper()
	svc := fmt.Sprintf("lookup-%d", n)
	if err := populate(context.Background(), reg.URL, "default", svc, n, 10*time.Second); err != nil {
		b.Fatal(err)
	}
	path := "/v1/namespaces/default/services/" + svc + "/instances"
	body, hdr, err := fetchOnce(context.Background(), reg.URL+path, n, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	return path, body, hdr
}

func BenchmarkLookup(b *testing.B) {
	reg := startRegistry(b)
	bare := newBareServer()
	bareURL, stop, err := bare.start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	for _, n := range lookupSizes {
		path, body, hdr := lookupFixture(b, reg, n)
		bare.set(path, body, hdr)
		for _, target := range []struct{ name, url string }{{"registry", reg.URL + path}, {"bare", bareURL + path}} {
			b.Run(fmt.Sprintf("instances=%d/%s", n, target.name), func(b *testing.B) {
				hc := newHTTPClient(64, 10*time.Second)
				defer hc.CloseIdleConnections()
				b.SetBytes(int64(len(body)))
				// 16 goroutines per GOMAXPROCS: enough to keep both cores
				// busy with requests in flight, as the command's 16-64 clients do.
				b.SetParallelism(16)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest(http.MethodGet, target.url, nil)
						n, _, err := do(hc, req)
						if err != nil || n != int64(len(body)) {
							b.Errorf("lookup: %d bytes, err %v", n, err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkLookupHandler measures the registry's handler alone: routing,
// middleware, store read and the cached encoding, with no network.
func BenchmarkLookupHandler(b *testing.B) {
	reg := startRegistry(b)
	for _, n := range lookupSizes {
		path, body, _ := lookupFixture(b, reg, n)
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				// One request per goroutine, reused: the handler does not
				// change it, and building one per call would dominate.
				req := httptest.NewRequest(http.MethodGet, path, nil)
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					w.status, w.n = 0, 0
					reg.Handler.ServeHTTP(w, req)
					if w.status != http.StatusOK || w.n != len(body) {
						b.Errorf("status %d, %d bytes", w.status, w.n)
						return
					}
				}
			})
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler, not a recorder's buffer.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

// BenchmarkRegister measures registrations over HTTP, new ids every time,
// on one node (as `registry dev`) and on three in-process nodes with the
// cluster's default settings, writes round-robin over the nodes (as the
// register command does against scripts/cluster.sh). The three-node case
// profiles the whole write path in one process:
//
//	go test ./bench -run '^$' -bench 'Register/nodes=3/clients=64' -benchtime 5000x -cpuprofile cpu.prof
func BenchmarkRegister(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			regs := startCluster(b, nodes)
			for _, clients := range []int{1, 16, 64} {
				b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
					hc := newHTTPClient(clients, 10*time.Second)
					defer hc.CloseIdleConnections()
					prefix := fmt.Sprintf("b%d-%d-", clients, b.N)
					b.ResetTimer()
					closedLoop(b, clients, func(i int64) error {
						url := fmt.Sprintf("%s/v1/namespaces/default/services/bench-%d/instances/%s%d", regs[i%int64(len(regs))].URL, i%8, prefix, i)
						req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(`{"address":"10.0.0.1","port":80}`))
						_, _, err := do(hc, req)
						return err
					})
				})
			}
		})
	}
}

// closedLoop runs b.N operations from exactly clients goroutines, each
// sending its next request as soon as the previous one is answered.
func closedLoop(b *testing.B, clients int, op func(i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkStoreRegister measures the state machine alone: one instance of
// a service holding n re-registered with a new port. Every replica runs
// this for every registration, on the Raft FSM goroutine. The service view
// is copied on write, so the cost grows with the service's size (and a new
// instance costs the same as an update).
func BenchmarkStoreRegister(b *testing.B) {
	for _, n := range []int{10, 1000, 10000, 30000} {
		st := store.New()
		idx := uint64(0)
		reg := func(id string, port int) error {
			idx++
			_, err := st.Apply(idx, &store.Command{Type: store.CommandRegister, Namespace: "default", Service: "big", ID: id,
				Time: time.Unix(1, 0), Instance: &store.Instance{Address: "10.0.0.1", Port: port, Weight: 100, Enabled: true, Ephemeral: true}})
			return err
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("i-%06d", i)
			if err := reg(ids[i], 1); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				if err := reg(ids[i%n], 2+i%60000); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookupAfterWrite measures what a write costs the lookups that
// follow it: each iteration changes one instance of a 1,000-instance
// service, then `clients` lookups arrive at once (through the handler, no
// network). The encoded answer is cached per view, so ideally it is built
// once per write whatever the number of clients: compare B/op of
// clients=1 (one encoding per write) with clients=64.
func BenchmarkLookupAfterWrite(b *testing.B) {
	reg := startRegistry(b)
	path, _, _ := lookupFixture(b, reg, 1000)
	for _, clients := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("instances=1000/clients=%d", clients), func(b *testing.B) {
			reqs := make([]*http.Request, clients)
			for i := range reqs {
				reqs[i] = httptest.NewRequest(http.MethodGet, path, nil)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				_, err := reg.Node.Apply(context.Background(), &store.Command{Type: store.CommandRegister, Namespace: "default",
					Service: "lookup-1000", ID: "i-00000", Instance: &store.Instance{Address: "10.1.0.1", Port: 1 + i%60000,
						Weight: 100, Enabled: true, Ephemeral: true}})
				if err != nil {
					b.Fatal(err)
				}
				start := make(chan struct{})
				var wg sync.WaitGroup
				for _, req := range reqs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						w := &discardWriter{h: http.Header{}}
						reg.Handler.ServeHTTP(w, req)
						if w.status != http.StatusOK {
							b.Errorf("status %d", w.status)
						}
					}()
				}
				b.StartTimer()
				close(start)
				wg.Wait()
			}
		})
	}
}
