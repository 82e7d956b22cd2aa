// Command echo is the example service of the disaster drills: a small HTTP
// server that registers itself through the Switchyard SDK and answers every
// request with who it is and where it runs.
//
// With ECHO_GRPC_ADDR set it also serves gRPC there, registered as a second
// service (ECHO_GRPC_SERVICE, default grpc-echo) under the same id: any
// unary call with a google.protobuf.StringValue is answered with
// "datacenter/id", for the drills' xDS caller.
//
// Configuration (environment): ECHO_ADDR (listen address, default :8080),
// ECHO_ADVERTISE (address registered, default the container's host name),
// ECHO_ID, ECHO_SERVICE (default echo), ECHO_GRPC_ADDR (default none),
// ECHO_GRPC_SERVICE, REGISTRY_SERVERS (comma-separated), REGISTRY_NAMESPACE,
// REGISTRY_TOKEN, LOCALITY (region/datacenter/unit).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/store"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(logger); err != nil {
		logger.Error("echo stopped", "err", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func parseLocality(s string) store.Locality {
	p := strings.SplitN(s, "/", 3)
	var l store.Locality
	if len(p) > 0 {
		l.Region = p[0]
	}
	if len(p) > 1 {
		l.Datacenter = p[1]
	}
	if len(p) > 2 {
		l.Unit = p[2]
	}
	return l
}

func run(logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	host, _ := os.Hostname()
	addr := env("ECHO_ADDR", ":8080")
	id := env("ECHO_ID", host)
	svc := env("ECHO_SERVICE", "echo")
	loc := parseLocality(os.Getenv("LOCALITY"))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(portStr)
	advertise := env("ECHO_ADVERTISE", host)
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"id": id, "datacenter": loc.Datacenter, "region": loc.Region})
	})}
	go hs.Serve(ln)

	c, err := client.New(client.Config{Servers: strings.Split(env("REGISTRY_SERVERS", "127.0.0.1:7400"), ","),
		Namespace: env("REGISTRY_NAMESPACE", store.DefaultNamespace), Locality: loc, Logger: logger,
		Token: os.Getenv("REGISTRY_TOKEN")})
	if err != nil {
		return err
	}
	register(ctx, logger, c, svc, id, client.Registration{Address: advertise, Port: port, Locality: loc, Check: check})
	var gs *grpc.Server
	if gaddr := os.Getenv("ECHO_GRPC_ADDR"); gaddr != "" {
		gln, err := net.Listen("tcp", gaddr)
		if err != nil {
			return err
		}
		answer := wrapperspb.String(loc.Datacenter + "/" + id)
		gs = grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
			var in wrapperspb.StringValue
			if err := st.RecvMsg(&in); err != nil {
				return err
			}
			return st.SendMsg(answer)
		}))
		go gs.Serve(gln)
		gport := gln.Addr().(*net.TCPAddr).Port
		register(ctx, logger, c, env("ECHO_GRPC_SERVICE", "grpc-echo"), id,
			client.Registration{Address: advertise, Port: gport, Locality: loc, Check: check})
	}
	logger.Info("echo serving", "id", id, "addr", fmt.Sprintf("%s:%d", advertise, port), "locality", loc.Path())
	<-ctx.Done()
	// Graceful offline: deregister first, then stop serving.
	err = c.Close()
	if gs != nil {
		gs.GracefulStop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := hs.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// check is the instances' health: ephemeral, unhealthy after 3 s without a
// heartbeat, removed after 30 s.
var check = store.Check{TTL: store.Duration(3 * time.Second), DeregisterAfter: store.Duration(30 * time.Second)}

// register registers the instance, retrying every second until a server
// takes it or ctx ends: the registry may not be up yet.
func register(ctx context.Context, logger *slog.Logger, c *client.Client, svc, id string, reg client.Registration) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.Register(rctx, svc, id, reg)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		logger.Warn("registration failed, retrying", "service", svc, "err", err)
		time.Sleep(time.Second)
	}
}
