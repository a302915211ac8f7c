package promtest

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

const (
	dashboardFile = "../../examples/grafana/patchline-dashboard.json"
	rulesFile     = "../../examples/prometheus/rules.yml"
	rulesTestFile = "../../examples/prometheus/rules_test.yml"
	scrapeFile    = "../../examples/prometheus/prometheus.yml"
	readmeFile    = "../../README.md"
)

// datasourceRef is how a panel or query names its data source.
type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Instant    bool           `json:"instant"`
	Datasource *datasourceRef `json:"datasource"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	Targets     []target       `json:"targets"`
	Panels      []panel        `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	AllValue   string          `json:"allValue"`
	Datasource *datasourceRef  `json:"datasource"`
}

type annotation struct {
	Name       string         `json:"name"`
	BuiltIn    int            `json:"builtIn"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []annotation `json:"list"`
	} `json:"annotations"`
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

// allPanels flattens rows into their panels.
func (d *dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(d.Panels)
	return out
}

// query is one PromQL expression of the dashboard, named for a failure
// message.
type query struct {
	where   string
	expr    string
	instant bool
}

// queries lists every panel target and annotation expression.
func (d *dashboard) queries() []query {
	var qs []query
	for _, p := range d.allPanels() {
		for _, t := range p.Targets {
			qs = append(qs, query{where: "panel " + strconvQuote(p.Title) + " query " + t.RefID, expr: t.Expr, instant: t.Instant})
		}
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 0 {
			qs = append(qs, query{where: "annotation " + strconvQuote(a.Name), expr: a.Expr})
		}
	}
	return qs
}

func strconvQuote(s string) string { return `"` + s + `"` }

// labelValues matches a Grafana label_values(selector, label) variable
// query.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// variableQuery returns a query variable's selector and label.
func variableQuery(v variable) (selector, label string, ok bool) {
	m := labelValues.FindStringSubmatch(v.Definition)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// substitute replaces the dashboard's template variables and Grafana's
// interval variables in expr.
func substitute(expr string, vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	// Longest first, so $__rate_interval is not read as $__r...
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		expr = strings.ReplaceAll(expr, "${"+k+"}", vars[k])
		expr = strings.ReplaceAll(expr, "$"+k, vars[k])
	}
	return expr
}

// metricName matches what may be a metric or recording-rule name in a
// PromQL expression: Patchline's names and level:metric:operation names.
var metricName = regexp.MustCompile(`\b(patchline_[a-z0-9_]+|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+|up)\b`)

// referencedNames lists the metric and recording-rule names expr uses.
func referencedNames(expr string) []string {
	// Strip label matchers and strings: a label value may look like a name.
	var b strings.Builder
	depth, quoted := 0, false
	for _, r := range expr {
		switch {
		case quoted:
			if r == '"' {
				quoted = false
			}
		case r == '"':
			quoted = true
		case r == '{':
			depth++
		case r == '}':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return metricName.FindAllString(b.String(), -1)
}

// TestDashboardPanels checks the dashboard a technician imports: every
// panel explains itself and queries the data source chosen in the
// datasource variable, and the client and ring variables exist.
func TestDashboardPanels(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("dashboard uid %q, title %q, schemaVersion %d: want a uid, a title and a Grafana 10 schema (>= 36)", d.UID, d.Title, d.SchemaVersion)
	}
	vars := make(map[string]variable)
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || !strings.Contains(string(v.Query), "prometheus") {
		t.Errorf("no datasource variable of Prometheus data sources: %+v", v)
	}
	for _, name := range []string{"client", "ring"} {
		v, ok := vars[name]
		if !ok {
			t.Errorf("no %s variable", name)
			continue
		}
		if _, _, ok := variableQuery(v); !ok || v.AllValue != ".*" || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s: want label_values(...) on ${datasource} with All as .*, got %+v", name, v)
		}
	}

	panels := d.allPanels()
	if len(panels) == 0 {
		t.Fatal("the dashboard has no panel")
	}
	seen := make(map[string]bool)
	ids := make(map[int]bool)
	for _, p := range panels {
		name := strconvQuote(p.Title)
		switch {
		case p.Title == "":
			t.Errorf("panel %d has no title", p.ID)
		case seen[p.Title]:
			t.Errorf("two panels are titled %s", name)
		}
		seen[p.Title] = true
		if ids[p.ID] {
			t.Errorf("panel %s reuses id %d", name, p.ID)
		}
		ids[p.ID] = true
		if len(strings.Fields(p.Description)) < 12 {
			t.Errorf("panel %s: description %q does not explain the panel to a technician", name, p.Description)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %s does not use the datasource variable: %+v", name, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %s has no query", name)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %s query %s is empty", name, tg.RefID)
			}
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %s query %s uses data source %+v, not the variable", name, tg.RefID, tg.Datasource)
			}
			if strings.Contains(tg.Expr, "patchline_") && strings.Contains(tg.Expr, "client") && !strings.Contains(tg.Expr, `client=~"$client"`) {
				t.Errorf("panel %s query %s ignores the client variable: %s", name, tg.RefID, tg.Expr)
			}
		}
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 0 && (a.Datasource == nil || a.Datasource.UID != "${datasource}") {
			t.Errorf("annotation %q does not use the datasource variable", a.Name)
		}
	}

	// The panels the issue asks for, by title.
	for _, title := range []string{
		"Fleet compliance over time", "Missing desired updates by severity", "Client compliance (worst first)",
		"Rollout progress per ring", "Halted rollouts", "SLA breaches (critical and important past their deadline)",
		"Job success rate per client and ring", "Exclusions active and expiring soon", "Agents reporting vs stale",
		"Policy revisions: applied vs refused", "Reconcile latency",
	} {
		if !seen[title] {
			t.Errorf("no panel %q", title)
		}
	}
}

// TestDashboardUsesExportedMetrics runs patchd through the scenario and
// checks that every metric the dashboard and the rules query is one that
// patchd exports, or a recording rule of rules.yml.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	p := startPatchd(t)
	scenario(t, p, nil)
	exported := exportedNames(p.metrics())
	recorded := recordingRules(t)
	known := func(name string) bool {
		return name == "up" || exported[name] || slices.Contains(recorded, name)
	}

	d := loadDashboard(t)
	for _, q := range d.queries() {
		for _, name := range referencedNames(q.expr) {
			if !known(name) {
				t.Errorf("%s uses %s, which patchd does not export and no recording rule defines", q.where, name)
			}
		}
	}
	for _, v := range d.Templating.List {
		if sel, _, ok := variableQuery(v); ok {
			for _, name := range referencedNames(sel) {
				if !known(name) {
					t.Errorf("variable %s uses %s, which patchd does not export", v.Name, name)
				}
			}
		}
	}
	for _, r := range loadRules(t) {
		for _, name := range referencedNames(r.Expr) {
			if !known(name) {
				t.Errorf("rule %s uses %s, which patchd does not export and no recording rule defines", r.name(), name)
			}
		}
	}
}

// exportedNames lists the metric names of a /metrics exposition, with the
// series names a histogram or summary expands to.
func exportedNames(exposition string) map[string]bool {
	names := make(map[string]bool)
	for _, line := range strings.Split(exposition, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		switch f[3] {
		case "histogram":
			names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
		case "summary":
			names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
		}
	}
	return names
}
