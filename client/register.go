package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultHeartbeat is how often a registration heartbeats when its check
// sets no interval: a third of the default TTL (15 s).
const DefaultHeartbeat = 5 * time.Second

// Registered is an instance this client registered and keeps alive.
type Registered struct {
	c        *Client
	service  string
	id       string
	body     Registration
	interval time.Duration

	mu     sync.Mutex
	server int // the server heartbeats go to; moves on failure
	stop   context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Register registers an instance of service with id on any reachable
// server, then heartbeats it on schedule (its check's interval, or 5 s) to
// any reachable server, registering it again when a server no longer knows
// it, until Deregister or Close.
func (c *Client) Register(ctx context.Context, service, id string, body Registration) (*Registered, error) {
	if len(c.apis) == 0 {
		return nil, errors.New("client: register: no servers configured")
	}
	r := &Registered{c: c, service: service, id: id, body: body, interval: DefaultHeartbeat, done: make(chan struct{})}
	if d := time.Duration(body.Check.Interval); d > 0 {
		r.interval = d
	} else if ttl := time.Duration(body.Check.TTL); ttl > 0 {
		r.interval = max(ttl/3, 10*time.Millisecond)
	}
	if err := r.register(ctx); err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(c.ctx)
	r.stop = cancel
	c.regMu.Lock()
	c.regs[r] = true
	c.regMu.Unlock()
	go r.heartbeat(hctx)
	return r, nil
}

// register sends the registration to a server, failing over.
func (r *Registered) register(ctx context.Context) error {
	var last error
	for range len(r.c.apis) {
		r.mu.Lock()
		a := r.c.apis[r.server]
		r.mu.Unlock()
		_, err := a.Register(ctx, r.c.cfg.Namespace, r.service, r.id, r.body)
		if err == nil {
			return nil
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Status < 500 {
			return fmt.Errorf("client: register %s/%s: %w", r.service, r.id, err)
		}
		last = err
		r.next()
	}
	return fmt.Errorf("client: register %s/%s: no server accepted it: %w", r.service, r.id, last)
}

func (r *Registered) next() {
	r.mu.Lock()
	r.server = (r.server + 1) % len(r.c.apis)
	r.mu.Unlock()
}

func (r *Registered) heartbeat(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.beat(ctx)
	}
}

// beat sends one heartbeat, trying every server once; a server that does
// not know the instance (it expired, or the catalog was lost) gets it
// registered again.
func (r *Registered) beat(ctx context.Context) {
	for range len(r.c.apis) {
		r.mu.Lock()
		a := r.c.apis[r.server]
		r.mu.Unlock()
		hctx, cancel := context.WithTimeout(ctx, max(r.interval, time.Second))
		err := a.Heartbeat(hctx, r.c.cfg.Namespace, r.service, r.id)
		cancel()
		switch {
		case err == nil:
			return
		case IsNotFound(err):
			r.c.logger.Info("registry no longer knows this instance; registering it again", "service", r.service, "id", r.id)
			if err := r.register(ctx); err != nil {
				r.c.logger.Warn("re-registration failed", "service", r.service, "id", r.id, "err", err)
			}
			return
		case ctx.Err() != nil:
			return
		}
		r.c.logger.Debug("heartbeat failed; trying another server", "service", r.service, "id", r.id, "err", err)
		r.next()
	}
}

// Deregister stops the heartbeats and removes the instance (graceful
// offline: callers stop getting it before it goes away).
func (r *Registered) Deregister(ctx context.Context) error {
	var err error
	r.once.Do(func() {
		r.stop()
		<-r.done
		r.c.regMu.Lock()
		delete(r.c.regs, r)
		r.c.regMu.Unlock()
		var last error
		for range len(r.c.apis) {
			r.mu.Lock()
			a := r.c.apis[r.server]
			r.mu.Unlock()
			e := a.Deregister(ctx, r.c.cfg.Namespace, r.service, r.id)
			if e == nil || IsNotFound(e) {
				return
			}
			last = e
			r.next()
		}
		err = fmt.Errorf("client: deregister %s/%s: %w", r.service, r.id, last)
	})
	return err
}
