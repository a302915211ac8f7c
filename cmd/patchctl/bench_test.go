package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/plangen"
	"github.com/patchline/patchline/protocol"
)

// BenchmarkPlanCommandVsDecode measures, on the same generated snapshot
// file (10,000 endpoints of 50 clients, 20 updates each), merely decoding
// it and the whole `patchctl plan --format json` command, whose ratio
// BENCHMARKS.md quotes: the plan should cost at most 1.5× the decode.
func BenchmarkPlanCommandVsDecode(b *testing.B) {
	const clients, endpoints, updates = 50, 10_000, 20
	now := time.Date(2026, 11, 12, 23, 0, 0, 0, time.UTC)
	dir := b.TempDir()
	repo := filepath.Join(dir, "fleet")
	for p, data := range plangen.FleetFiles(clients, plangen.FilesOptions{}) {
		full := filepath.Join(repo, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	snapPath := filepath.Join(dir, "state.json")
	f, err := os.Create(snapPath)
	if err != nil {
		b.Fatal(err)
	}
	if err := protocol.EncodeSnapshot(f, plangen.Snapshot(clients, endpoints, updates, now)); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(snapPath)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("decode", func(b *testing.B) {
		b.SetBytes(fi.Size())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := readSnapshot(snapPath); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plan-json", func(b *testing.B) {
		b.SetBytes(fi.Size())
		b.ReportAllocs()
		args := []string{"plan", "--repo", repo, "--state", snapPath, "--format", "json", "--now", now.Format(time.RFC3339)}
		for b.Loop() {
			if code := Main(args, io.Discard, io.Discard); code != 0 {
				b.Fatalf("plan exited %d", code)
			}
		}
	})
}
