package apt

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"strings"
	"time"

	"github.com/patchline/patchline/agent/backend/apt/internal/changelog"
)

// maxChangelogGz bounds a compressed changelog read out of a package.
// Debian's biggest (the kernel's) are under 1 MiB.
const maxChangelogGz = 4 << 20

// errNoChangelog says a package ships no changelog of its own: its doc
// directory is a symlink to another package's, or it has none.
var errNoChangelog = errors.New("no changelog in the package")

// docs are the changelogs a package ships in /usr/share/doc/<package>/,
// gzipped.
type docs struct {
	// debian is changelog.Debian.gz, the source package's changelog.
	debian []byte
	// binNMU is changelog.Debian.<arch>.gz: the entry of a binary-only
	// rebuild ("+b1"), which is not in the source's changelog.
	binNMU []byte
	// plain is changelog.gz: a native package's Debian changelog, or a
	// non-native package's upstream one.
	plain []byte
}

// readDocs extracts the changelogs of package name (without ":arch")
// from the .deb at debPath: `dpkg-deb --fsys-tarfile` streams the
// package's files through archive/tar, and only the changelogs are kept.
// A changelog that is a symlink counts as absent.
func readDocs(ctx context.Context, debPath, name, arch string) (docs, error) {
	dir := "usr/share/doc/" + name + "/"
	want := map[string]*[]byte{}
	var d docs
	want[dir+"changelog.Debian.gz"] = &d.debian
	want[dir+"changelog.Debian."+arch+".gz"] = &d.binNMU
	want[dir+"changelog.gz"] = &d.plain

	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", debPath)
	var stderr headBuffer
	cmd.Stderr = &stderr
	// dpkg-deb decompresses in a child process, which a cancelled ctx
	// does not kill and which keeps stderr open: Wait gives up on it
	// after this long.
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return docs{}, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", debPath, err)
	}
	if err := cmd.Start(); err != nil {
		return docs{}, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", debPath, err)
	}
	readErr := func() error {
		tr := tar.NewReader(out)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				// Drain the archive's padding so dpkg-deb ends normally.
				_, err = io.Copy(io.Discard, out)
				return err
			}
			if err != nil {
				return err
			}
			dst, ok := want[path.Clean(strings.TrimPrefix(h.Name, "./"))]
			if !ok || h.Typeflag != tar.TypeReg {
				continue
			}
			if h.Size > maxChangelogGz {
				return fmt.Errorf("%s: %d bytes, more than the %d a changelog may have", h.Name, h.Size, maxChangelogGz)
			}
			if *dst, err = io.ReadAll(tr); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		}
	}()
	if readErr != nil {
		// Abandoning the archive: closing the pipe ends dpkg-deb and its
		// decompressor with a broken pipe instead of leaving them blocked.
		out.Close()
	}
	waitErr := cmd.Wait()
	switch {
	case readErr != nil:
		return docs{}, fmt.Errorf("files of %s: %w", debPath, readErr)
	case waitErr != nil:
		return docs{}, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", debPath, waitErr, bytes.TrimSpace(stderr.b))
	}
	return d, nil
}

// entries parses a package's changelog entries, newest first: a binNMU's
// own entry, then the source's changelog (changelog.Debian.gz, or
// changelog.gz when the package has no other). It returns the entries
// read before any error, and the error.
func (d docs) entries() ([]*changelog.Entry, error) {
	src, srcName := d.debian, "changelog.Debian.gz"
	if src == nil {
		src, srcName = d.plain, "changelog.gz"
	}
	if src == nil && d.binNMU == nil {
		return nil, errNoChangelog
	}
	var all []*changelog.Entry
	for _, f := range []struct {
		name string
		gz   []byte
	}{{"the binNMU changelog", d.binNMU}, {srcName, src}} {
		if f.gz == nil {
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(f.gz))
		if err != nil {
			return all, fmt.Errorf("%s: %w", f.name, err)
		}
		entries, err := changelog.Parse(zr)
		all = append(all, entries...)
		if err != nil {
			return all, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return all, nil
}

// headBuffer keeps the first 4 KiB written to it: enough of a tool's error
// message, however much it prints.
type headBuffer struct{ b []byte }

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := 4<<10 - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}
