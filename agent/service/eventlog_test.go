package service

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

type event struct {
	kind string
	id   uint32
	msg  string
}

// fakeEventLog records events as the Windows event log would keep them.
type fakeEventLog struct {
	events []event
	err    error
}

func (f *fakeEventLog) add(kind string, id uint32, msg string) error {
	f.events = append(f.events, event{kind, id, msg})
	return f.err
}
func (f *fakeEventLog) Info(id uint32, msg string) error    { return f.add("info", id, msg) }
func (f *fakeEventLog) Warning(id uint32, msg string) error { return f.add("warning", id, msg) }
func (f *fakeEventLog) Error(id uint32, msg string) error   { return f.add("error", id, msg) }

func TestEventHandler(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Level
		log   func(*slog.Logger)
		want  []event
	}{
		{
			name:  "each level becomes its event type, without time and level in the text",
			level: slog.LevelInfo,
			log: func(l *slog.Logger) {
				l.Info("agent started", "controller", "https://patchd.msp.example")
				l.Warn("controller unreachable", "retry", "10s")
				l.Error("job failed", "job", 42)
			},
			want: []event{
				{"info", eventInfo, `msg="agent started" controller=https://patchd.msp.example`},
				{"warning", eventWarning, `msg="controller unreachable" retry=10s`},
				{"error", eventError, `msg="job failed" job=42`},
			},
		},
		{
			name:  "debug is dropped at info level",
			level: slog.LevelInfo,
			log:   func(l *slog.Logger) { l.Debug("poll"); l.Info("report sent") },
			want:  []event{{"info", eventInfo, `msg="report sent"`}},
		},
		{
			name:  "debug is an information event at debug level",
			level: slog.LevelDebug,
			log:   func(l *slog.Logger) { l.Debug("poll") },
			want:  []event{{"info", eventInfo, `msg=poll`}},
		},
		{
			name:  "attributes and groups of derived loggers are kept, the level of each record too",
			level: slog.LevelInfo,
			log: func(l *slog.Logger) {
				jl := l.With("client", "acme").WithGroup("job")
				jl.Error("install failed", "id", "kb5034441")
				l.Info("plain")
			},
			want: []event{
				{"error", eventError, `msg="install failed" client=acme job.id=kb5034441`},
				{"info", eventInfo, `msg=plain`},
			},
		},
		{
			name:  "endpoint text is quoted, newlines included",
			level: slog.LevelInfo,
			log:   func(l *slog.Logger) { l.Info("apt said", "out", "E: lock\nheld") },
			want:  []event{{"info", eventInfo, `msg="apt said" out="E: lock\nheld"`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var el fakeEventLog
			tt.log(slog.New(newEventHandler(&el, tt.level)))
			if diff := cmp.Diff(tt.want, el.events, cmp.AllowUnexported(event{})); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventHandlerLongMessage(t *testing.T) {
	var el fakeEventLog
	slog.New(newEventHandler(&el, slog.LevelInfo)).Info(strings.Repeat("é", maxEventText))
	if len(el.events) != 1 {
		t.Fatalf("got %d events, want 1", len(el.events))
	}
	msg := el.events[0].msg
	if len(msg) > maxEventText+len("…") || !strings.HasSuffix(msg, "…") || !utf8.ValidString(msg) {
		t.Errorf("long message kept as %d bytes (valid UTF-8: %v), want at most %d, cut on a character and marked", len(msg), utf8.ValidString(msg), maxEventText+len("…"))
	}
}

func TestEventHandlerReportsWriteErrors(t *testing.T) {
	el := fakeEventLog{err: errors.New("event log full")}
	h := newEventHandler(&el, slog.LevelInfo)
	r := slog.NewRecord(time.Time{}, slog.LevelInfo, "hello", 0)
	if err := h.Handle(t.Context(), r); err == nil || !strings.Contains(err.Error(), "event log full") {
		t.Errorf("Handle: %v, want the event log's error", err)
	}
}
