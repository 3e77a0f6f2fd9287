// Package gossip spreads every node's signed NodeSnapshot through the mesh and
// keeps the newest verified one of each node (Latest), which node/clusterview
// folds into the ClusterSnapshot the deck renders.
//
// Dissemination is push gossip with anti-entropy. A node signs its snapshot
// (Envelope, domain "deck-snapshot-v1:") when it changes, at most every
// MinPublishInterval, and sends it to OriginFanout random healthy peers; it
// re-signs it every ReannounceInterval so silence means absence. Each node
// that accepts a new announcement pushes it on to Fanout random healthy peers
// until MaxHops (a re-announcement of unchanged content is not forwarded:
// it only proves liveness, and digests carry it further; nor is one whose
// origin sent it to every node it knows of, which once a cluster of up to
// OriginFanout+1 nodes has formed is every change). Every DigestInterval it
// also sends a digest of what it holds to one random peer, which answers with
// the envelopes the sender lacks (and its own digest when it lacks some),
// repairing whatever the push missed. Announcements are ordered per signer by
// (Epoch, Seq), the epoch being the signer's start time, so a restarted node
// whose generation reset to 0 is still newer than its previous life.
//
// Every envelope is verified before it is stored or forwarded: the signer id
// must be derived from the carried ed25519 key, the signature must hold, and
// the snapshot must be the signer's own (ErrSnapshotIDMismatch) and describe
// only the signer (ErrSnapshotClaimsOtherNode: no daemon or failure of
// another node). A peer that sends envelopes failing these checks (an
// honest one never does: it forwards only what it verified) gets
// ForgedPerSecondPerSender checks; beyond them its envelopes are dropped
// unchecked (SenderLimited). Whatever is keyed by wire data is capped
// (MaxNodes, MaxSeenEntries) and every decoder bounds lengths before
// allocating.
//
// A member is believed about itself, not about how often it may be heard:
// each node accepts at most SignerAcceptsPerSecond new announcements of one
// signer (a token bucket per signer, checked before the signature, charged
// after it), so a member signing as fast as it can costs each node a bounded
// number of verifications and forwards; the excess is dropped and counted
// (SignerLimited) and digests bring the signer's latest later. And a node
// forwards an announcement only when its content changed from what it held:
// the hop count is not signed, so whether an unchanged re-announcement
// travels is the receiver's call, and liveness needs no flood (the origin
// reaches its peers directly, digests carry the rest, heartbeats are the
// transport's).
//
// Wiring: g, err := gossip.New(gossip.Config{Key: key, Messenger: transport});
// go g.Run(ctx); call g.Publish(ns) whenever the node's snapshot is rebuilt;
// on each <-g.Changes() (and on a timer, since staleness is a function of
// time) build clusterview.Fold(clusterview.Input{Snapshots: g.Latest(),
// Peers: transport.Peers(), ...}) and store it behind an atomic.Pointer.
package gossip

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/ratelimit"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Config configures a Gossip. Key and Messenger are required; zero durations
// and counts take the Default* values from limits.go.
type Config struct {
	Key       *identity.Key
	Messenger messaging.Messenger
	// Clock stamps envelopes and measures ages; nil means time.Now. The
	// scheduler still ticks in real time (every Tick) and asks Clock whether
	// a deadline passed, so a test clock controls every decision.
	Clock func() time.Time

	MinPublishInterval time.Duration
	ReannounceInterval time.Duration
	StaleAfter         time.Duration
	ForgetAfter        time.Duration
	DigestInterval     time.Duration
	Tick               time.Duration
	// Fanout is how many random peers a node forwards a new announcement to.
	Fanout int
	// OriginFanout is how many random peers receive this node's own new
	// announcement directly (in clusters up to OriginFanout+1 nodes: all).
	OriginFanout int
	// MaxHops bounds push forwarding; clamped to HardMaxHops.
	MaxHops int
	// SignerAcceptsPerSecond and SignerAcceptBurst bound the new
	// announcements of one signer this node verifies, stores and forwards.
	SignerAcceptsPerSecond float64
	SignerAcceptBurst      int
	// Seed makes peer selection reproducible in tests; 0 draws one from
	// crypto/rand.
	Seed uint64
	// Members decides whether a signer is a member of the mesh, from its
	// key and the certificate its envelope carries (nil bytes: none).
	// Snapshots of non-members are neither stored nor forwarded; nil
	// believes every signer (gossip's own tests).
	Members func(id identity.NodeID, key ed25519.PublicKey, cert []byte, now time.Time) (Membership, error)
	// Subnet is this node's subnet path ("" the root). Snapshots travel
	// only inside their signer's subnet: a node stores and forwards those
	// of its own subnet (and, on a console, of the one it focuses), sends
	// them only to peers of that subnet, and drops the rest unverified
	// (Stats.OutOfScope). The signer's subnet is its certificate's
	// (Membership.Subnet), and a snapshot claiming another is forged.
	Subnet string
	// SubnetOf is the subnet of a peer this node has proven (nil: every
	// peer is in the root), for answering digests.
	SubnetOf func(id identity.NodeID) (string, bool)
	// Certificate is this node's encoded certificate, carried in its own
	// envelopes (SetCertificate replaces it).
	Certificate []byte
}

// Membership is what Config.Members admits a signer as.
type Membership struct {
	Role   identity.Role
	Subnet string // from the signer's certificate
}

// ErrSubnetClaim: a snapshot names a subnet its signer's certificate does
// not carry.
var ErrSubnetClaim = errors.New("gossip: snapshot claims a subnet its certificate does not carry")

// Verified is the newest verified announcement of one node. Snapshot is
// shared and must not be modified.
type Verified struct {
	Snapshot *snapshot.NodeSnapshot
	Epoch    uint64
	Seq      uint64
	SignedAt time.Time
	// ReceivedAt is the local time this announcement (or, for this node,
	// the last Publish or re-announce) arrived; staleness is measured from it
	// so clock skew between nodes does not matter.
	ReceivedAt time.Time
	// Role is what Config.Members admitted the signer as (zero without a
	// Members check): a console's snapshot never makes it a holder.
	Role identity.Role
	// Subnet is the signer's subnet (its certificate's; without a Members
	// check, its snapshot's claim).
	Subnet string
}

// Stats are the gossip counters. Envelope outcomes: every envelope received
// ends in exactly one of Accepted, Duplicates, Outdated, Rejected, Expired,
// Overflow, SignerLimited or SenderLimited.
type Stats struct {
	Received   uint64 // envelopes received
	Accepted   uint64 // verified and newer: stored (and forwarded within the hop limit)
	Duplicates uint64 // already seen (node, epoch, seq), or our own echoed back
	Outdated   uint64 // older than the announcement already held
	Rejected   uint64 // malformed, forged, bad signature, id mismatch, clock skew, not a member
	NotMember  uint64 // of Rejected: the signer is not a member (Config.Members)
	Expired    uint64 // validly signed but older than MaxEnvelopeAge
	Overflow   uint64 // a new node id while MaxNodes are already held
	// SignerLimited: newer announcements dropped, before their signature
	// was checked, because their signer had used its acceptance budget.
	SignerLimited uint64
	// SenderLimited: envelopes dropped, before their signature was checked,
	// because the peer that sent them had sent too many that failed it.
	SenderLimited uint64
	// OutOfScope: envelopes of signers outside this node's subnet (and
	// its focus), dropped before their signature was checked.
	OutOfScope uint64
	// SubnetClaims: of Rejected, snapshots whose Subnet is not their
	// signer's certificate's.
	SubnetClaims uint64

	MalformedMessages uint64 // non-envelope messages that failed to parse
	InboxDropped      uint64 // messages dropped because Run was behind

	Published uint64 // own envelopes signed
	Trimmed   uint64 // values Fit had to cut from own snapshots
	Forwarded uint64 // envelope sends queued by push (own and others')
	// Unforwarded: accepted announcements within the hop limit that were
	// not pushed on because their content had not changed.
	Unforwarded     uint64
	Pulled          uint64 // envelope sends queued in answer to digests
	DigestsSent     uint64
	DigestsReceived uint64
	DigestsLimited  uint64 // digests ignored by the per-sender rate limit
	Sent            uint64 // Messenger.Send successes
	SendErrors      uint64
	SendDropped     uint64 // sends dropped because the outbox was full

	Nodes      int    // snapshots held, own included
	LastReject string // the most recent rejection reason, for debugging
}

// ErrRunning is returned by a second concurrent Run.
var ErrRunning = errors.New("gossip: already running")

// ErrConfig is returned by New for a Config it cannot run with.
var ErrConfig = errors.New("gossip: invalid config")

type entry struct {
	Verified
	raw  []byte // the envelope as signed, for forwarding and pulls
	snap []byte // the encoded snapshot inside raw, to detect content changes
	key  ed25519.PublicKey
	cert []byte // the certificate the envelope carried, for Reassess
}

type inMsg struct {
	from identity.NodeID
	data []byte
}

type outMsg struct {
	to   identity.NodeID
	data []byte
}

type counters struct {
	received, accepted, duplicates, outdated, rejected, expired, overflow     atomic.Uint64
	malformed, inboxDropped, published, trimmed, forwarded, pulled            atomic.Uint64
	digestsSent, digestsReceived, digestsLimited, sent, sendErrors, sendDrops atomic.Uint64
	notMember                                                                 atomic.Uint64
	signerLimited, unforwarded, senderLimited                                 atomic.Uint64
	outOfScope, subnetClaims                                                  atomic.Uint64
}

// Gossip disseminates this node's snapshot and collects everyone else's.
type Gossip struct {
	cfg   Config
	self  identity.NodeID
	epoch uint64

	inbox chan inMsg
	out   chan outMsg
	kick  chan struct{}
	// focusKick asks Run for a focus digest now (SetFocus).
	focusKick chan struct{}
	changes   chan struct{}
	running   atomic.Bool

	mu     sync.Mutex
	latest map[identity.NodeID]*entry
	// Own publication state.
	ownSnap  []byte // encoding of the last Publish
	ownGen   uint64
	dirty    bool   // generation changed since the last signature
	signed   []byte // the snapshot encoding in the last signed envelope
	lastSent time.Time
	seq      uint64

	// focus is the subnet a console drills into ("" none) and via the
	// nodes to ask for it until one of its members is held.
	focus    string
	focusVia []identity.NodeID

	lastReject atomic.Pointer[string]
	c          counters
	ownCert    atomic.Pointer[[]byte]
	// signers budgets accepted announcements per signer (SignerAccepts*).
	signers *ratelimit.Table[identity.NodeID]
	// forgers budgets the envelopes per sending peer that fail to open
	// (ForgedPerSecondPerSender): an honest peer forwards only what it
	// verified, so it never spends this.
	forgers *ratelimit.Table[identity.NodeID]

	// Owned by the Run goroutine.
	seen       seenCache
	rng        *mrand.Rand
	digestFrom map[limitKey]time.Time
	staleMark  map[identity.NodeID]bool
	lastDigest time.Time
	lastSweep  time.Time
}

// New builds a Gossip and registers its handler on messaging.ChanGossip. It
// refuses (ErrConfig) a Config without Key or Messenger, or whose two
// disagree on the node id, before it registers anything.
func New(cfg Config) (*Gossip, error) {
	if cfg.Key == nil || cfg.Messenger == nil {
		return nil, fmt.Errorf("%w: Key and Messenger are required", ErrConfig)
	}
	if self := cfg.Messenger.Self(); self != cfg.Key.ID {
		return nil, fmt.Errorf("%w: messenger is %s but key is %s", ErrConfig, self, cfg.Key.ID)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	setDefault(&cfg.MinPublishInterval, DefaultMinPublishInterval)
	setDefault(&cfg.ReannounceInterval, DefaultReannounceInterval)
	setDefault(&cfg.StaleAfter, DefaultStaleAfter)
	setDefault(&cfg.ForgetAfter, DefaultForgetAfter)
	setDefault(&cfg.DigestInterval, DefaultDigestInterval)
	setDefault(&cfg.Tick, DefaultTick)
	setDefault(&cfg.Fanout, DefaultFanout)
	setDefault(&cfg.OriginFanout, DefaultOriginFanout)
	setDefault(&cfg.MaxHops, DefaultMaxHops)
	setDefault(&cfg.SignerAcceptsPerSecond, DefaultSignerAcceptsPerSecond)
	setDefault(&cfg.SignerAcceptBurst, DefaultSignerAcceptBurst)
	cfg.MaxHops = min(cfg.MaxHops, HardMaxHops)
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
		seed = binary.LittleEndian.Uint64(b[:])
	}
	epoch := uint64(max(cfg.Clock().UnixNano(), 1))
	g := &Gossip{
		cfg:        cfg,
		self:       cfg.Key.ID,
		epoch:      epoch,
		inbox:      make(chan inMsg, InboxMessages),
		out:        make(chan outMsg, OutboxMessages),
		kick:       make(chan struct{}, 1),
		focusKick:  make(chan struct{}, 1),
		changes:    make(chan struct{}, 1),
		latest:     make(map[identity.NodeID]*entry),
		seen:       newSeenCache(MaxSeenEntries),
		rng:        mrand.New(mrand.NewPCG(seed, epoch)),
		digestFrom: make(map[limitKey]time.Time),
		staleMark:  make(map[identity.NodeID]bool),
		signers:    ratelimit.New[identity.NodeID](cfg.SignerAcceptsPerSecond, float64(cfg.SignerAcceptBurst), MaxNodes),
		forgers:    ratelimit.New[identity.NodeID](ForgedPerSecondPerSender, ForgedBurstPerSender, MaxNodes),
	}
	if len(cfg.Certificate) > identity.MaxCertificateSize {
		return nil, fmt.Errorf("%w: certificate of %d bytes", ErrConfig, len(cfg.Certificate))
	}
	own := bytes.Clone(cfg.Certificate)
	g.ownCert.Store(&own)
	cfg.Messenger.Handle(messaging.ChanGossip, g.handle)
	return g, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// handle is the mesh handler: it must not block, so it copies the message
// into the bounded inbox or drops it.
func (g *Gossip) handle(from identity.NodeID, msg []byte) {
	if len(msg) < 2 || len(msg) > maxGossipMessageBytes {
		g.c.malformed.Add(1)
		g.noteReject(fmt.Errorf("gossip: message of %d bytes from %s", len(msg), from))
		return
	}
	select {
	case g.inbox <- inMsg{from: from, data: bytes.Clone(msg)}:
	default:
		g.c.inboxDropped.Add(1)
	}
}

// Publish makes ns this node's snapshot. It is signed and pushed by Run: at
// once when the generation changed (but at most every MinPublishInterval),
// otherwise with the next re-announce. ns.ID must be this node's id; ns is
// not retained (Publish keeps its own canonical copy), and values beyond the
// codec's bounds are cut by Fit and counted in Stats.Trimmed.
func (g *Gossip) Publish(ns *snapshot.NodeSnapshot) error {
	if ns.ID != g.self {
		return fmt.Errorf("gossip: publish: %w (snapshot %s, node %s)", ErrSnapshotIDMismatch, ns.ID, g.self)
	}
	if ns.Subnet != g.cfg.Subnet {
		return fmt.Errorf("gossip: publish: %w (%q, this node's is %q)", ErrSubnetClaim, ns.Subnet, g.cfg.Subnet)
	}
	if err := CheckSelfDescribed(ns); err != nil {
		// Every receiver would refuse it: better the publisher hears now.
		return fmt.Errorf("gossip: publish: %w", err)
	}
	fitted, cut := Fit(ns)
	g.c.trimmed.Add(uint64(cut))
	enc, err := EncodeSnapshot(fitted)
	if err != nil {
		return fmt.Errorf("gossip: publish: %w", err)
	}
	own, err := DecodeSnapshot(enc)
	if err != nil {
		return fmt.Errorf("gossip: publish: own snapshot does not decode: %w", err)
	}
	now := g.cfg.Clock()
	g.mu.Lock()
	cur := g.latest[g.self]
	changed := cur == nil || !bytes.Equal(enc, g.ownSnap)
	if changed {
		if g.ownSnap == nil || own.Generation != g.ownGen {
			g.dirty = true
		}
		g.ownSnap, g.ownGen = enc, own.Generation
	}
	next := &entry{Verified: Verified{Snapshot: own, ReceivedAt: now, Subnet: g.cfg.Subnet}}
	if cur != nil {
		// Keep the last signed envelope: it is what peers hold and what
		// digests describe until the next signature.
		next.Epoch, next.Seq, next.SignedAt = cur.Epoch, cur.Seq, cur.SignedAt
		next.raw, next.snap = cur.raw, cur.snap
	}
	g.latest[g.self] = next
	g.mu.Unlock()
	if changed {
		g.notify()
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Latest returns the newest verified snapshot of every node, this node's
// included, sorted by node id.
func (g *Gossip) Latest() []Verified {
	g.mu.Lock()
	out := make([]Verified, 0, len(g.latest))
	for _, e := range g.latest {
		out = append(out, e.Verified)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Verified) int { return cmp.Compare(a.Snapshot.ID, b.Snapshot.ID) })
	return out
}

// Changes signals (coalesced, capacity 1) whenever Latest changed in
// content: a new node, a new snapshot, a node turning stale or forgotten.
// Pure re-announcements of an unchanged snapshot do not signal.
func (g *Gossip) Changes() <-chan struct{} { return g.changes }

// Epoch is this node's incarnation number carried in its envelopes.
func (g *Gossip) Epoch() uint64 { return g.epoch }

// Stats returns the counters.
func (g *Gossip) Stats() Stats {
	g.mu.Lock()
	n := len(g.latest)
	g.mu.Unlock()
	s := Stats{
		Received: g.c.received.Load(), Accepted: g.c.accepted.Load(), Duplicates: g.c.duplicates.Load(),
		Outdated: g.c.outdated.Load(), Rejected: g.c.rejected.Load(), Expired: g.c.expired.Load(),
		Overflow: g.c.overflow.Load(), MalformedMessages: g.c.malformed.Load(),
		InboxDropped: g.c.inboxDropped.Load(), Published: g.c.published.Load(), Trimmed: g.c.trimmed.Load(),
		Forwarded: g.c.forwarded.Load(), Pulled: g.c.pulled.Load(), DigestsSent: g.c.digestsSent.Load(),
		DigestsReceived: g.c.digestsReceived.Load(), DigestsLimited: g.c.digestsLimited.Load(),
		Sent: g.c.sent.Load(), SendErrors: g.c.sendErrors.Load(), SendDropped: g.c.sendDrops.Load(),
		NotMember:     g.c.notMember.Load(),
		SignerLimited: g.c.signerLimited.Load(), Unforwarded: g.c.unforwarded.Load(), SenderLimited: g.c.senderLimited.Load(),
		OutOfScope: g.c.outOfScope.Load(), SubnetClaims: g.c.subnetClaims.Load(),
		Nodes: n,
	}
	if p := g.lastReject.Load(); p != nil {
		s.LastReject = *p
	}
	return s
}

// SetCertificate makes cert (this node's encoded certificate; nil: none)
// the one its envelopes carry from the next signature on.
func (g *Gossip) SetCertificate(cert []byte) error {
	if len(cert) > identity.MaxCertificateSize {
		return fmt.Errorf("%w: certificate of %d bytes", ErrTooLarge, len(cert))
	}
	c := bytes.Clone(cert)
	g.ownCert.Store(&c)
	g.mu.Lock()
	g.dirty = true // re-sign with the new certificate at the next chance
	g.mu.Unlock()
	return nil
}

func (g *Gossip) certificate() []byte {
	if p := g.ownCert.Load(); p != nil {
		return *p
	}
	return nil
}

// Reassess drops the snapshots of signers that are no longer members
// (revoked, expired, issuer removed) under Config.Members, and reports how
// many went. The node calls it whenever its registry changes.
func (g *Gossip) Reassess() int {
	if g.cfg.Members == nil {
		return 0
	}
	now := g.cfg.Clock()
	g.mu.Lock()
	dropped := 0
	for id, e := range g.latest {
		if id == g.self {
			continue
		}
		if m, err := g.cfg.Members(id, e.key, e.cert, now); err != nil || !g.inScopeLocked(m.Subnet) {
			delete(g.latest, id)
			dropped++
		}
	}
	g.mu.Unlock()
	if dropped > 0 {
		g.notify()
	}
	return dropped
}

// Run processes incoming gossip, publishes, re-announces, exchanges digests
// and forgets silent nodes until ctx ends. It returns nil when ctx ends.
func (g *Gossip) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer g.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for range SendWorkers {
		wg.Go(func() { g.sender(ctx) })
	}
	tick := time.NewTicker(g.cfg.Tick)
	defer tick.Stop()
	// A change made inside MinPublishInterval goes out the moment the
	// interval ends, not at the next tick: the tick only paces digests,
	// staleness and re-announcements, so it can be coarse.
	pending := time.NewTimer(time.Hour)
	pending.Stop()
	defer pending.Stop()
	armPending := func() {
		if at, ok := g.publishDueAt(); ok {
			pending.Reset(max(0, at.Sub(g.cfg.Clock())))
		}
	}
	g.onTick()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-g.inbox:
			g.receive(m)
		case <-g.kick:
			g.maybePublish(g.cfg.Clock())
			armPending()
		case <-pending.C:
			g.maybePublish(g.cfg.Clock())
			armPending()
		case <-tick.C:
			g.onTick()
		case <-g.focusKick:
			g.sendFocusDigest()
		}
	}
}

// publishDueAt is when a changed own snapshot may next be published; false
// when nothing changed since the last publication.
func (g *Gossip) publishDueAt() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.dirty || g.ownSnap == nil {
		return time.Time{}, false
	}
	return g.lastSent.Add(g.cfg.MinPublishInterval), true
}

func (g *Gossip) sender(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-g.out:
			sctx, cancel := context.WithTimeout(ctx, SendTimeout)
			err := g.cfg.Messenger.Send(sctx, m.to, messaging.ChanGossip, m.data)
			cancel()
			if err != nil {
				g.c.sendErrors.Add(1)
			} else {
				g.c.sent.Add(1)
			}
		}
	}
}

func (g *Gossip) enqueue(to identity.NodeID, data []byte) bool {
	select {
	case g.out <- outMsg{to: to, data: data}:
		return true
	default:
		g.c.sendDrops.Add(1)
		return false
	}
}

func (g *Gossip) notify() {
	select {
	case g.changes <- struct{}{}:
	default:
	}
}

func (g *Gossip) noteReject(err error) {
	s := err.Error()
	g.lastReject.Store(&s)
}

func (g *Gossip) onTick() {
	now := g.cfg.Clock()
	g.maybePublish(now)
	if now.Sub(g.lastDigest) >= g.cfg.DigestInterval {
		g.lastDigest = now
		g.sendDigest(0, 0)
		g.sendFocusDigest()
	}
	g.markStale(now)
	if now.Sub(g.lastSweep) >= g.cfg.ReannounceInterval {
		g.lastSweep = now
		g.sweep(now)
	}
}

// maybePublish signs and pushes the own snapshot when a changed generation
// has waited out MinPublishInterval, or when ReannounceInterval has passed.
func (g *Gossip) maybePublish(now time.Time) {
	g.mu.Lock()
	since := now.Sub(g.lastSent)
	due := g.ownSnap != nil &&
		((g.dirty && since >= g.cfg.MinPublishInterval) || since >= g.cfg.ReannounceInterval)
	if !due {
		g.mu.Unlock()
		return
	}
	g.seq++
	raw := sealEncoded(g.cfg.Key, g.certificate(), g.ownSnap, g.ownGen, g.epoch, g.seq, now)
	// A re-announcement of what peers already hold only proves liveness:
	// it goes to OriginFanout peers and is not forwarded (digests carry it
	// further), which keeps the steady-state cost at one message per peer
	// per ReannounceInterval instead of a flood.
	var hops uint8
	if bytes.Equal(g.ownSnap, g.signed) {
		hops = uint8(g.cfg.MaxHops - 1)
	}
	g.lastSent, g.dirty, g.signed = now, false, g.ownSnap
	cur := g.latest[g.self]
	next := &entry{
		Verified: Verified{Snapshot: cur.Snapshot, Epoch: g.epoch, Seq: g.seq,
			SignedAt: time.UnixMilli(now.UnixMilli()).UTC(), ReceivedAt: now, Subnet: g.cfg.Subnet},
		raw:  raw,
		snap: g.ownSnap,
	}
	g.latest[g.self] = next
	seq := g.seq
	g.mu.Unlock()
	g.c.published.Add(1)
	g.seen.add(seenKey{g.self, g.epoch, seq})
	g.push(raw, hops, 0, g.cfg.OriginFanout)
}

// push sends an envelope to fanout random peers other than from and the
// signer, with the hop count it will carry.
func (g *Gossip) push(raw []byte, hops uint8, from identity.NodeID, fanout int) {
	signer := identity.NodeID(binary.BigEndian.Uint64(raw[1:9]))
	targets, everyone := g.pickPeers(g.cfg.Subnet, fanout, from, signer)
	if len(targets) == 0 {
		return
	}
	if from == 0 && everyone && len(targets) >= g.heldOthers() {
		// The origin reached every peer it knows, and it knows at least as
		// many as gossip has told it of: forwarding would only hand each of
		// them copies (fanout × nodes messages per change, most of a quiet
		// mesh's traffic). While the mesh is still forming (nodes heard of
		// but not yet met) receivers forward as usual.
		hops = max(hops, uint8(g.cfg.MaxHops-1))
	}
	// One message shared by every send: Messenger.Send does not retain or
	// modify msg.
	msg := appendEnvelopeMsg(make([]byte, 0, 2+len(raw)), hops, raw)
	for _, to := range targets {
		if g.enqueue(to, msg) {
			g.c.forwarded.Add(1)
		}
	}
}

// heldOthers is how many other nodes' snapshots this node holds.
func (g *Gossip) heldOthers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.latest)
	if g.latest[g.self] != nil {
		n--
	}
	return n
}

// pickPeers chooses up to n distinct peers of subnet at random, healthy ones first and
// suspect ones only to fill up; unreachable peers and the excluded ids never.
// everyone reports that the choice holds every eligible peer.
func (g *Gossip) pickPeers(subnet string, n int, exclude ...identity.NodeID) (out []identity.NodeID, everyone bool) {
	peers := g.cfg.Messenger.Peers()
	healthy := make([]identity.NodeID, 0, len(peers))
	var suspect []identity.NodeID
	for _, p := range peers {
		if p.ID == g.self || !p.ID.Valid() || p.Subnet != subnet || slices.Contains(exclude, p.ID) {
			continue
		}
		switch p.Health {
		case snapshot.Healthy:
			healthy = append(healthy, p.ID)
		case snapshot.Suspect:
			suspect = append(suspect, p.ID)
		}
	}
	eligible := len(healthy) + len(suspect)
	out = g.sample(healthy, n)
	if len(out) < n {
		out = append(out, g.sample(suspect, n-len(out))...)
	}
	return out, len(out) == eligible
}

// sample returns up to n random elements of s (a partial Fisher–Yates
// shuffle; s is scratch).
func (g *Gossip) sample(s []identity.NodeID, n int) []identity.NodeID {
	n = min(n, len(s))
	for i := range n {
		j := i + g.rng.IntN(len(s)-i)
		s[i], s[j] = s[j], s[i]
	}
	return s[:n]
}

func (g *Gossip) receive(m inMsg) {
	switch m.data[0] {
	case msgEnvelope:
		g.receiveEnvelope(m.from, m.data[1], m.data[2:])
	case msgDigest:
		g.receiveDigest(m.from, m.data[1:])
	default:
		g.c.malformed.Add(1)
		g.noteReject(fmt.Errorf("gossip: %w: unknown message type %d from %s", ErrMalformed, m.data[0], m.from))
	}
}

func (g *Gossip) reject(err error) {
	g.c.rejected.Add(1)
	g.noteReject(err)
}

// receiveEnvelope runs the acceptance checks cheapest first: hop bound,
// parse, own echo, duplicate cache, ordering against what is held, capacity,
// the signer's acceptance budget and the sender's forgery budget, then the
// signature and snapshot checks, then clock sanity.
func (g *Gossip) receiveEnvelope(from identity.NodeID, hops uint8, raw []byte) {
	g.c.received.Add(1)
	if hops > HardMaxHops {
		g.reject(fmt.Errorf("gossip: envelope from %s: %w: %d hops, limit %d", from, ErrMalformed, hops, HardMaxHops))
		return
	}
	h, err := parseHeader(raw)
	if err != nil {
		g.reject(fmt.Errorf("from %s: %w", from, err))
		return
	}
	if h.signer == g.self {
		// Our own announcement coming back (or an older incarnation's):
		// we are the authority on ourselves.
		g.c.duplicates.Add(1)
		return
	}
	key := seenKey{h.signer, h.epoch, h.seq}
	if g.seen.has(key) {
		g.c.duplicates.Add(1)
		return
	}
	now := g.cfg.Clock()
	g.mu.Lock()
	cur := g.latest[h.signer]
	full := cur == nil && len(g.latest) >= MaxNodes
	g.mu.Unlock()
	if cur != nil && !g.supersedes(&h, cur, now) {
		g.c.outdated.Add(1)
		return
	}
	if full {
		g.c.overflow.Add(1)
		g.noteReject(fmt.Errorf("gossip: envelope from %s: node table full (%d)", h.signer, MaxNodes))
		return
	}
	// Checked before the signature and charged only once it held, so
	// envelopes forged in a signer's name cannot spend its budget.
	if !g.signers.Ready(h.signer, now, 1) {
		g.c.signerLimited.Add(1)
		return
	}
	// Whoever sends envelopes that fail to open pays for the checks.
	if !g.forgers.Ready(from, now, 1) {
		g.c.senderLimited.Add(1)
		return
	}
	var mb Membership
	if g.cfg.Members != nil {
		// Before the signature: a certificate already seen costs a map
		// lookup, and a non-member's snapshot is never worth verifying.
		var err error
		if mb, err = g.cfg.Members(h.signer, h.pub, h.cert, now); err != nil {
			g.c.notMember.Add(1)
			g.forgers.Charge(from, now, 1)
			g.reject(fmt.Errorf("gossip: envelope from %s: signer %s is not a member: %w", from, h.signer, err))
			return
		}
		if g.outOfScope(mb.Subnet) {
			return
		}
	}
	env, err := h.open()
	if err != nil {
		g.forgers.Charge(from, now, 1)
		g.reject(fmt.Errorf("from %s: %w", from, err))
		return
	}
	if g.cfg.Members == nil {
		mb.Subnet = env.Snapshot.Subnet // gossip's own tests: no certificates
		if g.outOfScope(mb.Subnet) {
			return
		}
	}
	if env.Snapshot.Subnet != mb.Subnet {
		// Signed by a member, so not a relay's forgery: the member itself
		// claims a subnet its operator did not certify it for.
		g.c.subnetClaims.Add(1)
		g.forgers.Charge(from, now, 1)
		g.reject(fmt.Errorf("gossip: envelope from %s: signer %s: %w (%q, certified for %q)", from, h.signer, ErrSubnetClaim, env.Snapshot.Subnet, mb.Subnet))
		return
	}
	switch {
	case env.SignedAt.After(now.Add(MaxClockSkew)):
		g.reject(fmt.Errorf("gossip: envelope from %s signed %s in the future", h.signer, env.SignedAt.Sub(now)))
		return
	case env.SignedAt.Before(now.Add(-MaxEnvelopeAge)):
		g.c.expired.Add(1)
		return
	}
	g.seen.add(key)
	next := &entry{
		Verified: Verified{Snapshot: env.Snapshot, Epoch: h.epoch, Seq: h.seq, SignedAt: env.SignedAt, ReceivedAt: now, Role: mb.Role, Subnet: mb.Subnet},
		raw:      raw, // raw is this message's private copy (see handle)
		snap:     h.snap,
		key:      env.PublicKey,
		cert:     env.Certificate,
	}
	g.signers.Charge(h.signer, now, 1)
	g.mu.Lock()
	g.latest[h.signer] = next
	g.mu.Unlock()
	g.c.accepted.Add(1)
	changed := cur == nil || !bytes.Equal(cur.snap, next.snap)
	if changed || g.staleMark[h.signer] {
		delete(g.staleMark, h.signer)
		g.notify()
	}
	if mb.Subnet != g.cfg.Subnet {
		return // a focused subnet's snapshot: this node only follows it
	}
	g.forward(raw, hops, from, changed)
}

// forward pushes an accepted announcement on, within the hop limit, when
// its content changed. An unchanged one (a re-announcement: a new Seq over
// the same snapshot) only proves its signer alive to the nodes that hear
// it; an honest origin marks it not to be forwarded, but the hop count is
// not signed, so the decision is made here, where a member re-signing at
// will would otherwise make every node re-send each copy to Fanout peers.
func (g *Gossip) forward(raw []byte, hops uint8, from identity.NodeID, changed bool) {
	if int(hops)+1 >= g.cfg.MaxHops {
		return
	}
	if !changed {
		g.c.unforwarded.Add(1)
		return
	}
	g.push(raw, hops+1, from, g.cfg.Fanout)
}

// supersedes reports whether the announcement h should replace cur: a newer
// (epoch, seq), or, when cur's node has gone silent past StaleAfter, an
// older epoch signed later than cur (a restarted node whose clock stepped
// back). Replays of anything older than cur fail both tests.
func (g *Gossip) supersedes(h *header, cur *entry, now time.Time) bool {
	if h.epoch != cur.Epoch {
		if h.epoch > cur.Epoch {
			return true
		}
		return now.Sub(cur.ReceivedAt) > g.cfg.StaleAfter && h.signedAtMs > cur.SignedAt.UnixMilli()
	}
	return h.seq > cur.Seq
}

// digest lists the newest signed announcement held for every node of
// subnet.
func (g *Gossip) digest(subnet string) []digestEntry {
	g.mu.Lock()
	out := make([]digestEntry, 0, len(g.latest))
	for id, e := range g.latest {
		if e.raw != nil && e.Subnet == subnet {
			out = append(out, digestEntry{node: id, epoch: e.Epoch, seq: e.Seq})
		}
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b digestEntry) int { return cmp.Compare(a.node, b.node) })
	return out
}

// sendDigest sends this node's digest to one random peer, or to `to` when
// answering a digest (flags digestReply).
func (g *Gossip) sendDigest(to identity.NodeID, flags uint8) {
	if !to.Valid() {
		p, _ := g.pickPeers(g.cfg.Subnet, 1)
		if len(p) == 0 {
			return
		}
		to = p[0]
	}
	d := g.digest(g.cfg.Subnet)
	if g.enqueue(to, appendDigestMsg(make([]byte, 0, 4+len(d)*24), flags, d)) {
		g.c.digestsSent.Add(1)
	}
}

// receiveDigest answers a peer's digest: it sends the envelopes the peer
// lacks or holds older (bounded), and, unless the digest was itself a reply,
// its own digest when the peer holds something newer.
func (g *Gossip) receiveDigest(from identity.NodeID, body []byte) {
	flags, remote, err := decodeDigest(body)
	if err != nil {
		g.c.malformed.Add(1)
		g.noteReject(fmt.Errorf("from %s: %w", from, err))
		return
	}
	g.c.digestsReceived.Add(1)
	focus := flags&digestFocus != 0
	if !focus && g.peerSubnet(from) != g.cfg.Subnet {
		// Anti-entropy runs inside a subnet; another subnet's node asks
		// only for a focus (and the transport's rule judged that).
		g.c.outOfScope.Add(1)
		return
	}
	// Each digest can make us send up to MaxPullEnvelopesPerDigest
	// envelopes, so a peer gets one answer per quarter DigestInterval (its
	// periodic digests and its replies to ours counted apart, so the two
	// never starve each other).
	now := g.cfg.Clock()
	lk := limitKey{from, flags&digestReply != 0}
	if last, ok := g.digestFrom[lk]; ok && now.Sub(last) < g.cfg.DigestInterval/4 {
		g.c.digestsLimited.Add(1)
		return
	}
	if len(g.digestFrom) >= 2*MaxNodes {
		for k, t := range g.digestFrom {
			if now.Sub(t) >= g.cfg.DigestInterval {
				delete(g.digestFrom, k)
			}
		}
	}
	if len(g.digestFrom) < 2*MaxNodes {
		g.digestFrom[lk] = now
	}

	theirs := make(map[identity.NodeID]digestEntry, len(remote))
	for _, e := range remote {
		theirs[e.node] = e
	}
	g.mu.Lock()
	var send [][]byte
	peerNewer := false
	for id, e := range g.latest {
		if e.raw == nil || id == from || e.Subnet != g.cfg.Subnet {
			continue
		}
		t, ok := theirs[id]
		if !ok || e.Epoch > t.epoch || (e.Epoch == t.epoch && e.Seq > t.seq) {
			send = append(send, e.raw)
		}
	}
	for _, t := range remote {
		if t.node == g.self || focus {
			continue
		}
		e, ok := g.latest[t.node]
		if !ok || t.epoch > e.Epoch || (t.epoch == e.Epoch && t.seq > e.Seq) {
			peerNewer = true
			break
		}
	}
	g.mu.Unlock()
	// Most useful first would need a priority; a random subset keeps one
	// bounded answer from always leaving out the same nodes.
	if len(send) > MaxPullEnvelopesPerDigest {
		g.rng.Shuffle(len(send), func(i, j int) { send[i], send[j] = send[j], send[i] })
		send = send[:MaxPullEnvelopesPerDigest]
	}
	for _, raw := range send {
		// Sent at the hop limit: the puller stores it but does not push it
		// on; its own digests spread it further.
		if g.enqueue(from, appendEnvelopeMsg(make([]byte, 0, 2+len(raw)), uint8(g.cfg.MaxHops), raw)) {
			g.c.pulled.Add(1)
		}
	}
	if peerNewer && flags&(digestReply|digestFocus) == 0 {
		g.sendDigest(from, digestReply)
	}
}

// markStale signals Changes when a node crosses StaleAfter, since the fold
// renders staleness and nothing else would wake its reader.
func (g *Gossip) markStale(now time.Time) {
	g.mu.Lock()
	crossed := false
	for id, e := range g.latest {
		if id != g.self && now.Sub(e.ReceivedAt) > g.cfg.StaleAfter && !g.staleMark[id] {
			g.staleMark[id] = true
			crossed = true
		}
	}
	g.mu.Unlock()
	if crossed {
		g.notify()
	}
}

// sweep forgets nodes silent for ForgetAfter.
func (g *Gossip) sweep(now time.Time) {
	g.mu.Lock()
	forgot := false
	for id, e := range g.latest {
		if id != g.self && now.Sub(e.ReceivedAt) > g.cfg.ForgetAfter {
			delete(g.latest, id)
			delete(g.staleMark, id)
			forgot = true
		}
	}
	g.mu.Unlock()
	for k, t := range g.digestFrom {
		if now.Sub(t) >= g.cfg.DigestInterval {
			delete(g.digestFrom, k)
		}
	}
	if forgot {
		g.notify()
	}
}

// limitKey is the digest rate limiter's key: a sender and whether the
// digest was a reply.
type limitKey struct {
	from  identity.NodeID
	reply bool
}

// seenKey identifies one announcement.
type seenKey struct {
	node       identity.NodeID
	epoch, seq uint64
}

// seenCache is a FIFO-evicting set of announcements already accepted, so a
// duplicate is dropped before its signature is checked.
type seenCache struct {
	set  map[seenKey]struct{}
	ring []seenKey
	next int
}

func newSeenCache(n int) seenCache {
	return seenCache{set: make(map[seenKey]struct{}, n), ring: make([]seenKey, 0, n)}
}

func (c *seenCache) has(k seenKey) bool {
	_, ok := c.set[k]
	return ok
}

func (c *seenCache) add(k seenKey) {
	if c.has(k) {
		return
	}
	if len(c.ring) < cap(c.ring) {
		c.ring = append(c.ring, k)
	} else {
		delete(c.set, c.ring[c.next])
		c.ring[c.next] = k
		c.next = (c.next + 1) % len(c.ring)
	}
	c.set[k] = struct{}{}
}

// inScopeLocked reports whether snapshots of subnet are this node's to
// hold: its own subnet's, and the focused one's.
func (g *Gossip) inScopeLocked(subnet string) bool {
	return subnet == g.cfg.Subnet || (g.focus != "" && subnet == g.focus)
}

// outOfScope counts and reports a signer's subnet this node does not hold.
func (g *Gossip) outOfScope(subnet string) bool {
	g.mu.Lock()
	in := g.inScopeLocked(subnet)
	g.mu.Unlock()
	if !in {
		g.c.outOfScope.Add(1)
	}
	return !in
}

// peerSubnet is the subnet of a proven peer ("" when unknown or without
// Config.SubnetOf).
func (g *Gossip) peerSubnet(id identity.NodeID) string {
	if g.cfg.SubnetOf == nil {
		return ""
	}
	s, _ := g.cfg.SubnetOf(id)
	return s
}

// SetFocus makes this node (a console's) follow the snapshots of subnet
// path besides its own: every DigestInterval it sends a focus digest of
// what it holds of that subnet to one of the subnet's members it holds
// (at first, to one of via: the subnet's aggregator or gateways), which
// answers with the newer envelopes; they are verified and stored like any
// other, but never forwarded. "" (or the own subnet) ends the focus and
// forgets the focused subnet's snapshots.
func (g *Gossip) SetFocus(path string, via []identity.NodeID) {
	if path == g.cfg.Subnet {
		path = ""
	}
	g.mu.Lock()
	old := g.focus
	g.focus, g.focusVia = path, slices.Clone(via)
	dropped := false
	if old != path {
		for id, e := range g.latest {
			if id != g.self && !g.inScopeLocked(e.Subnet) {
				delete(g.latest, id)
				dropped = true
			}
		}
	}
	g.mu.Unlock()
	if dropped {
		g.notify()
	}
	if path != "" {
		select {
		case g.focusKick <- struct{}{}:
		default:
		}
	}
}

// Focus is the subnet SetFocus follows ("" none).
func (g *Gossip) Focus() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.focus
}

// sendFocusDigest (Run goroutine only) asks one member of the focused subnet (a random fresh
// one held, else one of the via nodes) for what this node lacks of it.
func (g *Gossip) sendFocusDigest() {
	now := g.cfg.Clock()
	g.mu.Lock()
	focus := g.focus
	var members []identity.NodeID
	for id, e := range g.latest {
		if focus != "" && e.Subnet == focus && now.Sub(e.ReceivedAt) <= g.cfg.StaleAfter {
			members = append(members, id)
		}
	}
	if len(members) == 0 {
		members = slices.Clone(g.focusVia)
	}
	g.mu.Unlock()
	if focus == "" || len(members) == 0 {
		return
	}
	slices.Sort(members) // map order is random; the draw below is the rng's
	to := members[g.rng.IntN(len(members))]
	d := g.digest(focus)
	if g.enqueue(to, appendDigestMsg(make([]byte, 0, 4+len(d)*24), digestFocus, d)) {
		g.c.digestsSent.Add(1)
	}
}
