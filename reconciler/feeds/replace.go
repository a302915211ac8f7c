package feeds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// sidecarSuffix names the file beside each downloaded feed file that keeps
// its HTTP validators.
const sidecarSuffix = ".fetch.json"

// sidecar is what Fetch remembers of a file's last download: the URL it
// came from and the validators the server gave, for the next conditional
// request.
type sidecar struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

// readSidecar reads the validators of name; a missing or unreadable
// sidecar only means the next request is not conditional.
func readSidecar(dir, name string) (sidecar, bool) {
	data, err := os.ReadFile(filepath.Join(dir, name+sidecarSuffix))
	if err != nil {
		return sidecar{}, false
	}
	var s sidecar
	if json.Unmarshal(data, &s) != nil {
		return sidecar{}, false
	}
	return s, true
}

// writeSidecar replaces name's sidecar atomically. It is written after the
// feed file is in place: a crash in between leaves the old validators,
// which only cost one full download more, never a 304 for a file that is
// not there.
func writeSidecar(dir, name string, s sidecar) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(dir, name+sidecarSuffix, func(f *os.File) error {
		_, err := f.Write(append(data, '\n'))
		return err
	}, nil)
}

// replace streams the answer's body into a temporary file in dir, checks
// it with the feed's parser, and renames it over d.name.
func replace(ctx context.Context, dir string, d download, resp *http.Response) error {
	return writeAtomic(dir, d.name, func(f *os.File) error {
		n, err := io.Copy(f, io.LimitReader(resp.Body, maxDownload+1))
		if err != nil {
			return fmt.Errorf("reading the answer: %w", err)
		}
		if n > maxDownload {
			return fmt.Errorf("the answer is larger than %d bytes", int64(maxDownload))
		}
		return nil
	}, func(f *os.File) error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := parse(ctx, d.feed, d.name, f); err != nil {
			return fmt.Errorf("refused, the old copy stays: %w", err)
		}
		return nil
	})
}

// writeAtomic writes name in dir through a temporary file in the same
// directory: write fills it, it is synced, check (if any) reads it back,
// and only then is it renamed over name and the directory synced. On any
// error before the rename the temporary file is removed and name is
// untouched.
func writeAtomic(dir, name string, write, check func(*os.File) error) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if check != nil {
		if err := check(f); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// removeStaleTemps removes the temporary files a Fetch that crashed left
// in dir; only one Fetch runs on a directory at a time, so none is in use.
func removeStaleTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
