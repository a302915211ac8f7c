// Package atomicfile replaces files whole: a reader, or the same program
// after a crash or a power cut, finds either the old content or the new
// one, never a mix or a truncated file.
//
// The new content goes to a temporary file in the target's directory,
// named "."+base+".tmp-*" so that directory listings can skip it. The
// file is synced, renamed over the target, and the directory is synced so
// that the rename itself survives a power cut. The agent keeps its state
// this way; the controller its job-signing key and a restored store;
// patchctl its backups and state snapshots.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// WriteFile replaces the file at path with data, with permissions perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Discard()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// WriteNew writes data to a new file at path, with permissions perm,
// whole or not at all, and never over a file already there: that fails
// with an error wrapping fs.ErrExist, even for a file that appears while
// WriteNew runs.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	}
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Discard()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	// A hard link, unlike a rename, fails when path exists.
	if err := os.Link(f.Name(), path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// File is the new content of a file being replaced: a temporary file next
// to the target. Write to it, and read it back by its Name to check it if
// need be; Commit puts it in place of the target. Discard, safe to defer,
// removes it unless Commit ran.
type File struct {
	*os.File
	path string
	// done is set once the file was committed or discarded.
	done bool
}

// Create starts replacing the file at path with a new one with
// permissions perm (on Windows, which sets no permissions through a file
// handle, the file gets the directory's).
func Create(path string, perm fs.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" {
		if err := f.Chmod(perm); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
	}
	return &File{File: f, path: path}, nil
}

// Commit syncs and closes the file, renames it over the target and syncs
// the directory. After a failure the target is unchanged, unless only the
// directory sync failed, and the temporary file is gone.
func (f *File) Commit() error {
	f.done = true
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return SyncDir(filepath.Dir(f.path))
}

// Discard closes and removes the temporary file, unless Commit ran.
func (f *File) Discard() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// SyncDir makes the renames and removals in dir durable. Windows cannot
// sync a directory handle, and needs not: NTFS journals the change itself.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
