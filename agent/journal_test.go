package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

func TestJournalForgetsOnlyTheOldestAcknowledgedJobs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), journalDir)
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	j.keep = 2
	at := t0
	run := func(id string, ack bool) {
		t.Helper()
		at = at.Add(time.Minute)
		e := &entry{Job: id, Key: "key-" + id, StartedAt: at}
		if err := j.start(e); err != nil {
			t.Fatal(err)
		}
		if err := j.finish(e, protocol.ResultRequest{Job: id, IdempotencyKey: e.Key}, at); err != nil {
			t.Fatal(err)
		}
		if ack {
			if err := j.ack(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	run("job-1", true)
	run("job-2", false) // never acknowledged: must survive any pruning
	run("job-3", true)
	run("job-4", true)

	// A crash mid-write leaves a temp file; reopening ignores and removes it.
	if err := os.WriteFile(filepath.Join(dir, ".job-x.json.tmp-1"), []byte("{"), fileMode); err != nil {
		t.Fatal(err)
	}
	reopened, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var remembered []string
	for _, key := range []string{"key-job-1", "key-job-2", "key-job-3", "key-job-4"} {
		if reopened.byKey(key) != nil {
			remembered = append(remembered, key)
		}
	}
	if diff := cmp.Diff([]string{"key-job-2", "key-job-3", "key-job-4"}, remembered); diff != "" {
		t.Errorf("remembered keys (-want +got):\n%s", diff)
	}
	var pending []string
	for _, e := range reopened.pending() {
		pending = append(pending, e.Job)
	}
	if !slices.Equal(pending, []string{"job-2"}) {
		t.Errorf("outbox after reopen = %v, want [job-2]", pending)
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 {
		t.Errorf("journal holds %d files, want 3 (the temp file removed, job-1 forgotten)", len(names))
	}
}
