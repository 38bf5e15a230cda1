package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spatehq/spate/smartmodule/abi"
)

// Errors of the engine itself, wrapped with the details.
var (
	// ErrClosed: the engine or the chain is closed.
	ErrClosed = errors.New("smartmodule engine: closed")
	// ErrEvicted: NewChain was given a Module that the engine has since
	// evicted from its cache (Config.MaxModules) and released; Compile the
	// module again.
	ErrEvicted = errors.New("smartmodule engine: module evicted from the cache")
)

// Error is how a module fails a chain: it reported an error itself, it
// trapped or panicked, it ran past the time or memory limit, or its result
// broke the ABI. Once a chain returns an Error it is dead: every later call
// returns the same Error. Other chains, of the same module or not, are not
// affected.
type Error struct {
	// Module is the Spec's Name ("acme/json-filter@1.0.0" or a file name).
	Module string
	Kind   abi.Kind
	// Offset is the offset of the record that failed, or -1 when the
	// failure is about no record the engine can name (a trap in the
	// middle of a batch, a failure of init).
	Offset int64
	// FirstOffset and LastOffset are the offsets of the first and last
	// record of the call that failed, or -1 for a call without records
	// (init).
	FirstOffset, LastOffset int64
	// Message says what went wrong, in the guest's words where it gave
	// some (its own error, a Go panic's message), else in the engine's:
	// "call took longer than 5s (endless loop?)", "out of memory (limit
	// 64 MiB)", "malformed result: ...", or the rule the result broke.
	Message string
	// Stderr is the tail of what the module wrote to stderr and stdout
	// during the call that failed (a Go panic's message and stack, for
	// instance); empty when it wrote nothing.
	Stderr string
	// Err is the cause when there is one to test with errors.Is: the
	// caller's context error for a canceled call, abi.ErrMalformed for a
	// malformed result, a *abi.ModuleError for an error the module
	// reported.
	Err error
}

// Error reads, for example:
//
//	smartmodule acme/json-filter@1.0.0 (filter) failed at offset 1234: field "level" is not a string
//	smartmodule loop.wasm (map) failed in the batch of offsets 0 to 999: call took longer than 5s (endless loop?)
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "smartmodule %s (%s) failed", e.Module, e.Kind)
	switch {
	case e.Offset >= 0:
		fmt.Fprintf(&b, " at offset %d", e.Offset)
	case e.FirstOffset >= 0 && e.FirstOffset == e.LastOffset:
		fmt.Fprintf(&b, " at offset %d", e.FirstOffset)
	case e.FirstOffset >= 0:
		fmt.Fprintf(&b, " in the batch of offsets %d to %d", e.FirstOffset, e.LastOffset)
	default:
		b.WriteString(" in init")
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// gist picks, from what a guest wrote to stderr, the lines a person needs:
// a Go panic or fatal error with the guest frame that raised it, else the
// last lines written.
func gist(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	var picked []string
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			picked = append(picked, strings.TrimSpace(l))
			if at := guestFrame(lines[i+1:]); at != "" {
				picked = append(picked, at)
			}
			break
		}
	}
	if len(picked) == 0 {
		for i := len(lines) - 1; i >= 0 && len(picked) < 3; i-- {
			if l := strings.TrimSpace(lines[i]); l != "" {
				picked = append([]string{l}, picked...)
			}
		}
	}
	s := strings.Join(picked, "; ")
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

// guestFrame finds, in a Go stack trace, the first frame outside the
// runtime: "at main.filter.func1 (main.go:35)".
func guestFrame(lines []string) string {
	for i := 0; i+1 < len(lines); i++ {
		fn := strings.TrimSpace(lines[i])
		file := strings.TrimSpace(lines[i+1])
		if !strings.HasPrefix(lines[i+1], "\t") || strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "panic(") || strings.HasPrefix(fn, "goroutine ") {
			continue
		}
		if j := strings.LastIndex(fn, "("); j > 0 {
			fn = fn[:j]
		}
		if j := strings.Index(file, " +0x"); j > 0 {
			file = file[:j]
		}
		if j := strings.LastIndex(file, "/"); j >= 0 {
			file = file[j+1:]
		}
		return fmt.Sprintf("at %s (%s)", fn, file)
	}
	return ""
}
