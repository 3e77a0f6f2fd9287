// Package config reads and writes the files an operator's deck lives on: the
// cluster file (name, PSK, bootstrap addresses and the genesis operator set),
// the XDG config, data and state layout (config.toml, bookmarks.toml,
// recent.toml), and the operator identity store (operators/<name>.key and
// .pub).
//
// Everything read from disk is treated as untrusted: every problem is
// returned as an error naming the offending field (a *FieldError wrapping
// api.ErrInvalid), never a panic, and reads are bounded by MaxFileBytes.
package config

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
)

// Cluster is the content of a cluster file. Every node and console of one
// cluster shares it; the PSK admits a node to the mesh, so the file is secret.
type Cluster struct {
	Name string `toml:"name"`
	// PSK is the standard base64 form of PSKBytes random bytes.
	PSK string `toml:"psk"`
	// Bootstrap lists host:port addresses a joining node dials first.
	Bootstrap []string `toml:"bootstrap"`
	Genesis   Genesis  `toml:"genesis"`
	// Mesh holds settings every node of the cluster must share.
	Mesh Mesh `toml:"mesh,omitempty"`
	// Workload is the declarative workload spec every node places (see
	// workload.go); a cluster without one runs no daemons.
	Workload []WorkloadGroup `toml:"workload,omitempty"`
	// Subnets holds the subnet rules (subnets.go); none: one root subnet.
	Subnets Subnets `toml:"subnets,omitempty"`
}

// Mesh is the cluster file's [mesh] table.
type Mesh struct {
	// ClockSkewAllowanceMs is how far apart, in milliseconds, the clocks of
	// the cluster's nodes may be (command.DefaultClockSkewAllowance when 0,
	// else within [command.MinClockSkewAllowance,
	// command.MaxClockSkewAllowance]). A node accepts an admin event
	// without a receipt only inside its commit window plus this, by its own
	// clock; `deck node run --clock-skew` overrides it for one node.
	ClockSkewAllowanceMs int `toml:"clock_skew_allowance_ms,omitempty"`
}

// ClockSkewAllowance is the [mesh] setting, or the default.
func (c *Cluster) ClockSkewAllowance() time.Duration {
	if c.Mesh.ClockSkewAllowanceMs == 0 {
		return command.DefaultClockSkewAllowance
	}
	return time.Duration(c.Mesh.ClockSkewAllowanceMs) * time.Millisecond
}

// ValidateClockSkewAllowance checks an allowance is inside
// [command.MinClockSkewAllowance, command.MaxClockSkewAllowance].
func ValidateClockSkewAllowance(d time.Duration) error {
	if d < command.MinClockSkewAllowance || d > command.MaxClockSkewAllowance {
		return fmt.Errorf("%w: clock skew allowance %v outside [%v, %v]", api.ErrInvalid, d, command.MinClockSkewAllowance, command.MaxClockSkewAllowance)
	}
	return nil
}

// Genesis is the initial operator registry and its thresholds; later changes
// travel on the admin chain.
type Genesis struct {
	AdminThreshold int        `toml:"admin_threshold"`
	ICEThreshold   int        `toml:"ice_threshold"`
	Operators      []Operator `toml:"operators"`
}

// Operator is one genesis operator.
type Operator struct {
	Name string `toml:"name"`
	// PublicKey is in identity.PublicKeyString form ("ed25519:<base64>").
	PublicKey string `toml:"public_key"`
}

// NewOperator makes the cluster-file entry for an operator key.
func NewOperator(name string, pub ed25519.PublicKey) Operator {
	return Operator{Name: name, PublicKey: identity.PublicKeyString(pub)}
}

// OperatorKey is a genesis operator with its key parsed and id derived.
type OperatorKey struct {
	Name   string
	Public ed25519.PublicKey
	ID     identity.NodeID
}

// NewCluster makes a cluster with a fresh random PSK. A threshold of 0 means
// DefaultThreshold. The result is validated.
func NewCluster(name string, bootstrap []string, operators []Operator, adminThreshold, iceThreshold int) (*Cluster, error) {
	var psk [PSKBytes]byte
	if _, err := rand.Read(psk[:]); err != nil {
		return nil, fmt.Errorf("config: generate psk: %w", err)
	}
	if adminThreshold == 0 {
		adminThreshold = DefaultThreshold
	}
	if iceThreshold == 0 {
		iceThreshold = DefaultThreshold
	}
	c := &Cluster{
		Name:      name,
		PSK:       base64.StdEncoding.EncodeToString(psk[:]),
		Bootstrap: append([]string(nil), bootstrap...),
		Genesis: Genesis{
			AdminThreshold: adminThreshold,
			ICEThreshold:   iceThreshold,
			Operators:      append([]Operator(nil), operators...),
		},
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: new cluster: %w", err)
	}
	return c, nil
}

// PSKBytes decodes the PSK.
func (c *Cluster) PSKBytes() ([PSKBytes]byte, error) {
	var out [PSKBytes]byte
	b, err := base64.StdEncoding.DecodeString(c.PSK)
	if err != nil {
		return out, &FieldError{Field: "psk", Problem: "not standard base64", Err: err}
	}
	if len(b) != PSKBytes {
		return out, fieldErr("psk", "decodes to %d bytes, want %d", len(b), PSKBytes)
	}
	copy(out[:], b)
	return out, nil
}

// OperatorKeys parses every genesis operator's public key, in file order.
func (c *Cluster) OperatorKeys() ([]OperatorKey, error) {
	out := make([]OperatorKey, 0, len(c.Genesis.Operators))
	for i, op := range c.Genesis.Operators {
		pub, err := identity.ParsePublicKey(op.PublicKey)
		if err != nil {
			return nil, &FieldError{Field: fmt.Sprintf("genesis.operators[%d].public_key", i), Problem: err.Error(), Err: err}
		}
		out = append(out, OperatorKey{Name: op.Name, Public: pub, ID: identity.IDFromPublicKey(pub)})
	}
	return out, nil
}

// Validate checks every field; the error names each bad field.
func (c *Cluster) Validate() error {
	var errs fieldErrors
	if err := ValidateClusterName(c.Name); err != nil {
		errs.add(fieldErr("name", "%s", err.Error()))
	}
	if psk, err := c.PSKBytes(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			errs.add(fe)
		}
	} else if psk == ([PSKBytes]byte{}) {
		// An all-zero key is what a template or a broken generator yields;
		// it admits anyone who guesses it.
		errs.add(fieldErr("psk", "is all zero bytes"))
	}
	if len(c.Bootstrap) > MaxBootstrapAddrs {
		errs.add(fieldErr("bootstrap", "%d entries, at most %d allowed", len(c.Bootstrap), MaxBootstrapAddrs))
	}
	seenAddr := map[string]int{}
	for i, a := range c.Bootstrap {
		f := fmt.Sprintf("bootstrap[%d]", i)
		if err := validateHostPort(a); err != nil {
			errs.add(fieldErr(f, "%s", err.Error()))
			continue
		}
		if j, dup := seenAddr[a]; dup {
			errs.add(fieldErr(f, "%q repeats bootstrap[%d]", a, j))
			continue
		}
		seenAddr[a] = i
	}
	ops := c.Genesis.Operators
	if len(ops) > MaxOperators {
		errs.add(fieldErr("genesis.operators", "%d entries, at most %d allowed", len(ops), MaxOperators))
	}
	seenName := map[string]int{}
	seenKey := map[string]int{}
	for i, op := range ops {
		f := fmt.Sprintf("genesis.operators[%d]", i)
		if err := ValidateOperatorName(op.Name); err != nil {
			errs.add(fieldErr(f+".name", "%s", err.Error()))
		} else if j, dup := seenName[op.Name]; dup {
			errs.add(fieldErr(f+".name", "%q repeats genesis.operators[%d]", op.Name, j))
		} else {
			seenName[op.Name] = i
		}
		pub, err := identity.ParsePublicKey(op.PublicKey)
		if err != nil {
			errs.add(&FieldError{Field: f + ".public_key", Problem: err.Error(), Err: err})
			continue
		}
		// One key listed twice would count twice towards a threshold.
		k := string(pub)
		if j, dup := seenKey[k]; dup {
			errs.add(fieldErr(f+".public_key", "same key as genesis.operators[%d]", j))
			continue
		}
		seenKey[k] = i
	}
	if ms := c.Mesh.ClockSkewAllowanceMs; ms != 0 {
		if err := ValidateClockSkewAllowance(time.Duration(ms) * time.Millisecond); err != nil {
			errs.add(fieldErr("mesh.clock_skew_allowance_ms", "is %d: %v", ms, err))
		}
	}
	c.validateSubnets(&errs)
	checkThreshold(&errs, "genesis.admin_threshold", c.Genesis.AdminThreshold, len(ops))
	checkThreshold(&errs, "genesis.ice_threshold", c.Genesis.ICEThreshold, len(ops))
	return errs.err()
}

func checkThreshold(errs *fieldErrors, field string, n, operators int) {
	switch {
	case n < 1:
		errs.add(fieldErr(field, "is %d, must be at least 1", n))
	case operators > 0 && n > operators:
		errs.add(fieldErr(field, "is %d but only %d operators exist", n, operators))
	case operators == 0 && n > MaxOperators:
		errs.add(fieldErr(field, "is %d, at most %d allowed", n, MaxOperators))
	}
}

// validateHostPort accepts "host:port" with a DNS name or an IP literal
// (IPv6 in brackets) and a port in 1..65535.
func validateHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", a, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", a)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("%q: port %q is not in 1..65535", a, port)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > MaxHostChars {
		return fmt.Errorf("%q: host name longer than %d characters", a, MaxHostChars)
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("%q: host %q is neither an IP address nor a DNS name", a, host)
		}
	}
	return nil
}

// ValidateClusterName checks 1..MaxNameChars characters of [a-z0-9-_.],
// starting with a letter or digit: the name becomes a directory under the
// data dir, and "." or ".." there would escape it.
func ValidateClusterName(name string) error {
	if err := validateName(name, "cluster name", func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
	}, "[a-z0-9-_.]"); err != nil {
		return err
	}
	if c := name[0]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
		return fmt.Errorf("%w: cluster name %q must start with a letter or digit", api.ErrInvalid, name)
	}
	return nil
}

// ValidateOperatorName checks 1..MaxNameChars characters of [a-zA-Z0-9_-].
// The set excludes '/', '.' and NUL, so a name can never leave the operator
// directory or alias another file in it.
func ValidateOperatorName(name string) error {
	return validateName(name, "operator name", func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
	}, "[a-zA-Z0-9_-]")
}

func validateName(name, what string, ok func(rune) bool, set string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", api.ErrInvalid, what)
	}
	if len(name) > MaxNameChars {
		return fmt.Errorf("%w: %s is %d characters, at most %d allowed", api.ErrInvalid, what, len(name), MaxNameChars)
	}
	for _, r := range name {
		if !ok(r) {
			return fmt.Errorf("%w: %s %q: only %s allowed", api.ErrInvalid, what, name, set)
		}
	}
	return nil
}

// ParseCluster decodes and validates a cluster file's bytes. Missing
// thresholds default to DefaultThreshold; unknown keys are errors, because a
// misspelt "ice_treshold" silently falling back to 1 would weaken ICE.
func ParseCluster(data []byte) (*Cluster, error) {
	root, err := parseTOML(data)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Name:      root.str("name"),
		PSK:       root.str("psk"),
		Bootstrap: root.strings("bootstrap", MaxBootstrapAddrs),
	}
	for _, req := range []string{"name", "psk"} {
		if !root.has(req) {
			root.fail(req, "is missing")
		}
	}
	g := root.sub("genesis")
	c.Genesis.AdminThreshold = g.integer("admin_threshold", DefaultThreshold)
	c.Genesis.ICEThreshold = g.integer("ice_threshold", DefaultThreshold)
	for _, ot := range g.tables("operators", MaxOperators) {
		op := Operator{Name: ot.str("name"), PublicKey: ot.str("public_key")}
		for _, req := range []string{"name", "public_key"} {
			if !ot.has(req) {
				ot.fail(req, "is missing")
			}
		}
		ot.unknown()
		c.Genesis.Operators = append(c.Genesis.Operators, op)
	}
	g.unknown()
	m := root.sub("mesh")
	c.Mesh.ClockSkewAllowanceMs = m.integer("clock_skew_allowance_ms", 0)
	m.unknown()
	c.Workload = readWorkload(root)
	c.Subnets = readSubnets(root)
	root.unknown()
	// Type and shape errors first: validating half-decoded values would only
	// repeat them in a more confusing form.
	if err := root.errs.err(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if _, err := c.Spec(); err != nil {
		return nil, err
	}
	return c, nil
}

const clusterHeader = `# Deck cluster file.
# The psk admits nodes to the mesh: keep this file secret (mode 0600).
# The genesis operators and thresholds apply until the admin chain changes them.

`

// MarshalCluster renders c as a cluster file, after validating it.
func MarshalCluster(c *Cluster) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString(clusterHeader)
	if err := newEncoder(&buf).Encode(c); err != nil {
		return nil, fmt.Errorf("config: encode cluster: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteCluster writes c to path atomically with mode 0600. Unless overwrite
// is set, an existing file is left untouched and the error wraps
// api.ErrExists.
func WriteCluster(path string, c *Cluster, overwrite bool) error {
	data, err := MarshalCluster(c)
	if err != nil {
		return fmt.Errorf("config: write cluster file %s: %w", path, err)
	}
	if err := identity.WriteFileAtomic(path, data, ClusterFileMode, !overwrite); err != nil {
		if errors.Is(err, identity.ErrExists) {
			return fmt.Errorf("config: cluster file %s: %w (%w)", path, api.ErrExists, err)
		}
		return fmt.Errorf("config: write cluster file %s: %w", path, err)
	}
	return nil
}

// ErrUnprotectedClusterFile is returned by LoadCluster for a cluster file
// that users other than its owner's group can access: it holds the PSK
// that admits a node to the mesh. It wraps api.ErrPermission (exit 5).
var ErrUnprotectedClusterFile = fmt.Errorf("config: cluster file open to other users: %w", api.ErrPermission)

// LoadOptions relax LoadClusterWith's checks.
type LoadOptions struct {
	// InsecurePermissions loads a cluster file other users can access,
	// with a Warning, instead of refusing it.
	InsecurePermissions bool
}

// LoadCluster reads and validates a cluster file. A missing file wraps
// api.ErrNotFound; a bad one wraps api.ErrInvalid with a *FieldError per
// problem. A file others (beyond the owner's group) can access is refused
// with ErrUnprotectedClusterFile; one only the group can read loads, with
// a Warning.
func LoadCluster(path string) (*Cluster, []Warning, error) {
	return LoadClusterWith(path, LoadOptions{})
}

// LoadClusterWith is LoadCluster with opts.
func LoadClusterWith(path string, opts LoadOptions) (*Cluster, []Warning, error) {
	data, mode, err := readBounded(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: cluster file: %w", err)
	}
	perm := mode.Perm()
	if runtime.GOOS != "windows" && perm&ClusterFileOthersMask != 0 && !opts.InsecurePermissions {
		// Refused before parsing: nothing in a file anyone may have read
		// or rewritten is worth acting on.
		return nil, nil, fmt.Errorf("%w: %s has mode %04o, which lets every user on this machine read the cluster PSK; run: chmod 600 %s",
			ErrUnprotectedClusterFile, path, perm, path)
	}
	c, err := ParseCluster(data)
	if err != nil {
		return nil, nil, fmt.Errorf("config: cluster file %s: %w", path, err)
	}
	var warns []Warning
	if runtime.GOOS != "windows" && perm&0o077 != 0 {
		warns = append(warns, Warning{Path: path, Message: fmt.Sprintf(
			"mode %04o lets other users read the cluster PSK; run: chmod 600 %s", perm, path)})
	}
	return c, warns, nil
}

// readBounded reads at most MaxFileBytes of a regular file and returns its
// mode. A missing file wraps api.ErrNotFound.
func readBounded(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("%w: %w", api.ErrNotFound, err)
		}
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", api.ErrInvalid, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, 0, fmt.Errorf("%w: %s is larger than %d bytes", api.ErrInvalid, path, MaxFileBytes)
	}
	return data, st.Mode(), nil
}
