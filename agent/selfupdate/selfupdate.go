// Package selfupdate replaces the running patch-agent with a signed
// release, and takes it back when the new binary does not check in.
//
// Install verifies a release against the release key the agent pins
// (--release-key, never the job-signing key): the signature of
// release.json, a version strictly above the running one, and the size
// and SHA-256 of the binary for this platform. It writes the binary next
// to the running executable and swaps it in with a rename, keeping the
// old one as <exe>.previous, after recording the update as pending in the
// state directory. The agent then exits with code 3 and its service
// manager starts the new binary.
//
// The new binary calls Begin at the very start of its run: the pending
// update counts one more start, and after MaxStarts starts, or once the
// confirmation time has passed since the swap, Begin rolls back at once
// (restores <exe>.previous) and the agent exits 3 again to run the old
// binary. Otherwise the agent confirms (Confirm) after its first report
// the controller accepts, or rolls back (Rollback) when the time runs
// out first. The old binary, started again, finds the rolled-back update
// in Begin's outcome, reports the job failed with the reason, and never
// tries that version again (RolledBack).
//
// Every step is recorded in one state file written atomically
// (internal/atomicfile), before the step it announces, so a stop at any
// point leaves a state the next start can finish.
package selfupdate

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/protocol"
)

// Defaults of Config.
const (
	DefaultConfirmTimeout = 10 * time.Minute
	DefaultMaxStarts      = 3
)

// stateFile is the updater's record in the state directory.
const stateFile = "selfupdate.json"

// PreviousSuffix is added to the executable's name for the binary kept
// for a rollback.
const PreviousSuffix = ".previous"

// maxManifest bounds release.json and its signature.
const maxManifest = 1 << 20

// Config is what an Updater needs.
type Config struct {
	// Key is the pinned release public key.
	Key ed25519.PublicKey
	// StateDir holds the updater's record (the agent's state directory).
	StateDir string
	// Executable is the path of the running binary, symlinks resolved.
	Executable string
	// Running is the running binary's version (internal/buildinfo).
	Running string
	// GOOS and GOARCH pick the release's binary; default the running
	// platform's.
	GOOS, GOARCH string
	// ConfirmTimeout is how long a new binary has to check in; default
	// DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// MaxStarts is how many starts a new binary gets to check in; default
	// DefaultMaxStarts.
	MaxStarts int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Fetch downloads file name of release version into w, at most max bytes.
type Fetch func(ctx context.Context, version, name string, w io.Writer, max int64) error

// Updater updates one agent's binary. It is used by the agent's run loop
// alone.
type Updater struct {
	cfg Config
}

// New checks cfg.
func New(cfg Config) (*Updater, error) {
	if len(cfg.Key) != ed25519.PublicKeySize {
		return nil, errors.New("selfupdate: no release key")
	}
	if cfg.StateDir == "" || cfg.Executable == "" {
		return nil, errors.New("selfupdate: state directory and executable are required")
	}
	if cfg.GOOS == "" {
		cfg.GOOS, cfg.GOARCH = runtime.GOOS, runtime.GOARCH
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = DefaultConfirmTimeout
	}
	if cfg.MaxStarts <= 0 {
		cfg.MaxStarts = DefaultMaxStarts
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Updater{cfg: cfg}, nil
}

// State is the updater's record.
type State struct {
	// Pending is the update swapped in and not yet confirmed or resolved.
	Pending *Pending `json:"pending,omitempty"`
	// RolledBack are the versions rolled back on this endpoint; they are
	// not installed again.
	RolledBack []string `json:"rolledBack,omitempty"`
}

// Pending is an update in progress.
type Pending struct {
	Version string `json:"version"`
	// From is the version it replaced.
	From      string    `json:"from"`
	SwappedAt time.Time `json:"swappedAt"`
	// Starts counts the new binary's starts.
	Starts int `json:"starts"`
	// RolledBack, when set, says why the update was rolled back.
	RolledBack string `json:"rolledBack,omitempty"`
	// Job is what the agent needs to report the job's result once the
	// update is confirmed or rolled back; the updater only keeps it.
	Job json.RawMessage `json:"job,omitempty"`
}

// Outcome is what Begin found.
type Outcome int

// Outcomes of Begin.
const (
	// None: no update is pending.
	None Outcome = iota
	// Waiting: this is the new binary; it must Confirm before Deadline.
	Waiting
	// Restart: Begin rolled back; the process must exit to run the old
	// binary.
	Restart
	// Failed: the pending update did not take (rolled back, or the agent
	// stopped before the swap); Pending.RolledBack says why. The agent
	// reports the job failed and calls Resolve.
	Failed
)

func (u *Updater) path() string { return filepath.Join(u.cfg.StateDir, stateFile) }

// Load reads the record; a missing file is an empty State.
func (u *Updater) Load() (State, error) {
	var s State
	data, err := os.ReadFile(u.path())
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("selfupdate: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("selfupdate: %s: %w", u.path(), err)
	}
	return s, nil
}

func (u *Updater) save(s State) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(u.path(), data, 0o600); err != nil {
		return fmt.Errorf("selfupdate: %w", err)
	}
	return nil
}

// Install fetches release version, verifies it and swaps it in; job is
// kept in the pending record for the agent. An error means the running
// binary was left in place (the job fails with it).
func (u *Updater) Install(ctx context.Context, version string, fetch Fetch, job json.RawMessage) error {
	s, err := u.Load()
	if err != nil {
		return err
	}
	if s.Pending != nil {
		return fmt.Errorf("update to %s is still pending", s.Pending.Version)
	}
	if slices.Contains(s.RolledBack, version) {
		return fmt.Errorf("update to %s was rolled back on this endpoint before; it is not tried again", version)
	}
	want, err := protocol.ParseSemver(version)
	if err != nil {
		return err
	}
	running, err := protocol.ParseSemver(u.cfg.Running)
	if err != nil {
		return fmt.Errorf("the running agent's version %q is not a release version; a development build does not update itself", u.cfg.Running)
	}
	if want.Compare(running) <= 0 {
		return fmt.Errorf("refused: version %s is not above the running %s; an agent is never taken back or reinstalled", version, u.cfg.Running)
	}
	var manifest, sig limitedBuffer
	if err := fetch(ctx, version, protocol.ReleaseManifest, &manifest, maxManifest); err != nil {
		return fmt.Errorf("download %s: %w", protocol.ReleaseManifest, err)
	}
	if err := fetch(ctx, version, protocol.ReleaseSignature, &sig, maxManifest); err != nil {
		return fmt.Errorf("download %s: %w", protocol.ReleaseSignature, err)
	}
	rel, err := protocol.VerifyRelease(u.cfg.Key, manifest.b, sig.b)
	if err != nil {
		return fmt.Errorf("refused: %w", err)
	}
	if rel.Version != version {
		return fmt.Errorf("refused: the signed release is version %s, not %s", rel.Version, version)
	}
	name := protocol.ReleaseBinary(u.cfg.GOOS, u.cfg.GOARCH)
	file := rel.File(name)
	if file == nil {
		return fmt.Errorf("release %s has no binary for %s/%s (%s)", version, u.cfg.GOOS, u.cfg.GOARCH, name)
	}
	exe := u.cfg.Executable
	tmp, err := os.CreateTemp(filepath.Dir(exe), "."+filepath.Base(exe)+".new-*")
	if err != nil {
		return fmt.Errorf("write the new binary beside %s: %w", exe, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	w := &countingWriter{w: io.MultiWriter(tmp, h)}
	err = fetch(ctx, version, name, w, file.Size+1)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", name, err)
	}
	if w.n != file.Size {
		return fmt.Errorf("refused: %s is %d bytes, the signed release says %d", name, w.n, file.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != file.SHA256 {
		return fmt.Errorf("refused: %s has SHA-256 %s, the signed release says %s (corrupted or changed download)", name, got, file.SHA256)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return err
	}
	s.Pending = &Pending{Version: version, From: u.cfg.Running, SwappedAt: u.cfg.Now().UTC(), Job: job}
	if err := u.save(s); err != nil {
		return err
	}
	if err := swap(exe, tmp.Name()); err != nil {
		s.Pending = nil
		if serr := u.save(s); serr != nil {
			return errors.Join(err, serr)
		}
		return err
	}
	return nil
}

// swap puts the file at next in place of exe and keeps exe as
// exe.previous. On Unix exe is linked to .previous and next renamed over
// exe, so exe names a whole binary at every moment; Windows cannot
// replace a running executable, so it is renamed aside first.
func swap(exe, next string) error {
	prev := exe + PreviousSuffix
	if err := os.Remove(prev); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", prev, err)
	}
	if runtime.GOOS == "windows" {
		if err := os.Rename(exe, prev); err != nil {
			return fmt.Errorf("move the running binary aside: %w", err)
		}
		if err := os.Rename(next, exe); err != nil {
			return errors.Join(fmt.Errorf("put the new binary in place: %w", err), os.Rename(prev, exe))
		}
		return atomicfile.SyncDir(filepath.Dir(exe))
	}
	if err := os.Link(exe, prev); err != nil {
		return fmt.Errorf("keep the running binary as %s: %w", prev, err)
	}
	if err := os.Rename(next, exe); err != nil {
		return fmt.Errorf("put the new binary in place: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(exe))
}

// restore puts exe.previous back in place of exe.
func restore(exe string) error {
	prev := exe + PreviousSuffix
	if runtime.GOOS == "windows" {
		failed := exe + ".failed"
		_ = os.Remove(failed)
		if err := os.Rename(exe, failed); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("move the new binary aside: %w", err)
		}
	}
	if err := os.Rename(prev, exe); err != nil {
		return fmt.Errorf("restore %s: %w", prev, err)
	}
	return atomicfile.SyncDir(filepath.Dir(exe))
}

// Begin is called at the very start of a run. See Outcome.
func (u *Updater) Begin() (Outcome, *Pending, error) {
	s, err := u.Load()
	if err != nil || s.Pending == nil {
		return None, nil, err
	}
	p := s.Pending
	switch {
	case p.RolledBack != "" && u.cfg.Running == p.Version:
		// Recorded, but the stop came before the binary was restored.
		if err := restore(u.cfg.Executable); err != nil {
			return None, p, err
		}
		return Restart, p, nil
	case p.RolledBack != "":
		return Failed, p, nil
	case u.cfg.Running != p.Version:
		p.RolledBack = fmt.Sprintf("update to %s did not take: the agent still runs %s", p.Version, u.cfg.Running)
		if err := u.save(s); err != nil {
			return None, p, err
		}
		return Failed, p, nil
	}
	p.Starts++
	reason := ""
	switch {
	case p.Starts > u.cfg.MaxStarts:
		reason = fmt.Sprintf("update to %s rolled back: no check-in after %d starts", p.Version, u.cfg.MaxStarts)
	case !u.cfg.Now().Before(u.Deadline(p)):
		reason = u.timeoutReason(p)
	}
	if reason == "" {
		return Waiting, p, u.save(s)
	}
	if err := u.rollback(s, reason); err != nil {
		return None, p, err
	}
	return Restart, p, nil
}

// Deadline is when p's new binary must have confirmed.
func (u *Updater) Deadline(p *Pending) time.Time { return p.SwappedAt.Add(u.cfg.ConfirmTimeout) }

func (u *Updater) timeoutReason(p *Pending) string {
	return fmt.Sprintf("update to %s rolled back: no check-in within %s", p.Version, shortDuration(u.cfg.ConfirmTimeout))
}

// Rollback restores the previous binary after the new one ran out of time
// to confirm; the process must then exit to run it.
func (u *Updater) Rollback() error {
	s, err := u.Load()
	if err != nil {
		return err
	}
	if s.Pending == nil {
		return errors.New("selfupdate: no update is pending")
	}
	return u.rollback(s, u.timeoutReason(s.Pending))
}

func (u *Updater) rollback(s State, reason string) error {
	s.Pending.RolledBack = reason
	if err := u.save(s); err != nil {
		return err
	}
	return restore(u.cfg.Executable)
}

// Confirm ends the pending update: the new binary checked in. The
// previous binary is removed.
func (u *Updater) Confirm() error {
	s, err := u.Load()
	if err != nil || s.Pending == nil {
		return err
	}
	s.Pending = nil
	if err := u.save(s); err != nil {
		return err
	}
	if err := os.Remove(u.cfg.Executable + PreviousSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("selfupdate: remove the previous binary: %w", err)
	}
	return nil
}

// Resolve ends a failed update once the agent has recorded its result:
// the version joins RolledBack.
func (u *Updater) Resolve() error {
	s, err := u.Load()
	if err != nil || s.Pending == nil {
		return err
	}
	if !slices.Contains(s.RolledBack, s.Pending.Version) {
		s.RolledBack = append(s.RolledBack, s.Pending.Version)
	}
	s.Pending = nil
	return u.save(s)
}

// shortDuration writes 10m0s as 10m and 1h30m0s as 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	for _, suf := range []string{"m0s", "h0m"} {
		if len(s) > len(suf) && s[len(s)-len(suf):] == suf {
			s = s[:len(s)-len(suf)+1]
		}
	}
	return s
}

// limitedBuffer collects a small download.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	return len(p), nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
