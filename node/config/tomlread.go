package config

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// table reads one TOML table decoded into a generic map and remembers which
// keys were read, so that anything left over is reported as an unknown key.
// Decoding into a map first (rather than straight into a struct) lets every
// type error name the exact field, e.g. "genesis.operators[1].name".
type table struct {
	path string // dotted path of this table; "" for the document root
	m    map[string]any
	used map[string]bool
	errs *fieldErrors
}

// parseTOML decodes data into a root table. A syntax error becomes a
// FieldError naming the last key the parser saw.
func parseTOML(data []byte) (*table, error) {
	if len(data) > MaxFileBytes {
		return nil, fieldErr("(file)", "larger than %d bytes", MaxFileBytes)
	}
	m := map[string]any{}
	if _, err := toml.Decode(string(data), &m); err != nil {
		fe := &FieldError{Field: "(syntax)", Problem: err.Error(), Err: err}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			if pe.LastKey != "" {
				fe.Field = pe.LastKey
			}
			fe.Problem = fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)
		}
		return nil, fe
	}
	return &table{m: m, used: map[string]bool{}, errs: &fieldErrors{}}, nil
}

func (t *table) child(key string, m map[string]any) *table {
	return &table{path: t.field(key), m: m, used: map[string]bool{}, errs: t.errs}
}

func (t *table) field(key string) string {
	if t.path == "" {
		return key
	}
	return t.path + "." + key
}

func (t *table) has(key string) bool {
	_, ok := t.m[key]
	return ok
}

func (t *table) fail(key, format string, args ...any) {
	t.errs.add(fieldErr(t.field(key), format, args...))
}

func (t *table) get(key string) (any, bool) {
	v, ok := t.m[key]
	if ok {
		t.used[key] = true
	}
	return v, ok
}

// str reads an optional string; missing yields "".
func (t *table) str(key string) string {
	v, ok := t.get(key)
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		t.fail(key, "want a string, got %s", tomlType(v))
	}
	return s
}

// integer reads an optional integer; missing yields def.
func (t *table) integer(key string, def int) int {
	v, ok := t.get(key)
	if !ok {
		return def
	}
	n, ok := v.(int64)
	if !ok {
		t.fail(key, "want an integer, got %s", tomlType(v))
		return def
	}
	// Anything outside this range is wrong for every integer we read, and
	// clamping here keeps int conversions safe on 32-bit platforms.
	const bound = 1 << 30
	if n < -bound || n > bound {
		t.fail(key, "%d is out of range", n)
		return def
	}
	return int(n)
}

// strings reads an optional array of strings, at most max long.
func (t *table) strings(key string, max int) []string {
	v, ok := t.get(key)
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		t.fail(key, "want an array of strings, got %s", tomlType(v))
		return nil
	}
	if len(arr) > max {
		t.fail(key, "%d entries, at most %d allowed", len(arr), max)
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.errs.add(fieldErr(fmt.Sprintf("%s[%d]", t.field(key), i), "want a string, got %s", tomlType(e)))
			continue
		}
		out = append(out, s)
	}
	return out
}

// sub reads an optional sub-table; missing yields an empty table so callers
// can read defaults from it uniformly.
func (t *table) sub(key string) *table {
	v, ok := t.get(key)
	if !ok {
		return t.child(key, map[string]any{})
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.fail(key, "want a table, got %s", tomlType(v))
		return t.child(key, map[string]any{})
	}
	return t.child(key, m)
}

// tables reads an optional array of tables, at most max long.
func (t *table) tables(key string, max int) []*table {
	v, ok := t.get(key)
	if !ok {
		return nil
	}
	// The decoder yields []map[string]any for [[x]] sections and []any for
	// inline arrays; accept both so long as every element is a table.
	var elems []any
	switch a := v.(type) {
	case []map[string]any:
		for _, m := range a {
			elems = append(elems, m)
		}
	case []any:
		elems = a
	default:
		t.fail(key, "want an array of tables, got %s", tomlType(v))
		return nil
	}
	if len(elems) > max {
		t.fail(key, "%d entries, at most %d allowed", len(elems), max)
		return nil
	}
	out := make([]*table, 0, len(elems))
	for i, e := range elems {
		name := fmt.Sprintf("%s[%d]", key, i)
		m, ok := e.(map[string]any)
		if !ok {
			t.fail(name, "want a table, got %s", tomlType(e))
			continue
		}
		out = append(out, t.child(name, m))
	}
	return out
}

// unknown reports every key of t that no reader asked for.
func (t *table) unknown() {
	var extra []string
	for k := range t.m {
		if !t.used[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		t.fail(quoteKey(k), "unknown key")
	}
}

// quoteKey renders a key the way TOML would need it written, so an error
// about a key containing dots or spaces is unambiguous.
func quoteKey(k string) string {
	if k != "" && strings.IndexFunc(k, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0 {
		return k
	}
	return fmt.Sprintf("%q", k)
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	case nil:
		return "nothing"
	}
	return "a date/time"
}

// newEncoder writes flat TOML: operators edit these files by hand, and
// nested indentation only gets in their way.
func newEncoder(w io.Writer) *toml.Encoder {
	e := toml.NewEncoder(w)
	e.Indent = ""
	return e
}
