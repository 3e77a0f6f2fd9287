package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
)

func testOperators(t *testing.T, names ...string) ([]Operator, []*identity.Key) {
	t.Helper()
	var ops []Operator
	var keys []*identity.Key
	for _, n := range names {
		k, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, NewOperator(n, k.Public))
		keys = append(keys, k)
	}
	return ops, keys
}

func TestClusterRoundTrip(t *testing.T) {
	ops, keys := testOperators(t, "alice", "bob", "carol")
	c, err := NewCluster("demo-1", []string{"127.0.0.1:7400", "[::1]:7401", "node-a.mesh.example:7402"}, ops, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sub", "cluster.toml")
	if err := WriteCluster(path, c, false); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != ClusterFileMode {
		t.Errorf("mode %04o, want %04o", st.Mode().Perm(), ClusterFileMode)
	}
	got, warns, err := LoadCluster(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("unexpected warnings %v", warns)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
	psk, err := got.PSKBytes()
	if err != nil {
		t.Fatal(err)
	}
	if psk == ([PSKBytes]byte{}) {
		t.Error("psk is zero")
	}
	opk, err := got.OperatorKeys()
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if !opk[i].Public.Equal(k.Public) || opk[i].ID != k.ID || opk[i].Name != ops[i].Name {
			t.Errorf("operator %d: got %+v want id %s", i, opk[i], k.ID)
		}
	}
}

func TestNewClusterFreshPSKAndDefaults(t *testing.T) {
	a, err := NewCluster("x", nil, nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCluster("x", nil, nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.PSK == b.PSK {
		t.Error("two clusters got the same PSK")
	}
	if a.Genesis.AdminThreshold != DefaultThreshold || a.Genesis.ICEThreshold != DefaultThreshold {
		t.Errorf("thresholds %d/%d, want defaults", a.Genesis.AdminThreshold, a.Genesis.ICEThreshold)
	}
	if _, err := NewCluster("Bad Name", nil, nil, 0, 0); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	ops, _ := testOperators(t, "alice")
	if _, err := NewCluster("x", nil, ops, 1, 2); !isField(err, "genesis.ice_threshold") {
		t.Errorf("ice threshold above operator count: %v", err)
	}
}

func isField(err error, field string) bool {
	for _, fe := range fieldErrorsOf(err) {
		if fe.Field == field {
			return true
		}
	}
	return false
}

// fieldErrorsOf unpacks every *FieldError in a (possibly joined) error tree.
func fieldErrorsOf(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

const goodPSK = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func TestParseClusterFieldErrors(t *testing.T) {
	ops, _ := testOperators(t, "alice", "bob")
	alice, bob := ops[0].PublicKey, ops[1].PublicKey
	opsTOML := `
[[genesis.operators]]
name = "alice"
public_key = "` + alice + `"
[[genesis.operators]]
name = "bob"
public_key = "` + bob + `"
`
	tests := []struct {
		name  string
		doc   string
		field string
	}{
		{"missing name", `psk = "` + goodPSK + `"`, "name"},
		{"missing psk", `name = "x"`, "psk"},
		{"name wrong type", `name = 5
psk = "` + goodPSK + `"`, "name"},
		{"name upper case", `name = "Prod"
psk = "` + goodPSK + `"`, "name"},
		{"name too long", `name = "` + strings.Repeat("a", MaxNameChars+1) + `"
psk = "` + goodPSK + `"`, "name"},
		{"name slash", `name = "a/b"
psk = "` + goodPSK + `"`, "name"},
		{"psk not base64", `name = "x"
psk = "not base64!!"`, "psk"},
		{"psk short", `name = "x"
psk = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="`, "psk"},
		{"psk long", `name = "x"
psk = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"`, "psk"},
		{"psk zero", `name = "x"
psk = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`, "psk"},
		{"bootstrap not array", `name = "x"
psk = "` + goodPSK + `"
bootstrap = "1.2.3.4:5"`, "bootstrap"},
		{"bootstrap no port", `name = "x"
psk = "` + goodPSK + `"
bootstrap = ["1.2.3.4"]`, "bootstrap[0]"},
		{"bootstrap port zero", `name = "x"
psk = "` + goodPSK + `"
bootstrap = ["ok:1", "1.2.3.4:0"]`, "bootstrap[1]"},
		{"bootstrap port range", `name = "x"
psk = "` + goodPSK + `"
bootstrap = ["h:65536"]`, "bootstrap[0]"},
		{"bootstrap empty host", `name = "x"
psk = "` + goodPSK + `"
bootstrap = [":7400"]`, "bootstrap[0]"},
		{"bootstrap bad host", `name = "x"
psk = "` + goodPSK + `"
bootstrap = ["bad host:7400"]`, "bootstrap[0]"},
		{"bootstrap duplicate", `name = "x"
psk = "` + goodPSK + `"
bootstrap = ["h:1", "h:1"]`, "bootstrap[1]"},
		{"bootstrap element type", `name = "x"
psk = "` + goodPSK + `"
bootstrap = ["h:1", 2]`, "bootstrap[1]"},
		{"admin threshold zero", `name = "x"
psk = "` + goodPSK + `"
[genesis]
admin_threshold = 0`, "genesis.admin_threshold"},
		{"admin threshold above operators", `name = "x"
psk = "` + goodPSK + `"
[genesis]
admin_threshold = 3` + opsTOML, "genesis.admin_threshold"},
		{"ice threshold above operators", `name = "x"
psk = "` + goodPSK + `"
[genesis]
ice_threshold = 3` + opsTOML, "genesis.ice_threshold"},
		{"ice threshold float", `name = "x"
psk = "` + goodPSK + `"
[genesis]
ice_threshold = 1.0`, "genesis.ice_threshold"},
		{"ice threshold huge", `name = "x"
psk = "` + goodPSK + `"
[genesis]
ice_threshold = 9999999999999`, "genesis.ice_threshold"},
		{"genesis not table", `name = "x"
psk = "` + goodPSK + `"
genesis = 1`, "genesis"},
		{"operator bad key", `name = "x"
psk = "` + goodPSK + `"
[[genesis.operators]]
name = "alice"
public_key = "ed25519:AAAA"`, "genesis.operators[0].public_key"},
		{"operator key prefix", `name = "x"
psk = "` + goodPSK + `"
[[genesis.operators]]
name = "alice"
public_key = "` + strings.TrimPrefix(alice, "ed25519:") + `"`, "genesis.operators[0].public_key"},
		{"operator missing key", `name = "x"
psk = "` + goodPSK + `"
[[genesis.operators]]
name = "alice"`, "genesis.operators[0].public_key"},
		{"operator bad name", `name = "x"
psk = "` + goodPSK + `"
[[genesis.operators]]
name = "../etc"
public_key = "` + alice + `"`, "genesis.operators[0].name"},
		{"operator duplicate name", `name = "x"
psk = "` + goodPSK + `"
[[genesis.operators]]
name = "alice"
public_key = "` + alice + `"
[[genesis.operators]]
name = "alice"
public_key = "` + bob + `"`, "genesis.operators[1].name"},
		{"operator duplicate key", `name = "x"
psk = "` + goodPSK + `"
[[genesis.operators]]
name = "alice"
public_key = "` + alice + `"
[[genesis.operators]]
name = "bob"
public_key = "` + alice + `"`, "genesis.operators[1].public_key"},
		{"operators not tables", `name = "x"
psk = "` + goodPSK + `"
[genesis]
operators = [1, 2]`, "genesis.operators[0]"},
		{"unknown top key", `name = "x"
psk = "` + goodPSK + `"
bootstrp = ["h:1"]`, "bootstrp"},
		{"unknown genesis key", `name = "x"
psk = "` + goodPSK + `"
[genesis]
ice_treshold = 2`, "genesis.ice_treshold"},
		{"unknown operator key", `name = "x"
psk = "` + goodPSK + `"
[[genesis.operators]]
name = "alice"
public_key = "` + alice + `"
role = "admin"`, "genesis.operators[0].role"},
		{"unknown dotted key quoted", `name = "x"
psk = "` + goodPSK + `"
"a.b" = 1`, `"a.b"`},
		{"syntax", `name = "x`, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCluster([]byte(tt.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("error %v does not wrap api.ErrInvalid", err)
			}
			if api.ExitCode(err) != api.ExitInvalid {
				t.Errorf("exit code %d", api.ExitCode(err))
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if !isField(err, tt.field) {
				var got []string
				for _, f := range fieldErrorsOf(err) {
					got = append(got, f.Field)
				}
				t.Errorf("error %q names fields %v, want %q", err, got, tt.field)
			}
		})
	}
}

func TestParseClusterDefaultsAndGood(t *testing.T) {
	ops, _ := testOperators(t, "alice", "bob")
	tests := []struct {
		name         string
		doc          string
		admin, ice   int
		operators    int
		bootstrapLen int
	}{
		{"minimal", `name = "x"
psk = "` + goodPSK + `"`, 1, 1, 0, 0},
		{"thresholds and operators", `name = "lab.mesh_2"
psk = "` + goodPSK + `"
bootstrap = ["10.0.0.1:7400", "[fe80::1]:7400"]
[genesis]
admin_threshold = 1
ice_threshold = 2
[[genesis.operators]]
name = "alice"
public_key = "` + ops[0].PublicKey + `"
[[genesis.operators]]
name = "bob"
public_key = "` + ops[1].PublicKey + `"`, 1, 2, 2, 2},
		{"inline operators", `name = "x"
psk = "` + goodPSK + `"
genesis = { operators = [ { name = "alice", public_key = "` + ops[0].PublicKey + `" } ] }`, 1, 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCluster([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if c.Genesis.AdminThreshold != tt.admin || c.Genesis.ICEThreshold != tt.ice {
				t.Errorf("thresholds %d/%d, want %d/%d", c.Genesis.AdminThreshold, c.Genesis.ICEThreshold, tt.admin, tt.ice)
			}
			if len(c.Genesis.Operators) != tt.operators || len(c.Bootstrap) != tt.bootstrapLen {
				t.Errorf("got %d operators %d bootstrap", len(c.Genesis.Operators), len(c.Bootstrap))
			}
		})
	}
}

func TestParseClusterReportsEveryProblem(t *testing.T) {
	_, err := ParseCluster([]byte(`name = "BAD"
psk = "short"
bootstrap = ["nope"]
`))
	for _, f := range []string{"name", "psk", "bootstrap[0]"} {
		if !isField(err, f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
}

func TestLoadClusterMissing(t *testing.T) {
	_, _, err := LoadCluster(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, api.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if api.ExitCode(err) != api.ExitNotFound {
		t.Errorf("exit code %d", api.ExitCode(err))
	}
}

func TestLoadClusterNotRegularOrTooBig(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadCluster(dir); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("directory: %v", err)
	}
	big := filepath.Join(dir, "big.toml")
	data := []byte("name = \"x\"\n# " + strings.Repeat("x", MaxFileBytes) + "\n")
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadCluster(big); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("oversized: %v", err)
	}
}

// TestWorldReadableClusterFileRefused: the cluster file holds the PSK. One
// every user of the machine can read (or rewrite) is refused, with an
// error that names the file, its mode and the fix, and wraps
// api.ErrPermission (exit 5); LoadOptions.InsecurePermissions loads it
// anyway, with a warning. Group access alone only warns; 0600 and 0400
// load silently.
func TestWorldReadableClusterFileRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	c, err := NewCluster("x", nil, nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode          fs.FileMode
		refused, warn bool
	}{
		{0o600, false, false},
		{0o400, false, false},
		{0o640, false, true},
		{0o660, false, true},
		{0o644, true, true},
		{0o604, true, true},
		{0o602, true, true},
		{0o666, true, true},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "c.toml")
		if err := WriteCluster(path, c, false); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != ClusterFileMode {
			t.Fatalf("WriteCluster wrote %v (%v), want %04o", st.Mode().Perm(), err, ClusterFileMode)
		}
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, warns, err := LoadCluster(path)
		if tt.refused {
			if !errors.Is(err, ErrUnprotectedClusterFile) || !errors.Is(err, api.ErrPermission) {
				t.Fatalf("mode %04o: LoadCluster = %v, want ErrUnprotectedClusterFile (api.ErrPermission)", tt.mode, err)
			}
			for _, want := range []string{path, fmt.Sprintf("mode %04o", tt.mode), "PSK", "chmod 600 " + path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("mode %04o: error %q does not say %q", tt.mode, err, want)
				}
			}
			_, warns, err = LoadClusterWith(path, LoadOptions{InsecurePermissions: true})
		}
		if err != nil {
			t.Fatalf("mode %04o: %v", tt.mode, err)
		}
		if got := len(warns) > 0; got != tt.warn {
			t.Errorf("mode %04o: warnings %v, want warn=%v", tt.mode, warns, tt.warn)
		}
		if tt.warn && !strings.Contains(warns[0].String(), "PSK") {
			t.Errorf("warning does not say why: %s", warns[0])
		}
	}
}

func TestWriteClusterNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.toml")
	a, _ := NewCluster("first", nil, nil, 0, 0)
	b, _ := NewCluster("second", nil, nil, 0, 0)
	if err := WriteCluster(path, a, false); err != nil {
		t.Fatal(err)
	}
	err := WriteCluster(path, b, false)
	if !errors.Is(err, api.ErrExists) || api.ExitCode(err) != api.ExitExists {
		t.Fatalf("second write: %v", err)
	}
	got, _, err := LoadCluster(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "first" || got.PSK != a.PSK {
		t.Fatalf("file was replaced: %+v", got)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("temp files left behind: %v", ents)
	}
	if err := WriteCluster(path, b, true); err != nil {
		t.Fatal(err)
	}
	got, _, err = LoadCluster(path)
	if err != nil || got.Name != "second" {
		t.Fatalf("overwrite: %v %+v", err, got)
	}
}

func TestWriteClusterRefusesInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.toml")
	err := WriteCluster(path, &Cluster{Name: "x", PSK: "bad", Genesis: Genesis{AdminThreshold: 1, ICEThreshold: 1}}, false)
	if !isField(err, "psk") {
		t.Fatalf("invalid cluster written: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file exists after refused write: %v", err)
	}
}

func TestValidateNames(t *testing.T) {
	tests := []struct {
		name     string
		cluster  bool
		operator bool
	}{
		{"alice", true, true},
		{"Alice", false, true},
		{"lab.mesh", true, false},
		{"a-b_c", true, true},
		{"", false, false},
		{"..", false, false},
		{".hidden", false, false},
		{"-x", false, true},
		{"9lives", true, true},
		{"../x", false, false},
		{"a/b", false, false},
		{"a\x00b", false, false},
		{"ünï", false, false},
		{strings.Repeat("a", MaxNameChars), true, true},
		{strings.Repeat("a", MaxNameChars+1), false, false},
	}
	for _, tt := range tests {
		if got := ValidateClusterName(tt.name) == nil; got != tt.cluster {
			t.Errorf("cluster %q: ok=%v want %v", tt.name, got, tt.cluster)
		}
		if got := ValidateOperatorName(tt.name) == nil; got != tt.operator {
			t.Errorf("operator %q: ok=%v want %v", tt.name, got, tt.operator)
		}
		if err := ValidateOperatorName(tt.name); err != nil && !errors.Is(err, api.ErrInvalid) {
			t.Errorf("operator %q: %v does not wrap ErrInvalid", tt.name, err)
		}
	}
}

// TestClusterClockSkewAllowance: the [mesh] table's skew allowance is read,
// bounded and written back; left out, the default applies and the file
// carries no [mesh] table.
func TestClusterClockSkewAllowance(t *testing.T) {
	ops, _ := testOperators(t, "alice")
	c, err := NewCluster("skew", nil, ops, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ClockSkewAllowance(); got != command.DefaultClockSkewAllowance {
		t.Fatalf("default allowance %v", got)
	}
	plain, err := MarshalCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain), "[mesh]") {
		t.Fatalf("a cluster without the setting writes a [mesh] table:\n%s", plain)
	}
	c.Mesh.ClockSkewAllowanceMs = 5000
	data, err := MarshalCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCluster(data)
	if err != nil || back.ClockSkewAllowance() != 5*time.Second {
		t.Fatalf("round trip: %v, %v", back, err)
	}
	for _, tt := range []struct {
		body, field string
	}{
		{"[mesh]\nclock_skew_allowance_ms = 100\n", "mesh.clock_skew_allowance_ms"},
		{"[mesh]\nclock_skew_allowance_ms = 3600000\n", "mesh.clock_skew_allowance_ms"},
		{"[mesh]\nclock_skew_allowance_ms = \"10s\"\n", "mesh.clock_skew_allowance_ms"},
		{"[mesh]\nclock_skew = 10\n", "mesh.clock_skew"},
	} {
		_, err := ParseCluster(append(bytes.Clone(plain), tt.body...))
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%q: %v, want an error naming %s", tt.body, err, tt.field)
		}
	}
	if err := ValidateClockSkewAllowance(command.DefaultClockSkewAllowance); err != nil {
		t.Fatal(err)
	}
	if err := ValidateClockSkewAllowance(-time.Second); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("negative allowance: %v", err)
	}
}
