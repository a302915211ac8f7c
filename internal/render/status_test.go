package render

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

func TestStatus(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	st := &protocol.Status{
		Head:    "0123456789abcdef0123",
		Refused: &protocol.Refusal{Revision: "fedcba9876543210", Client: "globex", Reason: "invalid", Problems: []string{"clients/globex/policy.cue:3:1: bad"}, At: at},
		Revisions: []protocol.RevisionStatus{
			{Client: "acme", Applied: "0123456789abcdef0123", Attempted: "0123456789abcdef0123", AttemptStatus: "applied"},
			{Client: "globex", Applied: "aaaaaaaaaaaaaaaa", Attempted: "fedcba9876543210", AttemptStatus: "refused"},
		},
		Clients: []protocol.ClientStatus{
			{Client: "acme", Revision: "0123456789abcdef0123", Known: true, Endpoints: 4, Compliant: 3, Drifting: 1, Compliance: 0.75, Missing: 2, Unavailable: 1,
				Halted: []protocol.Halt{{Update: "KB5001", Ring: "pilot", Reason: "2 of 4 failed"}}},
			{Client: "globex", Revision: "aaaaaaaaaaaaaaaa", Known: true, Endpoints: 2, Compliant: 2, Compliance: 1,
				Error: "store jobs: database or disk is full", ErrorAt: at},
			{Client: "ghost", Endpoints: 1},
			{Client: "initech", Revision: "bbbbbbbbbbbbbbbb", Known: true, Endpoints: 3,
				Refused: []string{"clients/initech/policy.cue:1:1: evaluation exceeded 10s; simplify comprehensions and disjunctions"}},
		},
	}
	var b strings.Builder
	if err := Status(&b, st); err != nil {
		t.Fatal(err)
	}
	want := `Branch head:   0123456789ab
Last refused:  fedcba987654 (client globex, invalid) at 2026-11-30T09:00:00Z
                 clients/globex/policy.cue:3:1: bad

CLIENT   REVISION                         ENDPOINTS  COMPLIANT  DRIFTING  STALE  COMPLIANCE  MISSING  UNAVAILABLE  HALTED
acme     0123456789ab                     4          3          1         0      75.0%       2        1            1
globex   aaaaaaaaaaaa (newer refused)     2          2          0         0      100.0%      0        0            0
ghost    (not in repo)                    1          0          0         0      0.0%        0        0            0
initech  bbbbbbbbbbbb (refused at start)  3          0          0         0      0.0%        0        0            0

REFUSED AT START (the revision last applied could not be evaluated again; no new jobs until a commit loads)
CLIENT   REVISION      PROBLEM
initech  bbbbbbbbbbbb  clients/initech/policy.cue:1:1: evaluation exceeded 10s; simplify comprehensions and disjunctions

RE-PLAN FAILING (retried with a backoff; figures are from the last good re-plan)
CLIENT  SINCE                 ERROR
globex  2026-11-30T09:00:00Z  store jobs: database or disk is full

HALTED ROLLOUTS (a commit with a resume entry lifts them)
CLIENT  RING   UPDATE  WHY
acme    pilot  KB5001  2 of 4 failed
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("status text (-want +got):\n%s", diff)
	}
}

// TestStatusStoreAndPending: a store that fails its writes, one that
// recovered, and a head the controller could not record yet.
func TestStatusStoreAndPending(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	pending := &protocol.PendingRevision{Revision: "fedcba9876543210", Error: "could not record: database or disk is full (13)", Since: at, Attempts: 3, NextAttempt: at.Add(800 * time.Millisecond)}
	tests := []struct {
		name    string
		pending *protocol.PendingRevision
		store   protocol.StoreHealth
		want    string
	}{
		{name: "a healthy store says nothing", want: "Branch head:  0123456789ab\n"},
		{
			name: "writes failing, a head pending", pending: pending,
			store: protocol.StoreHealth{Failing: true, FailingSince: at, LastError: "store jobs: database or disk is full (13)", LastErrorOp: "jobs", LastErrorAt: at.Add(time.Minute)},
			want: `Branch head:       0123456789ab
Pending revision:  fedcba987654: could not record: database or disk is full (13) (since 2026-11-30T09:00:00Z, 3 attempts; retrying at 2026-11-30T09:00:00Z)
Store:             WRITES FAILING since 2026-11-30T09:00:00Z (/readyz answers 503); last failed write: jobs at 2026-11-30T09:01:00Z: store jobs: database or disk is full (13)
`,
		},
		{
			name:  "the store recovered",
			store: protocol.StoreHealth{LastError: "database or disk is full (13)", LastErrorOp: "report", LastErrorAt: at, RecoveredAt: at.Add(time.Hour)},
			want: `Branch head:  0123456789ab
Store:        ok since 2026-11-30T10:00:00Z; last failed write: report at 2026-11-30T09:00:00Z: database or disk is full (13)
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := Status(&b, &protocol.Status{Head: "0123456789abcdef0123", Pending: tt.pending, Store: tt.store}); err != nil {
				t.Fatal(err)
			}
			head, _, _ := strings.Cut(b.String(), "\n\nCLIENT")
			if diff := cmp.Diff(tt.want, head+"\n"); diff != "" {
				t.Errorf("status text (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStatusReplicas: which replica answered, and which leads.
func TestStatusReplicas(t *testing.T) {
	tests := []struct {
		name, replica, leader, want string
	}{
		{name: "a single patchd says nothing", want: "Branch head:  0123456789ab\n"},
		{name: "the leader", replica: "pd-a", leader: "pd-a", want: "Replica:      pd-a (leads: follows the fleet repo and plans)\nBranch head:  0123456789ab\n"},
		{name: "a follower names the leader", replica: "pd-b", leader: "pd-a",
			want: "Replica:      pd-b (follows pd-a: ask pd-a for the current head and client figures)\nBranch head:  0123456789ab\n"},
		{name: "between leaders", replica: "pd-b",
			want: "Replica:      pd-b (follows; no replica leads now, one takes over within seconds)\nBranch head:  0123456789ab\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := Status(&b, &protocol.Status{Head: "0123456789abcdef0123", Replica: tt.replica, Leader: tt.leader}); err != nil {
				t.Fatal(err)
			}
			head, _, _ := strings.Cut(b.String(), "\n\nCLIENT")
			if diff := cmp.Diff(tt.want, head+"\n"); diff != "" {
				t.Errorf("status text (-want +got):\n%s", diff)
			}
		})
	}
}
