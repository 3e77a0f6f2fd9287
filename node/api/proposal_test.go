package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func testSig(id NodeID, b byte) Signature {
	return Signature{Operator: id, Sig: bytes.Repeat([]byte{b}, 64)}
}

// Files as the two writers before the shared codec wrote them (the TUI's
// widgets.ProposalFile and the CLI's writeProposal wrote the same lines:
// header, base64 payload, one signature line each) still read.
func TestProposalFileReadsOldWriters(t *testing.T) {
	ice := []byte(ICEPayloadPrefix + "\x00\x01payload")
	admin := []byte(AdminPayloadPrefix + "\x02body")
	sig := testSig(0x1122334455667788, 7)
	line := "deck-sig:1122334455667788:" + base64.StdEncoding.EncodeToString(sig.Sig)
	for _, tc := range []struct {
		name, file string
		payload    []byte
		group      string
	}{
		{"tui ice export", "deck-ice-proposal-v1\n" + base64.StdEncoding.EncodeToString(ice) + "\n" + line + "\n", ice, "ice"},
		{"cli admin sign-only", "deck-admin-proposal-v1\n" + base64.StdEncoding.EncodeToString(admin) + "\n" + line + "\n", admin, "admin"},
		{"hand edited", "\n  deck-ice-proposal-v1  \r\n\n" + base64.StdEncoding.EncodeToString(ice) + "\n\n  " + line + "\t\n", ice, "ice"},
	} {
		p, err := ParseProposalFile([]byte(tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(p.Payload, tc.payload) || p.Group() != tc.group || len(p.Sigs) != 1 || p.Sigs[0].Operator != sig.Operator || !bytes.Equal(p.Sigs[0].Sig, sig.Sig) {
			t.Fatalf("%s: read %+v", tc.name, p)
		}
		if tc.name != "hand edited" && string(p.Marshal()) != tc.file {
			t.Fatalf("%s: rewritten as\n%q\nwant\n%q", tc.name, p.Marshal(), tc.file)
		}
	}
}

func TestProposalFileRoundTrip(t *testing.T) {
	for _, payload := range [][]byte{[]byte(ICEPayloadPrefix + "x"), []byte(AdminPayloadPrefix + "y")} {
		in := ProposalFile{Payload: payload, Sigs: []Signature{testSig(1, 1), testSig(0xffffffffffffffff, 2)}}
		out, err := ParseProposalFile(in.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Payload, in.Payload) || len(out.Sigs) != 2 || out.Sigs[1].Operator != in.Sigs[1].Operator {
			t.Fatalf("round trip %+v → %+v", in, out)
		}
	}
}

func TestProposalFileRefuses(t *testing.T) {
	ice64 := base64.StdEncoding.EncodeToString([]byte(ICEPayloadPrefix + "x"))
	adm64 := base64.StdEncoding.EncodeToString([]byte(AdminPayloadPrefix + "x"))
	for _, bad := range []string{
		"", "deck-ice-proposal-v1\n", "nope\nAAAA\n", "deck-ice-proposal-v1\n!!!\n",
		"deck-ice-proposal-v1\n" + ice64 + "\ndeck-sig:zz\n",
		"deck-admin-proposal-v1\n" + ice64 + "\n", // ICE payload under an admin header
		"deck-ice-proposal-v1\n" + adm64 + "\n",   // and the reverse
		"deck-ice-proposal-v1\n" + base64.StdEncoding.EncodeToString([]byte("other")) + "\n",
		"deck-ice-proposal-v1\n" + ice64 + "\n" + strings.Repeat(FormatSignature(testSig(1, 1))+"\n", MaxProposalSignatures+1),
		strings.Repeat("x", MaxProposalFileBytes+1),
	} {
		_, err := ParseProposalFile([]byte(bad))
		if err == nil {
			t.Errorf("accepted %.60q", bad)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("%.60q: %v does not match ErrInvalid", bad, err)
		}
	}
}

func TestSignatureLine(t *testing.T) {
	s := testSig(0x0a0b0c0d01020304, 9)
	got, err := ParseSignature("  " + FormatSignature(s) + "\n")
	if err != nil || got.Operator != s.Operator || !bytes.Equal(got.Sig, s.Sig) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "deck-sig:", "deck-sig:0000000000000000:" + base64.StdEncoding.EncodeToString(s.Sig),
		"deck-sig:0a0b0c0d01020304:AAAA", "sig:0a0b0c0d01020304:AAAA", "deck-sig:0a0b:AAAA", strings.Repeat("a", MaxSignatureTextBytes+1)} {
		if _, err := ParseSignature(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%.40q: %v", bad, err)
		}
	}
}

// FuzzProposalFile: any input either fails with ErrInvalid or reads into a
// file that writes back to something reading the same.
func FuzzProposalFile(f *testing.F) {
	f.Add(ProposalFile{Payload: []byte(ICEPayloadPrefix + "p"), Sigs: []Signature{testSig(3, 3)}}.Marshal())
	f.Add(ProposalFile{Payload: []byte(AdminPayloadPrefix + "q")}.Marshal())
	f.Add([]byte("deck-ice-proposal-v1\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProposalFile(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		again, err := ParseProposalFile(p.Marshal())
		if err != nil {
			t.Fatalf("re-reading what it wrote: %v", err)
		}
		if !bytes.Equal(again.Payload, p.Payload) || len(again.Sigs) != len(p.Sigs) || again.Group() != p.Group() {
			t.Fatalf("round trip changed %+v into %+v", p, again)
		}
		for i := range p.Sigs {
			if again.Sigs[i].Operator != p.Sigs[i].Operator || !bytes.Equal(again.Sigs[i].Sig, p.Sigs[i].Sig) {
				t.Fatalf("signature %d changed", i)
			}
		}
	})
}
