// Package consumecmd implements `spate consume`.
package consumecmd

import (
	"bufio"
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/cli/internal/transforms"
	"github.com/spatehq/spate/client"
)

// Options are the flags of `spate consume`.
type Options struct {
	Factory       *cmdutil.Factory
	Topic         string
	Beginning     bool
	Offset        int64
	Head          int64
	Tail          int64
	End           int64
	Disable       bool
	Partitions    []int32
	AllPartitions bool
	Format        string
	Output        string
	MaxBytes      int32
	// Transforms are the SmartModules to run on the SPU.
	Transforms transforms.Flags
}

// NewCmdConsume returns `spate consume`.
func NewCmdConsume(f *cmdutil.Factory) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic as they arrive",
		Long: `Consume prints the records of a topic, one a line, and waits for new ones
until interrupted. Without a start flag it starts at the end: only new
records. With -d it stops once it has printed what was there when it started.

--format takes a template with {{topic}}, {{partition}}, {{offset}},
{{key}}, {{value}}, {{time}} and {{timestamp}}.

` + transforms.Help + `

Only the records the modules emit leave the SPU; each keeps the offset of
the stored record it came from (offsets may skip, and repeat after an
array-map). A module that fails ends the consume with its own message,
naming the module, its kind and the offset.`,
		Example: `  # everything from the beginning, then follow new records
  spate consume events -B

  # the last 10 records of partition 2, then stop
  spate consume events -p 2 -T 10 -d

  # every partition, formatted
  spate consume events -A -B --format '{{partition}}:{{offset}} {{key}}={{value}} {{time}}'

  # JSON lines, for jq
  spate consume events -B -d -O json | jq .value

  # only the error lines, filtered on the SPU by a registered module
  spate consume logs -B --filter acme/json-filter -e field=level -e equals=error

  # an unregistered module, and a running sum
  spate consume events -B --smartmodule-path ./upper.wasm
  spate consume amounts -B --aggregate acme/sum --aggregate-initial 100

  # a chain of modules
  spate consume logs -B --transforms-file transforms.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Topic = args[0]
			return run(cmd, opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opts.Beginning, "beginning", "B", false, "start at the first retained record")
	fl.Int64Var(&opts.Offset, "offset", -1, "start at this absolute offset")
	fl.Int64VarP(&opts.Head, "head", "H", -1, "start N records after the beginning")
	fl.Int64VarP(&opts.Tail, "tail", "T", -1, "start N records before the end")
	fl.Int64Var(&opts.End, "end", -1, "stop before this offset (exclusive)")
	fl.BoolVarP(&opts.Disable, "disable-continuous", "d", false, "stop at the end offset seen at start instead of waiting for new records")
	fl.Int32SliceVarP(&opts.Partitions, "partition", "p", nil, "partitions to read (default 0; repeat or comma-separate)")
	fl.BoolVarP(&opts.AllPartitions, "all-partitions", "A", false, "read every partition")
	fl.StringVar(&opts.Format, "format", "", "template for each record, e.g. '{{offset}} {{value}}'")
	fl.StringVarP(&opts.Output, "output", "O", "text", "text (the value, or --format), json (a JSON object a line) or raw (values with no separator)")
	fl.Int32Var(&opts.MaxBytes, "max-bytes", 0, "largest response from the SPU in bytes (default 1 MiB)")
	cmd.MarkFlagsMutuallyExclusive("beginning", "offset", "head", "tail")
	cmd.MarkFlagsMutuallyExclusive("partition", "all-partitions")
	opts.Transforms.Register(cmd)
	return cmd
}

func run(cmd *cobra.Command, opts *Options) error {
	var tmpl *format.Template
	switch opts.Output {
	case "text":
		t := opts.Format
		if t == "" {
			t = "{{value}}"
		}
		var err error
		if tmpl, err = format.ParseTemplate(t); err != nil {
			return &cmdutil.UsageError{Err: err}
		}
	case "json", "raw":
		if opts.Format != "" {
			return cmdutil.Usagef("--format applies to -O text only")
		}
	default:
		return cmdutil.Usagef("output %q: use text, json or raw", opts.Output)
	}
	start := client.End()
	switch {
	case opts.Beginning:
		start = client.Beginning()
	case opts.Offset >= 0:
		start = client.At(opts.Offset)
	case opts.Head >= 0:
		start = client.FromBeginning(opts.Head)
	case opts.Tail >= 0:
		start = client.FromEnd(opts.Tail)
	}
	modules, err := opts.Transforms.Modules(cmd)
	if err != nil {
		return err
	}
	c, err := opts.Factory.Client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	copts := []client.ConsumeOption{client.WithStart(start)}
	if modules != nil {
		copts = append(copts, client.WithSmartModules(modules...))
	}
	if opts.MaxBytes > 0 {
		copts = append(copts, client.WithMaxBytes(opts.MaxBytes))
	}
	switch {
	case opts.AllPartitions:
	case len(opts.Partitions) > 0:
		copts = append(copts, client.WithPartitions(opts.Partitions...))
	default:
		copts = append(copts, client.WithPartitions(0))
	}
	if opts.End >= 0 {
		copts = append(copts, client.WithEndOffset(opts.End))
	} else if opts.Disable {
		copts = append(copts, client.WithStopAtEnd())
	}
	cons, err := c.Consume(ctx, opts.Topic, copts...)
	if err != nil {
		return err
	}
	defer cons.Close()

	w := bufio.NewWriterSize(opts.Factory.IO.Out, 64<<10)
	defer w.Flush()
	var line []byte
	for {
		recs, err := cons.NextBatch(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil // Ctrl-C ends a continuous consume normally
			}
			return err
		}
		for _, r := range recs {
			switch opts.Output {
			case "text":
				line = append(tmpl.Append(line[:0], opts.Topic, r), '\n')
				if _, err := w.Write(line); err != nil {
					return err
				}
			case "json":
				if err := format.WriteJSON(w, opts.Topic, r); err != nil {
					return err
				}
			case "raw":
				if _, err := w.Write(r.Value); err != nil {
					return err
				}
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}
