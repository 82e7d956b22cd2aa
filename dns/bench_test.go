package dns

import (
	"fmt"
	"log/slog"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/switchyard-io/switchyard/store"
)

// BenchmarkServe measures one query through the handler chain and the
// packing of its reply, without the network: 10 instances, A and SRV.
//
//	go test ./dns -run - -bench Serve -benchmem
func BenchmarkServe(b *testing.B) {
	st := store.New()
	for k := range 10 {
		in := store.Instance{Address: fmt.Sprintf("10.0.0.%d", k+1), Port: 8080, Weight: 100, Enabled: true}
		st.Apply(uint64(k+1), &store.Command{Type: store.CommandRegister, Namespace: "default", Service: "web", ID: fmt.Sprintf("w-%d", k), Instance: &in})
	}
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := New(cfg, st)
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, qt := range []uint16{mdns.TypeA, mdns.TypeSRV} {
		b.Run(mdns.TypeToString[qt], func(b *testing.B) {
			q := new(mdns.Msg)
			q.SetQuestion("web.svc.switchyard.", qt)
			w := &recorder{}
			buf := make([]byte, 4096)
			b.ReportAllocs()
			for b.Loop() {
				h.ServeDNS(w, q)
				if _, err := w.msg.PackBuffer(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
