package localcmd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/client/profile"
)

// UpOptions are the flags of `spate local up`.
type UpOptions struct {
	IO      *cmdutil.IOStreams
	Factory *cmdutil.Factory
	SPUs    int
	DataDir string
	Port    int
	Timeout time.Duration
	// Binary is the spate executable to run; default this one.
	Binary string
}

func newCmdUp(f *cmdutil.Factory) *cobra.Command {
	opts := &UpOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a control plane and SPUs in the background, and switch to them",
		Long: `Up starts, in the background, a control plane with an embedded etcd and a
cluster of --spus SPU processes, waits until every SPU is online, then writes
a profile named "local" pointing at the control plane and makes it current.

The control plane restarts an SPU that dies, and stops the SPUs when it
stops. Logs: DATA-DIR/control-plane.log and DATA-DIR/clusters/local/spu-N.log.
Running up again while the cluster runs only says so.`,
		Example: `  spate local up
  spate local up --spus 3
  spate local up --data-dir ./spate-data --port 9100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return upRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.SPUs, "spus", 1, "number of SPU processes")
	fl.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "directory of the data and logs")
	fl.IntVar(&opts.Port, "port", DefaultPort, "port of the control plane on 127.0.0.1")
	fl.DurationVar(&opts.Timeout, "timeout", 60*time.Second, "how long to wait for the cluster to be ready")
	return cmd
}

func upRun(ctx context.Context, opts *UpOptions) error {
	if opts.SPUs < 1 || opts.SPUs > 100 {
		return cmdutil.Usagef("--spus %d: use 1 to 100", opts.SPUs)
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return cmdutil.Usagef("--port %d: use 1 to 65535", opts.Port)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	in, err := readInstall(opts.DataDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", opts.DataDir, err)
	}
	if in.alive() {
		if healthy(ctx, in.url) {
			fmt.Fprintf(opts.IO.Out, "Spate is already running from %s: control plane %s (pid %d).\n", in.dir, in.url, in.pid)
			fmt.Fprintf(opts.IO.Out, "See it with `spate local status`; stop it with `spate local down`.\n")
			return nil
		}
		return fmt.Errorf("a control plane from %s (pid %d) runs but does not answer at %s; see %s, or stop it with `spate local down`",
			in.dir, in.pid, in.url, filepath.Join(in.dir, logFile))
	}
	clearInstall(in.dir) // stale files of a control plane that died

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port))
	if l, err := net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("port %d on 127.0.0.1 is taken (%v): stop what uses it, or choose another with --port", opts.Port, err)
	} else {
		l.Close()
	}
	url := "http://" + addr
	if err := os.MkdirAll(in.dir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	pid, exited, err := startControlPlane(opts, in.dir, addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "Starting a control plane at %s and %d SPU(s) (data and logs in %s)\n", url, opts.SPUs, in.dir)
	if err := waitReady(ctx, opts, url, exited); err != nil {
		_ = terminate(pid)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = kill(pid)
		}
		clearInstall(in.dir)
		return err
	}
	elapsed := time.Since(start)

	cfg, err := opts.Factory.Config()
	if err != nil {
		return err
	}
	if err := cfg.Set(ProfileName, profile.Profile{ControlPlane: url, Cluster: "local"}); err != nil {
		return err
	}
	if err := cfg.Switch(ProfileName); err != nil {
		return err
	}
	if err := cfg.Save(); err != nil {
		return &cmdutil.ConfigError{Err: err}
	}
	fmt.Fprintf(opts.IO.Out, "Spate is up in %.1fs: control plane %s (pid %d), %d SPU(s) online.\n", elapsed.Seconds(), url, pid, opts.SPUs)
	fmt.Fprintf(opts.IO.Out, "Profile %q is now current (%s).\n", ProfileName, cfg.Path())
	fmt.Fprintf(opts.IO.Out, "Try: spate topic create greetings --partitions 3 && echo hello | spate produce greetings && spate consume greetings -B\n")
	fmt.Fprintf(opts.IO.Out, "Stop it with `spate local down`.\n")
	return nil
}

// startControlPlane starts `spate control-plane serve` in a new session,
// writes the pid and URL files, and returns the pid and a channel closed
// when the process exits (it is reaped, so that a test running up in
// process leaves no zombie).
func startControlPlane(opts *UpOptions, dir, addr string) (int, <-chan struct{}, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return 0, nil, fmt.Errorf("find the spate binary: %w", err)
		}
	}
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- spate local up, %s\n", time.Now().Format(time.RFC3339))
	cmd := exec.Command(bin, "control-plane", "serve",
		"--addr", addr,
		"--data-dir", dir,
		"--local-spus", strconv.Itoa(opts.SPUs))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	cmd.SysProcAttr = detached()
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start the control plane: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return 0, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, urlFile), []byte("http://"+addr+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return 0, nil, err
	}
	return pid, exited, nil
}

// waitReady polls until the control plane answers and lists opts.SPUs
// online SPUs, printing progress as it changes.
func waitReady(ctx context.Context, opts *UpOptions, url string, exited <-chan struct{}) error {
	deadline := time.Now().Add(opts.Timeout)
	logPath := filepath.Join(opts.DataDir, logFile)
	if abs, err := filepath.Abs(logPath); err == nil {
		logPath = abs
	}
	last := ""
	progress := func(s string) {
		if s != last {
			fmt.Fprintf(opts.IO.ErrOut, "  %s\n", s)
			last = s
		}
	}
	for {
		select {
		case <-exited:
			return fmt.Errorf("the control plane exited at start; its log %s ends with:\n%s", logPath, tail(logPath, 15))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if !healthy(ctx, url) {
			progress("waiting for the control plane")
		} else if spus, err := listSPUs(ctx, url); err != nil {
			progress("waiting for the control plane to be ready")
		} else {
			online := 0
			for _, s := range spus {
				// A restarted control plane may list the SPUs of its last
				// run as online for a moment: ask each SPU too.
				if s.Online && healthy(ctx, s.Address) {
					online++
				}
			}
			progress(fmt.Sprintf("%d/%d SPUs online", online, opts.SPUs))
			if online >= opts.SPUs {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster was not ready after %v (%s), so it was stopped; see %s and the SPU logs in %s",
				opts.Timeout, last, logPath, filepath.Join(filepath.Dir(logPath), "clusters", "local"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
