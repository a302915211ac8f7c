package sqlite_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/sqlite"
	"github.com/patchline/patchline/schema"
)

// A job's life: an endpoint enrolls and reports, the controller plans a job
// for it, the agent picks the job up and answers; the answer shows in the
// next snapshot.
func Example() {
	dir, err := os.MkdirTemp("", "patchd")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC)

	db, err := sqlite.Open(ctx, filepath.Join(dir, "patchd.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	err = db.Enroll(ctx, store.Enrollment{ID: "ep-1", Client: "acme", Hostname: "reception-pc", NodeKeyHash: []byte("…"), EnrolledAt: now})
	if err != nil {
		log.Fatal(err)
	}
	err = db.ReplaceInventory(ctx, store.Report{
		Endpoint: "ep-1", Hostname: "reception-pc", OS: protocol.OS{Family: "windows"}, At: now,
		Updates: []*protocol.Update{{ID: "KB5001", Source: "windows-update", Category: "security"}},
	})
	if err != nil {
		log.Fatal(err)
	}

	// The controller numbers each job above what its endpoint has seen and
	// signs it before storing it.
	last, err := db.LastJobSeqs(ctx, "acme")
	if err != nil {
		log.Fatal(err)
	}
	planned := store.Job{Job: plan.Job{
		Endpoint: "ep-1", Ring: "broad", Updates: []string{"KB5001"}, NotAfter: now.Add(4 * time.Hour),
		Reboot: schema.RebootIfRequired, Revision: "c0ffee", IdempotencyKey: "ep-1/KB5001/c0ffee",
	}}
	planned.ID, planned.Seq = "job-1", last["ep-1"]+1
	planned.Payload, planned.Signature = []byte(planned.ID), []byte("signature")
	if _, err := db.CreateJobs(ctx, "acme", []store.Job{planned}, now); err != nil {
		log.Fatal(err)
	}
	// Planning the same job again stores nothing new.
	again, err := db.CreateJobs(ctx, "acme", []store.Job{planned}, now)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created again:", len(again))

	due, err := db.DueJobs(ctx, "ep-1", now.Add(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	job := due[0]
	fmt.Println("due:", job.Seq, job.Updates)
	if err := db.LeaseJob(ctx, job.ID, now.Add(10*time.Minute)); err != nil {
		log.Fatal(err)
	}
	result := []store.UpdateResult{{Update: "KB5001", Result: protocol.ResultSucceeded, At: now.Add(5 * time.Minute)}}
	for range 2 { // the agent's outbox sends the result twice
		rec, err := db.RecordResult(ctx, job.ID, "ep-1", result, now.Add(6*time.Minute))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("duplicate:", rec.Duplicate)
	}

	ep, err := db.EndpointSnapshot(ctx, "ep-1", now.Add(7*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	u := ep.Updates[0]
	fmt.Println(u.ID, "installed:", u.Installed, "at", u.InstalledAt.Format(time.Kitchen), "attempts:", len(u.Attempts))
	// Output:
	// created again: 0
	// due: 1 [KB5001]
	// duplicate: false
	// duplicate: true
	// KB5001 installed: true at 10:05PM attempts: 1
}
