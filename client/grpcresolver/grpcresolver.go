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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/store"
)

// Scheme is the target scheme: switchyard:///{service}[?ns={namespace}].
const Scheme = "switchyard"

// BalancerName is the load-balancing policy the resolver selects: weighted
// random over the ready connections, by registry weight.
const BalancerName = "switchyard_weighted"

func init() {
	balancer.Register(weightedBuilder{})
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

// client returns the namespace's client, starting it the first time. A
// target without ?ns= and one naming the default namespace share one. A
// client keeps its disk snapshot (and reads its pin file) in CacheDir for
// the builder's namespace and in CacheDir/ns-{namespace} for any other:
// sharing one folder, the clients would overwrite each other's snapshot.
func (b *Builder) client(ns string) (*client.Client, error) {
	def := b.cfg.Namespace
	if def == "" {
		def = store.DefaultNamespace
	}
	if ns == "" {
		ns = def
	}
	if err := store.ValidateName("namespace", ns); err != nil {
		return nil, fmt.Errorf("grpcresolver: target's ns=: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.clients[ns]; c != nil {
		return c, nil
	}
	cfg := b.cfg
	cfg.Namespace = ns
	if cfg.CacheDir != "" && ns != def {
		cfg.CacheDir = filepath.Join(cfg.CacheDir, "ns-"+ns)
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("grpcresolver: cache folder of namespace %s: %w", ns, err)
		}
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

// weightedBuilder builds grpc-go's base balancer (one connection per
// address, a picker over the ready ones) with weights that follow the
// registry. The base balancer keeps each address as it first saw it, so the
// weight carried in a later update's BalancerAttributes would never reach
// its picker: weightedBalancer notes the latest weights itself.
type weightedBuilder struct{}

func (weightedBuilder) Name() string { return BalancerName }

func (weightedBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	w := &weights{}
	b := base.NewBalancerBuilder(BalancerName, pickerBuilder{w: w}, base.Config{}).Build(cc, opts)
	return &weightedBalancer{Balancer: b, w: w}
}

// weights are the latest weight of every address ("host:port"). grpc-go
// calls a balancer (and so the picker builder) from one goroutine at a
// time.
type weights struct{ byAddr map[string]int }

type weightedBalancer struct {
	balancer.Balancer
	w *weights
}

func (b *weightedBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	m := make(map[string]int, len(s.ResolverState.Addresses))
	for _, a := range s.ResolverState.Addresses {
		if v, ok := a.BalancerAttributes.Value(weightKey{}).(int); ok {
			m[a.Addr] = v
		}
	}
	b.w.byAddr = m
	return b.Balancer.UpdateClientConnState(s)
}

// pickerBuilder builds weighted random pickers over the ready connections.
type pickerBuilder struct{ w *weights }

func (pb pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &picker{}
	for sc, i := range info.ReadySCs {
		w := 1
		if v := pb.w.byAddr[i.Address.Addr]; v > 0 {
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
