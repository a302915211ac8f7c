package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// crashChildEnv names the store file TestCrashChild writes to; it is set
// only in the child process TestKillDuringWrites starts.
const crashChildEnv = "PATCHLINE_STORE_CRASH_CHILD"

const (
	crashEndpoints = 5
	crashRounds    = 25 // rounds the parent waits for before kill -9
)

// TestCrashChild is the controller TestKillDuringWrites kills: round after
// round it plans one job per endpoint of acme, reports inventory and
// records the result of the previous round's first job, and after each
// round prints "committed N" (the round is acknowledged).
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("runs only as the child process of TestKillDuringWrites")
	}
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var prev []store.Job
	for r := 0; ; r++ {
		now := t0.Add(time.Duration(r) * time.Second)
		var jobs []store.Job
		for e := range crashEndpoints {
			jobs = append(jobs, newJob(fmt.Sprintf("ep-%d", e), "acme", fmt.Sprintf("round-%d/ep-%d", r, e), "KB1"))
		}
		created, err := db.CreateJobs(ctx, "acme", number(t, db, "acme", jobs), now)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.ReplaceInventory(ctx, report("ep-0", now, kb("KB1", false), kb("KB2", false))); err != nil {
			t.Fatal(err)
		}
		if prev != nil {
			if _, err := db.RecordResult(ctx, prev[0].ID, "ep-0", []store.UpdateResult{{Update: "KB1", Result: protocol.ResultFailed}}, now); err != nil {
				t.Fatal(err)
			}
		}
		prev = created
		fmt.Printf("committed %d\n", r)
	}
}

// TestKillDuringWrites kills a writing process with SIGKILL and checks that
// the store opens consistent: every acknowledged round is there in full and
// no round is there in part.
func TestKillDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "patchd.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	for e := range crashEndpoints {
		enroll(t, db, fmt.Sprintf("ep-%d", e), "acme")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// kill ends the child at once, as a crash would, and reaps it. It runs
	// when the test ends too, so a test that fails before the kill leaves
	// no child writing behind it.
	killed := false
	kill := func() error {
		if killed {
			return nil
		}
		killed = true
		err := cmd.Process.Kill()
		cmd.Wait() // the exit status is the kill
		return err
	}
	t.Cleanup(func() { _ = kill() })
	acked := -1
	sc := bufio.NewScanner(out)
	for acked < crashRounds && sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			if acked, err = strconv.Atoi(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := kill(); err != nil {
		t.Fatal(err)
	}
	if acked < crashRounds {
		t.Fatalf("child stopped after round %d before being killed", acked)
	}

	db, err = Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.read.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity check: %q, %v", check, err)
	}
	rows, err := db.read.Query(`SELECT substr(idempotency_key, 1, instr(idempotency_key, '/') - 1), count(*), max(seq)
		FROM jobs GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	rounds := map[string]int{}
	for rows.Next() {
		var round string
		var n, seq int
		if err := rows.Scan(&round, &n, &seq); err != nil {
			t.Fatal(err)
		}
		if n != crashEndpoints {
			t.Errorf("%s: %d of %d jobs stored: a client's plan was half written", round, n, crashEndpoints)
		}
		rounds[round] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for r := 0; r <= acked; r++ {
		if rounds[fmt.Sprintf("round-%d", r)] == 0 {
			t.Errorf("round %d was acknowledged but its jobs are lost", r)
		}
	}
	var attempts int
	if err := db.read.QueryRow(`SELECT count(*) FROM attempts`).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if attempts < acked {
		t.Errorf("%d attempts stored, want at least the %d acknowledged", attempts, acked)
	}
	// The restarted controller carries on: the next plan is numbered after
	// everything that was stored.
	var maxSeq int64
	if err := db.read.QueryRow(`SELECT max(seq) FROM jobs WHERE endpoint = 'ep-1'`).Scan(&maxSeq); err != nil {
		t.Fatal(err)
	}
	next := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "after-restart", "KB1"))
	if next[0].Seq != maxSeq+1 {
		t.Errorf("first job after restart got sequence %d, want %d", next[0].Seq, maxSeq+1)
	}
}
