package gossip

import (
	"github.com/hashicorp/memberlist"
)

// senderQueue bounds the messages waiting for one member. At one flush of
// heartbeats a second or so, 64 are a minute of backlog: a member that
// takes longer than that to accept a message is unreachable, and what it
// missed the periodic state exchange repairs once it is back.
const senderQueue = 64

// sender delivers one member's messages in order, on a goroutine of its
// own, so that a slow or unreachable member holds up nobody else.
type sender struct {
	ch   chan outgoing
	quit chan struct{}
	pool *Pool
}

type outgoing struct {
	node *memberlist.Node
	msg  []byte
}

// startSender starts the sender of one member; p.sendMu is held.
func (p *Pool) startSender(name string) *sender {
	s := &sender{ch: make(chan outgoing, senderQueue), quit: make(chan struct{}), pool: p}
	p.wg.Add(1)
	go s.run(name)
	return s
}

// enqueue hands msg to the sender without blocking. When its queue is
// full the oldest message goes, counted in Dropped: the newest carry the
// freshest heartbeats. Called with p.sendMu held, so never after stop.
func (s *sender) enqueue(n *memberlist.Node, msg []byte) {
	o := outgoing{node: n, msg: msg}
	for {
		select {
		case s.ch <- o:
			return
		default:
		}
		select {
		case <-s.ch:
			s.pool.dropped.Add(1)
		default:
		}
	}
}

func (s *sender) stop() { close(s.quit) }

func (s *sender) run(name string) {
	defer s.pool.wg.Done()
	for {
		select {
		case <-s.quit:
			return
		case o := <-s.ch:
			if err := s.pool.ml.SendReliable(o.node, o.msg); err != nil {
				s.pool.logger.Debug("gossip message not delivered", "to", name, "err", err)
				continue
			}
			s.pool.sentBytes.Add(uint64(len(o.msg)))
		}
	}
}
