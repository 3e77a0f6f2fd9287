package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/identity"
)

// Output formats for --output.
const (
	OutputPretty = "pretty"
	OutputJSON   = "json"
)

// jsonID renders an id the way every JSON document of the CLI does: the
// decimal u64 and the 0x… hex short form side by side.
type jsonID struct {
	ID  uint64 `json:"id"`
	Hex string `json:"id_hex"`
}

func idJSON(id identity.NodeID) jsonID { return jsonID{ID: uint64(id), Hex: id.String()} }

// isoTime renders a timestamp as ISO 8601 UTC with Z, or "" for zero.
func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// millis renders a duration as integer milliseconds.
func millis(d time.Duration) int64 { return d.Milliseconds() }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	return nil
}

// printable replaces control characters with '?': text from the mesh
// (names, log lines, query values) never drives the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if codec.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
