package cli

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
)

// hostFlags are the flags of a node this process hosts for the mesh — a
// full member that places work, holds chains and relays: `deck node run`
// and `deck serve`. Each command registers --listen and --data itself
// (their defaults differ) and hands them to start.
type hostFlags struct {
	advertise, label, certFile, certifyWith, subnet string
	join, caps                                      []string
	clockSkew                                       time.Duration
	blobBudget                                      uint64
}

func (h *hostFlags) add(f *pflag.FlagSet) {
	f.StringVar(&h.advertise, "advertise", "", "HOST:PORT other hosts reach this node at, shown in its snapshot "+
		"(default: its --listen address when that is a specific one, else the address its peers see it at)")
	f.StringSliceVar(&h.join, "join", nil, "address of a node to join through (default: the cluster file's bootstrap)")
	f.StringVar(&h.label, "label", "", "human-readable node label (default: short id)")
	f.StringSliceVar(&h.caps, "capabilities", nil, "capabilities offered to placement, e.g. gpu,edge,datafort")
	f.StringVar(&h.certFile, "certificate", "", "this node's certificate `file`, issued by an operator (default: DATA/node.cert)")
	f.StringVar(&h.certifyWith, "certify-with", certifyAuto, "operator key that certifies this node when it holds no valid certificate: NAME, "+
		"auto (a registered operator key found on this machine) or none (start pending until `deck node admit`)")
	f.DurationVar(&h.clockSkew, "clock-skew", 0, "how far apart the mesh's clocks may be, e.g. 10s (default: the cluster file's [mesh] clock_skew_allowance_ms, else 10s)")
	f.StringVar(&h.subnet, "subnet", "", "this node's subnet `path`, e.g. eu/ams/rack-3, carried in its certificate "+
		"(default: the cluster file's [subnets.nodes] entry, else what its certificate carries, else the root)")
	f.Uint64Var(&h.blobBudget, "blob-budget", 0, "`bytes` of blob chunks a datafort node holds (default 8 GiB); past 90% it overflows its coldest blobs onto peers")
}

// check refuses bad values before anything starts (exit 2).
func (h *hostFlags) check() error {
	if h.clockSkew != 0 {
		if err := config.ValidateClockSkewAllowance(h.clockSkew); err != nil {
			return usageErr("--clock-skew: %v", err)
		}
	}
	if err := identity.ValidateSubnet(h.subnet); err != nil {
		return usageErr("--subnet: %v", err)
	}
	if err := node.CheckAdvertise(h.advertise); err != nil {
		return fmt.Errorf("--advertise: %w", err)
	}
	return nil
}

// start loads (or creates) the node key in dataDir, resolves its
// certificate (see nodeCertificate), starts the node listening on listen
// and logs its start-up records; the returned logger names the node.
func (h *hostFlags) start(ctx context.Context, e *env, c *config.Cluster, clusterPath, listen, dataDir string, log *slog.Logger) (*node.Node, *slog.Logger, error) {
	spec, err := c.Spec()
	if err != nil {
		return nil, log, err
	}
	key, err := loadOrCreateNodeKey(filepath.Join(dataDir, "node.key"))
	if err != nil {
		return nil, log, err
	}
	label := h.label
	if label == "" {
		label = key.ID.Short()
	}
	certifier, certifierName, err := e.certifier(clusterPath, c, h.certifyWith, nil, "")
	if err != nil {
		return nil, log, err
	}
	subnet := cmp.Or(h.subnet, c.SubnetOf(key.ID))
	cert, certNote, err := nodeCertificate(h.certFile, dataDir, c.Name, subnet, key, certifier, certifierName)
	if err != nil {
		return nil, log, err
	}
	boot := h.join
	if len(boot) == 0 {
		boot = nil // the cluster file's bootstrap list
	}
	log = log.With("node", key.ID.String())
	nd, err := node.Start(ctx, node.Options{
		Cluster: c, Key: key, DataDir: dataDir, ListenAddr: listen, Bootstrap: boot, Advertise: h.advertise,
		Label: label, Subnet: subnet, Capabilities: h.caps, Spec: spec, Factories: workloads.Factories(), Version: Version,
		Certificate: cert, ClockSkewAllowance: h.clockSkew, Logf: nodeLogf(log), BlobBudget: h.blobBudget,
	})
	if err != nil {
		return nil, log, err
	}
	log.Info("node listening", "label", label, "addr", nd.Addr(), "cluster", c.Name, "version", Version)
	log.Info("membership", "state", certNote, "certified", cert != nil, "subnet", nd.Subnet())
	return nd, log, nil
}
