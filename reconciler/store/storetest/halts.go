package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

var (
	haltKB1 = protocol.Halt{Update: "KB1", Ring: "canary", Reason: "1 of 2 failed"}
	haltKB2 = protocol.Halt{Update: "KB2", Ring: "pilot", Reason: "3 of 10 failed"}
)

// testRecordHalts: a halt is recorded and audited when it appears and a
// resume when it goes, once per change; the same halts again (a restart,
// another re-plan) record nothing; Halts reads back what is halted, and so
// does a restarted store.
func testRecordHalts(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	steps := []struct {
		name    string
		client  string
		halted  []protocol.Halt
		changed int
		want    map[string][]protocol.Halt
	}{
		{"two halts appear", "acme", []protocol.Halt{haltKB2, haltKB1}, 2, map[string][]protocol.Halt{"acme": {haltKB1, haltKB2}}},
		{"the same halts again change nothing", "acme", []protocol.Halt{haltKB1, haltKB2}, 0, map[string][]protocol.Halt{"acme": {haltKB1, haltKB2}}},
		{"a new reason is no new halt", "acme", []protocol.Halt{{Update: "KB1", Ring: "canary", Reason: "2 of 2 failed"}, haltKB2}, 0, map[string][]protocol.Halt{"acme": {haltKB1, haltKB2}}},
		{"another client's halt", "globex", []protocol.Halt{haltKB1}, 1, map[string][]protocol.Halt{"acme": {haltKB1, haltKB2}, "globex": {haltKB1}}},
		{"one resumed", "acme", []protocol.Halt{haltKB2}, 1, map[string][]protocol.Halt{"acme": {haltKB2}, "globex": {haltKB1}}},
		{"all resumed", "acme", nil, 1, map[string][]protocol.Halt{"globex": {haltKB1}}},
	}
	for i, st := range steps {
		n, err := db.RecordHalts(ctx, st.client, "rev", st.halted, t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if n != st.changed {
			t.Errorf("%s: %d audit entries, want %d", st.name, n, st.changed)
		}
		got, err := db.Halts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.want, got, equateEmpty); diff != "" {
			t.Errorf("%s: halts (-want +got):\n%s", st.name, diff)
		}
	}
	var got []string
	for _, e := range auditOf(t, db) {
		got = append(got, fmt.Sprintf("%s %s %s %s", e.Kind, e.Client, e.Revision, e.Detail))
	}
	want := []string{
		`halt acme rev {"update":"KB2","ring":"pilot","reason":"3 of 10 failed"}`,
		`halt acme rev {"update":"KB1","ring":"canary","reason":"1 of 2 failed"}`,
		`halt globex rev {"update":"KB1","ring":"canary","reason":"1 of 2 failed"}`,
		`resume acme rev {"update":"KB1","ring":"canary","reason":"1 of 2 failed"}`,
		`resume acme rev {"update":"KB2","ring":"pilot","reason":"3 of 10 failed"}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
	if _, err := db.RecordHalts(ctx, "acme", "rev", nil, time.Time{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("RecordHalts without a time = %v, want ErrInvalid", err)
	}

	if s.reopen == nil {
		return
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = s.reopen(t, db)
	halts, err := db.Halts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]protocol.Halt{"globex": {haltKB1}}, halts); diff != "" {
		t.Errorf("halts after a restart (-want +got):\n%s", diff)
	}
	if n, err := db.RecordHalts(ctx, "globex", "rev2", []protocol.Halt{haltKB1}, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("the first re-plan after a restart audited %d entries (%v), want none", n, err)
	}
}

// testConcurrentHalts: several writers (replicas, or re-plans racing)
// record the same halt of one client at once: it is stored and audited
// once.
func testConcurrentHalts(t *testing.T, s *suite) {
	const writers = 4
	hs := s.handles(t, writers)
	ctx := context.Background()
	changed := make([]int, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			n, err := hs[i].RecordHalts(ctx, "acme", "rev", []protocol.Halt{haltKB1, haltKB2}, t0)
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
			changed[i] = n
		})
	}
	wg.Wait()
	total := 0
	for _, n := range changed {
		total += n
	}
	if total != 2 {
		t.Errorf("the writers audited %v entries, %d in all; want 2 in all", changed, total)
	}
	halts := 0
	for _, e := range auditOf(t, hs[0]) {
		if e.Kind == protocol.AuditHalt {
			halts++
		}
	}
	if halts != 2 {
		t.Errorf("%d halt entries in the audit log, want 2", halts)
	}
}
