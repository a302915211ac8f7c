package run

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

func TestTrim(t *testing.T) {
	long := strings.Repeat("Unpacking libfoo (1.0) ...\n", 1000) + "E: Sub-process /usr/bin/dpkg returned an error code (1)"
	tests := []struct {
		name           string
		stdout, stderr string
		want           string
		wantPrefix     string
	}{
		{name: "stdout and stderr joined", stdout: "Setting up curl ...\n", stderr: "W: something\n", want: "Setting up curl ...\nW: something"},
		{name: "stderr only", stderr: "E: boom\n", want: "E: boom"},
		{name: "nothing printed", want: ""},
		{name: "long log keeps the error at its end", stdout: long, wantPrefix: "["},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Trim([]byte(tc.stdout), []byte(tc.stderr))
			if tc.wantPrefix == "" && got != tc.want {
				t.Errorf("Trim = %q, want %q", got, tc.want)
			}
			if tc.wantPrefix != "" {
				if !strings.HasPrefix(got, tc.wantPrefix) || !strings.HasSuffix(got, "returned an error code (1)") || len(got) > MaxOutput+64 {
					t.Errorf("Trim of %d bytes = %d bytes starting %q", len(tc.stdout), len(got), got[:40])
				}
			}
		})
	}
}

func TestExecReportsExitCode(t *testing.T) {
	ctx := context.Background()
	out, _, err := Exec{}.Run(ctx, "sh", []string{"-c", "echo $PATCHLINE_X"}, []string{"PATCHLINE_X=hello"})
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("Run = %q, %v; want hello", out, err)
	}
	_, stderr, err := Exec{}.Run(ctx, "sh", []string{"-c", "echo oops >&2; exit 3"}, nil)
	if code, ok := ExitCode(err); !ok || code != 3 || strings.TrimSpace(string(stderr)) != "oops" {
		t.Errorf("exit = %d, %v, stderr %q; want 3, true, oops", code, ok, stderr)
	}
	_, _, err = Exec{}.Run(ctx, "/nonexistent/tool", nil, nil)
	if _, ok := ExitCode(err); ok || err == nil {
		t.Errorf("missing tool: err = %v; want an error without exit code", err)
	}
}

func TestRefuseJob(t *testing.T) {
	good := &protocol.Update{ID: "openssl@3.0.16-1", Name: "openssl"}
	bad := &protocol.Update{ID: "evil", Name: "-o"}
	check := func(u *protocol.Update) error {
		if strings.HasPrefix(u.Name, "-") {
			return fmt.Errorf("update %q: name %q starts with -", u.ID, u.Name)
		}
		return nil
	}
	tests := []struct {
		name    string
		updates []*protocol.Update
		want    []Result
	}{
		{"nothing refused: the backend runs the job", []*protocol.Update{good, good}, nil},
		{"empty job", nil, nil},
		{"one refused update stops the whole job", []*protocol.Update{good, bad}, []Result{
			{Update: good.ID, Error: `not run: update "evil" of this job was refused`},
			{Update: bad.ID, Error: `update "evil": name "-o" starts with -`},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, RefuseJob(tc.updates, check)); d != "" {
				t.Errorf("RefuseJob (-want +got):\n%s", d)
			}
		})
	}
}
