package sim

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/notify"
	"github.com/patchline/patchline/protocol"
)

func TestRollback(t *testing.T) {
	for _, family := range []string{"windows", "linux"} {
		t.Run(family, func(t *testing.T) {
			dir := t.TempDir()
			b := newSim(t, Options{Seed: 7, Family: family, StateDir: dir})
			ctx := context.Background()
			u := firstAvailable(t, inventory(t, b))
			if res, err := b.Install(ctx, []*protocol.Update{u}); err != nil || !res[0].Succeeded {
				t.Fatalf("install: %+v, %v", res, err)
			}
			res, err := b.Rollback(ctx, []*protocol.Update{u})
			if err != nil || !res[0].Succeeded {
				t.Fatalf("rollback: %+v, %v", res, err)
			}
			after := inventory(t, newSim(t, Options{Seed: 7, Family: family, StateDir: dir}))
			if got := find(after, u.ID); got == nil || got.Installed {
				t.Errorf("after rollback and a restart: %+v, want %s offered, not installed", got, u.ID)
			}
			if u.InstalledVersion != "" {
				if old := find(after, u.Name+"@"+u.InstalledVersion); old == nil || !old.Installed {
					t.Errorf("the version before, %s@%s, is not installed again: %+v", u.Name, u.InstalledVersion, old)
				}
			}
			var came *protocol.Update
			for _, c := range after {
				if c.Installed {
					came = c
					break
				}
			}
			res, err = b.Rollback(ctx, []*protocol.Update{came})
			if err != nil {
				t.Fatal(err)
			}
			switch family {
			case "windows":
				if !res[0].Succeeded || find(inventory(t, b), came.ID).Installed {
					t.Errorf("uninstalling %s the machine came with: %+v", came.ID, res)
				}
			default:
				if want := "cannot roll back " + came.Name + " " + came.Version + ": no older version available"; res[0].Error != want {
					t.Errorf("rolling back %s the machine came with: %+v, want %q", came.ID, res, want)
				}
			}
		})
	}
}

func TestPromptsAreRecordedAndAnsweredBySeed(t *testing.T) {
	answers := func(seed uint64) []notify.Answer {
		b := newSim(t, Options{Seed: seed, Family: "windows", StateDir: t.TempDir()})
		var out []notify.Answer
		for range 8 {
			a, err := b.Ask(context.Background(), notify.Prompt{Title: "Restart needed", Message: "m"})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		if err := b.Notify(context.Background(), "Restart soon", "w"); err != nil {
			t.Fatal(err)
		}
		if p := b.Prompts(); len(p) != 9 || p[8].Answer != "" || p[0].Answer != out[0] || !p[0].At.Equal(clock()) {
			t.Errorf("recorded prompts = %+v", p)
		}
		return out
	}
	a, again := answers(7), answers(7)
	if d := cmp.Diff(a, again); d != "" {
		t.Errorf("the same seed answered differently:\n%s", d)
	}
	postponed := 0
	for _, x := range append(a, answers(8)...) {
		if x == notify.Postpone {
			postponed++
		}
	}
	if postponed == 0 || postponed == 16 {
		t.Errorf("%d of 16 answers postponed: want a mix", postponed)
	}
}

func TestSimulatedReboot(t *testing.T) {
	b := newSim(t, Options{Seed: 7, Family: "windows"})
	b.st.RebootPending = true
	if err := b.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p, _ := b.RebootPending(context.Background()); p || b.Reboots() != 1 {
		t.Errorf("after a reboot: pending %v, reboots %d", p, b.Reboots())
	}
}
