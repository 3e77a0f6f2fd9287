package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// JSON goldens pin the shape of what the CLI prints: every key and the type
// of every value. Values that change from run to run (ids, times, hashes,
// RTTs, placement) become their type; arrays keep their first element as
// the shape of all of them. A few keys whose values are part of the
// contract (verb, outcome …) keep them, with node ids masked.

// keptValues are the keys whose values a shape golden keeps.
var keptValues = map[string]bool{
	"verb": true, "command": true, "outcome": true, "ice": true, "target": true, "cluster": true, "local": true,
}

var (
	maskID   = regexp.MustCompile(`0x[0-9a-f]{16}`)
	maskTime = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
)

// shapeOf normalises a decoded JSON value. volatile names keys whose whole
// value depends on cluster state (present or not, empty or not); they become
// "<volatile>" and their shape is pinned elsewhere.
func shapeOf(v any, key string, volatile map[string]bool) any {
	if volatile[key] {
		return "<volatile>"
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, vv := range x {
			out[k] = shapeOf(vv, k, volatile)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		var merged any
		for _, e := range x {
			merged = mergeShapes(merged, shapeOf(e, key, volatile))
		}
		return []any{merged}
	case string:
		if keptValues[key] {
			return maskTime.ReplaceAllString(maskID.ReplaceAllString(x, "0x<id>"), "<time>")
		}
		return "<string>"
	case float64:
		if keptValues[key] {
			return x
		}
		return "<number>"
	case bool:
		if keptValues[key] {
			return x
		}
		return "<bool>"
	}
	return v // null
}

// mergeShapes unions the keys of two element shapes, so an array's shape
// does not depend on which element comes first.
func mergeShapes(a, b any) any {
	am, ok1 := a.(map[string]any)
	bm, ok2 := b.(map[string]any)
	if !ok1 || !ok2 {
		if a == nil {
			return b
		}
		return a
	}
	out := make(map[string]any, len(am))
	for k, v := range am {
		out[k] = v
	}
	for k, v := range bm {
		out[k] = mergeShapes(out[k], v)
	}
	return out
}

// checkShapeGolden compares the shape of the JSON document doc with
// testdata/json/NAME.golden (rewritten with -update).
func checkShapeGolden(t *testing.T, name string, doc []byte, volatile ...string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("%s: output is not JSON: %v\n%s", name, err, doc)
	}
	vol := map[string]bool{}
	for _, k := range volatile {
		vol[k] = true
	}
	var got bytes.Buffer
	enc := json.NewEncoder(&got)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(shapeOf(v, "", vol)); err != nil {
		t.Fatal(err)
	}
	compareGolden(t, filepath.Join("testdata", "json", name+".golden"), got.Bytes())
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./deck/cli -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s drifted:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
