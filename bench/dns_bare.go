package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	mdns "github.com/miekg/dns"
)

// runDNSBare serves one fixed A record for every question, over UDP, with
// miekg/dns and nothing else: the baseline the registry's DNS server is
// measured against. It prints its address, then serves until ctx ends.
func runDNSBare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dns-bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "UDP address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", *addr)
	if err != nil {
		return err
	}
	ip := net.IPv4(10, 0, 0, 1).To4()
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: ip}}
		}
		_ = w.WriteMsg(m)
	})}
	fmt.Fprintln(stdout, pc.LocalAddr().String())
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown()
	}()
	return srv.ActivateAndServe()
}
