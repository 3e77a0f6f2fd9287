package transport

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/session"
	"github.com/deck-mesh/deck/node/wire"
)

// Send delivers msg to node to on channel ch, establishing a session first
// if there is none (bounded by ctx and HandshakeTimeout). Delivery is best
// effort, like the datagrams under it.
func (t *Transport) Send(ctx context.Context, to identity.NodeID, ch messaging.Channel, msg []byte) error {
	if len(msg) > messaging.MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes", messaging.ErrTooLarge, len(msg))
	}
	if t.ctx.Err() != nil {
		return messaging.ErrClosed
	}
	if to == t.self {
		t.dispatch(t.self, ch, msg, &wire.Announcement{}, true)
		return nil
	}
	if !to.Valid() {
		return fmt.Errorf("%w: node 0", messaging.ErrNoRoute)
	}
	kp, addr, err := t.sessionFor(ctx, to)
	if err != nil {
		return err
	}
	if ch.Bulk() {
		return t.sendBulk(ctx, kp, addr, ch, msg)
	}
	return t.sendMessage(kp, addr, ch, msg)
}

// sendBulk queues a bulk message's packets on its next hop's bulk queue,
// waiting (until ctx ends) for room there first: flow control for
// transfers, which slow to the link's pace instead of being dropped.
// The packets are sealed only once there is room, so a waiting message
// holds no buffers and no nonces.
func (t *Transport) sendBulk(ctx context.Context, kp *session.Keypair, addr netip.AddrPort, ch messaging.Channel, msg []byte) error {
	count := 1
	if len(msg) > wire.MaxPlaintextBytes {
		count = wire.FragmentCount(len(msg))
	}
	for try := 0; ; try++ {
		l := t.linkTo(addr)
		if l == nil {
			t.stats.drops.Add(1)
			return fmt.Errorf("transport: send to %s: no link to %s", kp.Peer, addr)
		}
		ok, room := l.bulkRoom(count)
		if !ok {
			t.stats.bulkWaits.Add(1)
			select {
			case <-room:
				continue
			case <-ctx.Done():
				return fmt.Errorf("transport: bulk send to %s: %w", kp.Peer, ctx.Err())
			case <-t.ctx.Done():
				return messaging.ErrClosed
			}
		}
		pkts, err := t.sealAll(kp, addr, ch, msg, count)
		if err != nil {
			return err
		}
		if !l.putBulk(pkts) {
			return nil
		}
		// Retired between the check and the put: start a new link once.
		for _, p := range pkts {
			putPacket(p)
		}
		if try > 0 {
			t.stats.drops.Add(uint64(len(pkts)))
			return fmt.Errorf("transport: send to %s: link retired", kp.Peer)
		}
	}
}

// sealAll seals msg into count packets (one, or its fragments).
func (t *Transport) sealAll(kp *session.Keypair, addr netip.AddrPort, ch messaging.Channel, msg []byte, count int) ([]*outPacket, error) {
	pkts := make([]*outPacket, 0, count)
	fail := func(err error) ([]*outPacket, error) {
		for _, p := range pkts {
			putPacket(p)
		}
		t.stats.drops.Add(1)
		return nil, fmt.Errorf("transport: seal for %s: %w", kp.Peer, err)
	}
	h := wire.Header{
		Version: wire.Version, Type: wire.TypeData, Src: t.self, Dst: kp.Peer,
		Channel: uint16(ch), TTL: wire.DefaultTTL,
	}
	if len(msg) <= wire.MaxPlaintextBytes {
		p := getPacket()
		out, err := kp.Seal(p.buf[:0], &h, msg)
		if err != nil {
			putPacket(p)
			return fail(err)
		}
		p.n = int32(len(out))
		return append(pkts, p), nil
	}
	t.mu.Lock()
	t.nextMsgID++
	id := t.nextMsgID
	t.mu.Unlock()
	bp := plainPool.Get().(*[]byte)
	defer plainPool.Put(bp)
	plain := *bp
	f := wire.Fragment{MessageID: id, Total: uint32(len(msg)), Count: uint16(count)}
	h.Flags = wire.FlagFragment
	for i := range count {
		f.Index = uint16(i)
		wire.PutFragment(plain, &f)
		off := i * wire.MaxFragmentBytes
		n := copy(plain[wire.FragmentHeaderSize:], msg[off:off+wire.FragmentLen(len(msg), i)])
		p := getPacket()
		out, err := kp.Seal(p.buf[:0], &h, plain[:wire.FragmentHeaderSize+n])
		if err != nil {
			putPacket(p)
			return fail(err)
		}
		p.n = int32(len(out))
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// sessionFor returns a confirmed session with to and the next hop towards
// it, handshaking if needed.
func (t *Transport) sessionFor(ctx context.Context, to identity.NodeID) (*session.Keypair, netip.AddrPort, error) {
	var failures uint64
	first := true
	for {
		now := time.Now()
		t.mu.Lock()
		p := t.peers[to]
		if p == nil {
			t.mu.Unlock()
			return nil, netip.AddrPort{}, fmt.Errorf("%w: %s unknown", messaging.ErrNoRoute, to)
		}
		addr, havePath := t.pathLocked(p, now)
		kp := p.current
		if kp != nil && !kp.Expired(now, t.cfg.RejectAfterTime) && havePath {
			t.mu.Unlock()
			return kp, addr, nil
		}
		if !havePath {
			t.mu.Unlock()
			return nil, netip.AddrPort{}, fmt.Errorf("%w: %s", messaging.ErrNoRoute, to)
		}
		if first {
			failures = p.failures
			first = false
		} else if p.failures != failures {
			t.mu.Unlock()
			return nil, netip.AddrPort{}, fmt.Errorf("%w: with %s", messaging.ErrHandshake, to)
		}
		t.initiateLocked(p, now)
		changed := p.changed
		t.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, netip.AddrPort{}, fmt.Errorf("transport: session with %s: %w", to, ctx.Err())
		case <-t.ctx.Done():
			return nil, netip.AddrPort{}, messaging.ErrClosed
		}
	}
}

// plainPool holds scratch buffers for fragment plaintexts.
var plainPool = sync.Pool{New: func() any { b := make([]byte, wire.MaxPlaintextBytes); return &b }}

// sendMessage seals msg (fragmenting it if it does not fit one packet) and
// queues the packets for addr.
func (t *Transport) sendMessage(kp *session.Keypair, addr netip.AddrPort, ch messaging.Channel, msg []byte) error {
	if len(msg) <= wire.MaxPlaintextBytes {
		if !t.sealAndSend(kp, addr, ch, msg) {
			return fmt.Errorf("transport: send to %s: packet dropped", kp.Peer)
		}
		return nil
	}
	t.mu.Lock()
	t.nextMsgID++
	id := t.nextMsgID
	t.mu.Unlock()
	count := wire.FragmentCount(len(msg))
	bp := plainPool.Get().(*[]byte)
	defer plainPool.Put(bp)
	plain := *bp
	f := wire.Fragment{MessageID: id, Total: uint32(len(msg)), Count: uint16(count)}
	dropped := 0
	for i := range count {
		f.Index = uint16(i)
		wire.PutFragment(plain, &f)
		off := i * wire.MaxFragmentBytes
		n := copy(plain[wire.FragmentHeaderSize:], msg[off:off+wire.FragmentLen(len(msg), i)])
		if !t.seal(kp, addr, ch, wire.FlagFragment, plain[:wire.FragmentHeaderSize+n]) {
			dropped++
		}
	}
	if dropped > 0 {
		return fmt.Errorf("transport: send to %s: %d of %d fragments dropped", kp.Peer, dropped, count)
	}
	return nil
}

func (t *Transport) sealAndSend(kp *session.Keypair, addr netip.AddrPort, ch messaging.Channel, msg []byte) bool {
	return t.seal(kp, addr, ch, 0, msg)
}

func (t *Transport) seal(kp *session.Keypair, addr netip.AddrPort, ch messaging.Channel, flags wire.Flags, plain []byte) bool {
	p := getPacket()
	h := wire.Header{
		Version: wire.Version, Type: wire.TypeData, Flags: flags,
		Src: t.self, Dst: kp.Peer, Channel: uint16(ch), TTL: wire.DefaultTTL,
	}
	out, err := kp.Seal(p.buf[:0], &h, plain)
	if err != nil {
		putPacket(p)
		t.stats.drops.Add(1)
		return false
	}
	p.n = int32(len(out))
	return t.enqueue(addr, p)
}
