// Package grpcresolver lets grpc-go clients find their servers through
// Switchyard: dial "switchyard:///orders?ns=prod" and calls go to the
// instances the registry chooses for this process (nearest first, healthy,
// fallback namespaces), spread by their weights, and stop going to an
// instance within moments of its deregistration or failure.
//
// It is a separate package so that applications that do not use gRPC do not
// pull grpc-go in through the client.
package grpcresolver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/switchyard-io/switchyard/client"
)

// Scheme is the target scheme: switchyard:///{service}[?ns={namespace}].
const Scheme = "switchyard"

// BalancerName is the load-balancing policy the resolver selects: weighted
// random over the ready connections, by registry weight.
const BalancerName = "switchyard_weighted"

func init() {
	balancer.Register(base.NewBalancerBuilder(BalancerName, pickerBuilder{}, base.Config{}))
}

// Builder is a resolver.Builder over Switchyard clients (one per
// namespace, shared by every connection that dials it).
type Builder struct {
	cfg     client.Config
	mu      sync.Mutex
	clients map[string]*client.Client
}

// NewBuilder returns a builder whose clients use cfg (its Namespace is the
// default of targets without ?ns=). Register it with
// grpc.WithResolvers(b) or resolver.Register(b).
func NewBuilder(cfg client.Config) *Builder {
	return &Builder{cfg: cfg, clients: map[string]*client.Client{}}
}

// Scheme implements resolver.Builder.
func (b *Builder) Scheme() string { return Scheme }

// Close stops the builder's clients (after the connections using them).
func (b *Builder) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ns, c := range b.clients {
		c.Close()
		delete(b.clients, ns)
	}
	return nil
}

func (b *Builder) client(ns string) (*client.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.clients[ns]; c != nil {
		return c, nil
	}
	cfg := b.cfg
	if ns != "" {
		cfg.Namespace = ns
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	b.clients[ns] = c
	return c, nil
}

// Build implements resolver.Builder.
func (b *Builder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	svc := strings.Trim(t.URL.Path, "/")
	if svc == "" {
		return nil, fmt.Errorf("grpcresolver: target %q names no service: use switchyard:///{service}?ns={namespace}", t.URL.String())
	}
	c, err := b.client(t.URL.Query().Get("ns"))
	if err != nil {
		return nil, err
	}
	sc := cc.ParseServiceConfig(`{"loadBalancingConfig":[{"` + BalancerName + `":{}}]}`)
	ctx, cancel := context.WithCancel(context.Background())
	r := &switchyardResolver{cancel: cancel}
	go func() {
		for a := range c.Watch(ctx, svc) {
			if err := cc.UpdateState(state(a, sc)); err != nil && ctx.Err() == nil {
				cc.ReportError(err)
			}
		}
	}()
	return r, nil
}

type weightKey struct{}

func state(a client.Answer, sc *serviceconfig.ParseResult) resolver.State {
	st := resolver.State{ServiceConfig: sc}
	for _, in := range a.Instances {
		if in.Weight <= 0 || !in.Enabled {
			continue
		}
		st.Addresses = append(st.Addresses, resolver.Address{
			Addr:               net.JoinHostPort(in.Address, strconv.Itoa(in.Port)),
			BalancerAttributes: attributes.New(weightKey{}, in.Weight),
		})
	}
	return st
}

type switchyardResolver struct{ cancel context.CancelFunc }

// ResolveNow implements resolver.Resolver: the answers are pushed already.
func (*switchyardResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close implements resolver.Resolver.
func (r *switchyardResolver) Close() { r.cancel() }

// pickerBuilder builds weighted random pickers over the ready connections.
type pickerBuilder struct{}

func (pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &picker{}
	for sc, i := range info.ReadySCs {
		w := 1
		if v, ok := i.Address.BalancerAttributes.Value(weightKey{}).(int); ok && v > 0 {
			w = v
		}
		p.total += int64(w)
		p.subConns = append(p.subConns, sc)
		p.cum = append(p.cum, p.total)
	}
	return p
}

type picker struct {
	subConns []balancer.SubConn
	cum      []int64
	total    int64
}

func (p *picker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	x := rand.Int64N(p.total) + 1
	lo, hi := 0, len(p.cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if p.cum[mid] >= x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return balancer.PickResult{SubConn: p.subConns[lo]}, nil
}
