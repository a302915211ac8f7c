package wua

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/protocol"
)

// TestRollback replays wusa's documented exit statuses (no Windows machine
// was available to record them).
func TestRollback(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "wusa.exe /uninstall /kb:5034441 /quiet /norestart"},
		{Cmd: "wusa.exe /uninstall /kb:5034123 /quiet /norestart", Exit: 3010},
		{Cmd: "wusa.exe /uninstall /kb:5031356 /quiet /norestart", Exit: 2359303},
		{Cmd: "wusa.exe /uninstall /kb:5032189 /quiet /norestart", Exit: 1618},
		{Cmd: "wusa.exe /uninstall /kb:890830 /quiet /norestart", Exit: 87},
	}}
	ups := []*protocol.Update{
		{ID: "KB5034441", Source: Source, Name: "KB5034441"},
		{ID: "KB5034123", Source: Source, Name: "KB5034123"},
		{ID: "KB5031356", Source: Source, Name: "KB5031356"},
		{ID: "KB5032189", Source: Source, Name: "KB5032189"},
		{ID: "KB890830", Source: Source, Name: "KB890830"},
		{ID: "0a1b2c3d-0000-4000-8000-00000000abcd", Source: Source, Name: "0a1b2c3d-0000-4000-8000-00000000abcd"},
	}
	got, err := New(r).Rollback(t.Context(), ups)
	if err != nil {
		t.Fatal(err)
	}
	want := []runtest.Outcome{
		{Update: "KB5034441", Succeeded: true},
		{Update: "KB5034123", Succeeded: true},
		{Update: "KB5031356", Error: "cannot roll back KB5031356: it is not installed"},
		{Update: "KB5032189", Error: "cannot roll back KB5032189 now: another installation is in progress (wusa exit status 1618)"},
		{Update: "KB890830", Error: "cannot roll back KB890830: wusa exit status 87 (0x00000057): "},
		{Update: "0a1b2c3d-0000-4000-8000-00000000abcd", Error: `cannot roll back 0a1b2c3d-0000-4000-8000-00000000abcd: wusa uninstalls by KB number only, and "0a1b2c3d-0000-4000-8000-00000000abcd" is an update id`},
	}
	if d := cmp.Diff(want, runtest.Outcomes(got)); d != "" {
		t.Errorf("outcomes (-want +got):\n%s", d)
	}
	if got[1].Output != "uninstalled KB5034123; a restart finishes it" {
		t.Errorf("output %q", got[1].Output)
	}
}

func TestRollbackRefusesABadName(t *testing.T) {
	r := &runtest.Replay{T: t}
	got, err := New(r).Rollback(t.Context(), []*protocol.Update{
		{ID: "KB5034441", Source: Source, Name: "KB5034441"},
		{ID: "x", Source: Source, Name: "KB1234; Remove-Item C:\\"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Ran()) != 0 || got[0].Succeeded || got[1].Succeeded {
		t.Errorf("ran %q, results %+v; want nothing run and both refused", r.Ran(), got)
	}
}
