package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/patchline/patchline/internal/netaddr"
)

// serveDebug serves Go's profiler (/debug/pprof/) on addr until ctx ends,
// and returns the address it listens on.
// It is for measuring the controller (BENCHMARKS.md takes its CPU profiles
// this way), so it listens on loopback only: a profile shows the
// controller's internals, and a CPU profile costs CPU while it runs.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) (net.Addr, error) {
	loopback, err := netaddr.IsLoopbackAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-listen %q: %w", addr, err)
	}
	if !loopback {
		return nil, fmt.Errorf("--debug-listen %q: the profiler is served on a loopback address only, such as 127.0.0.1:6060", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("profiler stopped", "err", err)
		}
	}()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return ln.Addr(), nil
}
