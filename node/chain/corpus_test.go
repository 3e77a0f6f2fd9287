package chain

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/deck-mesh/deck/node/api"
)

// fuzzSeeds are the committed seed corpora under testdata/fuzz. Regenerate
// with DECK_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./node/chain.
func fuzzSeeds() map[string][][]byte {
	after := Position{IssuedAtMs: 5, ID: [32]byte{1, 2, 3}}
	ae := func(m aeMsg) []byte { return m.encode() }
	sub := func(m subMsg) []byte { return m.encode() }
	var link [32]byte
	link[0] = 0x5a
	return map[string][][]byte{
		"FuzzDecodeLogRecord": {
			AppendLogRecord(nil, testLogRecord(3)),
			AppendLogRecord(nil, api.LogRecord{}),
			AppendLogRecord(nil, api.LogRecord{Seq: 1 << 40, Level: api.LevelError, Daemon: "inference-1", Text: "ünïcødé"}),
			{1, 0xff},
		},
		"FuzzDecodeFailureRecord": {
			AppendFailureRecord(nil, api.FailureRecord{Seq: 4, At: testT0, Node: 7, Source: "migration", Reason: "target refused"}),
			AppendFailureRecord(nil, api.FailureRecord{}),
			{1, 0, 0},
		},
		"FuzzDecodeAE": {
			ae(aeMsg{Type: aeDigestReq, ReqID: 1, From: 0, To: 1 << 48, Shift: 48}),
			ae(aeMsg{Type: aeDigestResp, ReqID: 2, From: 4096, To: 8192, Shift: 12, Buckets: []BucketDigest{{Start: 4096, Count: 3, XOR: [32]byte{9}}}}),
			ae(aeMsg{Type: aeIDsReq, ReqID: 3, From: 0, To: 10, After: &after}),
			ae(aeMsg{Type: aeIDsResp, ReqID: 4, More: true, IDs: []Position{after}}),
			ae(aeMsg{Type: aePullReq, ReqID: 5, IDs: []Position{after, after}}),
			ae(aeMsg{Type: aePullResp, ReqID: 6, Events: [][]byte{{1, 2, 3}, {4}}}),
			ae(aeMsg{Type: aeHint, Total: BucketDigest{Count: 9, XOR: [32]byte{7}}}),
			ae(aeMsg{Type: aePullAttReq, ReqID: 7, IDs: []Position{after}}),
			ae(aeMsg{Type: aePullAttResp, ReqID: 8, Events: [][]byte{{1, 2, 3}, {4}}, Attachments: [][]byte{{9, 9}, {}}}),
		},
		"FuzzDecodeSub": {
			sub(subMsg{Type: subLeaseLogs, Sub: 1, Resume: 9, Flags: subFlagRewind, Filter: api.LogFilter{MinLevel: api.LevelInfo, Node: 5, Daemon: "d", Match: "m"}}),
			sub(subMsg{Type: subLeaseFailures, Sub: 2, Resume: 1}),
			sub(subMsg{Type: subCancel, Sub: 3}),
			sub(subMsg{Type: subPushLogs, Sub: 4, Start: 1, From: 1, To: 9, Dropped: 3, Lagged: 1, Records: [][]byte{AppendLogRecord(nil, testLogRecord(1))}}),
			sub(subMsg{Type: subPushFailures, Sub: 5, Start: 2, From: 2, To: 3, Records: [][]byte{AppendFailureRecord(nil, api.FailureRecord{Seq: 2, Reason: "x"})}}),
		},
		"FuzzDecodeStored": {
			encodeEntry(1234, orderRecord{Pos: after, Link: link}.encode()),
			encodeEntry(99, AppendLogRecord(nil, testLogRecord(2))),
			encodeHead(Head{Count: 3, LastSeq: 3, Hash: link}),
			{0, 0, 0},
		},
	}
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("DECK_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set DECK_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	for name, seeds := range fuzzSeeds() {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, b := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestFuzzCorpusCommitted keeps the corpus and the seeds above in step.
func TestFuzzCorpusCommitted(t *testing.T) {
	for name, seeds := range fuzzSeeds() {
		ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		if err != nil || len(ents) < len(seeds) {
			t.Errorf("%s: %d corpus files for %d seeds (%v)", name, len(ents), len(seeds), err)
		}
	}
}
