package promtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/patchline/patchline/internal/gittest"
)

// rule is one recording or alerting rule of rules.yml.
type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func (r rule) name() string { return r.Record + r.Alert }

func loadRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rs []rule
	for _, g := range f.Groups {
		rs = append(rs, g.Rules...)
	}
	if len(rs) == 0 {
		t.Fatalf("%s has no rule", rulesFile)
	}
	return rs
}

func recordingRules(t *testing.T) []string {
	var names []string
	for _, r := range loadRules(t) {
		if r.Record != "" {
			names = append(names, r.Record)
		}
	}
	return names
}

// requirePromtool fails (in CI) or skips the test without promtool.
func requirePromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		gittest.SkipOrFail(t, "promtool not installed (Debian package prometheus): %v", err)
	}
	return p
}

// TestPromtool runs promtool over the shipped files: the rules and the
// scrape configuration are valid, and the unit tests of every alert pass.
func TestPromtool(t *testing.T) {
	promtool := requirePromtool(t)
	dir, err := filepath.Abs(filepath.Dir(rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"rules are valid", []string{"check", "rules", "rules.yml"}},
		{"scrape configuration and the rules it loads are valid", []string{"check", "config", "prometheus.yml"}},
		{"alert unit tests pass", []string{"test", "rules", "rules_test.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(promtool, tt.args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tt.args, " "), err, out)
			}
		})
	}
}

// TestEveryAlertIsTestedAndDocumented: each alert of rules.yml has a
// promtool unit test, a severity, a summary and a description, and the
// README section tells a technician what to do about it.
func TestEveryAlertIsTestedAndDocumented(t *testing.T) {
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
			t.Errorf("alert %s has no promtool unit test in %s", r.Alert, rulesTestFile)
		}
		if !strings.Contains(string(readme), r.Alert) {
			t.Errorf("alert %s is not in %s", r.Alert, readmeFile)
		}
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || len(strings.Fields(r.Annotations["description"])) < 15 {
			t.Errorf("alert %s: want a severity label, a summary and a description saying what to do; got %+v %+v", r.Alert, r.Labels, r.Annotations)
		}
	}
}
