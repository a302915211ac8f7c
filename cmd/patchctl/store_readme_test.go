package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/pgtest"
)

// TestREADMEStoreMigrate runs README's "Moving a single box to
// PostgreSQL" command as written, with its paths and URL pointed at a
// store of the test's and a database of its own.
func TestREADMEStoreMigrate(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const heading = "#### Moving a single box to PostgreSQL"
	readme := string(b)
	start := strings.Index(readme, "\n"+heading+"\n")
	if start < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	section := readme[start+1+len(heading):]
	if end := regexp.MustCompile(`\n##+ `).FindStringIndex(section); end != nil {
		section = section[:end[0]]
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 1 {
		t.Fatalf("README's %q has %d sh blocks, want the one migrate command", heading, len(blocks))
	}
	args := strings.Fields(strings.ReplaceAll(blocks[0][1], "\\\n", " "))
	if len(args) < 3 || args[0] != "patchctl" || args[1] != "store" || args[2] != "migrate" {
		t.Fatalf("README's command %q is not patchctl store migrate", args)
	}

	src := singleBox(t)
	dsn := pgtest.DB(t)
	password := filepath.Join(t.TempDir(), "db-password")
	if err := os.WriteFile(password, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	swap := map[string]string{
		"sqlite:///var/lib/patchd/patchline.db": "sqlite://" + src,
		"/etc/patchline/db-password":            password,
	}
	for i, a := range args {
		a = strings.Trim(a, "'")
		if v, ok := swap[a]; ok {
			a = v
		} else if strings.HasPrefix(a, "postgres://") {
			a = dsn
		}
		args[i] = a
	}
	code, out, errOut := run(t, args[1:]...)
	if code != 0 {
		t.Fatalf("%q: exit %d: %s", args, code, errOut)
	}
	if !regexp.MustCompile(`(?m)^  endpoints +3$`).MatchString(out) || !strings.Contains(out, "--signing-key") {
		t.Errorf("README's migrate did not copy the store or print the next step:\n%s", out)
	}
}
