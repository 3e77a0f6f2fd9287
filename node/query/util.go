package query

import (
	"strconv"
)

func itoa(i int) string { return strconv.Itoa(i) }

func quote(s string) string { return strconv.Quote(s) }

// trimFloat prints f without trailing zeros (99, 99.9).
func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
