// Package fleettemplate holds the fleet repository that `patchctl init`
// lays down: the layout, an example client, CODEOWNERS, and the CI files
// that run `patchctl vet` and `patchctl plan` on every pull request.
//
// The CI files keep the Patchline token away from pull requests: only a
// job on the default branch holds a read token (limited to the
// repository's clients) and exports the fleet state; pull requests plan
// against that export with no Patchline secret. This package's tests hold
// the CI files to that, lint the GitHub workflows with actionlint and
// every CI file with yamllint, and run their scripts against a fake gh.
package fleettemplate

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed all:files
var files embed.FS

// FS returns the template's files, rooted at the fleet repository's root.
func FS() fs.FS {
	sub, err := fs.Sub(files, "files")
	if err != nil {
		// "files" is a literal directory embedded above; Sub fails only on
		// an invalid path, which would be a build mistake.
		panic(err)
	}
	return sub
}

// Write copies the template into dir, which must be empty or absent. It
// returns the slash-separated paths it wrote, in walk order.
func Write(dir string) ([]string, error) { return Copy(dir, FS()) }

// Copy copies the files of src into dir, which must be empty or absent,
// as Write does with the template; `patchctl init --from` uses it to start
// a fleet repo from an existing layout such as the demo fleet.
func Copy(dir string, src fs.FS) ([]string, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return nil, fmt.Errorf("%s is not empty: choose a new directory for the fleet repo", dir)
	case err != nil && !os.IsNotExist(err):
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var written []string
	err = fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
		written = append(written, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("write fleet repo into %s: %w", dir, err)
	}
	return written, nil
}
