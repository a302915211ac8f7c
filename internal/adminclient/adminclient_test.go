package adminclient_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/adminclient"
	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
)

// TestAgainstPatchd reads every admin route of a real patchd on loopback.
func TestAgainstPatchd(t *testing.T) {
	up := gittest.NewUpstream(t, t.TempDir(), "fleet")
	up.CopyDir("../../reconciler/testdata/fleet")
	head := up.Commit("Start the fleet").String()
	pd := patchdtest.Start(t, patchdtest.Config(t, up.Work, map[string]string{"acme": "acme-enrollment-secret-0123456789"}))
	ctx := context.Background()
	c := &adminclient.Client{Base: pd.URL, Token: patchdtest.AdminToken}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Head != head {
		t.Errorf("status head %q, want %s", st.Head, head)
	}
	snap, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.APIVersion != protocol.SnapshotAPIVersion {
		t.Errorf("state apiVersion %q", snap.APIVersion)
	}
	entries, err := c.AuditAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	applied := 0
	for _, e := range entries {
		if e.Kind == protocol.AuditRevisionApplied {
			applied++
		}
	}
	if applied == 0 {
		t.Errorf("audit log %+v has no applied revision", entries)
	}
	body, err := c.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head16 := make([]byte, 16)
	if _, err := io.ReadFull(body, head16); err != nil || string(head16) != "SQLite format 3\x00" {
		t.Errorf("backup starts with %q (%v), want an SQLite file", head16, err)
	}
	body.Close()

	wrong := &adminclient.Client{Base: pd.URL, Token: "not-the-token"}
	if _, err := wrong.Status(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong token: error %v, want the controller's 401 and its message", err)
	}
	bad := &adminclient.Client{Base: "patchd:8420", Token: patchdtest.AdminToken}
	if _, err := bad.Status(ctx); err == nil || !strings.Contains(err.Error(), "https://") {
		t.Errorf("a URL without scheme: error %v, want one showing the expected form", err)
	}
}
