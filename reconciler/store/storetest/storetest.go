// Package storetest is the contract of a controller store as a test suite:
// the invariants package store states and the behaviour the API and the
// controller rely on, run against any implementation with Run. The SQLite
// and the PostgreSQL stores both pass it, so the controller may use
// either.
//
// A store's own tests keep what only it has (SQLite's pragmas, writer
// batching and backups; PostgreSQL's migrations and collations).
package storetest

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Store is every store method the controller and the API call: the union
// of api.Store, the controller's revisionStore and replanStore, and what
// the controller itself calls (ExpireJobs, Close). Backup is here so a
// store that passes is known to have it; what it returns is the store's
// own business and is not tested.
type Store interface {
	endpointStore
	tokenStore
	enrollTokenStore
	Enroll(ctx context.Context, e store.Enrollment) error
	EndpointByID(ctx context.Context, id string) (store.Enrollment, error)
	ReplaceInventory(ctx context.Context, r store.Report) error
	Snapshot(ctx context.Context, now time.Time) (*protocol.Snapshot, error)
	ClientSnapshot(ctx context.Context, client string, now time.Time) (*protocol.Snapshot, error)
	EndpointSnapshot(ctx context.Context, id string, now time.Time) (*protocol.Endpoint, error)
	LastJobSeqs(ctx context.Context, client string) (map[string]int64, error)
	CreateJobs(ctx context.Context, client string, jobs []store.Job, now time.Time) ([]store.Job, error)
	DueJobs(ctx context.Context, endpoint string, now time.Time) ([]store.Job, error)
	LeaseJob(ctx context.Context, id string, until time.Time) error
	ExpireJobs(ctx context.Context, now time.Time) (int, error)
	RecordResult(ctx context.Context, jobID, endpoint string, results []store.UpdateResult, now time.Time) (store.Recorded, error)
	RaiseJobSeq(ctx context.Context, endpoint string, seq int64) error
	RecordRevisions(ctx context.Context, rs []store.Revision) error
	Revisions(ctx context.Context, refusedLimit int) (store.RevisionStatus, error)
	AppendAudit(ctx context.Context, e protocol.AuditEntry) error
	Audit(ctx context.Context, afterID int64, limit int) ([]protocol.AuditEntry, error)
	AuditFor(ctx context.Context, afterID int64, limit int, clients []string) ([]protocol.AuditEntry, error)
	Halts(ctx context.Context) (map[string][]protocol.Halt, error)
	RecordHalts(ctx context.Context, client, revision string, halted []protocol.Halt, at time.Time) (int, error)
	Backup(ctx context.Context) (io.ReadCloser, int64, error)
	Close() error
}

// endpointStore is how the admin API manages endpoints.
type endpointStore interface {
	Endpoints(ctx context.Context, clients []string) ([]store.EndpointRecord, error)
	RevokeEndpoint(ctx context.Context, id, by string, at time.Time) (store.Enrollment, error)
	DeleteEndpoint(ctx context.Context, id, by string, at time.Time) (store.Enrollment, error)
}

// tokenStore is how the admin API keeps its tokens.
type tokenStore interface {
	CreateToken(ctx context.Context, t store.Token) error
	Tokens(ctx context.Context) ([]store.Token, error)
	RevokeToken(ctx context.Context, name, by string, at time.Time) (store.Token, error)
	TokenUsed(ctx context.Context, name string, at time.Time) error
}

// An Option adds what a store can do beyond opening a new one.
type Option func(*suite)

// Reopen gives Run another handle on the store s keeps its records in
// (the same file, the same database), closed when the test ends: a
// restarted controller when s is closed first, a replica sharing the
// store when it is not. Without it the restart tests are skipped and the
// concurrency tests run on one handle.
func Reopen(fn func(t *testing.T, s Store) Store) Option {
	return func(s *suite) { s.reopen = fn }
}

// suite is what a run of the contract works with.
type suite struct {
	// open returns a new, empty store, closed when the test ends.
	open   func(t *testing.T) Store
	reopen func(t *testing.T, s Store) Store
}

// Run runs the contract against the stores open returns: a new, empty
// store for each test, closed by open's caller's cleanup (open registers
// it with t.Cleanup). Closing a store twice must be harmless.
func Run(t *testing.T, open func(t *testing.T) Store, opts ...Option) {
	s := &suite{open: open}
	for _, o := range opts {
		o(s)
	}
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *suite)
	}{
		{"Enroll", testEnroll},
		{"ReplaceInventory", testReplaceInventory},
		{"DuplicateReport", testDuplicateReport},
		{"RebootState", testRebootState},
		{"RollbackResult", testRollbackResult},
		{"JobNumbersFromTheFirstReportOnly", testJobSeqFromFirstReport},
		{"RefusalMovesJobNumbers", testRaiseJobSeq},
		{"Snapshot", testSnapshot},
		{"SnapshotSortsByBytes", testSnapshotSortsByBytes},
		{"RoundTrip", testRoundTrip},
		{"CreateJobs", testCreateJobs},
		{"CreateJobsAllOrNothing", testCreateJobsAllOrNothing},
		{"CreateJobsRefusesNumbersAnAgentHasSeen", testCreateJobsRefusesSeenNumbers},
		{"LeaseExpiryOffersJobAgain", testLeaseExpiry},
		{"ExpireJobs", testExpireJobs},
		{"RecordResult", testRecordResult},
		{"RecordUnknownResult", testRecordUnknownResult},
		{"Revisions", testRevisions},
		{"RevisionsEmpty", testRevisionsEmpty},
		{"RecordRevisionsAllOrNothing", testRecordRevisionsAllOrNothing},
		{"Audit", testAudit},
		{"AuditForClients", testAuditForClients},
		{"Tokens", testTokens},
		{"EnrollTokens", testEnrollTokens},
		{"EnrollWithToken", testEnrollWithToken},
		{"ConcurrentTokenUses", testConcurrentTokenUses},
		{"RevokeEndpoint", testRevokeEndpoint},
		{"DeleteEndpoint", testDeleteEndpoint},
		{"EndpointsOfClients", testEndpointsOfClients},
		{"RecordHalts", testRecordHalts},
		{"JobLife", testJobLife},
		{"Restart", testRestart},
		{"SecondHandleSeesAndRespectsTheFirst", testSecondHandle},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ConcurrentJobNumbers", testConcurrentJobNumbers},
		{"ConcurrentResults", testConcurrentResults},
		{"ConcurrentExpiry", testConcurrentExpiry},
		{"AuditPagingWhileAppending", testAuditPaging},
		{"ConcurrentHalts", testConcurrentHalts},
		{"AgentVersion", testAgentVersion},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, s) })
	}
}

// handles returns n handles on one new store: the first is new, the
// others reopen it (or are the first again, without Reopen).
func (s *suite) handles(t *testing.T, n int) []Store {
	t.Helper()
	first := s.open(t)
	hs := []Store{first}
	for len(hs) < n {
		if s.reopen == nil {
			hs = append(hs, first)
			continue
		}
		hs = append(hs, s.reopen(t, first))
	}
	return hs
}
