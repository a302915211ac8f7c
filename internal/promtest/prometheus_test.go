package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/gittest"
)

// prometheus is a real Prometheus (Debian's package) on loopback, with its
// own data directory, scraping patchd every second with the shipped rules.
type prometheus struct {
	t     *testing.T
	base  string
	start time.Time
	log   string
}

// startPrometheus runs Prometheus with the shipped prometheus.yml and
// rules.yml, its intervals shortened to one second and its target set to
// metricsAddr, patchd's metrics listener. It is killed when the test ends.
func startPrometheus(t *testing.T, metricsAddr string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		gittest.SkipOrFail(t, "prometheus not installed (Debian package prometheus): %v", err)
	}
	dir := t.TempDir()
	conf, err := os.ReadFile(scrapeFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(conf)
	for _, r := range [][2]string{
		{"scrape_interval: 15s", "scrape_interval: 1s"},
		{"evaluation_interval: 15s", "evaluation_interval: 1s"},
		{`"127.0.0.1:9420"`, strconv.Quote(metricsAddr)},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("%s no longer contains %s: update this test", scrapeFile, r[0])
		}
		cfg = strings.ReplaceAll(cfg, r[0], r[1])
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	// rule_files is relative to the configuration file, as in production.
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logFile := filepath.Join(dir, "prometheus.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		out.Close()
		gittest.SkipOrFail(t, "start prometheus: %v", err)
	}
	pr := &prometheus{t: t, base: "http://" + addr, start: time.Now(), log: logFile}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("prometheus log:\n%s", b)
		}
	})
	pr.waitFor("Prometheus ready", 30*time.Second, func() (bool, string) {
		resp, err := http.Get(pr.base + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return pr
}

// waitFor polls ok until it holds, failing the test after limit with the
// last state ok described. A bound on a hang, not a timing assertion.
func (pr *prometheus) waitFor(what string, limit time.Duration, ok func() (bool, string)) {
	pr.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		done, last := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			pr.t.Fatalf("waiting for %s: %s", what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// series is one series of a query answer: its labels and its values
// (one for an instant query).
type series struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

// finite reports whether the series has a value that is a number.
func (s series) finite() bool {
	vals := s.Values
	if s.Value != nil {
		vals = append(vals, s.Value)
	}
	for _, v := range vals {
		if len(v) != 2 {
			continue
		}
		str, _ := v[1].(string)
		if f, err := strconv.ParseFloat(str, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return true
		}
	}
	return false
}

// get calls Prometheus's HTTP API and decodes the data field into out.
func (pr *prometheus) get(path string, params url.Values, out any) error {
	resp, err := http.Get(pr.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// query runs expr at now (instant) or over the test so far with a
// one-second step, as Grafana runs a table and a graph.
func (pr *prometheus) query(expr string, instant bool) ([]series, error) {
	var data struct {
		ResultType string   `json:"resultType"`
		Result     []series `json:"result"`
	}
	now := time.Now()
	var err error
	if instant {
		err = pr.get("/api/v1/query", url.Values{"query": {expr}, "time": {unix(now)}}, &data)
	} else {
		err = pr.get("/api/v1/query_range", url.Values{"query": {expr}, "start": {unix(pr.start)}, "end": {unix(now)}, "step": {"1s"}}, &data)
	}
	return data.Result, err
}

func unix(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }

// alerts returns the names of the alerts in state (firing or pending),
// with their labels.
func (pr *prometheus) alerts(state string) (map[string][]map[string]string, error) {
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := pr.get("/api/v1/alerts", nil, &data); err != nil {
		return nil, err
	}
	out := make(map[string][]map[string]string)
	for _, a := range data.Alerts {
		if a.State == state {
			out[a.Labels["alertname"]] = append(out[a.Labels["alertname"]], a.Labels)
		}
	}
	return out, nil
}

// hasData waits until expr has a series in Prometheus (a scrape or a rule
// evaluation happened).
func (pr *prometheus) hasData(expr string) {
	pr.t.Helper()
	pr.waitFor(expr+" in Prometheus", 30*time.Second, func() (bool, string) {
		res, err := pr.query(expr, true)
		if err != nil {
			return false, err.Error()
		}
		return len(res) > 0, "no series"
	})
}

// TestDashboardAndAlertsAgainstPrometheus runs Debian's Prometheus with the
// shipped scrape configuration and rules against a real patchd driven
// through the scenario. Every query of every dashboard panel, annotation
// and variable must return data, the alerts the scenario provokes must
// fire, and stopping patchd must raise PatchlineControllerDown (pending: it
// fires after its two minutes, which the promtool unit test covers).
func TestDashboardAndAlertsAgainstPrometheus(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		gittest.SkipOrFail(t, "prometheus not installed (Debian package prometheus): %v", err)
	}
	p := startPatchd(t)
	pr := startPrometheus(t, p.MetricsAddr)
	// Each call waits for a scrape newer than the state the scenario
	// reached, by looking for a sample taken after the call.
	scraped := func() {
		t.Helper()
		since := unix(time.Now())
		pr.hasData("timestamp(patchline_jobs_created_total) > " + since)
	}
	scenario(t, p, scraped)

	want := []string{"PatchlinePolicyRevisionRefused", "PatchlineClientPolicyRefused", "PatchlineRolloutHalted", "PatchlineSLABreached", "PatchlineClientNotReporting"}
	var firing map[string][]map[string]string
	pr.waitFor("the scenario's alerts firing", 30*time.Second, func() (bool, string) {
		var err error
		if firing, err = pr.alerts("firing"); err != nil {
			return false, err.Error()
		}
		for _, name := range want {
			if len(firing[name]) == 0 {
				return false, fmt.Sprintf("%s not firing; firing: %v", name, firing)
			}
		}
		return true, ""
	})
	checks := []struct {
		alert, label, value string
	}{
		{"PatchlineClientPolicyRefused", "client", "globex"},
		{"PatchlineRolloutHalted", "ring", "canary"},
		{"PatchlineSLABreached", "update_severity", "critical"},
		{"PatchlineSLABreached", "update_severity", "important"},
		{"PatchlineClientNotReporting", "client", "globex"},
	}
	for _, c := range checks {
		if !slices.ContainsFunc(firing[c.alert], func(l map[string]string) bool { return l[c.label] == c.value }) {
			t.Errorf("%s fires without %s=%s: %v", c.alert, c.label, c.value, firing[c.alert])
		}
	}
	for _, quiet := range []string{"PatchlineControllerDown", "PatchlineReconcileSlow"} {
		if len(firing[quiet]) > 0 {
			t.Errorf("%s fires while patchd is up and fast: %v", quiet, firing[quiet])
		}
	}

	d := loadDashboard(t)
	selections := []struct {
		name string
		vars map[string]string
	}{
		{"all clients and rings", map[string]string{"client": ".*", "ring": ".*"}},
		{"client acme, ring canary", map[string]string{"client": "acme", "ring": "canary"}},
	}
	for _, sel := range selections {
		vars := map[string]string{"datasource": "prometheus", "__rate_interval": "30s", "__interval": "15s", "__range": "5m"}
		for k, v := range sel.vars {
			vars[k] = v
		}
		for _, q := range d.queries() {
			expr := substitute(q.expr, vars)
			res, err := pr.query(expr, q.instant)
			switch {
			case err != nil:
				t.Errorf("%s: %s, %s: %v", sel.name, q.where, expr, err)
			case !slices.ContainsFunc(res, series.finite):
				t.Errorf("%s: %s returns no data: %s", sel.name, q.where, expr)
			}
		}
		for _, v := range d.Templating.List {
			selector, label, ok := variableQuery(v)
			if !ok {
				continue
			}
			res, err := pr.query(substitute(selector, vars), true)
			if err != nil || !slices.ContainsFunc(res, func(s series) bool { return s.Metric[label] != "" }) {
				t.Errorf("%s: variable %s (%s) lists no value: %v", sel.name, v.Name, v.Definition, err)
			}
		}
	}

	p.Stop()
	pr.waitFor("PatchlineControllerDown pending after patchd stopped", 30*time.Second, func() (bool, string) {
		pending, err := pr.alerts("pending")
		if err != nil {
			return false, err.Error()
		}
		return len(pending["PatchlineControllerDown"]) > 0, fmt.Sprintf("pending: %v", pending)
	})
}
