package raft

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter lets hashicorp/raft log through our *slog.Logger. Methods not
// overridden come from the embedded null logger.
type hclogAdapter struct {
	hclog.Logger
	l    *slog.Logger
	name string
}

func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{Logger: hclog.NewNullLogger(), l: l.With("component", name), name: name}
}

func (a *hclogAdapter) log(level slog.Level, msg string, args ...any) {
	if !a.l.Enabled(context.Background(), level) {
		return
	}
	// hclog passes alternating keys and values like slog does, but keys may
	// not be strings; render them so slog never sees a malformed pair.
	a.l.Log(context.Background(), level, msg, attrsOf(args)...)
}

// attrsOf turns hclog's alternating keys and values into slog attributes,
// rendering hclog.Fmt values the way hclog would.
func attrsOf(args []any) []any {
	attrs := make([]any, 0, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		v := args[i+1]
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				v = fmt.Sprintf(format, f[1:]...)
			}
		}
		attrs = append(attrs, slog.Any(fmt.Sprint(args[i]), v))
	}
	return attrs
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	switch level {
	case hclog.Trace, hclog.Debug:
		a.log(slog.LevelDebug, msg, args...)
	case hclog.Warn:
		a.log(slog.LevelWarn, msg, args...)
	case hclog.Error:
		a.log(slog.LevelError, msg, args...)
	default:
		a.log(slog.LevelInfo, msg, args...)
	}
}
func (a *hclogAdapter) Trace(msg string, args ...any) { a.log(slog.LevelDebug-4, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.log(slog.LevelDebug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.log(slog.LevelInfo, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.log(slog.LevelWarn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.log(slog.LevelError, msg, args...) }
func (a *hclogAdapter) IsTrace() bool                 { return false }
func (a *hclogAdapter) IsDebug() bool {
	return a.l.Enabled(context.Background(), slog.LevelDebug)
}
func (a *hclogAdapter) IsInfo() bool  { return a.l.Enabled(context.Background(), slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool  { return a.l.Enabled(context.Background(), slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool { return a.l.Enabled(context.Background(), slog.LevelError) }
func (a *hclogAdapter) Name() string  { return a.name }
func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return &hclogAdapter{Logger: a.Logger, l: a.l.With(attrsOf(args)...), name: a.name}
}
func (a *hclogAdapter) Named(name string) hclog.Logger {
	return &hclogAdapter{Logger: a.Logger, l: a.l.With("sub", name), name: a.name + "." + name}
}
func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{Logger: a.Logger, l: a.l, name: name}
}
