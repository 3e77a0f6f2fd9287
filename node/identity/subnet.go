package identity

import (
	"errors"
	"fmt"
	"strings"
)

// Subnet paths. A node's subnet is a slash-separated path, most general
// first ("eu/ams/rack-3"); "" is the root subnet, where every node of a
// mesh without subnets is. It is carried in the node's certificate
// (Certificate.Subnet), so the operator who certifies a node decides it.
const (
	// MaxSubnetBytes bounds a subnet path.
	MaxSubnetBytes = 128
	// MaxSubnetDepth bounds its segments.
	MaxSubnetDepth = 8
	// MaxSubnetSegmentBytes bounds one segment.
	MaxSubnetSegmentBytes = 32
)

// ErrSubnet is a malformed subnet path.
var ErrSubnet = errors.New("identity: invalid subnet path")

// ValidateSubnet checks p is "" (the root) or 1..MaxSubnetDepth segments
// of 1..MaxSubnetSegmentBytes characters from [a-z0-9._-] joined by "/".
func ValidateSubnet(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > MaxSubnetBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrSubnet, len(p), MaxSubnetBytes)
	}
	segs := strings.Split(p, "/")
	if len(segs) > MaxSubnetDepth {
		return fmt.Errorf("%w: %q has %d segments, at most %d", ErrSubnet, p, len(segs), MaxSubnetDepth)
	}
	for _, s := range segs {
		if s == "" || len(s) > MaxSubnetSegmentBytes {
			return fmt.Errorf("%w: %q: each segment is 1..%d characters", ErrSubnet, p, MaxSubnetSegmentBytes)
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				return fmt.Errorf("%w: %q: only a-z 0-9 . _ - and / between segments", ErrSubnet, p)
			}
		}
	}
	return nil
}
