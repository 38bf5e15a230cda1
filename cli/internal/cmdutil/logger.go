package cmdutil

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// NewLogger returns the structured logger of the servers: JSON or text on w
// at the named level (debug, info, warn, error).
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, Usagef("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, Usagef("log format %q: use text or json", format)
}

// Must panics on err; for flag registration that cannot fail.
func Must(err error) {
	if err != nil {
		panic(fmt.Sprintf("cmdutil: %v", err))
	}
}
