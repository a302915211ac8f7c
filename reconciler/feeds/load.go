package feeds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadDir parses the feeds in dir into a new Set. A feed whose file is not
// there is absent from the Set, as are all feeds when dir does not exist.
// A file that does not parse or validate is left out, and the error (a
// join of one error per refused file, each a *ParseError naming the file
// and the position where the file's content is at fault) says why. The Set
// is never nil and holds every feed that loaded, even when the error is
// not nil.
func LoadDir(ctx context.Context, dir string) (*Set, error) {
	s, errs := (*Set)(nil).Reload(ctx, dir)
	if s == nil {
		s = &Set{}
	}
	return s, errors.Join(errs...)
}

// Reload parses the feeds in dir again and returns the next Set. Each feed
// file is the new copy if it parsed, else the copy s holds, so a bad
// download never replaces good data; a file unchanged since s read it
// (same name, size and modification time) is not parsed again. A feed
// whose files are gone from dir is absent from next. errs has one error
// per file refused. If dir cannot be listed, next is s.
//
// For EPSS, if both epss_scores-current.csv.gz and .csv are there, the
// newer by modification time counts. NVD's files all count, merged by
// each CVE record's lastModified.
func (s *Set) Reload(ctx context.Context, dir string) (next *Set, errs []error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, []error{fmt.Errorf("feeds: %w", err)}
	}
	found := make(map[Feed][]fs.FileInfo)
	for _, e := range entries {
		feed, ok := FeedOf(e.Name())
		if !ok {
			continue
		}
		// Stat rather than e.Info() so that a symlinked feed file counts.
		info, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("feeds: %w", err))
			continue
		}
		if info.Mode().IsRegular() {
			found[feed] = append(found[feed], info)
		}
	}
	next = &Set{}
	for _, feed := range All {
		files := found[feed]
		if feed != FeedNVD && len(files) > 1 {
			newest := files[0]
			for _, f := range files[1:] {
				if f.ModTime().After(newest.ModTime()) {
					newest = f
				}
			}
			files = []fs.FileInfo{newest}
		}
		var parts []part
		for _, info := range files {
			old := s.oldPart(feed, info.Name())
			if old != nil && unchanged(old.meta(), info) {
				parts = append(parts, old)
				continue
			}
			p, err := parseFile(ctx, feed, filepath.Join(dir, info.Name()), info)
			if err != nil {
				errs = append(errs, err)
				p = old
			}
			if p != nil {
				parts = append(parts, p)
			}
		}
		next.set(feed, parts)
	}
	return next, errs
}

// part is the parsed data of one feed file.
type part interface{ meta() *File }

func (f *kevFeed) meta() *File    { return &f.file }
func (f *epssFeed) meta() *File   { return &f.file }
func (f *nvdFile) meta() *File    { return &f.file }
func (f *debianFeed) meta() *File { return &f.file }

// oldPart is the part of s that a new file named name would replace: for
// NVD the file of that name, for the other feeds their one file.
func (s *Set) oldPart(feed Feed, name string) part {
	if s == nil {
		return nil
	}
	switch feed {
	case FeedKEV:
		if s.kev != nil {
			return s.kev
		}
	case FeedEPSS:
		if s.epss != nil {
			return s.epss
		}
	case FeedNVD:
		for _, f := range s.nvd {
			if f.file.Name == name {
				return f
			}
		}
	case FeedDebian:
		if s.debian != nil {
			return s.debian
		}
	}
	return nil
}

// set puts a feed's parts into s.
func (s *Set) set(feed Feed, parts []part) {
	for _, p := range parts {
		switch p := p.(type) {
		case *kevFeed:
			s.kev = p
		case *epssFeed:
			s.epss = p
		case *nvdFile:
			s.nvd = append(s.nvd, p)
		case *debianFeed:
			s.debian = p
		}
	}
}

func unchanged(f *File, info fs.FileInfo) bool {
	return f.Name == info.Name() && f.Size == info.Size() && f.ModTime.Equal(info.ModTime())
}

// FeedOf says which feed a file name in a feed directory belongs to.
// Temporary files and Fetch's sidecar files belong to none.
func FeedOf(name string) (Feed, bool) {
	switch {
	case name == KEVFile:
		return FeedKEV, true
	case name == EPSSFile || name == strings.TrimSuffix(EPSSFile, ".gz"):
		return FeedEPSS, true
	case name == DebianFile:
		return FeedDebian, true
	case nvdName.MatchString(name):
		return FeedNVD, true
	}
	return "", false
}

// parseFile parses the feed file at path, whose name in errors is path,
// decompressing it if it is gzipped.
func parseFile(ctx context.Context, feed Feed, path string, info fs.FileInfo) (part, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("feeds: %w", err)
	}
	defer f.Close()
	p, err := parse(ctx, feed, path, f)
	if err != nil {
		return nil, err
	}
	m := p.meta()
	m.Name, m.Size, m.ModTime = filepath.Base(path), info.Size(), info.ModTime()
	return p, nil
}

// parse parses one feed file's content; name is the file in errors. Every
// error that is not the context's is a *ParseError.
func parse(ctx context.Context, feed Feed, name string, r io.Reader) (part, error) {
	r, err := decompressed(r)
	if err != nil {
		return nil, &ParseError{File: name, Offset: 0, Err: err}
	}
	var p part
	switch feed {
	case FeedKEV:
		p, err = asPart(parseKEV(ctx, name, r))
	case FeedEPSS:
		p, err = asPart(parseEPSS(ctx, name, r))
	case FeedNVD:
		p, err = asPart(parseNVD(ctx, name, r))
	case FeedDebian:
		p, err = asPart(parseDebian(ctx, name, r))
	default:
		return nil, fmt.Errorf("feeds: %s: unknown feed %q", name, feed)
	}
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", name, err)
		}
		return nil, err
	}
	return p, nil
}

// asPart turns a parser's typed result into a part, keeping a nil result
// a nil interface.
func asPart[P part](p P, err error) (part, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}
