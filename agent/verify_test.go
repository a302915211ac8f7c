package agent

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
)

// FuzzVerifyJob feeds arbitrary payload and signature bytes through the
// job verification path: it must never panic, and must never accept a job
// that is not for this endpoint.
func FuzzVerifyJob(f *testing.F) {
	seed := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := seed.Public().(ed25519.PublicKey)
	valid, err := protocol.SignJob(seed, job("ep-1", "job-1", 3, "openssl@3.0.15-1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid.Payload, valid.Signature)
	f.Add([]byte(`{"id":"job-2","endpoint":"ep-1"}`), valid.Signature)
	f.Add([]byte(`not json`), []byte{})
	f.Add([]byte{}, make([]byte, ed25519.SignatureSize))
	f.Fuzz(func(t *testing.T, payload, sig []byte) {
		sj := protocol.SignedJob{Payload: payload, Signature: sig}
		p, err := verifyJob(pub, "ep-1", sj)
		if err != nil {
			if len(p.ID) > maxJobIDLen {
				t.Fatalf("refusal addressed to a %d-byte job id", len(p.ID))
			}
			return
		}
		if p.Endpoint != "ep-1" || p.IdempotencyKey == "" || p.ID == "" {
			t.Fatalf("accepted job %+v", p)
		}
		_ = checkFresh(p, 2, t0.Add(time.Hour))
	})
}
