package gossip

import (
	"fmt"
	"time"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// The snapshot codec is a fixed field order with no tags: a version byte, then
// every field of snapshot.NodeSnapshot in declaration order. Integers are
// minimal varints (signed ones zigzag), node ids fixed 8-byte big endian,
// floats their IEEE bits big endian, bools one byte 0/1, enums one byte
// range-checked, strings a varint length then UTF-8 bytes, slices a varint
// count then the items, times UnixMilli (zigzag varint, so the zero time
// round-trips), durations nanoseconds. Because every value has exactly one
// encoding and the decoder rejects anything else (non-minimal varints, bool 2,
// NaN, trailing bytes), decode∘encode is the identity on accepted bytes and
// the signature covers exactly what receivers see.

// snapshotCodecVersion 2 added PendingPeers at the end, 3 Datafort and
// Blobs after it, 4 Subnet and Gateway after those.
const snapshotCodecVersion = 4

// Codec errors. Every decode error wraps ErrMalformed or ErrTooLarge, so a
// caller can tell garbage from an honest peer that outgrew a bound.
var (
	ErrMalformed     = codec.ErrMalformed
	ErrTooLarge      = codec.ErrTooLarge
	ErrTrailingBytes = codec.ErrTrailing  // a kind of ErrMalformed
	ErrTruncated     = codec.ErrTruncated // a kind of ErrMalformed
)

// Lower bounds on the encoded size of one item of each list, so a count read
// from the wire is checked against the bytes actually left before allocating.
const (
	minCapabilityBytes  = 1
	minTrendBytes       = 8
	minDaemonBytes      = 33
	minReplicaBytes     = 4
	minAvoidBytes       = 10
	minPendingBytes     = 5
	minFailureBytes     = 12
	minMigrationBytes   = 30
	minPeerViewBytes    = 11
	minPendingPeerBytes = 8 + 1 + 1 + 1 + 1 + 1
	minBlobBytes        = 32 + 1 + 1 + 1 + 1 + 8 + 1 + 32 + 8 + 1
	minGatewayBytes     = 1 + 1 + 1 + 1 + 1
	minReachBytes       = 1
)

// Enum cardinalities, checked on both sides.
const (
	numHealth         = 3
	numMaintState     = 6
	numGroupKind      = 4
	numLifecycle      = 7
	numDaemonHealth   = 3
	numRestartKind    = 3
	numReplicaRole    = 2
	numMigrationPhase = 8
	numOverflowState  = 3
	numBlobRole       = 4
	numVisibility     = 3
)

// EncodeSnapshot returns the canonical encoding of ns.
func EncodeSnapshot(ns *snapshot.NodeSnapshot) ([]byte, error) {
	return AppendSnapshot(make([]byte, 0, 512+len(ns.Daemons)*128), ns)
}

// AppendSnapshot appends the canonical encoding of ns to dst. It fails,
// rather than truncating, when a field exceeds its bound or the whole exceeds
// MaxSnapshotBytes; Fit brings a snapshot within bounds first.
func AppendSnapshot(dst []byte, ns *snapshot.NodeSnapshot) ([]byte, error) {
	start := len(dst)
	e := newEncoder(dst)
	e.u8(snapshotCodecVersion)
	e.id(ns.ID)
	e.str("label", ns.Label)
	e.str("addr", ns.Addr)
	e.str("version", ns.Version)
	e.uvarint(ns.Generation)
	e.time(ns.BuiltAt)
	e.time(ns.StartedAt)
	e.count("capabilities", len(ns.Capabilities), MaxCapabilitiesPerSnapshot)
	for _, c := range ns.Capabilities {
		e.str("capability", c)
	}
	e.bool(ns.Observer)

	r := &ns.Resources
	e.f64("cpu load", r.CPULoad)
	e.f64("mem used", r.MemUsed)
	e.f64("disk used", r.DiskUsed)
	e.f64("saturation", r.Saturation)
	e.count("trend", len(r.Trend), MaxTrendSamplesPerSnapshot)
	for _, v := range r.Trend {
		e.f64("trend", v)
	}

	m := &ns.Maintenance
	e.enum("maintenance state", uint8(m.State), numMaintState)
	e.time(m.Since)
	e.time(m.Deadline)
	e.str("maintenance reason", m.Reason)
	e.varint(int64(m.DaemonsLeft))
	e.varint(int64(m.DaemonsTotal))
	e.varint(int64(m.ReplicasLeft))
	e.varint(int64(m.ReplicasTotal))
	e.bool(ns.Cordoned)

	e.count("daemons", len(ns.Daemons), MaxDaemonsPerSnapshot)
	for i := range ns.Daemons {
		d := &ns.Daemons[i]
		e.str("daemon id", d.ID)
		e.str("daemon name", d.Name)
		e.str("daemon kind", d.Kind)
		l := &d.Lineage
		e.enum("lineage kind", uint8(l.Kind), numGroupKind)
		e.str("lineage group", l.Group)
		e.varint(int64(l.Index))
		e.bool(l.Active)
		e.uvarint(l.ForkAt)
		e.uvarint(l.ForkSentinel)
		e.uvarint(l.Synced)
		e.uvarint(l.Term)
		e.id(d.Node)
		e.enum("lifecycle", uint8(d.Lifecycle), numLifecycle)
		e.enum("daemon health", uint8(d.Health), numDaemonHealth)
		e.str("health reason", d.HealthReason)
		e.f64("daemon saturation", d.Saturation)
		e.enum("restart", uint8(d.Restart), numRestartKind)
		e.time(d.RestartUntil)
		e.varint(int64(d.Restarts))
		e.time(d.StartedAt)
	}

	e.count("replicas", len(ns.Replicas), MaxReplicasPerSnapshot)
	for i := range ns.Replicas {
		rp := &ns.Replicas[i]
		e.str("chain", rp.Chain)
		e.enum("replica role", uint8(rp.Role), numReplicaRole)
		e.uvarint(rp.Seq)
		e.uvarint(rp.Term)
	}

	e.count("avoid", len(ns.Avoid), MaxAvoidPerSnapshot)
	for i := range ns.Avoid {
		a := &ns.Avoid[i]
		e.id(a.Peer)
		e.str("avoid reason", a.Reason)
		e.time(a.Until)
	}

	e.count("pending", len(ns.Pending), MaxPendingPerSnapshot)
	for i := range ns.Pending {
		p := &ns.Pending[i]
		e.str("pending id", p.ID)
		e.str("pending kind", p.Kind)
		e.str("pending target", p.Target)
		e.time(p.Since)
		e.str("pending blocked", p.Blocked)
	}

	e.count("failures", len(ns.Failures), MaxFailuresPerSnapshot)
	for i := range ns.Failures {
		f := &ns.Failures[i]
		e.uvarint(f.Seq)
		e.time(f.At)
		e.id(f.Node)
		e.str("failure source", f.Source)
		e.str("failure reason", f.Reason)
	}

	e.count("migrations", len(ns.Migrations), MaxMigrationsPerSnapshot)
	for i := range ns.Migrations {
		mg := &ns.Migrations[i]
		e.str("migration id", mg.ID)
		e.str("migration daemon", mg.Daemon)
		e.id(mg.Source)
		e.id(mg.Target)
		e.enum("migration phase", uint8(mg.Phase), numMigrationPhase)
		e.f64("migration progress", mg.Progress)
		e.varint(int64(mg.Retries))
		e.time(mg.StartedAt)
		e.str("migration error", mg.Error)
	}

	c := &ns.Counters
	for _, v := range [...]uint64{c.PacketsIn, c.PacketsOut, c.BytesIn, c.BytesOut, c.Drops,
		c.ReplaysRejected, c.AuthFailures, c.HandshakesRateLimited, c.Forwarded, c.LogsDropped, c.Lag} {
		e.uvarint(v)
	}

	e.count("peers", len(ns.Peers), MaxPeersPerSnapshot)
	for i := range ns.Peers {
		p := &ns.Peers[i]
		e.id(p.Peer)
		e.enum("peer health", uint8(p.Health), numHealth)
		e.varint(int64(p.RTT))
		e.bool(p.Direct)
	}

	e.count("pending peers", len(ns.PendingPeers), MaxPendingPeersPerSnapshot)
	for i := range ns.PendingPeers {
		p := &ns.PendingPeers[i]
		e.id(p.ID)
		e.Bytes(codec.PrefixU8, 32, "pending peer key", p.Key)
		e.str("pending peer address", p.Addr)
		e.str("pending reason", p.Reason)
		e.time(p.FirstSeen)
		e.time(p.LastSeen)
	}

	df := &ns.Datafort
	e.bool(df.Enabled)
	for _, v := range [...]uint64{df.Capacity, df.Used, df.Chunks, df.Blobs} {
		e.uvarint(v)
	}
	e.f64("reads per second", df.ReadsPerSec)
	e.f64("writes per second", df.WritesPerSec)
	e.f64("bytes in per second", df.BytesInPerSec)
	e.f64("bytes out per second", df.BytesOutPerSec)
	e.enum("overflow", uint8(df.Overflow), numOverflowState)
	e.uvarint(df.Errors)
	e.uvarint(df.Repaired)
	e.varint(int64(df.Incoming))
	e.varint(int64(df.DrainLeft))

	e.count("blobs", len(ns.Blobs), MaxBlobsPerSnapshot)
	for i := range ns.Blobs {
		b := &ns.Blobs[i]
		e.Raw(b.Hash[:])
		e.uvarint(b.Size)
		e.varint(int64(b.Replicas))
		e.enum("blob role", uint8(b.Role), numBlobRole)
		e.bool(b.Pinned)
		e.f64("blob heat", b.Heat)
		e.str("blob name", b.Name)
		e.Raw(b.Parent[:])
		e.id(b.Operator)
		e.time(b.StoredAt)
	}

	e.str("subnet", ns.Subnet)
	e.count("gateway channels", len(ns.Gateway), MaxGatewayChannelsPerSnapshot)
	for i := range ns.Gateway {
		g := &ns.Gateway[i]
		e.str("gateway channel", g.Channel)
		e.enum("visibility", uint8(g.Visibility), numVisibility)
		e.count("gateway reach", len(g.Reach), MaxGatewayReachPerChannel)
		for _, r := range g.Reach {
			e.str("gateway reach", r)
		}
		e.uvarint(g.Forwarded)
		e.uvarint(g.Dropped)
	}

	if e.Err() != nil {
		return dst, e.Err()
	}
	if n := len(e.B) - start; n > MaxSnapshotBytes {
		return dst, fmt.Errorf("%w: snapshot is %d bytes, limit %d", ErrTooLarge, n, MaxSnapshotBytes)
	}
	return e.B, nil
}

// DecodeSnapshot parses the canonical encoding. It never panics, allocates at
// most in proportion to len(b) (itself bounded by MaxSnapshotBytes) and
// rejects trailing bytes. The result shares no memory with b.
func DecodeSnapshot(b []byte) (*snapshot.NodeSnapshot, error) {
	if len(b) > MaxSnapshotBytes {
		return nil, fmt.Errorf("%w: snapshot is %d bytes, limit %d", ErrTooLarge, len(b), MaxSnapshotBytes)
	}
	d := newDecoder(b)
	ns := &snapshot.NodeSnapshot{}
	if v := d.u8(); d.Err() == nil && v != snapshotCodecVersion {
		return nil, fmt.Errorf("%w: snapshot codec version %d, want %d", ErrMalformed, v, snapshotCodecVersion)
	}
	ns.ID = d.id()
	ns.Label = d.str()
	ns.Addr = d.str()
	ns.Version = d.str()
	ns.Generation = d.uvarint()
	ns.BuiltAt = d.time()
	ns.StartedAt = d.time()
	if n := d.count("capabilities", MaxCapabilitiesPerSnapshot, minCapabilityBytes); n > 0 {
		ns.Capabilities = make([]string, n)
		for i := range ns.Capabilities {
			ns.Capabilities[i] = d.str()
		}
	}
	ns.Observer = d.bool()

	r := &ns.Resources
	r.CPULoad = d.f64()
	r.MemUsed = d.f64()
	r.DiskUsed = d.f64()
	r.Saturation = d.f64()
	if n := d.count("trend", MaxTrendSamplesPerSnapshot, minTrendBytes); n > 0 {
		r.Trend = make([]float64, n)
		for i := range r.Trend {
			r.Trend[i] = d.f64()
		}
	}

	m := &ns.Maintenance
	m.State = snapshot.MaintState(d.enum(numMaintState))
	m.Since = d.time()
	m.Deadline = d.time()
	m.Reason = d.str()
	m.DaemonsLeft = d.int()
	m.DaemonsTotal = d.int()
	m.ReplicasLeft = d.int()
	m.ReplicasTotal = d.int()
	ns.Cordoned = d.bool()

	if n := d.count("daemons", MaxDaemonsPerSnapshot, minDaemonBytes); n > 0 {
		ns.Daemons = make([]snapshot.Daemon, n)
		for i := range ns.Daemons {
			dm := &ns.Daemons[i]
			dm.ID = d.str()
			dm.Name = d.str()
			dm.Kind = d.str()
			l := &dm.Lineage
			l.Kind = snapshot.GroupKind(d.enum(numGroupKind))
			l.Group = d.str()
			l.Index = d.int()
			l.Active = d.bool()
			l.ForkAt = d.uvarint()
			l.ForkSentinel = d.uvarint()
			l.Synced = d.uvarint()
			l.Term = d.uvarint()
			dm.Node = d.id()
			dm.Lifecycle = snapshot.Lifecycle(d.enum(numLifecycle))
			dm.Health = snapshot.DaemonHealthState(d.enum(numDaemonHealth))
			dm.HealthReason = d.str()
			dm.Saturation = d.f64()
			dm.Restart = snapshot.RestartKind(d.enum(numRestartKind))
			dm.RestartUntil = d.time()
			dm.Restarts = d.int()
			dm.StartedAt = d.time()
		}
	}

	if n := d.count("replicas", MaxReplicasPerSnapshot, minReplicaBytes); n > 0 {
		ns.Replicas = make([]snapshot.Replica, n)
		for i := range ns.Replicas {
			rp := &ns.Replicas[i]
			rp.Chain = d.str()
			rp.Role = snapshot.ReplicaRole(d.enum(numReplicaRole))
			rp.Seq = d.uvarint()
			rp.Term = d.uvarint()
		}
	}

	if n := d.count("avoid", MaxAvoidPerSnapshot, minAvoidBytes); n > 0 {
		ns.Avoid = make([]snapshot.AvoidEntry, n)
		for i := range ns.Avoid {
			a := &ns.Avoid[i]
			a.Peer = d.id()
			a.Reason = d.str()
			a.Until = d.time()
		}
	}

	if n := d.count("pending", MaxPendingPerSnapshot, minPendingBytes); n > 0 {
		ns.Pending = make([]snapshot.PendingAction, n)
		for i := range ns.Pending {
			p := &ns.Pending[i]
			p.ID = d.str()
			p.Kind = d.str()
			p.Target = d.str()
			p.Since = d.time()
			p.Blocked = d.str()
		}
	}

	if n := d.count("failures", MaxFailuresPerSnapshot, minFailureBytes); n > 0 {
		ns.Failures = make([]snapshot.Failure, n)
		for i := range ns.Failures {
			f := &ns.Failures[i]
			f.Seq = d.uvarint()
			f.At = d.time()
			f.Node = d.id()
			f.Source = d.str()
			f.Reason = d.str()
		}
	}

	if n := d.count("migrations", MaxMigrationsPerSnapshot, minMigrationBytes); n > 0 {
		ns.Migrations = make([]snapshot.Migration, n)
		for i := range ns.Migrations {
			mg := &ns.Migrations[i]
			mg.ID = d.str()
			mg.Daemon = d.str()
			mg.Source = d.id()
			mg.Target = d.id()
			mg.Phase = snapshot.MigrationPhase(d.enum(numMigrationPhase))
			mg.Progress = d.f64()
			mg.Retries = d.int()
			mg.StartedAt = d.time()
			mg.Error = d.str()
		}
	}

	c := &ns.Counters
	for _, p := range [...]*uint64{&c.PacketsIn, &c.PacketsOut, &c.BytesIn, &c.BytesOut, &c.Drops,
		&c.ReplaysRejected, &c.AuthFailures, &c.HandshakesRateLimited, &c.Forwarded, &c.LogsDropped, &c.Lag} {
		*p = d.uvarint()
	}

	if n := d.count("peers", MaxPeersPerSnapshot, minPeerViewBytes); n > 0 {
		ns.Peers = make([]snapshot.PeerView, n)
		for i := range ns.Peers {
			p := &ns.Peers[i]
			p.Peer = d.id()
			p.Health = snapshot.Health(d.enum(numHealth))
			p.RTT = time.Duration(d.varint())
			p.Direct = d.bool()
		}
	}

	if n := d.count("pending peers", MaxPendingPeersPerSnapshot, minPendingPeerBytes); n > 0 {
		ns.PendingPeers = make([]snapshot.PendingPeer, n)
		for i := range ns.PendingPeers {
			p := &ns.PendingPeers[i]
			p.ID = d.id()
			p.Key = append([]byte(nil), d.Bytes(codec.PrefixU8, 32, "pending peer key")...)
			p.Addr = d.str()
			p.Reason = d.str()
			p.FirstSeen = d.time()
			p.LastSeen = d.time()
		}
	}

	df := &ns.Datafort
	df.Enabled = d.bool()
	for _, p := range [...]*uint64{&df.Capacity, &df.Used, &df.Chunks, &df.Blobs} {
		*p = d.uvarint()
	}
	df.ReadsPerSec = d.f64()
	df.WritesPerSec = d.f64()
	df.BytesInPerSec = d.f64()
	df.BytesOutPerSec = d.f64()
	df.Overflow = snapshot.OverflowState(d.enum(numOverflowState))
	df.Errors = d.uvarint()
	df.Repaired = d.uvarint()
	df.Incoming = d.int()
	df.DrainLeft = d.int()

	if n := d.count("blobs", MaxBlobsPerSnapshot, minBlobBytes); n > 0 {
		ns.Blobs = make([]snapshot.BlobHolding, n)
		for i := range ns.Blobs {
			b := &ns.Blobs[i]
			copy(b.Hash[:], d.take(32))
			b.Size = d.uvarint()
			b.Replicas = d.int()
			b.Role = snapshot.BlobRole(d.enum(numBlobRole))
			b.Pinned = d.bool()
			b.Heat = d.f64()
			b.Name = d.str()
			copy(b.Parent[:], d.take(32))
			b.Operator = d.id()
			b.StoredAt = d.time()
		}
	}

	ns.Subnet = d.str()
	if n := d.count("gateway channels", MaxGatewayChannelsPerSnapshot, minGatewayBytes); n > 0 {
		ns.Gateway = make([]snapshot.GatewayChannel, n)
		for i := range ns.Gateway {
			g := &ns.Gateway[i]
			g.Channel = d.str()
			g.Visibility = snapshot.Visibility(d.enum(numVisibility))
			if m := d.count("gateway reach", MaxGatewayReachPerChannel, minReachBytes); m > 0 {
				g.Reach = make([]string, m)
				for j := range g.Reach {
					g.Reach[j] = d.str()
				}
			}
			g.Forwarded = d.uvarint()
			g.Dropped = d.uvarint()
		}
	}

	if d.Err() != nil {
		return nil, fmt.Errorf("gossip: decode snapshot: %w", d.Err())
	}
	if d.Off() != len(b) {
		return nil, fmt.Errorf("gossip: decode snapshot: %w (%d of %d bytes used)", ErrTrailingBytes, d.Off(), len(b))
	}
	return ns, nil
}

// encoder and decoder are this format's field shapes on the node's one
// codec: ids are 8 bytes, times UnixMilli zigzag varints, strings
// uvarint-prefixed UTF-8 of at most MaxStringBytes.
type encoder struct{ codec.Writer }

func newEncoder(dst []byte) encoder { return encoder{codec.NewWriter(dst, nil)} }

func (e *encoder) fail(format string, args ...any) { e.Failf(ErrTooLarge, format, args...) }

func (e *encoder) u8(v uint8)                      { e.U8(v) }
func (e *encoder) id(v identity.NodeID)            { e.U64(uint64(v)) }
func (e *encoder) uvarint(v uint64)                { e.Uvarint(v) }
func (e *encoder) varint(v int64)                  { e.Varint(v) }
func (e *encoder) time(t time.Time)                { e.Varint(t.UnixMilli()) }
func (e *encoder) bool(v bool)                     { e.Bool(v) }
func (e *encoder) enum(what string, v, n uint8)    { e.Enum(what, v, n) }
func (e *encoder) f64(what string, v float64)      { e.F64(what, v) }
func (e *encoder) str(what, s string)              { e.Text(codec.PrefixUvarint, MaxStringBytes, what, s) }
func (e *encoder) count(what string, n, limit int) { e.Count(what, n, limit) }

type decoder struct{ codec.Reader }

func newDecoder(b []byte) decoder { return decoder{codec.NewReader(b, nil)} }

func (d *decoder) fail(err error)                            { d.Fail(err) }
func (d *decoder) take(n int) []byte                         { return d.Take(n) }
func (d *decoder) u8() uint8                                 { return d.U8() }
func (d *decoder) id() identity.NodeID                       { return identity.NodeID(d.U64()) }
func (d *decoder) uvarint() uint64                           { return d.Uvarint() }
func (d *decoder) varint() int64                             { return d.Varint() }
func (d *decoder) bool() bool                                { return d.Bool() }
func (d *decoder) enum(n uint8) uint8                        { return d.Enum("enum", n) }
func (d *decoder) f64() float64                              { return d.F64("float") }
func (d *decoder) str() string                               { return d.Text(codec.PrefixUvarint, MaxStringBytes, "string") }
func (d *decoder) count(what string, limit, minItem int) int { return d.Count(what, limit, minItem) }

// int reads a signed varint into an int; on 32-bit platforms values beyond
// int's range are malformed rather than silently wrapped.
func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.Failf(ErrMalformed, "integer %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) time() time.Time {
	ms := d.varint()
	if d.Err() != nil {
		return time.Time{}
	}
	// UTC so that the zero time decodes to exactly time.Time{} and values
	// compare equal with == regardless of the local zone.
	return time.UnixMilli(ms).UTC()
}
