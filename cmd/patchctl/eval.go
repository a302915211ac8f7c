package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// evalFlags are --eval-timeout and --eval-memory of the commands that load
// a fleet (vet, plan, why, history, report): the limits patchd applies to
// one client's policy evaluation, with the same defaults, so that a policy
// patchd would refuse fails in CI too and a hostile one cannot hang it.
type evalFlags struct {
	timeout time.Duration
	memory  loader.Bytes
}

func (f *evalFlags) register(cmd *cobra.Command) {
	f.memory = loader.DefaultMemoryLimit
	cmd.Flags().DurationVar(&f.timeout, "eval-timeout", loader.DefaultTimeout, "wall-clock `time` one client's policy evaluation may take, as patchd's --eval-timeout")
	cmd.Flags().Var(&f.memory, "eval-memory", "`amount` of resident memory one client's policy evaluation may use, as patchd's --eval-memory")
}

// loader returns a Loader that evaluates each client in a child process of
// patchctl's own binary under the limits, with expiry warnings at now
// (zero: the time of each load).
func (f *evalFlags) loader(now time.Time) (*loader.Loader, error) {
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--eval-timeout %v: must be positive", f.timeout)
	}
	ev, err := loader.SelfEvaluator()
	if err != nil {
		return nil, err
	}
	return loader.New(loader.Options{Now: now, Evaluator: ev, Timeout: f.timeout, MemoryLimit: f.memory}), nil
}

// loadFleet loads dir's working tree with l, or revision rev of the
// repository in dir when rev is set.
func loadFleet(ctx context.Context, l *loader.Loader, dir, rev string) (*schema.Fleet, error) {
	if rev != "" {
		return source.LoadRevision(ctx, l, dir, rev)
	}
	return l.LoadDir(ctx, dir)
}
