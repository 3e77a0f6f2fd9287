package common

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/store"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Context is handed to every tab and widget. The root model owns it and is
// the only writer; components read it during Update and View.
type Context struct {
	Ctx    context.Context
	Theme  *Theme
	Keys   *KeyMap
	Client api.Client
	Faults api.FaultInjector // nil outside a demo
	// AttachHint tells the operator how a second terminal attaches (the
	// demo's export line); empty outside a demo.
	AttachHint string
	Store      *store.Store
	// Snap is the latest cluster snapshot (never nil after New).
	Snap *snapshot.ClusterSnapshot
	// Now is the clock reading of the current Update, so one frame shows one
	// time everywhere; Clock is the source (fixed in tests).
	Now   time.Time
	Clock func() time.Time
	// Width and Height are the terminal size.
	Width, Height int
	// Operator is who signs; ReadOnly with a reason when nobody can.
	Operator       api.OperatorInfo
	ReadOnly       bool
	ReadOnlyReason string
	// ExportDir is where exports go by default.
	ExportDir string
}

// Selection is what the cursor of a screen points at, for `l` (logs of the
// selection) and for actions.
type Selection struct {
	Node   api.NodeID
	Daemon string
	Chain  string
	Label  string
}

// The messages below are how tabs ask the root for things: tabs never run
// flows themselves, they return a command yielding one of these.

// ActionMsg asks the root to run the admin or ICE flow for an action
// (parameter prompt if needed, blast-radius preview, typed YES, commit).
type ActionMsg struct {
	Action api.Action
	// NeedDuration prompts for Action.Duration first, with this label.
	NeedDuration string
	// PickHolder / PickNode prompt for Action.Peer from the chain's holders
	// or from every node.
	PickHolder, PickNode bool
	// NeedReason prompts for Action.Reason (freeze).
	NeedReason bool
}

// OpenPageMsg asks the root to push a drill-down page.
type OpenPageMsg struct {
	Kind   PageKind
	Node   api.NodeID
	Daemon string
	Audit  *api.AuditRecord
	Fail   *api.FailureRecord
	Blob   api.BlobHash
	// Subnet is PageSubnet's path: the root drills the view into it
	// (api.SubnetClient.FocusSubnet) while the page is open.
	Subnet string
}

// PageKind names a drill-down page.
type PageKind uint8

const (
	PageNode PageKind = iota
	PageDaemon
	PageAudit
	PageFailure
	PageBlob
	PageSubnet
)

// ToastMsg queues a footer toast.
type ToastMsg struct {
	Text  string
	Error bool
}

// ExportMsg asks the root to prompt for a path and write lines to it.
type ExportMsg struct {
	What  string // "logs", "audit", …: default file name and toast text
	Lines func() []string
}

// FaultMsg asks the root to inject a demo fault (after prompting for a delay
// when NeedDelay).
type FaultMsg struct {
	Fault     api.Fault
	NeedDelay bool
	// PickDaemon prompts for Fault.Daemon among the first node's daemons.
	PickDaemon bool
}

// ReplayMsg carries History results for the BEHAVIOR replay.
type ReplayMsg struct {
	At    time.Time
	Nodes []snapshot.NodeSnapshot
	Err   error
}

// QueryMsg carries a started MeshDB query (or why it did not start) to
// the MESHDB tab; QueryRowsMsg a batch of its rows; QueryDoneMsg its end.
// ID is the tab's own count of queries, so a late message of a query it
// moved on from is ignored.
type (
	QueryMsg struct {
		ID  uint64
		Run *api.QueryRun
		Err error
	}
	QueryRowsMsg struct {
		ID   uint64
		Rows []api.QueryRow
	}
	QueryDoneMsg struct {
		ID     uint64
		Status api.QueryStatus
		Err    error
	}
)

// Toast returns a command that queues a toast.
func Toast(text string, isErr bool) tea.Cmd {
	return func() tea.Msg { return ToastMsg{Text: text, Error: isErr} }
}

// Emit returns a command yielding msg.
func Emit(msg tea.Msg) tea.Cmd { return func() tea.Msg { return msg } }
