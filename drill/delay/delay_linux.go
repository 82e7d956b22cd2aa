//go:build linux

package delay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Netfilter's queue subsystem (linux/netfilter/nfnetlink_queue.h).
const (
	subsysQueue = 3 // NFNL_SUBSYS_QUEUE

	msgPacket  = 0 // NFQNL_MSG_PACKET
	msgVerdict = 1 // NFQNL_MSG_VERDICT
	msgConfig  = 2 // NFQNL_MSG_CONFIG

	attrPacketHdr  = 1 // NFQA_PACKET_HDR
	attrVerdictHdr = 2 // NFQA_VERDICT_HDR

	cfgCmd       = 1 // NFQA_CFG_CMD
	cfgParams    = 2 // NFQA_CFG_PARAMS
	cfgMaxLen    = 3 // NFQA_CFG_QUEUE_MAXLEN
	cfgMask      = 4 // NFQA_CFG_MASK
	cfgFlags     = 5 // NFQA_CFG_FLAGS
	cmdBind      = 1 // NFQNL_CFG_CMD_BIND
	copyMeta     = 1 // NFQNL_COPY_META: the packet's header fields, no payload
	flagFailOpen = 1 // NFQA_CFG_F_FAIL_OPEN: accept, not drop, when the queue is full

	verdictAccept = 1 // NF_ACCEPT

	queueMaxLen = 8192
)

// Queue delays every packet that netfilter sends to one NFQUEUE by a fixed
// time, then lets it through. Delays are constant, so packets leave in the
// order they came. When Queue is not running, or its queue is full, the
// kernel lets packets through undelayed (rules should use --queue-bypass).
type Queue struct {
	conn   *netlink.Conn
	num    uint16
	delay  time.Duration
	held   chan held
	cancel context.CancelFunc
	done   chan struct{}
	err    atomic.Value // error
	stats  Stats
}

type held struct {
	id uint32
	at time.Time
}

// Stats counts what a Queue did.
type Stats struct {
	Delayed atomic.Uint64 // packets let through after the delay
	Errors  atomic.Uint64 // verdicts the kernel refused, messages not read
}

// Open binds NFQUEUE number num and starts delaying its packets by d.
// It needs CAP_NET_ADMIN. Close unbinds it.
func Open(num uint16, d time.Duration) (*Queue, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("netlink netfilter socket: %w", err)
	}
	_ = conn.SetOption(netlink.NoENOBUFS, true)
	_ = conn.SetReadBuffer(4 << 20)
	q := &Queue{conn: conn, num: num, delay: d, held: make(chan held, queueMaxLen), done: make(chan struct{})}
	if err := q.configure(); err != nil {
		conn.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel = cancel
	go q.release(ctx)
	go q.receive()
	return q, nil
}

// Stats returns the queue's counters.
func (q *Queue) Stats() *Stats { return &q.stats }

// Done is closed when the queue stops delaying: after Close, or when its
// socket failed (Err says why).
func (q *Queue) Done() <-chan struct{} { return q.done }

// Err is why the queue stopped reading, if it did.
func (q *Queue) Err() error {
	err, _ := q.err.Load().(error)
	return err
}

// Close lets the packets still held through at once and closes the socket,
// which unbinds the queue (the kernel drops what arrives in between).
func (q *Queue) Close() error {
	q.cancel()
	<-q.done
	return q.conn.Close()
}

type attr struct {
	typ  uint16
	data []byte
}

// message is a netfilter queue message: nfgenmsg (family, version, queue
// number in network order) and attributes.
func (q *Queue) message(typ uint16, flags netlink.HeaderFlags, attrs ...attr) netlink.Message {
	ae := netlink.NewAttributeEncoder()
	for _, a := range attrs {
		ae.Bytes(a.typ, a.data)
	}
	b, _ := ae.Encode()
	data := make([]byte, 4, 4+len(b))
	data[0] = unix.AF_UNSPEC
	data[1] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(data[2:], q.num)
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(subsysQueue<<8 | typ), Flags: flags},
		Data:   append(data, b...),
	}
}

func (q *Queue) config(attrs ...attr) netlink.Message {
	return q.message(msgConfig, netlink.Request|netlink.Acknowledge, attrs...)
}

func (q *Queue) configure() error {
	if _, err := q.conn.Execute(q.config(attr{cfgCmd, []byte{cmdBind, 0, 0, 0}})); err != nil {
		return fmt.Errorf("bind NFQUEUE %d (another process may hold it): %w", q.num, err)
	}
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, 0) // copy range: no payload
	params[4] = copyMeta
	maxLen := binary.BigEndian.AppendUint32(nil, queueMaxLen)
	flags := binary.BigEndian.AppendUint32(nil, flagFailOpen)
	if _, err := q.conn.Execute(q.config(attr{cfgParams, params}, attr{cfgMaxLen, maxLen},
		attr{cfgFlags, flags}, attr{cfgMask, flags})); err != nil {
		return fmt.Errorf("configure NFQUEUE %d: %w", q.num, err)
	}
	return nil
}

// receive reads queued packets and hands each, stamped, to release.
func (q *Queue) receive() {
	failures := 0
	for {
		msgs, err := q.conn.Receive()
		if err != nil {
			// The kernel answers a verdict for a packet it no longer holds
			// (its interface went away: a container was killed) with an
			// error message, which Receive returns; so is a dropped
			// message (ENOBUFS). Neither ends the queue: a queue that
			// stopped reading would hold every later packet for good.
			// Only a closed socket, or errors without end, do.
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) && failures < 10000 {
				q.stats.Errors.Add(1)
				failures++
				continue
			}
			q.err.Store(err)
			close(q.held)
			return
		}
		failures = 0
		now := time.Now()
		for _, m := range msgs {
			if m.Header.Type != netlink.HeaderType(subsysQueue<<8|msgPacket) || len(m.Data) < 4 {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				q.stats.Errors.Add(1)
				continue
			}
			for ad.Next() {
				if ad.Type() == attrPacketHdr {
					if b := ad.Bytes(); len(b) >= 4 {
						// Once release has ended (the queue is closing)
						// nobody reads held: stop rather than block on it.
						select {
						case q.held <- held{id: binary.BigEndian.Uint32(b), at: now}:
						case <-q.done:
							return
						}
					}
				}
			}
		}
	}
}

// release lets each packet through once it has waited the delay.
func (q *Queue) release(ctx context.Context) {
	defer close(q.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		var h held
		var ok bool
		select {
		case <-ctx.Done():
			q.drain()
			return
		case h, ok = <-q.held:
			if !ok {
				return
			}
		}
		if wait := time.Until(h.at.Add(q.delay)); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				q.accept(h.id)
				q.drain()
				return
			case <-t.C:
			}
		}
		q.accept(h.id)
	}
}

func (q *Queue) drain() {
	for {
		select {
		case h, ok := <-q.held:
			if !ok {
				return
			}
			q.accept(h.id)
		default:
			return
		}
	}
}

func (q *Queue) accept(id uint32) {
	v := make([]byte, 8)
	binary.BigEndian.PutUint32(v, verdictAccept)
	binary.BigEndian.PutUint32(v[4:], id)
	// Counted before the packet can reach its destination.
	q.stats.Delayed.Add(1)
	if _, err := q.conn.Send(q.message(msgVerdict, netlink.Request, attr{attrVerdictHdr, v})); err != nil {
		q.stats.Delayed.Add(^uint64(0))
		q.stats.Errors.Add(1)
	}
}
