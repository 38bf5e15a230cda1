package localcmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
)

// DownOptions are the flags of `spate local down`.
type DownOptions struct {
	IO         *cmdutil.IOStreams
	DataDir    string
	DeleteData bool
	// Timeout bounds the wait for a graceful stop before SIGKILL.
	Timeout time.Duration
}

func newCmdDown(f *cmdutil.Factory) *cobra.Command {
	opts := &DownOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the local control plane and its SPUs",
		Long: `Down stops the local control plane (SIGTERM), which stops its SPUs, and
waits for them. The data stays for the next ` + "`spate local up`" + ` unless
--delete-data is given. The profile "local" is kept.`,
		Example: `  spate local down
  spate local down --delete-data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return downRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "directory of the data and logs")
	fl.BoolVar(&opts.DeleteData, "delete-data", false, "also delete the data directory, topics and records included")
	fl.DurationVar(&opts.Timeout, "timeout", 30*time.Second, "how long to wait for a graceful stop before killing")
	return cmd
}

func downRun(ctx context.Context, opts *DownOptions) error {
	in, err := readInstall(opts.DataDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", opts.DataDir, err)
	}
	if in.alive() {
		fmt.Fprintf(opts.IO.ErrOut, "Stopping the control plane (pid %d) and its SPUs\n", in.pid)
		if err := stop(ctx, in.pid, opts.Timeout); err != nil {
			return err
		}
		fmt.Fprintf(opts.IO.Out, "Spate stopped (data in %s).\n", in.dir)
	} else {
		fmt.Fprintf(opts.IO.Out, "No local control plane runs from %s.\n", in.dir)
	}
	clearInstall(in.dir)
	if opts.DeleteData {
		if err := removeData(in.dir); err != nil {
			return err
		}
		fmt.Fprintf(opts.IO.Out, "Deleted %s.\n", in.dir)
	}
	return nil
}

// stop asks the process to stop (SIGTERM), waits, and kills it after
// timeout.
func stop(ctx context.Context, pid int, timeout time.Duration) error {
	if err := terminate(pid); err != nil {
		return fmt.Errorf("stop the control plane (pid %d): %w", pid, err)
	}
	gone := func() bool { return !(install{pid: pid}).alive() }
	deadline := time.Now().Add(timeout)
	for !gone() {
		if time.Now().After(deadline) {
			_ = kill(pid)
			deadline = time.Now().Add(5 * time.Second)
			for !gone() {
				if time.Now().After(deadline) {
					return fmt.Errorf("the control plane (pid %d) did not stop, even after SIGKILL", pid)
				}
				time.Sleep(50 * time.Millisecond)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// removeData deletes the data directory, refusing a directory that does not
// look like one `spate local up` made.
func removeData(dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	_, errEtcd := os.Stat(filepath.Join(dir, "etcd"))
	_, errLog := os.Stat(filepath.Join(dir, logFile))
	if errEtcd != nil && errLog != nil {
		return fmt.Errorf("%s does not look like a data directory of `spate local up` (no etcd/ or %s); remove it yourself if you mean to", dir, logFile)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete %s: %w", dir, err)
	}
	return nil
}
