package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/fleetsim"
	"github.com/patchline/patchline/protocol"
)

func newSimCmd() *cobra.Command {
	var (
		opts        fleetsim.Options
		secretsFile string
		cpuProfile  string
	)
	cmd := &cobra.Command{
		Use:   "sim --controller URL --secrets FILE --clients C --endpoints N",
		Short: "Simulate a fleet of agents against a controller and measure it",
		Long: `sim runs --endpoints real agents in this process (the agent code patch-agent
runs, with a simulated package backend) against the controller at
--controller, spread over the first --clients clients of a fleet made by
'patchctl fleet generate', each missing --updates updates. It shows progress
and waits until the controller's /v1/status reports every client compliant
(read with the admin token from --secrets), then, with --repo-dir and
--commits, releases a held update in that many clients, one commit and one
webhook each, and times each push to its first job. It ends with a summary:
time to converge, report rate, check-in and job latency percentiles, errors
by kind, and the controller's memory from its metrics (--metrics, the
address patchd's --metrics-listen gives).

With several replicas, give --controller all their URLs separated by
commas: agent i starts at replica i mod n (and knows the others, moving on
when one is unreachable), the status is read from the first that answers
and webhooks go to the first; --metrics may list each replica's metrics
URL, and the summary gives each one's memory.

Every agent holds a connection: sim raises its own open-file limit, and the
controller needs 'ulimit -n' above --endpoints too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if secretsFile == "" {
				return fmt.Errorf("--secrets is required (the secrets file patchd reads)")
			}
			sec, err := protocol.ReadSecretsFile(secretsFile)
			if err != nil {
				return err
			}
			opts.Secrets = sec
			// Each agent holds one connection; the rest is headroom for
			// state files, the probe and the runtime.
			if err := fleetsim.RaiseFileLimit(uint64(opts.Endpoints) + 1024); err != nil {
				return err
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			// The simulator is a load generator sharing the machine with
			// the controller it measures: it spends memory to collect
			// garbage less often (its GC was a tenth of its CPU while a
			// fleet enrolled), unless GOGC says otherwise.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(simGCPercent)
			}
			opts.Progress = cmd.ErrOrStderr()
			opts.Terminal = isTerminal(opts.Progress)
			sum, err := fleetsim.Run(cmd.Context(), opts)
			if sum != nil {
				if werr := sum.WriteText(cmd.OutOrStdout()); werr != nil && err == nil {
					err = werr
				}
			}
			if err != nil {
				return err
			}
			if !sum.Converged {
				return exitError{code: 2}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Controller, "controller", "http://127.0.0.1:8420", "controller base `URL`, or its replicas' URLs separated by commas (agents spread over them)")
	f.StringVar(&opts.Metrics, "metrics", "http://127.0.0.1:9420/metrics", "`URL` of the controller's metrics, or its replicas' separated by commas, read for their memory (empty: not measured)")
	f.StringVar(&secretsFile, "secrets", "", "secrets `FILE` (as patchd reads it)")
	f.IntVar(&opts.Clients, "clients", 10, "clients to spread the endpoints over")
	f.IntVar(&opts.Endpoints, "endpoints", 100, "simulated endpoints (agents)")
	f.IntVar(&opts.Updates, "updates", 5, "updates each endpoint is missing at start")
	f.Float64Var(&opts.FailureRate, "failure-rate", 0, "chance, 0 to 1, that one install fails")
	f.DurationVar(&opts.Duration, "duration", 5*time.Minute, "give up after this long")
	f.StringVar(&opts.StateDir, "state-dir", "", "`DIR` for the agents' state directories (default: the temporary directory)")
	f.StringVar(&opts.RepoDir, "repo-dir", "", "the fleet repo `DIR` patchd follows, for --commits")
	f.IntVar(&opts.Commits, "commits", 0, "after converging, time this many commits to their first job")
	f.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the simulator itself to `FILE` (for 'go tool pprof')")
	return cmd
}

// simGCPercent is the simulator's GOGC.
const simGCPercent = 400

// startCPUProfile profiles this process's CPU into the file at path until
// the returned function is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// isTerminal reports whether w is a terminal, where progress is redrawn in
// place.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
