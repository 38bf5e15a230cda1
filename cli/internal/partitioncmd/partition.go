// Package partitioncmd implements `spate partition`: the partitions an SPU
// holds, created directly on the SPU until the control plane places them.
package partitioncmd

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/client"
)

// NewCmdPartition returns `spate partition`.
func NewCmdPartition(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "Create, list and delete the partitions of an SPU",
	}
	cmd.AddCommand(newCmdCreate(f), newCmdList(f), newCmdDelete(f))
	return cmd
}

// CreateOptions are the flags of `spate partition create`.
type CreateOptions struct {
	Partitions     int32
	Config         client.PartitionConfig
	RetentionTime  time.Duration
	SegmentAge     time.Duration
	Durability     string
	MaxBatchBytes  int32
	RetentionBytes int64
	SegmentBytes   int64
}

func newCmdCreate(f *cmdutil.Factory) *cobra.Command {
	opts := &CreateOptions{}
	cmd := &cobra.Command{
		Use:   "create TOPIC",
		Short: "Create partitions 0..N-1 of a topic on the SPU (or update their settings)",
		Long: `Create declares partitions 0..N-1 of TOPIC on the SPU given by --spu. It is
idempotent: run again with other settings to change them on the live
partitions.`,
		Example: `  spate partition create events --partitions 6
  spate partition create audit --retention-time 8760h --durability fsync`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Partitions < 1 {
				return cmdutil.Usagef("--partitions must be at least 1")
			}
			cfg := client.PartitionConfig{
				SegmentBytes:   opts.SegmentBytes,
				SegmentAge:     opts.SegmentAge,
				Retention:      opts.RetentionTime,
				RetentionBytes: opts.RetentionBytes,
				MaxBatchBytes:  opts.MaxBatchBytes,
			}
			switch opts.Durability {
			case "":
			case "write":
				cfg.Durability = client.DurabilityWrite
			case "fsync":
				cfg.Durability = client.DurabilityFsync
			default:
				return cmdutil.Usagef("durability %q: use write or fsync", opts.Durability)
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			for p := range opts.Partitions {
				created, err := c.EnsurePartition(cmd.Context(), args[0], p, cfg)
				if err != nil {
					return fmt.Errorf("partition %d: %w", p, err)
				}
				verb := "updated"
				if created {
					verb = "created"
				}
				fmt.Fprintf(f.IO.Out, "partition %s/%d %s\n", args[0], p, verb)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Int32Var(&opts.Partitions, "partitions", 1, "number of partitions")
	fl.Int64Var(&opts.SegmentBytes, "segment-bytes", 0, "roll segments at this size (default: the SPU's)")
	fl.DurationVar(&opts.SegmentAge, "segment-age", 0, "roll segments at this age (default: the SPU's)")
	fl.DurationVar(&opts.RetentionTime, "retention-time", 0, "keep records this long, e.g. 720h (default: the SPU's; negative: forever)")
	fl.Int64Var(&opts.RetentionBytes, "retention-bytes", 0, "keep at most this many bytes per partition (default: the SPU's; negative: no limit)")
	fl.Int32Var(&opts.MaxBatchBytes, "max-batch-bytes", 0, "largest batch accepted (default: the SPU's)")
	fl.StringVar(&opts.Durability, "durability", "", "acknowledge after write or fsync (default: the SPU's)")
	return cmd
}

func newCmdList(f *cmdutil.Factory) *cobra.Command {
	var topic, output string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the partitions on the SPU with their offsets and sizes",
		Example: "  spate partition list\n  spate partition list --topic events --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			parts, err := c.ListPartitions(cmd.Context(), topic)
			if err != nil {
				return err
			}
			if out == format.JSON {
				return format.WriteJSONValue(f.IO.Out, parts)
			}
			rows := make([][]string, 0, len(parts))
			for _, p := range parts {
				rows = append(rows, []string{p.Topic, strconv.Itoa(int(p.Partition)),
					strconv.FormatInt(p.StartOffset, 10), strconv.FormatInt(p.EndOffset, 10),
					strconv.FormatInt(p.SizeBytes, 10), strconv.Itoa(int(p.Segments))})
			}
			return format.WriteTable(f.IO.Out, []string{"TOPIC", "PARTITION", "START", "END", "SIZE", "SEGMENTS"}, rows)
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func newCmdDelete(f *cmdutil.Factory) *cobra.Command {
	var partitions int32
	cmd := &cobra.Command{
		Use:     "delete TOPIC",
		Short:   "Delete partitions 0..N-1 of a topic and their data from the SPU",
		Example: "  spate partition delete events --partitions 6",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			for p := range partitions {
				removed, err := c.RemovePartition(cmd.Context(), args[0], p)
				if err != nil {
					return fmt.Errorf("partition %d: %w", p, err)
				}
				if removed {
					fmt.Fprintf(f.IO.Out, "partition %s/%d deleted\n", args[0], p)
				}
			}
			return nil
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 1, "number of partitions to delete")
	return cmd
}
