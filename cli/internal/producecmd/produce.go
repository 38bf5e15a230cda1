// Package producecmd implements `spate produce`.
package producecmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/transforms"
	"github.com/spatehq/spate/client"
)

// leaderTimeout bounds the wait for the leaders of the topic's partitions.
const leaderTimeout = 30 * time.Second

// Options are the flags of `spate produce`.
type Options struct {
	Factory      *cmdutil.Factory
	Topic        string
	File         string
	Key          string
	KeySeparator string
	Partition    int32
	Compression  string
	Linger       time.Duration
	BatchSize    int
	Acks         string
	MaxLine      int
	// Progress forces the progress bar of --file on, even when standard
	// error is not a terminal.
	Progress bool
	// Transforms are the SmartModules to run on the SPU before writing.
	Transforms transforms.Flags
}

// NewCmdProduce returns `spate produce`.
func NewCmdProduce(f *cmdutil.Factory) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce records from standard input or a file, one record a line",
		Long: `Produce reads lines from standard input (or --file) and sends each as a
record. Records are batched, compressed and pipelined; the command returns
once every record is acknowledged, and fails if any was not.

Without a key, records are spread round-robin over the partitions; with a
key, the partition is a stable hash of the key, so records with one key stay
in order in one partition.

` + transforms.Help + `

The modules run on the SPU before the records are written: what is stored
is what they emit.`,
		Example: `  # type records, one a line; Ctrl-D to finish
  spate produce events

  # key each line by what comes before the first ':'
  printf 'alice:hi\nbob:hello\n' | spate produce events --key-separator :

  # a file, zstd-compressed, acknowledged after fsync
  spate produce events --file events.txt --compression zstd --acks fsync

  # to one partition, with a progress bar even when stderr is not a terminal
  spate produce events --file big.txt --partition 3 --progress

  # uppercase every record on the SPU before it is stored
  spate produce events --smartmodule acme/uppercase --file events.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Topic = args[0]
			if !cmd.Flags().Changed("partition") {
				opts.Partition = -1
			}
			return run(cmd, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.File, "file", "f", "", "read records from this file instead of standard input")
	fl.StringVar(&opts.Key, "key", "", "key of every record")
	fl.StringVar(&opts.KeySeparator, "key-separator", "", "split each line at the first SEP into key and value")
	fl.Int32VarP(&opts.Partition, "partition", "p", 0, "send every record to this partition (default: by key, or round-robin)")
	fl.StringVar(&opts.Compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	fl.DurationVar(&opts.Linger, "linger", 5*time.Millisecond, "how long a batch waits for more records")
	fl.IntVar(&opts.BatchSize, "batch-size", 64<<10, "largest batch in bytes")
	fl.StringVar(&opts.Acks, "acks", "", "when records are acknowledged: write or fsync (default: the topic's setting)")
	fl.IntVar(&opts.MaxLine, "max-record-bytes", 1<<20, "longest line accepted")
	fl.BoolVar(&opts.Progress, "progress", false, "show a progress bar for --file even when standard error is not a terminal")
	opts.Transforms.Register(cmd)
	return cmd
}

func run(cmd *cobra.Command, opts *Options) error {
	if opts.Key != "" && opts.KeySeparator != "" {
		return cmdutil.Usagef("use --key or --key-separator, not both")
	}
	comp, err := client.ParseCompression(opts.Compression)
	if err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	popts := []client.ProducerOption{
		client.WithCompression(comp),
		client.WithLinger(opts.Linger),
		client.WithBatchBytes(opts.BatchSize),
	}
	switch opts.Acks {
	case "":
	case "write":
		popts = append(popts, client.WithAcks(client.AcksWrite))
	case "fsync":
		popts = append(popts, client.WithAcks(client.AcksFsync))
	default:
		return cmdutil.Usagef("acks %q: use write or fsync", opts.Acks)
	}
	if opts.Partition >= 0 {
		popts = append(popts, client.WithPartitioner(client.ManualPartitioner()))
	}
	modules, err := opts.Transforms.Modules(cmd)
	if err != nil {
		return err
	}
	if modules != nil {
		popts = append(popts, client.WithSmartModules(modules...))
	}
	var in io.Reader = opts.Factory.IO.In
	if opts.File != "" {
		fh, err := os.Open(opts.File)
		if err != nil {
			return err
		}
		defer fh.Close()
		in = fh
		if opts.Progress || isTerminal(opts.Factory.IO.ErrOut) {
			if st, err := fh.Stat(); err == nil && st.Mode().IsRegular() {
				bar := progressbar.NewOptions64(st.Size(),
					progressbar.OptionSetWriter(opts.Factory.IO.ErrOut),
					progressbar.OptionSetDescription("producing "+opts.File),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(opts.Factory.IO.ErrOut) }),
				)
				r := progressbar.NewReader(fh, bar)
				in = &r
				defer bar.Finish()
			}
		}
	}
	c, err := opts.Factory.Client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	// A topic that is not placed yet makes NewProducer wait for its
	// leaders; do not wait forever.
	lookup, cancel := context.WithTimeout(ctx, leaderTimeout)
	p, err := c.NewProducer(lookup, opts.Topic, popts...)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("topic %q has partitions without a leader after %v: see `spate topic describe %s`: %w", opts.Topic, leaderTimeout, opts.Topic, err)
		}
		return err
	}

	var (
		mu       sync.Mutex // guards firstErr and failed
		firstErr error
		failed   int
	)
	done := func(_ client.Record, err error) {
		if err != nil {
			mu.Lock()
			failed++
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), opts.MaxLine)
	sep := []byte(opts.KeySeparator)
	sent := 0
	for sc.Scan() {
		line := bytes.Clone(sc.Bytes())
		r := client.Record{Value: line, Partition: opts.Partition}
		switch {
		case opts.Key != "":
			r.Key = []byte(opts.Key)
		case len(sep) > 0:
			if k, v, ok := bytes.Cut(line, sep); ok {
				r.Key, r.Value = k, v
			}
		}
		p.Produce(ctx, r, done)
		sent++
	}
	scanErr := sc.Err()
	closeErr := p.Close()
	if scanErr != nil {
		if scanErr == bufio.ErrTooLong {
			scanErr = fmt.Errorf("a line is longer than %d bytes: raise --max-record-bytes", opts.MaxLine)
		}
		return fmt.Errorf("read input after %d records: %w", sent, scanErr)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return fmt.Errorf("%d of %d records were not produced: %w", failed, sent, firstErr)
	}
	if closeErr != nil {
		return closeErr
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
