package service

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// runForeground runs run with a context that an interrupt or SIGTERM
// cancels.
func runForeground(run func(ctx context.Context, log *slog.Logger) int, log *slog.Logger) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, log)
}
