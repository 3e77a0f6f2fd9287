// Package chain is a node's persistence: one Badger database per node holding
// named append-only logs ("admin", "logs", "failures", "snapshots"), the
// replicated admin ledger with its hash-linked local order, the snapshot
// history the deck scrolls back through, and the two mesh services built on
// them: ledger anti-entropy (digest exchange, then pull what is missing) and
// log/failure subscriptions (leases renewed by clients, bounded pushes).
// Neither reads the disk on the transport's read loop, and what one peer may
// ask of them (lease setups, requests served, answer bytes) is budgeted per
// peer in limits.go: beyond the budget it is refused and counted.
//
// Every write goes through one committer goroutine per database. It
// coalesces concurrent requests into one Badger transaction with SyncWrites,
// so an acknowledged append is on disk and one fsync is shared by everyone
// who was waiting. Readers never take the committer's path: they read Badger
// snapshots directly and follow new records through bounded Tails.
//
// Event semantics (what an admin event means, its signatures) are not this
// package's business: the ledger stores opaque bytes and asks the caller's
// Admitter (an arriving event, with its sender and attachment) or Validator
// (a stored one) for each event's id and issue time. What it decoded rides
// along to the Fold (EventMeta.Decoded), so an event is parsed once on its
// way in; what it wants kept beside the event (EventMeta.Attachment: the
// receipts) is stored with it and served with it to peers.
package chain
