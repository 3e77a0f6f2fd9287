package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Environment variables besides config.ClusterEnv.
const (
	identityEnv = "DECK_IDENTITY"
	// insecurePermissionsEnv set to a true value (1, true) is
	// --insecure-permissions.
	insecurePermissionsEnv = "DECK_INSECURE_PERMISSIONS"
	// listenEnv is the UDP address a console's embedded node binds, when
	// --listen is not given.
	listenEnv = "DECK_LISTEN"
)

// Bounds on how long a console waits for the mesh.
const (
	joinTimeout   = 10 * time.Second
	settleTimeout = 4 * time.Second
	settleQuiet   = 1500 * time.Millisecond
	settlePoll    = 25 * time.Millisecond
)

// env is what every cluster-facing command resolves first.
type env struct {
	dirs     config.Dirs
	settings config.Settings
	stdio    IO
}

func loadEnv(stdio IO) (*env, error) {
	dirs, err := config.DefaultDirs()
	if err != nil {
		return nil, err
	}
	s, err := config.LoadSettings(dirs.SettingsPath())
	if err != nil {
		return nil, err
	}
	return &env{dirs: dirs, settings: s, stdio: stdio}, nil
}

// clusterFile resolves and loads the cluster file, printing its warnings.
func (e *env) clusterFile(cmd *cobra.Command) (*config.Cluster, string, error) {
	flag, _ := cmd.Flags().GetString("cluster")
	path, _, err := config.ResolveClusterPath(flag, os.Getenv(config.ClusterEnv), e.settings)
	if err != nil {
		return nil, "", err
	}
	insecure, err := insecurePermissions(cmd)
	if err != nil {
		return nil, "", err
	}
	c, warns, err := config.LoadClusterWith(path, config.LoadOptions{InsecurePermissions: insecure})
	if errors.Is(err, config.ErrUnprotectedClusterFile) {
		return nil, "", fmt.Errorf("%w (to load it as it is, pass --insecure-permissions or set %s=1)", err, insecurePermissionsEnv)
	}
	if err != nil {
		return nil, "", err
	}
	for _, w := range warns {
		fmt.Fprintf(e.stdio.Err, "deck: warning: %v\n", w)
	}
	if len(c.Genesis.Operators) == 0 {
		// The admin chain's genesis needs an operator; without one no node
		// of this cluster can start.
		return nil, "", fmt.Errorf("%w: cluster file %s has no genesis operators: recreate it with `deck node init --operator NAME.pub`",
			api.ErrInvalid, path)
	}
	return c, path, nil
}

// insecurePermissions is --insecure-permissions, or $DECK_INSECURE_PERMISSIONS
// when the flag is not given.
func insecurePermissions(cmd *cobra.Command) (bool, error) {
	if f := cmd.Flags().Lookup("insecure-permissions"); f != nil && f.Changed {
		return cmd.Flags().GetBool("insecure-permissions")
	}
	v := os.Getenv(insecurePermissionsEnv)
	if v == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return false, usageErr("%s=%q: want 1 or 0", insecurePermissionsEnv, v)
	}
	return on, nil
}

// addListenFlag is --listen of the commands that attach a console (deck,
// status, admin, ice, audit, logs, operator, node pending|admit|revoke).
func addListenFlag(f *pflag.FlagSet) {
	f.String("listen", "", "UDP `address` of this console's node (default $"+listenEnv+
		", then config.toml's listen, then an ephemeral port on the wildcard address of the bootstrap's family)")
}

// listenAddr resolves where a console's (or serve's) node binds: --listen,
// $DECK_LISTEN, config.toml's listen; "" leaves node.DefaultListenAddr to
// choose, which reaches the bootstrap from any host.
func (e *env) listenAddr(cmd *cobra.Command) (string, error) {
	if f := cmd.Flags().Lookup("listen"); f != nil && f.Value.String() != "" {
		if err := config.ValidateListen(f.Value.String()); err != nil {
			return "", usageErr("--listen: %v", err)
		}
		return f.Value.String(), nil
	}
	if v := os.Getenv(listenEnv); v != "" {
		if err := config.ValidateListen(v); err != nil {
			return "", usageErr("%s: %v", listenEnv, err)
		}
		return v, nil
	}
	return e.settings.Listen, nil
}

// operatorStores are searched in order: the user's identity store, then an
// operators/ dir beside the cluster file (where `deck demo` keeps its demo
// operators).
func (e *env) operatorStores(clusterPath string) []*config.OperatorStore {
	stores := []*config.OperatorStore{e.dirs.Operators()}
	if clusterPath != "" {
		stores = append(stores, &config.OperatorStore{Dir: filepath.Join(filepath.Dir(clusterPath), "operators")})
	}
	return stores
}

// operator loads the operator key named by --identity, $DECK_IDENTITY or
// config.toml. With required set, no key is api.ErrPermission (exit 5):
// there is no ephemeral-key fallback for commits.
func (e *env) operator(cmd *cobra.Command, clusterPath string, required bool) (*identity.Key, string, error) {
	flag, _ := cmd.Flags().GetString("identity")
	if flag == "" {
		flag = os.Getenv(identityEnv)
	}
	name, err := config.ResolveOperator(flag, e.settings)
	if err != nil {
		return nil, "", err
	}
	if name == "" {
		if required {
			return nil, "", fmt.Errorf("%w: no operator identity: pass --identity NAME or set %s (create one with `deck identity generate NAME`)", api.ErrPermission, identityEnv)
		}
		return nil, "", nil
	}
	var lastErr error
	for _, s := range e.operatorStores(clusterPath) {
		k, err := s.Load(name)
		if err == nil {
			return k, name, nil
		}
		lastErr = err
	}
	if errors.Is(lastErr, api.ErrNotFound) {
		lastErr = fmt.Errorf("%w: operator identity %q not found", api.ErrPermission, name)
	}
	return nil, "", lastErr
}

// session is a console's short-lived membership of a cluster.
type session struct {
	node   *node.Node
	client *node.Client
	path   string
}

func (s *session) Close() { s.node.Close() }

// mustSign refuses (exit 5) before any work when the session's operator
// cannot sign for this cluster: no key, or a key the registry does not know.
func (s *session) mustSign() error {
	if _, ok, why := s.client.Operator(); !ok {
		return fmt.Errorf("%w: %s", api.ErrPermission, why)
	}
	return nil
}

// joinCluster loads the environment and joins the cluster: the start of
// every command that talks to the mesh.
func joinCluster(stdio IO, cmd *cobra.Command, needOperator bool) (*session, error) {
	e, err := loadEnv(stdio)
	if err != nil {
		return nil, err
	}
	return e.join(cmd, needOperator)
}

// join starts an ephemeral observer node from the cluster file, waits until
// a peer answers (else api.ErrNotConnected within joinTimeout), pulls the
// admin ledger and lets the cluster view settle.
func (e *env) join(cmd *cobra.Command, needOperator bool) (*session, error) {
	c, path, err := e.clusterFile(cmd)
	if err != nil {
		return nil, err
	}
	key, name, err := e.operator(cmd, path, needOperator)
	if err != nil {
		return nil, err
	}
	spec, err := c.Spec()
	if err != nil {
		return nil, err
	}
	// The console's certificate is issued by its operator's own key (or,
	// for a read-only console, by a registered operator key on this
	// machine); without one the mesh keeps it pending and it sees nothing.
	certifier, certifierName, err := e.certifier(path, c, certifyAuto, key, name)
	if err != nil {
		return nil, err
	}
	listen, err := e.listenAddr(cmd)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	subnet, err := consoleSubnet(cmd)
	if err != nil {
		return nil, err
	}
	opts := node.Options{Cluster: c, Observer: true, Label: "cli", Spec: spec, Version: Version, ListenAddr: listen, Subnet: subnet}
	if certifier != nil {
		opts.CertifyWith = identity.KeySigner{K: certifier}
	}
	nd, err := node.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	var signer identity.Signer
	if key != nil {
		signer = identity.KeySigner{K: key}
	}
	cl, err := nd.NewClient(signer, name)
	if err != nil {
		nd.Close()
		return nil, err
	}
	jctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	if err := nd.WaitConnected(jctx); err != nil {
		nd.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if len(c.Bootstrap) == 0 {
			return nil, fmt.Errorf("%w: cluster file %s lists no bootstrap address to join through", api.ErrNotConnected, path)
		}
		if from, why, pending := nd.PendingHere(); pending {
			by := "this console has no certificate"
			if certifier != nil {
				by = fmt.Sprintf("this console is certified by identity %q", certifierName)
			}
			return nil, fmt.Errorf("%w: node %s does not admit this console: %s; %s (a console is certified by its operator: pass --identity NAME of an operator of cluster %s)",
				api.ErrPermission, from, why, by, c.Name)
		}
		hint := ""
		if certifier == nil {
			hint = fmt.Sprintf("; this console has no certificate either: pass --identity NAME of an operator of cluster %s", c.Name)
		}
		return nil, fmt.Errorf("%w: no node of cluster %s answered at %s within %v from this console's socket %s (are its nodes running, can this host reach them, and do they use the PSK in %s?)%s",
			api.ErrNotConnected, c.Name, strings.Join(c.Bootstrap, ", "), joinTimeout, nd.Addr(), path, hint)
	}
	nd.SyncLedger(jctx)
	synced := time.Now()
	settle(ctx, nd)
	waitFolded(ctx, nd, cl, synced)
	return &session{node: nd, client: cl, path: path}, nil
}

// waitFolded waits until the cluster view includes every admin event the
// ledger sync pulled in: the fold applies them and the view is rebuilt
// asynchronously, and a `deck status` right after a commit must show its
// effect (freeze, registry, event count). Bounded by settleTimeout.
func waitFolded(ctx context.Context, nd *node.Node, cl *node.Client, synced time.Time) {
	deadline := time.Now().Add(settleTimeout)
	var foldedAt time.Time
	for time.Now().Before(deadline) {
		cs := nd.Cluster()
		if !foldedAt.IsZero() {
			if cs.BuiltAt.After(foldedAt) {
				return
			}
		} else if cs.BuiltAt.After(synced) {
			now := time.Now()
			recs, _ := cl.Audit().Collect(ctx)
			folded := uint64(0)
			for _, r := range recs {
				if r.Seq&localRejection == 0 {
					folded++
				}
			}
			if folded >= cs.AdminHead.Count {
				foldedAt = now
			}
		}
		nd.Refresh() // the next read sees what gossip delivered meanwhile
		select {
		case <-ctx.Done():
			return
		case <-time.After(settlePoll):
		}
	}
}

// settle waits until the console's view of the cluster is complete: every
// node that the transport or any peer's snapshot names as alive has sent its
// own snapshot here, and every node with a fresh snapshot answers this
// console directly (until the console has its own session with a node, it
// cannot tell its health). Gossip and handshakes complete the view a moment
// after the first peer answers. A view that never closes (a node dying, a
// node this console cannot reach) ends the wait once nothing has improved
// for settleQuiet, or at settleTimeout.
func settle(ctx context.Context, nd *node.Node) {
	deadline := time.Now().Add(settleTimeout)
	last, lastChange := -1, time.Now()
	for time.Now().Before(deadline) {
		progress, complete := viewComplete(nd)
		if complete {
			return
		}
		if progress != last {
			last, lastChange = progress, time.Now()
		}
		if time.Since(lastChange) >= settleQuiet {
			return
		}
		nd.Refresh() // the next read sees what gossip delivered meanwhile
		select {
		case <-ctx.Done():
			return
		case <-time.After(settlePoll):
		}
	}
}

// viewComplete scores how far nd's view has got (snapshots held plus nodes
// seen healthy) and reports whether it is complete (see settle).
func viewComplete(nd *node.Node) (progress int, complete bool) {
	cs := nd.Cluster()
	self := nd.ID()
	got := make(map[identity.NodeID]bool, len(cs.Nodes))
	for _, nv := range cs.Nodes {
		if nv.ID != self && !nv.BuiltAt.IsZero() {
			got[nv.ID] = true
		}
	}
	if len(got) == 0 {
		return 0, false
	}
	complete = true
	progress = len(got)
	for _, nv := range cs.Nodes {
		if nv.ID == self {
			continue
		}
		if nv.Health == snapshot.Healthy {
			progress++
		}
		if nv.Health != snapshot.Unreachable && !got[nv.ID] {
			complete = false // a live peer whose snapshot has not arrived
		}
		if got[nv.ID] && !nv.Stale && !nv.Observer && nv.Health != snapshot.Healthy {
			complete = false // a live node not yet answering this console
		}
		if nv.Stale || nv.BuiltAt.IsZero() || nv.Health == snapshot.Unreachable {
			continue
		}
		for _, p := range nv.Peers {
			if p.Peer != self && p.Health == snapshot.Healthy && !got[p.Peer] {
				complete = false
			}
		}
	}
	return progress, complete
}

// resolveNode accepts a node label, an id (0x… or decimal) or a unique
// prefix of the hex id (the short form `deck status` prints), against the
// cluster view. Consoles are not targets.
func resolveNode(cs *snapshot.ClusterSnapshot, ref string) (identity.NodeID, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return 0, usageErr("--node is required")
	}
	isTarget := func(nv *snapshot.NodeView) bool { return nv != nil && !nv.Observer }
	for i := range cs.Nodes {
		if nv := &cs.Nodes[i]; nv.Label == ref && isTarget(nv) {
			return nv.ID, nil
		}
	}
	if id, err := identity.ParseNodeID(ref); err == nil && isTarget(cs.Node(id)) {
		return id, nil
	}
	if hex := strings.TrimPrefix(strings.ToLower(ref), "0x"); len(hex) >= minIDPrefix && len(hex) < 16 && isHex(hex) {
		var found []identity.NodeID
		for i := range cs.Nodes {
			nv := &cs.Nodes[i]
			if isTarget(nv) && strings.HasPrefix(fmt.Sprintf("%016x", uint64(nv.ID)), hex) {
				found = append(found, nv.ID)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			return 0, usageErr("--node %q matches %d nodes; give more digits or the label", ref, len(found))
		}
	}
	return 0, fmt.Errorf("%w: no node %q in cluster %s (use a label or an id from `deck status`)", api.ErrNotFound, ref, cs.Cluster)
}

// minIDPrefix is the shortest id prefix resolveNode matches.
const minIDPrefix = 4

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
