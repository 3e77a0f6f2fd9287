package deck

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Messages produced by the pumps. Each pump command waits on one channel,
// returns one message, and is re-armed by the handler of that message, so
// Update never blocks and no goroutine lives outside a command.
type (
	tickMsg      time.Time
	snapWatchMsg struct {
		ch <-chan *snapshot.ClusterSnapshot
	}
	snapMsg   struct{ s *snapshot.ClusterSnapshot }
	logSubMsg struct {
		s   *api.Stream[api.LogRecord]
		err error
	}
	failSubMsg struct {
		s   *api.Stream[api.FailureRecord]
		err error
	}
	auditSubMsg struct {
		s   *api.Stream[api.AuditRecord]
		err error
	}
	logBatchMsg   struct{ recs []api.LogRecord }
	failBatchMsg  struct{ recs []api.FailureRecord }
	auditBatchMsg struct{ recs []api.AuditRecord }
	streamEndMsg  struct{ what string }
)

func tick() tea.Cmd {
	return tea.Tick(IdleTick, func(t time.Time) tea.Msg { return tickMsg(t) })
}

func (m *Model) watchSnapshots() tea.Cmd {
	client, ctx := m.c.Client, m.c.Ctx
	return func() tea.Msg { return snapWatchMsg{client.WatchSnapshots(ctx)} }
}

func waitSnapshot(ctx context.Context, ch <-chan *snapshot.ClusterSnapshot) tea.Cmd {
	return func() tea.Msg {
		select {
		case s, ok := <-ch:
			if !ok {
				return streamEndMsg{"snapshots"}
			}
			return snapMsg{s}
		case <-ctx.Done():
			return nil
		}
	}
}

func (m *Model) subscribeLogs() tea.Cmd {
	client, ctx := m.c.Client, m.c.Ctx
	return func() tea.Msg {
		// Subscribe to everything: the LOGS filter runs locally over the
		// ring so `shown/total` is honest and refiltering needs no round trip.
		s, err := client.SubscribeLogs(ctx, api.LogFilter{})
		return logSubMsg{s, err}
	}
}

func (m *Model) subscribeFailures() tea.Cmd {
	client, ctx := m.c.Client, m.c.Ctx
	return func() tea.Msg {
		s, err := client.SubscribeFailures(ctx, 0)
		return failSubMsg{s, err}
	}
}

func (m *Model) subscribeAudit() tea.Cmd {
	client, ctx := m.c.Client, m.c.Ctx
	return func() tea.Msg {
		s, err := client.Audit().Stream(ctx)
		return auditSubMsg{s, err}
	}
}

// pump waits for one record, then drains what is already queued (up to
// PumpBatchMaxRecords) without blocking, and wraps the batch in one message.
func pump[T any](ctx context.Context, s *api.Stream[T], what string, wrap func([]T) tea.Msg) tea.Cmd {
	return func() tea.Msg {
		var first T
		select {
		case first = <-s.C():
		case <-s.Done():
			return streamEndMsg{what}
		case <-ctx.Done():
			return nil
		}
		n := len(s.C()) + 1
		if n > PumpBatchMaxRecords {
			n = PumpBatchMaxRecords
		}
		batch := make([]T, 1, n)
		batch[0] = first
		for len(batch) < PumpBatchMaxRecords {
			select {
			case v := <-s.C():
				batch = append(batch, v)
			default:
				return wrap(batch)
			}
		}
		return wrap(batch)
	}
}

func (m *Model) pumpLogs() tea.Cmd {
	return pump(m.c.Ctx, m.logStream, "logs", func(b []api.LogRecord) tea.Msg { return logBatchMsg{b} })
}

func (m *Model) pumpFailures() tea.Cmd {
	return pump(m.c.Ctx, m.failStream, "failures", func(b []api.FailureRecord) tea.Msg { return failBatchMsg{b} })
}

func (m *Model) pumpAudit() tea.Cmd {
	return pump(m.c.Ctx, m.auditStream, "audit", func(b []api.AuditRecord) tea.Msg { return auditBatchMsg{b} })
}

// foldLogs appends a batch to the ring (the 100k-records/s hot path).
func (m *Model) foldLogs(recs []api.LogRecord) {
	st := m.c.Store
	for i := range recs {
		st.Logs.Push(recs[i])
	}
	st.LogsGen++
	if m.logStream != nil {
		st.LogsDropped = m.logStream.Dropped()
		st.LogsLagged = m.logStream.Lagged()
	}
}

func (m *Model) foldFailures(recs []api.FailureRecord) {
	st := m.c.Store
	for i := range recs {
		st.Failures.Push(recs[i])
	}
	st.FailuresGen++
	if m.failStream != nil {
		st.FailuresDropped = m.failStream.Dropped()
	}
}

func (m *Model) foldAudit(recs []api.AuditRecord) {
	st := m.c.Store
	for i := range recs {
		st.Audit.Push(recs[i])
	}
	st.AuditGen++
	if m.auditStream != nil {
		st.AuditDropped = m.auditStream.Dropped()
	}
}
