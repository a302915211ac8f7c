package cliconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    []Entry
		wantErr string
	}{
		{name: "empty file", src: ""},
		{name: "comments only", src: "# nothing yet\n"},
		{name: "scalars as the command line takes them",
			src: "controller: https://patchd.msp.example:8420\nstate-dir: /var/lib/patch-agent\nlabels: ring=pilot\ninsecure: true\nenroll-rate: 2.5\nlease: 10m\nmode: 0600\nshift: -3\n",
			want: []Entry{{"controller", "https://patchd.msp.example:8420", 1}, {"state-dir", "/var/lib/patch-agent", 2}, {"labels", "ring=pilot", 3},
				{"insecure", "true", 4}, {"enroll-rate", "2.5", 5}, {"lease", "10m", 6}, {"mode", "0600", 7}, {"shift", "-3", 8}}},
		{name: "quoted string", src: `hostname: "ws 01 # not a comment"` + "\n", want: []Entry{{"hostname", "ws 01 # not a comment", 1}}},
		{name: "a list joins with commas", src: "controller:\n  - https://a:8420\n  - https://b:8420\n",
			want: []Entry{{"controller", "https://a:8420,https://b:8420", 1}}},
		{name: "a mapping is refused", src: "labels:\n  ring: pilot\n", wantErr: "c.yaml:1: labels: want a single value, not a mapping"},
		{name: "null is refused", src: "state-dir:\n", wantErr: "c.yaml:1: state-dir: no value"},
		{name: "a key given twice", src: "lease: 1m\npoll: 1m\nlease: 2m\n", wantErr: `c.yaml:3: key "lease" given twice (first on line 1)`},
		{name: "a top-level list", src: "- lease\n", wantErr: "c.yaml:1: want settings as `flag-name: value` lines"},
		{name: "a top-level scalar", src: "lease\n", wantErr: "want settings as `flag-name: value` lines"},
		{name: "bad YAML", src: "lease: [1m\n", wantErr: "c.yaml:"},
		{name: "a comma inside a list item", src: "labels: [a=1,b=2, c=3]\n", want: []Entry{{"labels", "a=1,b=2,c=3", 1}}},
		{name: "a list of lists", src: "controller: [[a]]\n", wantErr: "c.yaml:1: controller: want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("c.yaml", []byte(tt.src))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

// testFlags is a command's flags as the binaries declare them.
type testFlags struct {
	controller, stateDir, labels, old string
	lease                             time.Duration
	insecure                          bool
	rate                              float64
}

func newFlags() (*pflag.FlagSet, *testFlags) {
	var v testFlags
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.StringVar(&v.controller, "controller", "", "")
	fs.StringVar(&v.stateDir, "state-dir", "/default", "")
	fs.StringVar(&v.labels, "labels", "", "")
	fs.DurationVar(&v.lease, "lease", time.Minute, "")
	fs.BoolVar(&v.insecure, "insecure", false, "")
	fs.Float64Var(&v.rate, "enroll-rate", 10, "")
	fs.StringVar(&v.old, "enroll-secret-file", "", "")
	Deprecate(fs, "enroll-secret-file", "use --enroll-token-file")
	fs.SetOutput(new(strings.Builder))
	return fs, &v
}

func TestApplyPrecedence(t *testing.T) {
	file := "controller: https://file\nstate-dir: /file\nlease: 3m\ninsecure: true\n"
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want testFlags
	}{
		{name: "file only", want: testFlags{controller: "https://file", stateDir: "/file", lease: 3 * time.Minute, insecure: true, rate: 10}},
		{name: "env beats file", env: map[string]string{"PATCHLINE_CONTROLLER": "https://env", "PATCHLINE_LEASE": "4m"},
			want: testFlags{controller: "https://env", stateDir: "/file", lease: 4 * time.Minute, insecure: true, rate: 10}},
		{name: "flag beats env and file", args: []string{"--controller", "https://flag", "--insecure=false"},
			env:  map[string]string{"PATCHLINE_CONTROLLER": "https://env", "PATCHLINE_ENROLL_RATE": "2"},
			want: testFlags{controller: "https://flag", stateDir: "/file", lease: 3 * time.Minute, rate: 2}},
		{name: "an empty variable is a value", env: map[string]string{"PATCHLINE_STATE_DIR": ""},
			want: testFlags{controller: "https://file", lease: 3 * time.Minute, insecure: true, rate: 10}},
		{name: "a deprecated alias is not read from the environment", env: map[string]string{"PATCHLINE_ENROLL_SECRET_FILE": "/x"},
			want: testFlags{controller: "https://file", stateDir: "/file", lease: 3 * time.Minute, insecure: true, rate: 10}},
	}
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, got := newFlags()
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			if err := Apply(fs, Sources{File: path, LookupEnv: lookup}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, *got, cmp.AllowUnexported(testFlags{})); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name  string
		src   Sources
		want  []string
		clean bool
	}{
		{name: "a missing default file is fine", src: Sources{File: filepath.Join(dir, "none.yaml")}, clean: true},
		{name: "a missing named file is not", src: Sources{File: filepath.Join(dir, "none.yaml"), Explicit: true}, want: []string{"config file:", "none.yaml"}},
		{name: "an unknown key names the file, line and close flags", src: Sources{File: write("typo.yaml", "lease: 1m\nstate_dir: /x\n")},
			want: []string{"typo.yaml:2:", `unknown key "state_dir"`, "did you mean state-dir?"}},
		{name: "an unknown key far from every flag", src: Sources{File: write("far.yaml", "colour: blue\n")},
			want: []string{"far.yaml:1:", `unknown key "colour"`, "not a flag of this command"}},
		{name: "config is not a key", src: Sources{File: write("config.yaml", "config: /etc/x.yaml\n")}, want: []string{`unknown key "config"`}},
		{name: "a key of another command is skipped", src: Sources{File: write("known.yaml", "repo-dir: /srv/fleet\n"), Known: []string{"repo-dir"}}, clean: true},
		{name: "a bad value names the key and the form", src: Sources{File: write("bad.yaml", "controller: x\nlease: soon\n")},
			want: []string{"bad.yaml:2: lease:", `"soon"`, "want a duration such as 90s"}},
		{name: "a bad boolean", src: Sources{File: write("bool.yaml", "insecure: maybe\n")}, want: []string{"bool.yaml:1: insecure:", "want true or false"}},
		{name: "a deprecated key", src: Sources{File: write("old.yaml", "enroll-secret-file: /x\n")},
			want: []string{"old.yaml:1:", `"enroll-secret-file" is deprecated, use --enroll-token-file`}},
		{name: "a bad variable", src: Sources{LookupEnv: func(k string) (string, bool) { return "many", k == "PATCHLINE_ENROLL_RATE" }},
			want: []string{`PATCHLINE_ENROLL_RATE="many"`, "want a number"}},
		{name: "a bad file line", src: Sources{File: write("syntax.yaml", "lease: 1m\n  poll: [\n")}, want: []string{"syntax.yaml:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, _ := newFlags()
			err := Apply(fs, tt.src)
			if tt.clean {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Apply: %v (%T), want a *cliconf.Error", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestBind(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "default.yaml")
	named := filepath.Join(dir, "named.yaml")
	for p, src := range map[string]string{def: "controller: https://default\n", named: "controller: https://named\n"} {
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "the default file", want: "https://default"},
		{name: "--config names another", args: []string{"--config", named}, want: "https://named"},
		{name: "PATCHLINE_CONFIG names another", env: map[string]string{"PATCHLINE_CONFIG": named}, want: "https://named"},
		{name: "--config beats PATCHLINE_CONFIG", args: []string{"--config", def}, env: map[string]string{"PATCHLINE_CONFIG": named}, want: "https://default"},
		{name: "a missing named file", args: []string{"--config", filepath.Join(dir, "gone.yaml")}, wantErr: "gone.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			ran := false
			cmd := &cobra.Command{Use: "run", RunE: func(*cobra.Command, []string) error { ran = true; return nil }, SilenceErrors: true, SilenceUsage: true}
			cmd.Flags().StringVar(&got, "controller", "", "")
			Bind(cmd, def, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }, nil)
			cmd.SetArgs(tt.args)
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ran {
					t.Fatalf("Execute: %v (ran %v), want an error containing %q before running", err, ran, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Execute: %v, controller %q; want %q", err, got, tt.want)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{"controller": "PATCHLINE_CONTROLLER", "state-dir": "PATCHLINE_STATE_DIR", "enroll-token-file": "PATCHLINE_ENROLL_TOKEN_FILE"} {
		if got := EnvName(flag); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flag, got, want)
		}
	}
}

// FuzzParse: no config file makes Parse panic, and what it accepts has
// keys and line numbers.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "controller: https://a\nlabels: ring=pilot\n", "controller: [a, b]\n", "a:\n  b: 1\n", "- x\n", "lease: 0600\nn: -1.5e3\n", "x: |\n  two\n  lines\n", "&a x: *a\n", "? [a]\n: b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse("f.yaml", data)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Line < 1 {
				t.Errorf("entry %+v has no line", e)
			}
		}
	})
}
