package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// logWriter turns memberlist's "[LEVEL] memberlist: text" log lines into
// structured records at the matching level. memberlist's goroutines outlive
// its Shutdown by a moment and then log send errors; close makes the writer
// drop them, and waits for a write in progress, so nothing is logged after
// Cluster.Shutdown returns.
type logWriter struct {
	log    *slog.Logger
	mu     sync.RWMutex
	closed bool
}

func (w *logWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return len(p), nil
	}
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{
		"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo,
		"[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError,
	} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			level, line = l, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
