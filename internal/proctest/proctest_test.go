package proctest

import (
	"os/exec"
	"runtime"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }

func TestNoChildLeft(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("children are listed on Linux only")
	}
	NoChildLeft(t)
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	r := &recorder{TB: t}
	NoChildLeft(r)
	cmd.Process.Kill()
	cmd.Wait()
	if !r.failed {
		t.Error("a running child was not reported")
	}
	NoChildLeft(t)
}
