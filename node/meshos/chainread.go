package meshos

// ChainRecord is one entry of a replicated chain as this node holds it.
type ChainRecord struct {
	Seq    uint64
	Daemon string
	State  []byte
}

// ChainRecords is this node's copy of a replicated chain's recent entries
// (the last ChainEntriesKeptMax), oldest first, for MeshDB's reads; false
// when this node holds no replica of it. The states are copies.
func (rt *Runtime) ChainRecords(chain string) ([]ChainRecord, bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.replicas[chain]
	if r == nil {
		return nil, false
	}
	out := make([]ChainRecord, 0, len(r.log))
	for _, e := range r.log {
		out = append(out, ChainRecord{Seq: e.Seq, Daemon: e.Daemon, State: append([]byte(nil), e.State...)})
	}
	return out, true
}
