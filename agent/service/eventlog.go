package service

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"
)

// eventWriter is the Windows event log as the agent writes to it
// (*eventlog.Log of golang.org/x/sys/windows/svc/eventlog).
type eventWriter interface {
	Info(eid uint32, msg string) error
	Warning(eid uint32, msg string) error
	Error(eid uint32, msg string) error
}

// Event ids by level; the source is registered with EventCreate.exe as
// its message file, which takes ids from 1 to 1000.
const (
	eventInfo    = 1
	eventWarning = 2
	eventError   = 3
)

// maxEventText keeps a message under the event log's limit of 31,839
// characters per string.
const maxEventText = 31000

// newEventHandler gives a slog.Handler that writes each record to w as
// one event: its level picks the event type (debug and info are
// information events), and its text is the message and attributes in
// slog's text format, without time and level, which the event log
// records itself.
func newEventHandler(w eventWriter, level slog.Leveler) slog.Handler {
	sink := &eventSink{w: w}
	text := slog.NewTextHandler(sink, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return eventHandler{text: text, sink: sink}
}

// eventSink receives the text handler's one Write per record and sends
// it to the event log at the level of the record being handled.
type eventSink struct {
	w eventWriter
	// mu is held by eventHandler.Handle around the text handler's Write,
	// so level is that record's.
	mu    sync.Mutex
	level slog.Level
}

func (s *eventSink) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if len(msg) > maxEventText {
		n := maxEventText
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n] + "…"
	}
	var err error
	switch {
	case s.level >= slog.LevelError:
		err = s.w.Error(eventError, msg)
	case s.level >= slog.LevelWarn:
		err = s.w.Warning(eventWarning, msg)
	default:
		err = s.w.Info(eventInfo, msg)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

type eventHandler struct {
	text slog.Handler
	sink *eventSink
}

func (h eventHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h eventHandler) Handle(ctx context.Context, r slog.Record) error {
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	h.sink.level = r.Level
	return h.text.Handle(ctx, r)
}

func (h eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return eventHandler{text: h.text.WithAttrs(as), sink: h.sink}
}

func (h eventHandler) WithGroup(name string) slog.Handler {
	return eventHandler{text: h.text.WithGroup(name), sink: h.sink}
}
