package node

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/blob"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/command/chainfold"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/query"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/subnet"
	"github.com/deck-mesh/deck/node/transport"
	"github.com/deck-mesh/deck/node/trust"
)

// Options configure one node.
type Options struct {
	Cluster *config.Cluster
	// Key is the node's identity; nil makes an ephemeral one (the CLI's
	// short-lived node).
	Key *identity.Key
	// DataDir holds the node's Badger database; "" makes a temporary
	// directory removed on Close.
	DataDir string
	// InMemory keeps the node's Badger on the heap (chain.Config.InMemory):
	// nothing on disk, nothing survives Close; DataDir is ignored. For
	// in-process simulations of hundreds of nodes (demo/sim).
	InMemory bool
	// ListenAddr is the UDP address to bind; "" is DefaultListenAddr of
	// the bootstrap addresses. Unused when Conn is set.
	ListenAddr string
	Bootstrap  []string // nil: the cluster file's bootstrap addresses
	// Advertise is the address this node says it is reached at, in its
	// snapshot (host:port, e.g. behind a port forward); "" publishes what
	// the transport knows (transport.PublicAddr), nothing while it knows
	// none.
	Advertise string
	Label     string
	// Subnet is the node's subnet path ("eu/ams/rack-3"; snapshot/subnet.go);
	// "" is the cluster file's default for this node, else the root.
	Subnet string
	// Conn is the socket to run on (the demo's fault wrapper, an
	// in-process network); nil listens on UDP at ListenAddr. The node
	// closes it on Close, and when Start fails.
	Conn transport.Conn
	// Capabilities the node offers to placement (gpu, edge, datafort …).
	Capabilities []string
	// Observer nodes (consoles) join and gossip but never host daemons or
	// chain replicas; their certificate's role is console.
	Observer bool
	// Certificate is this node's membership certificate. Nil with
	// CertifyWith set issues one at start (and renews it before it
	// expires); nil without starts the node pending: its peers admit it
	// once an operator does (deck node admit) or the ledger already has.
	Certificate *identity.Certificate
	// CertifyWith is an operator key that issues this node's own
	// certificate: a console certified by its operator, the demo's nodes,
	// a lab node on its operator's machine.
	CertifyWith identity.Signer
	Spec        meshos.Spec
	Factories   map[string]meshos.Factory
	Version     string
	Logf        func(format string, args ...any)
	// Transport, MeshOS and Blobs override timers (tests); zero fields
	// take defaults.
	Transport transport.Config
	MeshOS    meshos.Timers
	Blobs     blob.Timers
	// BlobBudget is the disk budget for blob chunks of a datafort node
	// (capability "datafort"); 0: blob.DefaultBudgetBytes.
	BlobBudget uint64
	// AttesterCheck judges the attester of a receipt on a late admin event;
	// nil: the node's membership registry (a certified or admitted node of
	// role node, unrevoked, valid at the receipt's time). Tests replace it.
	AttesterCheck chainfold.AttesterCheck
	// ClockSkewAllowance is how far apart the mesh's clocks may be (see
	// command.DefaultClockSkewAllowance); 0: the cluster file's.
	ClockSkewAllowance time.Duration
	// QueryLimits override MeshDB's serving budgets (tests); zero fields
	// take node/query's limits.
	QueryLimits query.ServeLimits
	// Clock is the node's clock for its admin ledger (freshness, receipts)
	// and the command plane of its clients; nil: time.Now. Tests run nodes
	// whose clocks are off.
	Clock func() time.Time
}

// Node is a running mesh node.
type Node struct {
	opts    Options
	key     *identity.Key
	genesis command.Genesis
	tmpDir  string

	tr      *transport.Transport
	db      *chain.DB
	ledger  *chain.Ledger
	ae      *chain.AntiEntropy
	fold    *chain.Fold[*chainfold.State]
	gs      *gossip.Gossip
	rt      *meshos.Runtime
	blobs   *blob.Service
	subs    *chain.SubscriptionService
	pub     *publisher
	commit  *committer
	rejects *rejectRing
	query   *query.Engine
	trust   *trust.Registry
	cert    atomic.Pointer[identity.Certificate] // nil: none (pending)
	ingest  *chainfold.Ingest
	// subnet is the node's subnet (its certificate's); scope its rules and
	// directory, handed to the transport when scoped (subnets.go).
	subnet    string
	scope     *scope
	scoped    bool
	summaries *subnet.Store
	agg       *aggregation
	// viewSettledOnce mirrors viewSettled for the summary worker.
	viewSettledOnce atomic.Bool
	// observed is what the loop last read for its refresh, kept for Stats.
	observed atomic.Pointer[observed]

	started   time.Time
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	wake chan struct{}

	mu          sync.Mutex
	histGen     map[identity.NodeID]uint64    // loop goroutine only
	histAt      map[identity.NodeID]time.Time // loop goroutine only
	viewSettled bool                          // loop goroutine only: placement (for a host) may start
	trustGen    uint64                        // loop goroutine only: the AdminState generation trust holds
	lastFinger  uint64
	generation  uint64
}

// Start opens the node's database, binds its socket, joins the mesh and
// starts every service. Close stops them. ctx bounds start-up only: once
// cancelled, Start undoes what it had done (database, socket, temporary
// dir, services) and returns an error wrapping ctx.Err(); a node already
// started runs until Close.
func Start(ctx context.Context, opts Options) (*Node, error) {
	n, err := start(ctx, opts)
	if err != nil && opts.Conn != nil {
		opts.Conn.Close() // owned by the node; closing it twice is harmless
	}
	return n, err
}

func start(ctx context.Context, opts Options) (*Node, error) {
	opts, psk, genesis, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	n := &Node{opts: opts, key: opts.Key, genesis: genesis, started: time.Now(),
		wake: make(chan struct{}, 1), histGen: map[identity.NodeID]uint64{}, histAt: map[identity.NodeID]time.Time{}, rejects: newRejectRing(rejectRingSize, rejectRingPerSender)}
	if n.key == nil {
		if n.key, err = identity.Generate(); err != nil {
			return nil, err
		}
	}
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	aborted := func() error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("node: start: %w", err)
		}
		return nil
	}
	if err := aborted(); err != nil {
		return nil, err
	}
	if err := n.openDB(); err != nil {
		return nil, err
	}
	if err := n.openTransport(psk); err != nil {
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.openLedger(); err != nil {
		return nil, err
	}
	if err := n.openServices(); err != nil {
		return nil, err
	}
	n.commit = newCommitter(n)
	n.pub = newPublisher(n.foldCluster(time.Now()))
	if err := n.openBlobs(); err != nil {
		return nil, err
	}
	if n.query, err = n.newQueryEngine(opts.QueryLimits); err != nil {
		return nil, err
	}
	n.run()
	// Opening the database and binding the socket are the slow steps; a
	// caller that gave up meanwhile gets no half-wanted node.
	if err := aborted(); err != nil {
		return nil, err
	}
	ok = true
	return n, nil
}

// prepare checks opts and fills its defaults: the cluster's PSK and
// genesis, a logger, the bootstrap list and the listen address.
func prepare(opts Options) (Options, [32]byte, command.Genesis, error) {
	if opts.Cluster == nil {
		return opts, [32]byte{}, command.Genesis{}, fmt.Errorf("node: %w: no cluster", api.ErrInvalid)
	}
	psk, err := opts.Cluster.PSKBytes()
	if err != nil {
		return opts, psk, command.Genesis{}, fmt.Errorf("node: %w", err)
	}
	genesis, err := genesisOf(opts.Cluster)
	if err != nil {
		return opts, psk, genesis, err
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Bootstrap == nil {
		opts.Bootstrap = opts.Cluster.Bootstrap
	}
	if opts.ListenAddr == "" {
		opts.ListenAddr = DefaultListenAddr(opts.Bootstrap)
	}
	if err := CheckAdvertise(opts.Advertise); err != nil {
		return opts, psk, genesis, fmt.Errorf("node: %w", err)
	}
	return opts, psk, genesis, nil
}

// openDB opens the node's Badger database (in a temporary dir without
// Options.DataDir; on the heap with Options.InMemory).
func (n *Node) openDB() error {
	if n.opts.InMemory {
		var err error
		if n.db, err = chain.Open(chain.Config{InMemory: true, Logf: n.opts.Logf}); err != nil {
			return fmt.Errorf("node: open chains in memory: %w", err)
		}
		return nil
	}
	dir := n.opts.DataDir
	if dir == "" {
		var err error
		if n.tmpDir, err = os.MkdirTemp("", "deck-node-*"); err != nil {
			return fmt.Errorf("node: temp dir: %w", err)
		}
		dir = n.tmpDir
	}
	var err error
	if n.db, err = chain.Open(chain.Config{Dir: filepath.Join(dir, "chain"), Logf: n.opts.Logf}); err != nil {
		return fmt.Errorf("node: open chains: %w", err)
	}
	return nil
}

// openTransport sets up membership (the registry from genesis, the node's
// own certificate) and binds the transport with both.
func (n *Node) openTransport(psk [32]byte) error {
	genState, err := command.NewState(n.genesis)
	if err != nil {
		return fmt.Errorf("node: %w: cluster genesis: %w", api.ErrInvalid, err)
	}
	n.trust = trust.New(n.genesis.Cluster, genState)
	if err := n.resolveSubnet(); err != nil {
		return err
	}
	cert, err := n.ownCertificate(time.Now())
	if err != nil {
		return err
	}
	n.cert.Store(cert)
	tcfg := n.opts.Transport
	tcfg.Key, tcfg.PSK, tcfg.ListenAddr, tcfg.Bootstrap, tcfg.Logf = n.key, psk, n.opts.ListenAddr, n.opts.Bootstrap, n.opts.Logf
	tcfg.Conn = n.opts.Conn
	tcfg.Trust, tcfg.Certificate = n.trust, cert
	if n.scoped {
		tcfg.Scope = n.scope
		tcfg.Trust = scopedTrust{Registry: n.trust, scope: n.scope}
	}
	if n.tr, err = transport.New(tcfg); err != nil {
		return fmt.Errorf("node: transport: %w", err)
	}
	return nil
}

// openLedger builds the admin ledger behind its gate (chainfold.Ingest):
// an event must decode, belong to this cluster, be fresh by this node's
// clock or carry a certified node's receipt, and its signatures must verify
// against the registry at its place in the order. Events are keyed by
// their ledger key (a hash over body and signatures), so a weak copy raced
// in by a bad peer cannot shadow the real one. Anti-entropy and the fold
// ride on it.
func (n *Node) openLedger() error {
	var err error
	if n.ingest, err = n.newIngest(); err != nil {
		return err
	}
	n.ledger = n.db.LedgerAdmitting(n.ingest.Validator(), n.ingest.Admit)
	n.ae = chain.NewAntiEntropy(n.ledger, n.tr, n.peerIDs, chain.AntiEntropyConfig{Logf: n.opts.Logf, Refused: n.refusedPull})
	folder, err := chainfold.NewFolder(n.genesis)
	if err != nil {
		return fmt.Errorf("node: %w: cluster genesis: %w", api.ErrInvalid, err)
	}
	n.fold = chain.NewFold[*chainfold.State](n.ledger, folder, 0)
	return nil
}

// openServices builds gossip, log subscriptions and the MeshOS runtime.
func (n *Node) openServices() error {
	var err error
	if n.gs, err = gossip.New(gossip.Config{Key: n.key, Messenger: n.tr, Members: n.members, Certificate: encodeCert(n.cert.Load()),
		Subnet: n.subnet, SubnetOf: n.scope.subnetOf}); err != nil {
		return fmt.Errorf("node: gossip: %w", err)
	}
	n.openSubnets()
	n.subs = chain.NewSubscriptionService(n.db, n.tr, chain.SubscriptionConfig{})
	caps := n.opts.Capabilities
	if n.opts.Observer {
		caps = nil
	}
	timers := n.opts.MeshOS
	if timers.QuorumHeardWithin == 0 {
		// Two heartbeats, whatever the transport's cadence (see
		// meshos.DefaultQuorumHeardWithin).
		timers.QuorumHeardWithin = 2 * cmp.Or(n.opts.Transport.HeartbeatInterval, transport.HeartbeatInterval)
	}
	if n.rt, err = meshos.New(meshos.Config{
		Self: n.key.ID, Label: n.opts.Label, Addr: n.PublicAddr(), Version: n.opts.Version,
		Capabilities: caps, Spec: n.opts.Spec, Factories: n.opts.Factories, Messenger: n.tr,
		Logs: logSink{n}, Failures: failureSink{n}, Timers: timers,
	}); err != nil {
		return fmt.Errorf("node: meshos: %w", err)
	}
	return nil
}

// run registers the command handler, starts the transport and every
// service's goroutine, and the node's own loop.
func (n *Node) run() {
	n.tr.Handle(messaging.ChanCommand, n.commit.push.Handle)
	n.tr.Handle(messaging.ChanBlob, n.blobs.Handle)
	n.tr.Handle(messaging.ChanQuery, n.query.Handle)
	n.tr.Start(n.ctx)
	n.spawn(func(ctx context.Context) { _ = n.ae.Run(ctx) })
	n.spawn(func(ctx context.Context) { _ = n.fold.Run(ctx) })
	n.spawn(func(ctx context.Context) { n.gs.Run(ctx) })
	n.spawn(func(ctx context.Context) { _ = n.subs.Run(ctx) })
	n.spawn(func(ctx context.Context) { _ = n.rt.Run(ctx) })
	n.spawn(n.blobs.Run)
	n.spawn(func(ctx context.Context) { _ = n.query.Run(ctx) })
	n.spawn(n.runSubnets)
	n.spawn(n.loop)
}

// openBlobs opens the datafort service on the node's database: a store
// for every node (a console stages its puts), serving the mesh as a
// datafort when the node offers the capability.
func (n *Node) openBlobs() error {
	var err error
	n.blobs, err = blob.New(blob.Config{
		Self: n.key.ID, Messenger: n.tr, Space: n.db.BlobSpace(),
		Datafort: !n.opts.Observer && slices.Contains(n.opts.Capabilities, placement.CapabilityDatafort),
		Budget:   n.opts.BlobBudget,
		// With the admin intent overlaid, as MeshOS places: every node
		// sees a drain or a cordon once it folds the event, before the
		// node's own snapshot says so, and plans blob replicas alike.
		View: func() *snapshot.ClusterSnapshot {
			return placement.ApplyIntent(placement.HostingView(n.pub.load()), n.AdminState().Intent())
		},
		Operator: n.operatorKey,
		Draining: n.draining,
		Logf:     n.opts.Logf,
		Timers:   n.opts.Blobs,
	})
	if err != nil {
		return fmt.Errorf("node: blobs: %w", err)
	}
	return nil
}

// Blobs is the node's datafort service.
func (n *Node) Blobs() *blob.Service { return n.blobs }

// operatorKey is a registered operator's key, for blob intents.
func (n *Node) operatorKey(id identity.NodeID) (ed25519.PublicKey, bool) {
	op, ok := n.AdminState().Operator(id)
	if !ok {
		return nil, false
	}
	return op.PublicKey, true
}

// draining reports whether this node is being drained (its blob replicas
// must move), by the admin intent as every node sees it, or its own state.
func (n *Node) draining() bool {
	if ni, ok := n.AdminState().Intent().Nodes[n.key.ID]; ok && ni.Maintenance == placement.MaintIntentEnter {
		return true
	}
	if own := n.rt.Latest(); own != nil {
		switch own.Maintenance.State {
		case snapshot.MaintEntering, snapshot.MaintMaintenance, snapshot.MaintDrainFailed:
			return true
		}
	}
	return false
}

func (n *Node) spawn(f func(ctx context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.ctx)
	}()
}

// ID is the node's id.
func (n *Node) ID() identity.NodeID { return n.key.ID }

// Addr is the node's socket address.
func (n *Node) Addr() string { return n.tr.LocalAddr() }

// PublicAddr is the address the node publishes in its snapshot: Advertise
// when set, else what the transport knows peers reach it at ("" while it
// knows none; never a wildcard or loopback address).
func (n *Node) PublicAddr() string {
	if n.opts.Advertise != "" {
		return n.opts.Advertise
	}
	if ap := n.tr.PublicAddr(); ap.IsValid() {
		return ap.String()
	}
	return ""
}

// Spec is the workload spec the node places.
func (n *Node) Spec() meshos.Spec { return n.opts.Spec }

// Cluster is the cluster snapshot as this node folds it.
func (n *Node) Cluster() *snapshot.ClusterSnapshot { return n.pub.load() }

// AdminState is the latest fold of the admin ledger.
func (n *Node) AdminState() *command.AdminState {
	s, _ := n.fold.State()
	if s == nil {
		st, _ := command.NewState(n.genesis)
		return st
	}
	return s.Admin
}

// Close stops every service, closes the socket and the database, and
// removes a temporary data dir.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.cancel != nil {
			n.cancel()
		}
		var errs []error
		if n.tr != nil {
			if err := n.tr.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		n.wg.Wait()
		if n.db != nil {
			if err := n.db.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.tmpDir != "" {
			os.RemoveAll(n.tmpDir)
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// WaitConnected blocks until the node has at least one healthy peer and has
// heard a snapshot from it, or ctx ends (api.ErrNotConnected).
func (n *Node) WaitConnected(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		cs := n.pub.load()
		for _, nv := range cs.Nodes {
			if nv.ID != n.key.ID && nv.Health == snapshot.Healthy && !nv.Stale && !nv.BuiltAt.IsZero() {
				return nil
			}
		}
		if n.scoped && slices.ContainsFunc(cs.Subnets, func(v snapshot.SubnetView) bool { return !v.BuiltAt.IsZero() }) {
			// A console outside every populated subnet (the root of a
			// carved mesh) has no peer snapshot to wait for: a summary
			// proves it joined.
			for _, p := range n.tr.Peers() {
				if p.Health == snapshot.Healthy && p.Session {
					return nil
				}
			}
		}
		if from, why, pending := n.tr.PendingHere(); pending {
			return fmt.Errorf("%w: node %s does not admit this node: %s", api.ErrPermission, from, why)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no peer answered (%v)", api.ErrNotConnected, ctx.Err())
		case <-t.C:
		}
	}
}

// peerIDs lists the peers worth talking to (anti-entropy, subscriptions).
func (n *Node) peerIDs() []identity.NodeID {
	ps := n.tr.Peers()
	out := make([]identity.NodeID, 0, len(ps))
	for _, p := range ps {
		if p.Health != snapshot.Unreachable {
			out = append(out, p.ID)
		}
	}
	return out
}

// allNodeIDs lists every node in the cluster view, self included (log and
// failure subscriptions go to each).
func (n *Node) allNodeIDs() []identity.NodeID {
	cs := n.pub.load()
	out := make([]identity.NodeID, 0, len(cs.Nodes))
	for _, nv := range cs.Nodes {
		if nv.Health != snapshot.Unreachable {
			out = append(out, nv.ID)
		}
	}
	if !slices.Contains(out, n.key.ID) {
		out = append(out, n.key.ID)
	}
	return out
}

func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Refresh asks for a refold of the cluster view now, without waiting out
// the gap that coalesces change-driven refolds. A console that is about to
// read the view (a CLI joining, a command checking its effect) calls it so
// it sees what gossip already delivered; Cluster then returns the result
// once BuiltAt moves.
func (n *Node) Refresh() { n.poke() }

// Done is closed when the node is closing.
func (n *Node) Done() <-chan struct{} { return n.ctx.Done() }

// SyncLedger runs one anti-entropy round with every reachable peer, so a
// console that just joined reads the whole admin ledger.
func (n *Node) SyncLedger(ctx context.Context) {
	for _, p := range n.peerIDs() {
		if _, err := n.ae.SyncWith(ctx, p); err == nil {
			return
		}
	}
}
