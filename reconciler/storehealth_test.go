package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/store"
)

// TestStoreHealth: which write outcomes make the store failing, which
// make it recover, and which say nothing about it.
func TestStoreHealth(t *testing.T) {
	full := errors.New("commit: database or disk is full (13)")
	type write struct {
		op    string
		err   error
		wrote bool
	}
	tests := []struct {
		name        string
		writes      []write
		wantFailing bool
		wantErrors  map[string]float64
	}{
		{name: "writes that succeed", writes: []write{{opReport, nil, true}, {opJobs, nil, true}}},
		{name: "a failed write", writes: []write{{opReport, full, true}}, wantFailing: true, wantErrors: map[string]float64{opReport: 1}},
		{name: "a write that succeeds after failures", writes: []write{{opReport, full, true}, {opJobs, full, true}, {opResult, nil, true}},
			wantErrors: map[string]float64{opReport: 1, opJobs: 1}},
		{name: "a success that wrote nothing is no recovery", writes: []write{{opRevision, full, true}, {opJobs, nil, false}}, wantFailing: true,
			wantErrors: map[string]float64{opRevision: 1}},
		{name: "answers about the data are no failure", writes: []write{
			{opReport, fmt.Errorf("report: older than the stored one: %w", store.ErrConflict), true},
			{opLease, fmt.Errorf("lease: %w", store.ErrNotFound), true},
			{opEnroll, fmt.Errorf("enroll: %w", store.ErrInvalid), true},
			{opReport, context.Canceled, true},
		}},
		{name: "an answer about the data does not end a failure", writes: []write{{opAudit, full, true}, {opReport, fmt.Errorf("x: %w", store.ErrConflict), true}},
			wantFailing: true, wantErrors: map[string]float64{opAudit: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))
			reg := prometheus.NewRegistry()
			h := newStoreHealth(slog.New(slog.NewTextHandler(io.Discard, nil)), clk.Now, metrics.NewStore(reg, storeOps))
			for _, w := range tt.writes {
				clk.Advance(time.Second)
				h.observe(w.op, w.err, w.wrote)
			}
			st := h.status()
			if st.Failing != tt.wantFailing {
				t.Errorf("failing %v, want %v (%+v)", st.Failing, tt.wantFailing, st)
			}
			if err := h.ready(); (err != nil) != tt.wantFailing {
				t.Errorf("ready = %v, want an error %v", err, tt.wantFailing)
			}
			for _, op := range storeOps {
				got := storeErrors(t, reg, op)
				if got != tt.wantErrors[op] {
					t.Errorf("patchline_store_errors_total{op=%q} = %v, want %v", op, got, tt.wantErrors[op])
				}
			}
			if len(tt.wantErrors) > 0 && (st.LastError != full.Error() || st.LastErrorAt.IsZero()) {
				t.Errorf("last error %q at %v, want %q", st.LastError, st.LastErrorAt, full)
			}
			if len(tt.wantErrors) > 0 && !tt.wantFailing && st.RecoveredAt.IsZero() {
				t.Errorf("recovered, but no recovery time: %+v", st)
			}
		})
	}
}

// TestStoreNotOpenIsNotReady: once the store is closed, patchd is not
// ready.
func TestStoreNotOpenIsNotReady(t *testing.T) {
	h := newStoreHealth(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now, metrics.NewStore(prometheus.NewRegistry(), storeOps))
	if err := h.ready(); err != nil {
		t.Fatalf("ready with an open store: %v", err)
	}
	h.closed()
	if err := h.ready(); err == nil || !strings.Contains(err.Error(), "not open") {
		t.Errorf("ready with the store closed = %v, want the store is not open", err)
	}
}

// storeErrors is patchline_store_errors_total{op} in reg.
func storeErrors(t *testing.T, reg *prometheus.Registry, op string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "patchline_store_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no patchline_store_errors_total{op=%q}", op)
	return 0
}
