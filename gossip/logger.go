package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// newStdLogger adapts memberlist's log.Logger output ("[WARN] memberlist:
// ...") to slog, keeping the level.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{l}, "", 0)
}

type slogWriter struct{ l *slog.Logger }

var levels = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

func (w slogWriter) Write(b []byte) (int, error) {
	msg := bytes.TrimSpace(b)
	level := slog.LevelInfo
	for _, lv := range levels {
		if bytes.HasPrefix(msg, lv.prefix) {
			level = lv.level
			msg = bytes.TrimSpace(msg[len(lv.prefix):])
			break
		}
	}
	msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
	w.l.Log(context.Background(), level, string(msg))
	return len(b), nil
}
