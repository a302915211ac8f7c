package reconciler

import (
	"context"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// FailStoreWrites puts a store wrapper under c's store: while fail
// returns an error, every write fails with it before reaching the store,
// as writes do on a full disk. Call it before Run.
func FailStoreWrites(c *Controller, fail func() error) {
	c.store.controllerStore = &writeFailingStore{controllerStore: c.store.controllerStore, fail: fail}
}

type writeFailingStore struct {
	controllerStore
	fail func() error
}

func (s *writeFailingStore) Enroll(ctx context.Context, e store.Enrollment) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.controllerStore.Enroll(ctx, e)
}

func (s *writeFailingStore) ReplaceInventory(ctx context.Context, r store.Report) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.controllerStore.ReplaceInventory(ctx, r)
}

func (s *writeFailingStore) LeaseJob(ctx context.Context, id string, until time.Time) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.controllerStore.LeaseJob(ctx, id, until)
}

func (s *writeFailingStore) RecordResult(ctx context.Context, jobID, endpoint string, results []store.UpdateResult, now time.Time) (store.Recorded, error) {
	if err := s.fail(); err != nil {
		return store.Recorded{}, err
	}
	return s.controllerStore.RecordResult(ctx, jobID, endpoint, results, now)
}

func (s *writeFailingStore) RaiseJobSeq(ctx context.Context, endpoint string, seq int64) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.controllerStore.RaiseJobSeq(ctx, endpoint, seq)
}

func (s *writeFailingStore) CreateJobs(ctx context.Context, client string, jobs []store.Job, now time.Time) ([]store.Job, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.controllerStore.CreateJobs(ctx, client, jobs, now)
}

func (s *writeFailingStore) ExpireJobs(ctx context.Context, now time.Time) (int, error) {
	if err := s.fail(); err != nil {
		return 0, err
	}
	return s.controllerStore.ExpireJobs(ctx, now)
}

func (s *writeFailingStore) RecordRevisions(ctx context.Context, rs []store.Revision) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.controllerStore.RecordRevisions(ctx, rs)
}

func (s *writeFailingStore) RecordHalts(ctx context.Context, client, revision string, halted []protocol.Halt, at time.Time) (int, error) {
	if err := s.fail(); err != nil {
		return 0, err
	}
	return s.controllerStore.RecordHalts(ctx, client, revision, halted, at)
}
