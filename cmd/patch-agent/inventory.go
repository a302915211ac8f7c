package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/internal/cliconf"
)

// newInventoryCmd is `patch-agent inventory`: it prints what this
// endpoint would report, as a table or as the report's JSON. Its flags
// come from the environment and the config file too; runKeys are the
// file's keys for run, which it skips.
func newInventoryCmd(stderr io.Writer, lookupEnv func(string) (string, bool), configFile string, runKeys []string) *cobra.Command {
	var backendName, format, stateDir string
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Print what this endpoint would report about its updates, without a controller",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != agent.FormatText && format != agent.FormatJSON {
				return fmt.Errorf("inventory: --format %q: want text or json", format)
			}
			log := slog.New(slog.NewTextHandler(stderr, nil))
			cfg := agent.Config{StateDir: stateDir, OS: hostOS(), Logger: log}
			h, err := os.Hostname()
			if err != nil {
				return cliconf.ExitError{Code: 1, Err: fmt.Errorf("inventory: hostname: %w", err)}
			}
			cfg.Hostname = h
			b, err := newBackend(backendSpec{name: backendName}, cfg)
			if err != nil {
				return fmt.Errorf("inventory: --backend %s: %w", backendName, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ups, err := agent.Inventory(ctx, b)
			if err != nil {
				return cliconf.ExitError{Code: 1, Err: fmt.Errorf("inventory: %w", err)}
			}
			if err := agent.WriteInventory(cmd.OutOrStdout(), ups, format); err != nil {
				return cliconf.ExitError{Code: 1, Err: fmt.Errorf("inventory: %w", err)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&backendName, "backend", backend.Auto, "package backend: auto (this machine's package managers), apt, winget, windows-update, choco, brew or sim")
	cmd.Flags().StringVar(&format, "format", agent.FormatText, "output: text (a table) or json (the updates as a report carries them)")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "the agent's state `DIR`, to reuse what its backends keep there (apt's changelog facts, the simulated machine); default: none")
	cliconf.Bind(cmd, configFile, lookupEnv, runKeys)
	return cmd
}
