// Package proc starts and stops the benchmark's child processes (servers
// and CLI load generators), and reads their resident memory.
//
// Every child runs in its own process group, so that a Ctrl-C in the
// terminal reaches only the benchmark, which then stops its children in
// order; Linux's parent-death signal kills them if the benchmark itself is
// killed.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotFound means a tool the benchmark needs is not installed.
var ErrNotFound = errors.New("proc: tool not found")

// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// Process is a running child process.
type Process struct {
	cmd  *exec.Cmd
	name string
	done chan struct{} // closed when the process has exited
	err  error         // the exit status, set before done is closed

	// tail keeps the end of the combined output, for error messages.
	tail *tailBuffer
}

// Spec describes a process to start.
type Spec struct {
	// Path is the executable; Args its arguments.
	Path string
	Args []string
	// Env is added to the benchmark's environment.
	Env []string
	// Dir is the working directory; the current one when empty.
	Dir string
	// Log, when set, receives the process's stdout and stderr.
	Log io.Writer
	// Stdout, when set, receives stdout instead of Log (a pipe reader, for
	// instance).
	Stdout io.Writer
	// Stdin, when set, is the process's standard input.
	Stdin io.Reader
}

// CommandLine returns the spec as a shell-like command line, for reports.
func (s Spec) CommandLine() string {
	return CommandLine(s.Path, s.Args...)
}

// CommandLine joins a command and its arguments, quoting those that need it.
func CommandLine(path string, args ...string) string {
	parts := []string{path}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'{}$*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// Start starts the process described by s. The process is not tied to a
// context: call Stop (or Wait) to end it.
func Start(s Spec) (*Process, error) {
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Dir = s.Dir
	cmd.Stdin = s.Stdin
	tail := &tailBuffer{max: 8 << 10}
	var out io.Writer = tail
	if s.Log != nil {
		out = io.MultiWriter(s.Log, tail)
	}
	cmd.Stderr = out
	cmd.Stdout = out
	if s.Stdout != nil {
		cmd.Stdout = s.Stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.CommandLine(), err)
	}
	p := &Process{cmd: cmd, name: s.Path, done: make(chan struct{}), tail: tail}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Run starts s, waits for it to exit and returns its stdout and stderr
// together. When ctx ends first, the process is stopped and ctx's error
// returned.
func Run(ctx context.Context, s Spec) ([]byte, error) {
	var out bytes.Buffer
	if s.Log == nil {
		s.Log = &out
	} else {
		s.Log = io.MultiWriter(s.Log, &out)
	}
	p, err := Start(s)
	if err != nil {
		return nil, err
	}
	if err := p.Wait(ctx); err != nil {
		return out.Bytes(), err
	}
	return out.Bytes(), nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns an error with the end of
// its output when it failed. When ctx ends first, Wait stops the process
// and returns ctx's error.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Stop()
		return ctx.Err()
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w\n%s", p.name, p.err, p.tail.String())
	}
	return nil
}

// Exited returns the exit error with the end of the output, once the
// process has exited, or nil while it runs.
func (p *Process) Exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.tail.String())
	default:
		return nil
	}
}

// Status reports whether the process has exited and, if so, its exit
// error (nil for a zero exit status).
func (p *Process) Status() (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, waits up to 10 seconds, then
// sends SIGKILL. It is safe to call more than once and after the process
// has exited.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := -p.cmd.Process.Pid
	syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
}

// Output returns the end of the process's output (up to 8 KiB).
func (p *Process) Output() string { return p.tail.String() }

// RSS returns the resident memory of process pid (VmRSS in
// /proc/<pid>/status) in bytes.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "12345 kB"
		if len(f) == 2 && f[1] == "kB" {
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				return kb << 10, nil
			}
		}
		return 0, fmt.Errorf("process %d: cannot parse VmRSS line %q", pid, line)
	}
	return 0, fmt.Errorf("process %d: no VmRSS in /proc/%d/status", pid, pid)
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitListening waits until addr accepts TCP connections, p exits, or
// timeout passes.
func WaitListening(ctx context.Context, p *Process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if err := p.Exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %s\n%s", p.name, addr, timeout, p.Output())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// LookTool returns the path of an executable: path itself when it names a
// file, else a search of dirs and then PATH. The error says how to get it.
func LookTool(name, path string, dirs []string, hint string) (string, error) {
	if path != "" {
		if st, err := os.Stat(path); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return path, nil
		}
		return "", fmt.Errorf("%w: %s is not an executable file; %s", ErrNotFound, path, hint)
	}
	for _, d := range dirs {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s is not installed; %s", ErrNotFound, name, hint)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	max int
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Children returns the pids of the running processes whose parent is pid,
// from the stat files under /proc.
func Children(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid ...": comm may hold spaces and ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out, nil
}

// CPUTime returns the CPU time (user and system) that process pid has used
// so far, from /proc/<pid>/stat, at the kernel's 10 ms clock tick.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("process %d: cannot parse /proc/%d/stat", pid, pid)
	}
	// After the comm: state(0) ppid(1) ... utime(11) stime(12).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("process %d: cannot parse /proc/%d/stat", pid, pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process %d: cannot parse /proc/%d/stat: %w", pid, pid, err)
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux the benchmark targets.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// SelfCPUTime returns the CPU time (user and system) this process has used
// so far, at the resolution of getrusage(2).
func SelfCPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// FetchProfile saves what an SPU's /debug/pprof/KIND?seconds=SECS answers
// (kind "profile" for a CPU profile, "trace" for an execution trace) to
// path. baseURL is the SPU's URL, without a trailing slash.
func FetchProfile(ctx context.Context, hc *http.Client, baseURL, kind string, secs int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", baseURL, kind, secs), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("SPU %s: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("SPU %s: %s", kind, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
