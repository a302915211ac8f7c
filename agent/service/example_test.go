package service_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/patchline/patchline/agent/service"
)

// patch-agent run hands its whole work to RunService, configuration
// included, so that under the Windows SCM a configuration error is logged
// to the event log and ends the service with status 2.
func ExampleRunService() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	os.Exit(service.RunService(service.WindowsService, func(ctx context.Context, log *slog.Logger) int {
		// Read the flags and config file, build the agent with log, and
		// run it until ctx ends: 0 when stopped, 2 for a configuration
		// error, 3 to be restarted after a self-update, 1 otherwise.
		<-ctx.Done()
		return 0
	}, log))
}
