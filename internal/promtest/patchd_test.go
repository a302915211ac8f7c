package promtest

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/reconciler/source"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
)

const (
	acmeSecret   = "acme-enrollment-secret"
	globexSecret = "globex-enrollment-secret"
)

// Updates the acme endpoints report: released three days ago, so past the
// one-day SLA of the test fleet.
const (
	kbCritical  = "KB5040101" // critical, fails on one canary endpoint: halts the rollout
	kbImportant = "KB5040102" // important, installs everywhere: passes canary
	kbExcluded  = "KB5040103" // critical, excluded until ten days from now
)

// acmePolicy approves critical and important security updates and holds
// one of them with an exclusion that expires within 14 days.
func acmePolicy(until time.Time) string {
	return fmt.Sprintf(`package fleet

client: {id: "acme", name: "Acme Dental", timezone: "UTC"}
baseline: approve: [{name: "security", category: ["security"], minSeverity: "important"}]
exclusions: [{update: %q, select: {}, reason: "breaks the practice-management software", ticket: "PSA-4411", until: %q}]
`, kbExcluded, until.UTC().Format("2006-01-02"))
}

// patchd is a real controller on loopback following a fleet repo served by
// git daemon, with a real SQLite store in a temp dir.
type patchd struct {
	*patchdtest.Patchd
	t  *testing.T
	up *gittest.Upstream
}

// startPatchd starts patchd on the test fleet and waits until it applied
// the first revision; it stops when the test ends.
func startPatchd(t *testing.T) *patchd {
	t.Helper()
	repos := t.TempDir()
	up := gittest.NewUpstream(t, repos, "fleet")
	up.CopyDir("testdata/fleet")
	up.Write(map[string]string{"clients/acme/policy.cue": acmePolicy(time.Now().Add(10 * 24 * time.Hour))})
	up.Commit("Start the fleet")
	url := gittest.StartDaemon(t, repos) + "fleet.git"
	cfg := patchdtest.Config(t, url, map[string]string{"acme": acmeSecret, "globex": globexSecret})
	// The vulnerability feeds the feeds package tests with, in their
	// publishers' formats: patchd applies them and exports their metrics.
	cfg.FeedsDir = "../../reconciler/feeds/testdata/feeds"
	p := &patchd{Patchd: patchdtest.Start(t, cfg), t: t, up: up}
	p.waitMetric("the first revision applied", `patchline_policy_revision_info{client="acme"`, nil)
	return p
}

// do sends a JSON request and decodes a JSON answer into out (when not
// nil); it fails the test unless the answer is a 2xx.
func (p *patchd) do(method, path string, headers map[string]string, body, out any) {
	p.t.Helper()
	if code, data := apitest.Do(p.t, p.URL, method, path, headers, body, out); code >= 300 {
		p.t.Fatalf("%s %s: %d %s", method, path, code, data)
	}
}

// push commits files upstream and sends the signed push webhook.
func (p *patchd) push(files map[string]string, msg string) {
	p.t.Helper()
	p.up.Write(files)
	p.up.Commit(msg)
	body := []byte(`{"ref":"refs/heads/main"}`)
	p.do("POST", "/v1/hooks/git", map[string]string{
		"X-GitHub-Event":      "push",
		"X-Hub-Signature-256": source.GitHubSignature([]byte(patchdtest.WebhookSecret), body),
	}, json.RawMessage(body), nil)
}

// metrics returns patchd's /metrics exposition, from its metrics listener.
func (p *patchd) metrics() string {
	p.t.Helper()
	resp, err := http.Get(p.MetricsURL)
	if err != nil {
		p.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

// metricValue finds the first exposition line starting with prefix.
func metricValue(exposition, prefix string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(exposition))
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			return f[len(f)-1], true
		}
	}
	return "", false
}

// waitMetric waits until a series starting with prefix is exported (with
// the value want, unless want is nil). A bound on a hang, not a timing
// assertion.
func (p *patchd) waitMetric(what, prefix string, want *string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		exp := p.metrics()
		v, ok := metricValue(exp, prefix)
		if ok && (want == nil || v == *want) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waiting for %s (%s): got %q, found %v", what, prefix, v, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ptr(s string) *string { return &s }

// endpoint is an enrolled agent speaking the wire protocol by hand.
type endpoint struct {
	p        *patchd
	id, key  string
	hostname string
	labels   map[string]string
	pub      ed25519.PublicKey
}

func (p *patchd) enroll(client, secret, hostname string, labels map[string]string) *endpoint {
	p.t.Helper()
	e := &endpoint{p: p, key: "node-key-0123456789abcdef0123456789abcdef-" + hostname, hostname: hostname, labels: labels}
	var resp protocol.EnrollResponse
	p.do("POST", protocol.PathEnroll, nil, protocol.EnrollRequest{
		Client: client, Secret: secret, InstanceID: "instance-" + hostname, NodeKey: e.key,
		Hostname: hostname, OS: protocol.OS{Family: "windows", Version: "10.0.26100"}, Labels: labels,
	}, &resp)
	e.id, e.pub = resp.Endpoint, resp.SigningKey
	return e
}

func (e *endpoint) headers() map[string]string {
	return map[string]string{"Authorization": "Bearer " + e.key, protocol.HeaderEndpoint: e.id}
}

// report sends the endpoint's inventory: every update given, installed
// when it is in installed.
func (e *endpoint) report(updates []*protocol.Update, installed ...string) {
	e.p.t.Helper()
	var us []*protocol.Update
	for _, u := range updates {
		c := *u
		for _, id := range installed {
			if id == u.ID {
				c.Installed, c.InstalledVersion = true, c.Version
			}
		}
		us = append(us, &c)
	}
	e.p.do("POST", protocol.PathReport, e.headers(), protocol.Report{
		Hostname: e.hostname, OS: protocol.OS{Family: "windows", Version: "10.0.26100"}, Labels: e.labels, Updates: us,
	}, nil)
}

// runJob long-polls for the endpoint's job and answers it: every update
// succeeds except those in fail.
func (e *endpoint) runJob(fail ...string) protocol.JobPayload {
	e.p.t.Helper()
	var jobs protocol.JobsResponse
	e.p.do("GET", protocol.PathJobs+"?wait=10s", e.headers(), nil, &jobs)
	if len(jobs.Jobs) != 1 {
		e.p.t.Fatalf("%s: %d jobs, want 1", e.hostname, len(jobs.Jobs))
	}
	job, err := protocol.OpenJob(e.pub, jobs.Jobs[0])
	if err != nil {
		e.p.t.Fatalf("%s: %v", e.hostname, err)
	}
	res := protocol.ResultRequest{Job: job.ID, IdempotencyKey: job.IdempotencyKey}
	for _, u := range job.Updates {
		r := protocol.UpdateResult{Update: u.ID, Result: protocol.ResultSucceeded, At: time.Now()}
		for _, id := range fail {
			if id == u.ID {
				r.Result, r.Error = protocol.ResultFailed, "0x80070643: installation failed"
			}
		}
		res.Updates = append(res.Updates, r)
	}
	e.p.do("POST", protocol.ResultPath(job.ID), e.headers(), res, nil)
	return job
}

// securityUpdate is a Windows security update released three days ago.
func securityUpdate(id, severity string) *protocol.Update {
	return &protocol.Update{
		ID: id, Source: "windows-update", Name: id, Title: "2026 Cumulative Update (" + id + ")", Version: "1",
		Category: "security", Severity: severity, CVSS: 8.8, Released: time.Now().Add(-72 * time.Hour),
	}
}

// scenario drives patchd into every state the dashboard and the alerts
// show: globex's agents report once and go stale; acme's canary ring
// installs two updates, one fails on one endpoint and halts the rollout
// (SLA breaches follow: the updates are three days old and the SLA is one
// day), the other passes to broad; a commit breaks globex's policy (a
// client refusal, and a new revision for acme), and the next one breaks
// the fleet's root file (a fleet refusal). scraped, when not nil, is called
// after patchd started and before any agent enrolls, and whenever the test
// needs the state so far to be scraped (it waits for a scrape).
func scenario(t *testing.T, p *patchd, scraped func()) {
	t.Helper()
	if scraped == nil {
		scraped = func() {}
	}
	scraped()

	globexSeen := time.Now()
	feature := &protocol.Update{ID: "KB5040999", Source: "windows-update", Name: "KB5040999", Title: "Feature update enablement package",
		Version: "1", Category: "feature", Released: time.Now().Add(-72 * time.Hour)}
	for _, host := range []string{"GLOBEX-WS-01", "GLOBEX-WS-02"} {
		p.enroll("globex", globexSecret, host, map[string]string{"site": "hamburg"}).report([]*protocol.Update{feature})
	}

	updates := []*protocol.Update{securityUpdate(kbCritical, "critical"), securityUpdate(kbImportant, "important"), securityUpdate(kbExcluded, "critical")}
	canary := map[string]string{"ring": "canary"}
	c1 := p.enroll("acme", acmeSecret, "ACME-WS-01", canary)
	c2 := p.enroll("acme", acmeSecret, "ACME-WS-02", canary)
	b1 := p.enroll("acme", acmeSecret, "ACME-WS-03", nil)
	b2 := p.enroll("acme", acmeSecret, "ACME-WS-04", nil)
	for _, e := range []*endpoint{c1, c2, b1, b2} {
		e.report(updates)
	}

	c1.runJob()
	c1.report(updates, kbCritical, kbImportant)
	c2.runJob(kbCritical)
	c2.report(updates, kbImportant)
	p.waitMetric("the halt in canary", `patchline_halted_rollouts{client="acme",ring="canary"}`, ptr("1"))
	p.waitMetric("broad jobs after canary passed "+kbImportant, `patchline_jobs_created_total{client="acme",ring="broad"}`, ptr("2"))
	b1.runJob()
	b1.report(updates, kbImportant)
	scraped()

	// globex's staleAfter is three seconds; its endpoints turn stale at the
	// next re-plan after that, which the policy commit below triggers.
	for time.Since(globexSeen) < 3500*time.Millisecond {
		time.Sleep(100 * time.Millisecond)
	}
	p.push(map[string]string{
		"clients/globex/policy.cue": "package fleet\n\nclient: {id: \"globex\", name: \"Globex Logistics\", timezone: \"Europe/Berlin\"}\nstaleAfter: \"0.05m\"\nmode: \"sometimes\"\n",
		"clients/acme/notes.cue":    "package fleet\n\n// Reviewed with the practice manager.\n",
	}, "globex: typo in mode; acme: notes")
	p.waitMetric("globex refused", `patchline_policy_client_refused{client="globex"}`, ptr("1"))
	p.waitMetric("globex stale", `patchline_endpoints{client="globex",state="stale"}`, ptr("2"))
	scraped()

	p.push(map[string]string{"fleet.cue": "package fleet\n\ndefaults: rings: 42\n"}, "Break the defaults")
	p.waitMetric("the fleet refusal", `patchline_policy_refused_total{reason="invalid"}`, ptr("2"))
	scraped()
}
