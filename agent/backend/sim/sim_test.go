package sim

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
)

var clock = func() time.Time { return time.Date(2026, 6, 9, 17, 0, 0, 0, time.UTC) }

func newSim(t *testing.T, opts Options) *Backend {
	t.Helper()
	if opts.Now == nil {
		opts.Now = clock
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func inventory(t *testing.T, b *Backend) []*protocol.Update {
	t.Helper()
	us, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return us
}

func find(us []*protocol.Update, id string) *protocol.Update {
	for _, u := range us {
		if u.ID == id {
			return u
		}
	}
	return nil
}

// firstAvailable returns the first update not installed that requires
// nothing.
func firstAvailable(t *testing.T, us []*protocol.Update) *protocol.Update {
	t.Helper()
	for _, u := range us {
		if !u.Installed && len(u.Requires) == 0 {
			return u
		}
	}
	t.Fatal("simulated inventory has nothing to install")
	return nil
}

func TestInventoryGolden(t *testing.T) {
	for _, family := range []string{"windows", "linux", "macos"} {
		t.Run(family, func(t *testing.T) {
			golden.CheckJSON(t, filepath.Join("testdata", "inventory-"+family+".golden.json"), inventory(t, newSim(t, Options{Seed: 7, Family: family})))
		})
	}
}

func TestSameSeedSameEndpoint(t *testing.T) {
	for _, family := range []string{"windows", "linux", "macos"} {
		a := inventory(t, newSim(t, Options{Seed: 42, Family: family}))
		b := inventory(t, newSim(t, Options{Seed: 42, Family: family}))
		if d := cmp.Diff(a, b); d != "" {
			t.Errorf("%s: two endpoints from seed 42 differ:\n%s", family, d)
		}
		c := inventory(t, newSim(t, Options{Seed: 43, Family: family}))
		if cmp.Equal(a, c) {
			t.Errorf("%s: seeds 42 and 43 gave the same inventory", family)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for name, opts := range map[string]Options{
		"unknown family":        {Family: "beos"},
		"failure rate over 1":   {Family: "linux", FailureRate: 1.5},
		"negative install time": {Family: "linux", InstallTime: -time.Second},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
}

func TestInstallThenInventoryShowsInstalled(t *testing.T) {
	for _, family := range []string{"windows", "linux", "macos"} {
		t.Run(family, func(t *testing.T) {
			b := newSim(t, Options{Seed: 7, Family: family})
			u := firstAvailable(t, inventory(t, b))
			res, err := b.Install(context.Background(), []*protocol.Update{u})
			if err != nil || len(res) != 1 || !res[0].Succeeded {
				t.Fatalf("Install(%s) = %+v, %v; want success", u.ID, res, err)
			}
			after := inventory(t, b)
			got := find(after, u.ID)
			if got == nil || !got.Installed || got.InstalledAt == nil || !got.InstalledAt.Equal(clock()) || got.InstalledVersion != u.Version {
				t.Fatalf("after install, inventory has %+v; want it installed at the clock's time", got)
			}
			if u.InstalledVersion != "" && u.InstalledVersion != u.Version && find(after, u.Name+"@"+u.InstalledVersion) != nil {
				t.Errorf("the replaced version %s@%s is still reported", u.Name, u.InstalledVersion)
			}
			if n := b.Installs(u.ID); n != 1 {
				t.Errorf("Installs(%s) = %d, want 1", u.ID, n)
			}
		})
	}
}

func TestInstallOutcomes(t *testing.T) {
	b := newSim(t, Options{Seed: 7, Family: "windows"})
	us := inventory(t, b)
	var lcu *protocol.Update
	for _, u := range us {
		if !u.Installed && len(u.Requires) > 0 && !find(us, u.Requires[0]).Installed {
			lcu = u
		}
	}
	if lcu == nil {
		t.Fatal("seed 7 has no cumulative update waiting on its servicing stack")
	}
	ssu := find(us, lcu.Requires[0])
	ctx := context.Background()

	res, err := b.Install(ctx, []*protocol.Update{lcu, {ID: "KB1234567"}, ssu, lcu})
	if err != nil {
		t.Fatal(err)
	}
	got := runtest.Outcomes(res)
	want := []runtest.Outcome{
		{lcu.ID, false, fmt.Sprintf("simulated: %s requires %s, which is not installed", lcu.ID, ssu.ID)},
		{"KB1234567", false, `simulated endpoint has no update "KB1234567"`},
		{ssu.ID, true, ""},
		{lcu.ID, true, ""},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if n := b.Installs(lcu.ID); n != 2 {
		t.Errorf("Installs(%s) = %d, want 2 (one refused, one done)", lcu.ID, n)
	}
	if pending, _ := b.RebootPending(ctx); !pending {
		t.Error("no reboot pending after a cumulative update")
	}
	// Installing again is harmless but counted: that is how a test
	// catches a repeated install.
	res, _ = b.Install(ctx, []*protocol.Update{lcu})
	if !res[0].Succeeded || b.Installs(lcu.ID) != 3 {
		t.Errorf("reinstall = %+v with %d installs; want success counted as the third", res[0], b.Installs(lcu.ID))
	}
}

func TestFailureRate(t *testing.T) {
	run := func(rate float64) []bool {
		b := newSim(t, Options{Seed: 3, Family: "linux", FailureRate: rate})
		var todo []*protocol.Update
		for _, u := range inventory(t, b) {
			if !u.Installed {
				todo = append(todo, u)
			}
		}
		res, err := b.Install(context.Background(), todo)
		if err != nil {
			t.Fatal(err)
		}
		var ok []bool
		for _, r := range res {
			ok = append(ok, r.Succeeded)
		}
		return ok
	}
	count := func(ok []bool) (n int) {
		for _, o := range ok {
			if o {
				n++
			}
		}
		return n
	}
	if all := run(0); count(all) != len(all) {
		t.Errorf("failure rate 0: %d of %d succeeded", count(all), len(all))
	}
	if none := run(1); count(none) != 0 {
		t.Errorf("failure rate 1: %d succeeded", count(none))
	}
	a, b := run(0.5), run(0.5)
	if !cmp.Equal(a, b) {
		t.Errorf("failure rate 0.5 is not deterministic: %v vs %v", a, b)
	}
	if n := count(a); n == 0 || n == len(a) {
		t.Errorf("failure rate 0.5: %d of %d succeeded, want a mix", n, len(a))
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Seed: 7, Family: "linux", StateDir: dir}
	first := newSim(t, opts)
	u := firstAvailable(t, inventory(t, first))
	if _, err := first.Install(context.Background(), []*protocol.Update{u}); err != nil {
		t.Fatal(err)
	}
	restarted := newSim(t, opts)
	if got := find(inventory(t, restarted), u.ID); got == nil || !got.Installed {
		t.Errorf("after restart, %s = %+v; want installed", u.ID, got)
	}
	if n := restarted.Installs(u.ID); n != 1 {
		t.Errorf("after restart, Installs(%s) = %d, want 1", u.ID, n)
	}
	fresh := newSim(t, Options{Seed: 7, Family: "linux"})
	if got := find(inventory(t, fresh), u.ID); got == nil || got.Installed {
		t.Errorf("an endpoint without state dir has %s installed", u.ID)
	}
}

func TestConcurrentInstallsAndInventories(t *testing.T) {
	b := newSim(t, Options{Seed: 11, Family: "linux", StateDir: t.TempDir()})
	us := inventory(t, b)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := b.Install(context.Background(), []*protocol.Update{us[i%len(us)]}); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := b.Inventory(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, u := range us {
		total += b.Installs(u.ID)
	}
	if total != 8 {
		t.Errorf("counted %d installs, want 8", total)
	}
}

// TestSlowInstallInterrupted: with InstallTime, an install stopped during
// its wait (the agent killed) leaves the attempt counted and the update
// not installed, across a restart; the retry installs it; asking again
// for an installed update counts as a reinstall.
func TestSlowInstallInterrupted(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Seed: 7, Family: "linux", StateDir: dir, InstallTime: time.Hour}
	first := newSim(t, opts)
	u := firstAvailable(t, inventory(t, first))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := first.Install(ctx, []*protocol.Update{u})
		done <- err
	}()
	// The attempt is on disk once the install "runs".
	for newSim(t, opts).Installs(u.ID) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Install after the stop: %v, want context.Canceled", err)
	}
	restarted := newSim(t, Options{Seed: 7, Family: "linux", StateDir: dir})
	if got := find(inventory(t, restarted), u.ID); got == nil || got.Installed {
		t.Errorf("after an interrupted install, %s = %+v; want not installed", u.ID, got)
	}
	if n := restarted.Installs(u.ID); n != 1 {
		t.Errorf("Installs(%s) = %d, want the 1 interrupted attempt", u.ID, n)
	}
	for _, want := range []struct{ installs, reinstalls int }{{2, 0}, {3, 1}} {
		res, err := restarted.Install(context.Background(), []*protocol.Update{u})
		if err != nil || len(res) != 1 || !res[0].Succeeded {
			t.Fatalf("Install: %+v, %v", res, err)
		}
		if restarted.Installs(u.ID) != want.installs || restarted.Reinstalls(u.ID) != want.reinstalls {
			t.Errorf("installs %d, reinstalls %d; want %d, %d", restarted.Installs(u.ID), restarted.Reinstalls(u.ID), want.installs, want.reinstalls)
		}
	}
	if got := find(inventory(t, newSim(t, Options{Seed: 7, Family: "linux", StateDir: dir})), u.ID); got == nil || !got.Installed {
		t.Errorf("after the retry, %s = %+v; want installed", u.ID, got)
	}
}
