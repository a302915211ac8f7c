package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchline/patchline/internal/proctest"
	"github.com/patchline/patchline/schema"
)

// withClient returns the valid test fleet plus client id with the CUE
// text policy (a %s in it stands for the id).
func withClient(t *testing.T, id, policy string) map[string][]byte {
	t.Helper()
	files := readFleet(t, "testdata/fleets/valid")
	files["clients/"+id+"/policy.cue"] = []byte(strings.ReplaceAll(policy, "%s", id))
	return files
}

// childLoader is a Loader whose child evaluator is this test binary
// (TestMain serves EvaluatorArg).
func childLoader(t *testing.T, opts Options) *Loader {
	t.Helper()
	ev, err := SelfEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	opts.Evaluator = ev
	if opts.Now.IsZero() {
		opts.Now = testNow
	}
	return New(opts)
}

// errorsOf returns a fleet's error-level problems as text.
func errorsOf(fleet *schema.Fleet) []string {
	var out []string
	for _, p := range fleet.Problems {
		if p.Level == schema.LevelError {
			out = append(out, p.String())
		}
	}
	return out
}

// clientCmp compares clients the way they are used: times by instant,
// locations by name.
var clientCmp = cmp.Options{
	cmp.Comparer(func(a, b *time.Location) bool { return a.String() == b.String() }),
}

// TestAnswerRoundTrip: a client and its problems come back from a child's
// JSON answer as they went in, for every golden fleet: equal values, the
// same JSON again (times keep their offsets), and Location loaded from
// Timezone.
func TestAnswerRoundTrip(t *testing.T) {
	dirs, err := filepath.Glob("testdata/fleets/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			fleet, err := New(Options{Now: testNow}).LoadDir(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			var clients []*schema.Client
			for _, c := range fleet.Clients {
				clients = append(clients, c)
			}
			clients = append(clients, nil) // a client that does not load
			for i, c := range clients {
				in := answer{Client: c, Problems: fleet.Problems}
				if i%2 == 1 {
					// What decoded of a client with errors travels the same way.
					in = answer{Problems: fleet.Problems, Partial: c}
				}
				b, err := json.Marshal(in)
				if err != nil {
					t.Fatal(err)
				}
				got, err := decodeAnswer(b)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(in.Client, got.client, clientCmp); diff != "" {
					t.Errorf("client after the round trip (-sent +received):\n%s", diff)
				}
				if diff := cmp.Diff(in.Partial, got.partial, clientCmp); diff != "" {
					t.Errorf("partial client after the round trip (-sent +received):\n%s", diff)
				}
				if diff := cmp.Diff(in.Problems, got.problems, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("problems after the round trip (-sent +received):\n%s", diff)
				}
				again, err := json.Marshal(answer{Client: got.client, Problems: got.problems, Partial: got.partial})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, again) {
					t.Errorf("JSON after the round trip differs:\nsent     %s\nreceived %s", b, again)
				}
				if c != nil && in.Client != nil && got.client.Location.String() != c.Timezone {
					t.Errorf("client %s: location %s, want %s", c.ID, got.client.Location, c.Timezone)
				}
			}
		})
	}
}

// TestChildEvaluatesLikeTheLoader: every golden fleet loads through child
// evaluators exactly as in process, problems and positions included.
func TestChildEvaluatesLikeTheLoader(t *testing.T) {
	dirs, err := filepath.Glob("testdata/fleets/*")
	if err != nil {
		t.Fatal(err)
	}
	child := childLoader(t, Options{})
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := New(Options{Now: testNow}).LoadDir(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			got, err := child.LoadDir(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, clientCmp); diff != "" {
				t.Errorf("fleet from child evaluators (-in process +child):\n%s", diff)
			}
		})
	}
	proctest.NoChildLeft(t)
}

// TestChildLimits: a client past a limit is killed and refused at its
// file, its slot is free at once, and the refusal is cached. The fleet
// holds the runaway alone: a healthy client would take as long as the
// deadline in a race-detector build (TestRunawaysDoNotBlockAHealthyClient
// has them together).
func TestChildLimits(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		// limit is the limit the runaway exceeds.
		limit time.Duration
		want  string
	}{
		{
			name:  "a comprehension past a short deadline",
			opts:  Options{Timeout: time.Second},
			limit: time.Second,
			want:  "clients/slow/policy.cue:1:1: evaluation exceeded 1s; simplify comprehensions and disjunctions",
		},
		{
			name: "a memory hog above a small limit",
			// Long enough that only the memory limit can stop it.
			opts:  Options{Timeout: time.Minute, MemoryLimit: 64 * MiB},
			limit: time.Minute,
			want:  "clients/slow/policy.cue:1:1: evaluation exceeded 64 MiB; simplify comprehensions and large lists",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.MemoryLimit != 0 && runtime.GOOS != "linux" {
				t.Skip("resident memory is watched on Linux only")
			}
			l := childLoader(t, tt.opts)
			files := readFleet(t, "testdata/fleets/no-clients")
			files["clients/slow/policy.cue"] = []byte(proctest.RunawayPolicy("slow"))
			start := time.Now()
			fleet, err := l.LoadFiles(context.Background(), files, "")
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.want}, errorsOf(fleet)); diff != "" || len(fleet.Clients) != 0 {
				t.Errorf("clients %v; problems (-want +got):\n%s", slicesKeys(fleet.Clients), diff)
			}
			t.Logf("the runaway was refused %v after the load began", took)
			if took > tt.limit+5*time.Second {
				t.Errorf("the load took %v, want the runaway killed at its limit", took)
			}
			if n := len(l.slots); n != 0 {
				t.Errorf("%d evaluation slots still held after the load", n)
			}
			proctest.NoChildLeft(t)

			// The same files are refused again at once.
			start = time.Now()
			fleet, err = l.LoadFiles(context.Background(), files, "")
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("reloading took %v: the runaway was evaluated again", took)
			}
			if diff := cmp.Diff([]string{tt.want}, errorsOf(fleet)); diff != "" {
				t.Errorf("reload: problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunawaysDoNotBlockAHealthyClient: with every slot held by a runaway
// (GOMAXPROCS of them, from concurrent loads), a healthy client still
// loads as soon as the first runaway reaches its deadline.
func TestRunawaysDoNotBlockAHealthyClient(t *testing.T) {
	// Long enough for a healthy client in a race-detector build on a busy
	// machine.
	const timeout = 5 * time.Second
	l := childLoader(t, Options{Timeout: timeout})
	ctx := context.Background()
	var wg sync.WaitGroup
	n := runtime.GOMAXPROCS(0)
	for i := range n {
		wg.Go(func() {
			id := "runaway" + string(rune('a'+i))
			files := readFleet(t, "testdata/fleets/no-clients")
			files["clients/"+id+"/policy.cue"] = []byte(proctest.RunawayPolicy(id))
			fleet, err := l.LoadFiles(ctx, files, "")
			if err != nil {
				t.Error(err)
				return
			}
			if got := errorsOf(fleet); len(got) != 1 || !strings.Contains(got[0], "evaluation exceeded 5s") {
				t.Errorf("runaway %s: problems %q", id, got)
			}
		})
	}
	// Let the runaways take every slot first.
	for deadline := time.Now().Add(timeout); len(l.slots) < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	fleet, err := l.LoadDir(ctx, "testdata/fleets/valid")
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(fleet.Clients) != 2 || len(errorsOf(fleet)) != 0 {
		t.Errorf("healthy fleet: clients %v, problems %v", slicesKeys(fleet.Clients), errorsOf(fleet))
	}
	t.Logf("the healthy clients loaded %v after %d runaways took every slot", took, n)
	if took > timeout+5*time.Second {
		t.Errorf("the healthy clients took %v to load, want at most the runaways' deadline (%v) and a little", took, timeout)
	}
	wg.Wait()
	proctest.NoChildLeft(t)
}

// TestCanceledLoadKillsTheChild: a load whose context ends stops its
// children at once, and does not cache the outcome it did not get.
func TestCanceledLoadKillsTheChild(t *testing.T) {
	l := childLoader(t, Options{Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := l.LoadFiles(ctx, withClient(t, "slow", proctest.RunawayPolicy("slow")), "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the context's", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the canceled load returned after %v", took)
	}
	for _, e := range l.cache {
		if e.res.client == nil {
			t.Errorf("a canceled load cached an outcome without a client: %v", e.res.problems)
		}
	}
	proctest.NoChildLeft(t)
}

// TestEvaluatorFaults: what a child that misbehaves by itself, or cannot
// run, does to a load.
func TestEvaluatorFaults(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the fake evaluators are shell scripts")
	}
	tests := []struct {
		name   string
		script string
		// want is the slow client's problem, or wantErr the load's error.
		want    string
		wantErr error
	}{
		{"a crash", "read x; echo 'fatal error: stack overflow' >&2; exit 2", "clients/slow/policy.cue:1:1: evaluation failed: exit status 2: fatal error: stack overflow", nil},
		{"an answer too big", "head -c 20000000 /dev/zero", "clients/slow/policy.cue:1:1: evaluation result exceeds 16 MiB", nil},
		{"an answer that is not one", "cat >/dev/null; echo PASS", "", ErrEvaluator},
		{"a binary that does not exist", "", "", ErrEvaluator},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &Command{Path: "/bin/sh", Args: []string{"-c", tt.script}}
			if tt.script == "" {
				ev = &Command{Path: filepath.Join(t.TempDir(), "no-such-evaluator")}
			}
			l := New(Options{Now: testNow, Evaluator: ev})
			fleet, err := l.LoadFiles(context.Background(), withClient(t, "slow", "package fleet\n"), "")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range fleet.Problems {
				if p.Client == "slow" {
					got = append(got, p.String())
				}
			}
			if diff := cmp.Diff([]string{tt.want}, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
	proctest.NoChildLeft(t)
}

// TestEvaluatorRefusesABadRequest: a child given something other than a
// request exits 2 and says why.
func TestEvaluatorRefusesABadRequest(t *testing.T) {
	ev, err := SelfEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ev.Path, ev.Args...)
	cmd.Stdin = strings.NewReader("not JSON")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "read request") {
		t.Errorf("exit %v, stderr %q; want status 2 and the reason", err, stderr.String())
	}
}

func TestBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    Bytes
		text    string
		wantErr bool
	}{
		{in: "512MiB", want: 512 * MiB, text: "512 MiB"},
		{in: "512 MiB", want: 512 * MiB, text: "512 MiB"},
		{in: "1GiB", want: GiB, text: "1 GiB"},
		{in: "1536MiB", want: 1536 * MiB, text: "1536 MiB"},
		{in: "64KiB", want: 64 * KiB, text: "64 KiB"},
		{in: "1000", want: 1000, text: "1000 B"},
		{in: "0", wantErr: true},
		{in: "-1MiB", wantErr: true},
		{in: "1.5GiB", wantErr: true},
		{in: "512MB", wantErr: true},
		{in: "99999999999GiB", wantErr: true},
	}
	for _, tt := range tests {
		var b Bytes
		err := b.Set(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("Set(%q): error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && (b != tt.want || b.String() != tt.text) {
			t.Errorf("Set(%q) = %d (%s), want %d (%s)", tt.in, int64(b), b, int64(tt.want), tt.text)
		}
	}
}

// TestLoadClients: loading named clients evaluates those alone, so a
// runaway elsewhere in the revision costs nothing.
func TestLoadClients(t *testing.T) {
	l := childLoader(t, Options{Timeout: time.Minute})
	files := withClient(t, "slow", proctest.RunawayPolicy("slow"))
	files["clients/retired/notes/policy.cue"] = []byte("package fleet\n")
	tests := []struct {
		name        string
		ids         []string
		wantClients []string
	}{
		{"one client", []string{"globex"}, []string{"globex"}},
		{"two clients", []string{"acme", "globex"}, []string{"acme", "globex"}},
		{"a client the revision lacks", []string{"initech"}, nil},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fleet, err := l.LoadClients(context.Background(), files, "c0ffee", tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			got := slicesKeys(fleet.Clients)
			slices.Sort(got)
			if diff := cmp.Diff(tt.wantClients, got); diff != "" {
				t.Errorf("clients (-want +got):\n%s", diff)
			}
			if len(fleet.Problems) != 0 {
				t.Errorf("problems of clients not asked for: %v", fleet.Problems)
			}
			if fleet.Revision != "c0ffee" {
				t.Errorf("revision %q", fleet.Revision)
			}
		})
	}
	proctest.NoChildLeft(t)
}
