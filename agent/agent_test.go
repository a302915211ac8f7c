package agent

import (
	"context"
	"crypto/ed25519"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"net/http"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/buildinfo"
	"github.com/patchline/patchline/protocol"
)

func TestEnrollOnceAndRestartReusesIdentity(t *testing.T) {
	h := newHarness(t)
	// The first answer is lost after the controller enrolled the agent: the
	// retry must present the same instance id and node key and get the
	// same endpoint back.
	h.fc.lostEnrollAnswer = true
	a := h.enrolled(t)
	if a.id.Endpoint != "ep-1" {
		t.Fatalf("endpoint = %q, want ep-1", a.id.Endpoint)
	}
	if got := len(h.fc.endpoints); got != 1 {
		t.Fatalf("controller made %d endpoints, want 1 (enrollment must be idempotent)", got)
	}

	restarted := h.enrolled(t)
	if diff := cmp.Diff(a.id, restarted.id); diff != "" {
		t.Errorf("identity after restart differs (-first +restart):\n%s", diff)
	}
	h.fc.mu.Lock()
	enrolls := h.fc.enrolls
	h.fc.mu.Unlock()
	if enrolls != 2 {
		t.Errorf("controller saw %d enroll requests, want 2 (one lost answer, one retry, none after restart)", enrolls)
	}

	info, err := os.Stat(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != dirMode {
		t.Errorf("state dir mode = %v, want %v", perm, dirMode)
	}
	for _, name := range []string{identityFile} {
		info, err := os.Stat(filepath.Join(h.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != fileMode {
			t.Errorf("%s mode = %v, want %v", name, perm, fileMode)
		}
	}
}

func TestEnrollRefusedSecretIsFinal(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.EnrollSecret = "wrong"
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(t.Context())
	if errorCode(err) != protocol.CodeUnauthorized {
		t.Fatalf("Run with a wrong secret = %v, want an unauthorized error", err)
	}
	requests, _, _, _ := h.fc.snapshot()
	if len(requests) != 1 {
		t.Errorf("controller saw %d requests, want 1: a 401 is not retried", len(requests))
	}
}

func TestStateDirOfAnotherClientIsRefused(t *testing.T) {
	h := newHarness(t)
	h.enrolled(t)
	cfg := h.config()
	cfg.Client = "globex"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), `belongs to client "acme"`) {
		t.Fatalf("New with another client = %v, want a refusal naming the enrolled client", err)
	}
}

func TestJobSafety(t *testing.T) {
	_, otherPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		lastSeq int64
		// make builds the delivered job from a valid payload signed by the
		// controller.
		make      func(fc *fakeController, p protocol.JobPayload) protocol.SignedJob
		edit      func(p *protocol.JobPayload)
		wantRun   bool
		wantWhy   string
		wantSeq   int64
		wantTrust bool
		// wantReport: the agent reports its inventory (with the highest
		// job sequence it has seen) after the job.
		wantReport bool
	}{
		{
			name:    "valid job runs",
			make:    func(fc *fakeController, p protocol.JobPayload) protocol.SignedJob { return fc.sign(p) },
			wantRun: true, wantSeq: 5, wantReport: true,
		},
		{
			name: "payload altered after signing is refused",
			make: func(fc *fakeController, p protocol.JobPayload) protocol.SignedJob {
				sj := fc.sign(p)
				sj.Payload = []byte(strings.Replace(string(sj.Payload), "openssl", "opensss", 1))
				return sj
			},
			wantWhy: "signature does not verify", wantSeq: 0,
		},
		{
			name: "flipped byte in the signature is refused",
			make: func(fc *fakeController, p protocol.JobPayload) protocol.SignedJob {
				sj := fc.sign(p)
				sj.Signature[7] ^= 0x01
				return sj
			},
			wantWhy: "signature does not verify", wantSeq: 0,
		},
		{
			name: "job signed by another controller key is refused",
			make: func(fc *fakeController, p protocol.JobPayload) protocol.SignedJob {
				sj, err := protocol.SignJob(otherPriv, p)
				if err != nil {
					t.Fatal(err)
				}
				return sj
			},
			wantWhy: "signature does not verify", wantSeq: 0,
		},
		{
			name:    "job for another endpoint is refused and does not move the sequence",
			make:    func(fc *fakeController, p protocol.JobPayload) protocol.SignedJob { return fc.sign(p) },
			edit:    func(p *protocol.JobPayload) { p.Endpoint = "ep-2"; p.Seq = 900 },
			wantWhy: `job is for endpoint "ep-2"`, wantSeq: 0, wantTrust: true,
		},
		{
			name:    "replayed job with an old sequence number is refused",
			lastSeq: 5,
			make:    func(fc *fakeController, p protocol.JobPayload) protocol.SignedJob { return fc.sign(p) },
			wantWhy: "sequence 5 is not above 5", wantSeq: 5, wantTrust: true, wantReport: true,
		},
		{
			name:    "job whose window has ended is refused",
			make:    func(fc *fakeController, p protocol.JobPayload) protocol.SignedJob { return fc.sign(p) },
			edit:    func(p *protocol.JobPayload) { p.NotAfter = t0.Add(-time.Minute) },
			wantWhy: "job expired at 2026-03-10T21:59:00Z", wantSeq: 5, wantTrust: true,
		},
		{
			name:    "job without an idempotency key is refused",
			make:    func(fc *fakeController, p protocol.JobPayload) protocol.SignedJob { return fc.sign(p) },
			edit:    func(p *protocol.JobPayload) { p.IdempotencyKey = "" },
			wantWhy: "no idempotency key", wantSeq: 0, wantTrust: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			a := h.enrolled(t)
			if tt.lastSeq != 0 {
				if err := a.storeSeq(tt.lastSeq); err != nil {
					t.Fatal(err)
				}
			}
			p := job(a.id.Endpoint, "job-1", 5, "openssl@3.0.15-1")
			if tt.edit != nil {
				tt.edit(&p)
			}
			if err := a.handle(t.Context(), tt.make(h.fc, p)); err != nil {
				t.Fatalf("handle: %v", err)
			}

			if got, want := h.be.installCount("openssl@3.0.15-1"), map[bool]int{true: 1}[tt.wantRun]; got != want {
				t.Errorf("installs = %d, want %d", got, want)
			}
			_, _, _, results := h.fc.snapshot()
			got, ok := results["job-1"]
			if !ok {
				t.Fatal("controller got no result for the job")
			}
			if tt.wantRun {
				want := protocol.ResultRequest{Job: "job-1", IdempotencyKey: "key-job-1", Updates: []protocol.UpdateResult{{
					Update: "openssl@3.0.15-1", Result: protocol.ResultSucceeded, Output: "Setting up openssl", At: t0,
				}}, JobSeq: 5}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
			} else {
				if !got.Refused || !strings.Contains(got.Reason, tt.wantWhy) {
					t.Errorf("result = refused %v, reason %q; want refused with %q", got.Refused, got.Reason, tt.wantWhy)
				}
				if got.JobSeq != tt.wantSeq {
					t.Errorf("refusal carries job sequence %d, want the highest seen, %d", got.JobSeq, tt.wantSeq)
				}
				// Only a verified payload's updates are echoed, as refused.
				if trusted := len(got.Updates) == 1 && got.Updates[0].Result == protocol.ResultRefused; trusted != tt.wantTrust {
					t.Errorf("refusal carries updates %+v; want them only from a verified payload (%v)", got.Updates, tt.wantTrust)
				}
			}
			var s seqState
			if _, err := readJSON(h.dir, seqFile, &s); err != nil {
				t.Fatal(err)
			}
			if s.Seq != tt.wantSeq || a.seq != tt.wantSeq {
				t.Errorf("stored sequence = %d (in memory %d), want %d", s.Seq, a.seq, tt.wantSeq)
			}
			if n := len(a.journal.pending()); n != 0 {
				t.Errorf("%d results left in the outbox after the controller acknowledged", n)
			}
			_, reports, _, _ := h.fc.snapshot()
			if tt.wantReport {
				if len(reports) == 0 || reports[len(reports)-1].JobSeq != tt.wantSeq {
					t.Errorf("reports after the job: %d, the last with job sequence %v; want one with %d",
						len(reports), lastJobSeq(reports), tt.wantSeq)
				}
			}
		})
	}
}

// lastJobSeq is the JobSeq of the last report, or "none".
func lastJobSeq(reports []protocol.Report) any {
	if len(reports) == 0 {
		return "none"
	}
	return reports[len(reports)-1].JobSeq
}

func TestRedeliveredJobIsAnsweredFromTheRecord(t *testing.T) {
	h := newHarness(t)
	a := h.enrolled(t)
	sj := h.fc.sign(job(a.id.Endpoint, "job-1", 1, "openssl@3.0.15-1"))
	if err := a.handle(t.Context(), sj); err != nil {
		t.Fatal(err)
	}
	// The controller lost our result and delivers the same job again: to
	// this process and, later, to a restarted one.
	if err := a.handle(t.Context(), sj); err != nil {
		t.Fatal(err)
	}
	if err := h.enrolled(t).handle(t.Context(), sj); err != nil {
		t.Fatal(err)
	}
	if n := h.be.installCount("openssl@3.0.15-1"); n != 1 {
		t.Errorf("installed %d times, want once", n)
	}
	_, _, posts, results := h.fc.snapshot()
	if len(posts) != 3 {
		t.Errorf("result posted %d times, want 3 (the run and two re-sends)", len(posts))
	}
	for _, p := range posts {
		if diff := cmp.Diff(results["job-1"], p); diff != "" {
			t.Errorf("re-sent result differs from the first (-first +re-sent):\n%s", diff)
		}
	}
}

func TestOutboxDeliversExactlyOnceAcrossRestart(t *testing.T) {
	tests := []struct {
		name string
		// breakDelivery makes the first run's result delivery fail.
		breakDelivery func(fc *fakeController)
	}{
		{
			name: "controller down while sending",
			breakDelivery: func(fc *fakeController) {
				fc.failNext("POST "+protocol.ResultPath("job-1"), 503, 503, 503)
			},
		},
		{
			name: "controller recorded the result but the acknowledgement was lost",
			breakDelivery: func(fc *fakeController) {
				fc.lostAcks = 3
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			a := h.enrolled(t)
			tt.breakDelivery(h.fc)
			var onDisk []*entry
			h.fc.onRequest = func(r *http.Request) {
				if !strings.HasSuffix(r.URL.Path, "/result") {
					return
				}
				// Whatever reaches the controller must already be on disk.
				j, err := openJournal(filepath.Join(h.dir, journalDir))
				if err != nil {
					t.Error(err)
					return
				}
				onDisk = j.pending()
			}
			if err := a.handle(t.Context(), h.fc.sign(job(a.id.Endpoint, "job-1", 1, "openssl@3.0.15-1"))); err != nil {
				t.Fatal(err)
			}
			if len(onDisk) != 1 || onDisk[0].Job != "job-1" || onDisk[0].Result == nil {
				t.Fatalf("outbox on disk while sending = %v, want job-1's result", onDisk)
			}
			if n := len(a.journal.pending()); n != 1 {
				t.Fatalf("outbox holds %d results after a failed delivery, want 1", n)
			}
			h.fc.mu.Lock()
			h.fc.onRequest = nil
			before := len(h.fc.requests)
			h.fc.mu.Unlock()

			// The agent restarts (new process, same state dir) with the
			// controller back.
			restarted := h.agent(t)
			runAgent(t, restarted, h.fc, func() bool {
				requests, _, _, _ := h.fc.snapshot()
				return slices.Contains(requests[before:], "GET "+protocol.PathJobs)
			})

			requests, _, _, results := h.fc.snapshot()
			if first := requests[before]; first != "POST "+protocol.ResultPath("job-1") {
				t.Errorf("first request after restart = %q, want the pending result", first)
			}
			if n := h.be.installCount("openssl@3.0.15-1"); n != 1 {
				t.Errorf("installed %d times, want once", n)
			}
			if len(results) != 1 || results["job-1"].Updates[0].Result != protocol.ResultSucceeded {
				t.Errorf("controller recorded %v, want one succeeded result for job-1", results)
			}
			if n := len(restarted.journal.pending()); n != 0 {
				t.Errorf("outbox holds %d results after delivery, want 0", n)
			}
		})
	}
}

// TestStopDuringInstallIsReportedNotRerun is the sequence after the agent
// stopped in the middle of an install: on restart it reports its inventory
// before anything else, then sends the interrupted job's result with
// every outcome unknown and the number of that report, and installs
// nothing again, not even when the controller re-delivers the job.
func TestStopDuringInstallIsReportedNotRerun(t *testing.T) {
	report, result, poll := "POST "+protocol.PathReport, "POST "+protocol.ResultPath("job-1"), "GET "+protocol.PathJobs
	tests := []struct {
		name  string
		setup func(fc *fakeController)
		// requests is the order of the first requests after the restart.
		requests []string
		// want is the result of each update the controller records;
		// wantError part of its error; inventorySeq is true when the
		// result names the report sent after the restart.
		want         protocol.Result
		wantError    string
		inventorySeq bool
		posts        int
	}{
		{
			name:     "the inventory first, then the unknown outcome naming it",
			requests: []string{report, result, poll},
			want:     protocol.ResultUnknown, wantError: "interrupted: the agent stopped while installing", inventorySeq: true, posts: 1,
		},
		{
			name:     "the inventory does not get through: the outcome goes without it, and the inventory again after",
			setup:    func(fc *fakeController) { fc.failNext(report, 400) },
			requests: []string{report, result, report, poll},
			want:     protocol.ResultUnknown, wantError: "interrupted: the agent stopped while installing", inventorySeq: false, posts: 1,
		},
		{
			name:     "a controller older than the unknown outcome gets it as failed",
			setup:    func(fc *fakeController) { fc.before = true },
			requests: []string{report, result, result, poll},
			want:     protocol.ResultFailed, wantError: "outcome is unknown", inventorySeq: false, posts: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			a := h.enrolled(t)
			p := job(a.id.Endpoint, "job-1", 1, "openssl@3.0.15-1", "libssl3@3.0.15-1")
			// What handle leaves on disk when the process dies inside Install.
			if err := a.storeSeq(p.Seq); err != nil {
				t.Fatal(err)
			}
			if err := a.journal.start(&entry{Job: p.ID, Key: p.IdempotencyKey, Seq: p.Seq, Updates: p.Updates, StartedAt: t0}); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(h.fc)
			}
			h.fc.mu.Lock()
			before := len(h.fc.requests)
			h.fc.mu.Unlock()

			restarted := h.agent(t)
			runAgent(t, restarted, h.fc, func() bool {
				requests, _, _, _ := h.fc.snapshot()
				return slices.Contains(requests[before:], poll)
			})
			requests, reports, posts, results := h.fc.snapshot()
			if diff := cmp.Diff(tt.requests, requests[before:before+len(tt.requests)]); diff != "" {
				t.Errorf("requests after the restart (-want +got):\n%s", diff)
			}
			got := results["job-1"]
			if len(got.Updates) != 2 {
				t.Fatalf("result = %+v, want both updates", got)
			}
			for _, u := range got.Updates {
				if u.Result != tt.want || !strings.Contains(u.Error, tt.wantError) {
					t.Errorf("update %s = %s %q, want %s with an error containing %q", u.Update, u.Result, u.Error, tt.want, tt.wantError)
				}
			}
			var first int64
			if len(reports) > 0 {
				first = reports[0].Seq
			}
			if tt.inventorySeq && (got.InventorySeq == 0 || got.InventorySeq != first) {
				t.Errorf("result names inventory report %d, want %d, the report sent after the restart", got.InventorySeq, first)
			}
			if !tt.inventorySeq && got.InventorySeq != 0 {
				t.Errorf("result names inventory report %d, want none", got.InventorySeq)
			}
			if len(posts) != tt.posts {
				t.Errorf("result posted %d times, want %d", len(posts), tt.posts)
			}

			// The controller re-delivers the job it never got a result for:
			// answered from the record.
			if err := restarted.handle(t.Context(), h.fc.sign(p)); err != nil {
				t.Fatal(err)
			}
			if _, _, after, _ := h.fc.snapshot(); len(after) == len(posts) {
				t.Error("the re-delivered job was not answered")
			}
			for _, u := range []string{"openssl@3.0.15-1", "libssl3@3.0.15-1"} {
				if n := h.be.installCount(u); n != 0 {
					t.Errorf("%s installed %d times after restart, want 0: an interrupted install is not re-run blindly", u, n)
				}
			}
			if n := len(restarted.journal.pending()); n != 0 {
				t.Errorf("outbox holds %d results, want 0", n)
			}
		})
	}
}

func TestRebootPolicies(t *testing.T) {
	shutdown := []string{"shutdown", "-r", "+1"}
	tests := []struct {
		name       string
		policy     string
		deadline   string
		pending    bool
		installFor time.Duration
		want       [][]string
		wantLog    string
	}{
		{name: "never reboots even when one is pending", policy: rebootNever, pending: true},
		{name: "if required and one is pending reboots", policy: rebootIfRequired, pending: true, want: [][]string{shutdown}},
		{name: "if required and none is pending does nothing", policy: rebootIfRequired},
		{
			name: "if required but the window closed during the install does not reboot", policy: rebootIfRequired,
			pending: true, installFor: 3 * time.Hour, wantLog: "maintenance window has closed",
		},
		{
			name: "forced reboot warns the user with the deadline and reboots", policy: rebootForce, deadline: "4h",
			want: [][]string{shutdown}, wantLog: "this computer will restart",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.be.rebootPending = tt.pending
			if tt.installFor > 0 {
				h.be.during = func() { h.clock.advance(tt.installFor) }
			}
			a := h.enrolled(t)
			p := job(a.id.Endpoint, "job-1", 1, "linux-image-amd64@6.1.129-1")
			p.Reboot, p.RebootDeadline = tt.policy, tt.deadline
			if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, h.reboot.commands()); diff != "" {
				t.Errorf("reboot commands (-want +got):\n%s", diff)
			}
			logs := h.logs.String()
			if tt.wantLog != "" && !strings.Contains(logs, tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
			if tt.policy == rebootForce && (!strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "deadline="+tt.deadline)) {
				t.Errorf("forced reboot warning lacks the level or deadline:\n%s", logs)
			}
			_, _, _, results := h.fc.snapshot()
			if results["job-1"].RebootPending != tt.pending {
				t.Errorf("result rebootPending = %v, want %v", results["job-1"].RebootPending, tt.pending)
			}
		})
	}
}

func TestRunReportsPollsRunsAndReportsAgain(t *testing.T) {
	h := newHarness(t)
	h.be.failing["nginx@1.22.1-9"] = "dpkg: dependency problems"
	a := h.agent(t)
	p := job("ep-1", "job-1", 1, "openssl@3.0.15-1", "nginx@1.22.1-9")
	h.fc.jobs <- h.fc.sign(p)
	runAgent(t, a, h.fc, func() bool {
		_, reports, _, results := h.fc.snapshot()
		_, done := results["job-1"]
		return done && len(reports) >= 2
	})

	requests, reports, _, results := h.fc.snapshot()
	wantOrder := []string{"POST " + protocol.PathEnroll, "POST " + protocol.PathReport, "GET " + protocol.PathJobs, "POST " + protocol.ResultPath("job-1"), "POST " + protocol.PathReport}
	if diff := cmp.Diff(wantOrder, requests[:len(wantOrder)]); diff != "" {
		t.Errorf("request order (-want +got):\n%s", diff)
	}
	wantReport := protocol.Report{
		Seq:      1,
		Hostname: "acme-ws-01", OS: protocol.OS{Family: "linux", Version: "debian 12"},
		Labels: map[string]string{"ring": "canary"}, Updates: h.be.inventory,
		AgentVersion: buildinfo.Version(),
	}
	if diff := cmp.Diff(wantReport, reports[0]); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if reports[1].Seq <= reports[0].Seq {
		t.Errorf("report numbers %d then %d: each report must be numbered above the last", reports[0].Seq, reports[1].Seq)
	}
	assertPrivate(t, h.dir)
	got := results["job-1"].Updates
	if len(got) != 2 || got[0].Result != protocol.ResultSucceeded || got[1].Result != protocol.ResultFailed || got[1].Error != "dpkg: dependency problems" {
		t.Errorf("update results = %+v, want openssl succeeded and nginx failed with dpkg's error", got)
	}
}

func TestRunReportsOnTheInterval(t *testing.T) {
	h := newHarness(t)
	a := h.agent(t)
	// Every empty poll makes the fake clock sleep minPollGap; with a short
	// interval the loop reaches the next report after a few polls.
	a.cfg.ReportInterval = 10 * time.Second
	h.fc.emptyPolls = true
	runAgent(t, a, h.fc, func() bool {
		_, reports, _, _ := h.fc.snapshot()
		return len(reports) >= 3
	})
	if elapsed := h.clock.Now().Sub(t0); elapsed < 18*time.Second {
		t.Errorf("3 reports after %v of agent time, want at least 2 jittered intervals (≥18s)", elapsed)
	}
}

func TestOutputIsBoundedKeepingTheEnd(t *testing.T) {
	long := strings.Repeat("é", maxOutput) + "E: broken"
	got := tail(long)
	if len(got) > maxOutput+len("…") || !strings.HasSuffix(got, "E: broken") {
		t.Errorf("tail kept %d bytes ending %q; want at most %d ending in the error", len(got), got[len(got)-9:], maxOutput)
	}
	if !strings.HasPrefix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("tail = %.20q…, want a marker and valid UTF-8", got)
	}
}

// TestResultTextFitsTheControllersRules: whatever a package tool printed
// (colours, Windows line ends, progress bars, NUL), the result the agent
// sends is one the controller accepts, so it is never dropped as refused.
func TestResultTextFitsTheControllersRules(t *testing.T) {
	h := newHarness(t)
	h.be.failing["openssl@3.0.15-1"] = "dpkg: \x1b[31merror\x1b[0m processing openssl\r\n\x00"
	a := h.agent(t)
	got := a.install(t.Context(), job("ep-1", "job-1", 1, "openssl@3.0.15-1"))
	if len(got) != 1 {
		t.Fatalf("results %+v, want one", got)
	}
	want := `dpkg: \x1b[31merror\x1b[0m processing openssl` + "\n" + `\x00`
	if got[0].Error != want || got[0].Output != "E: "+want {
		t.Errorf("error %q, output %q; want %q and %q", got[0].Error, got[0].Output, want, "E: "+want)
	}
	for field, text := range map[string]string{"error": got[0].Error, "output": got[0].Output} {
		if err := protocol.CheckText(protocol.TextLines, text); err != nil {
			t.Errorf("%s %q: the controller refuses it: %v", field, text, err)
		}
	}
	long := fitText(protocol.TextLines, strings.Repeat("é", protocol.MaxErrorBytes), protocol.MaxErrorBytes)
	if len(long) > protocol.MaxErrorBytes || !strings.HasSuffix(long, "…") || !utf8.ValidString(long) {
		t.Errorf("a long error is cut to %d bytes ending %q; want at most %d, valid UTF-8, marked", len(long), long[len(long)-4:], protocol.MaxErrorBytes)
	}
}

// assertPrivate checks that everything in the state dir is the agent's
// alone: directories 0700, files 0600.
func assertPrivate(t *testing.T, dir string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fileMode
		if d.IsDir() {
			want = dirMode
		} else {
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Errorf("state dir holds %d files, want identity, sequence and journal entries", files)
	}
}

// TestUnknownEndpointSaysWhatToDo: when the controller no longer knows the
// endpoint (its store was reset or restored from an older backup), the
// agent's log says how to enrol again instead of only retrying.
func TestUnknownEndpointSaysWhatToDo(t *testing.T) {
	h := newHarness(t)
	a := h.enrolled(t)
	h.fc.mu.Lock()
	delete(h.fc.nodeKeys, a.id.Endpoint)
	h.fc.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	logs := h.logs.String()
	want := "delete " + filepath.Join(h.dir, "identity.json")
	if !strings.Contains(logs, "the controller does not know this endpoint") || !strings.Contains(logs, want) {
		t.Errorf("log does not say what to do about a 401:\n%s", tail(logs))
	}
}
