// Package partitioncmd implements `spate partition list`, the partitions of
// topics as the control plane places them, and `spate spu partition`, the
// advanced commands that create, list and delete partitions directly on one
// SPU (--spu), bypassing the control plane.
package partitioncmd

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/cli/internal/topiccmd"
	"github.com/spatehq/spate/client"
)

// NewCmdSPUPartition returns `spate spu partition`: direct SPU admin, for
// an SPU run on its own (`spate spu serve` without a control plane). With a
// control plane, use `spate topic` instead: the control plane would not
// know of partitions made this way.
func NewCmdSPUPartition(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "Create, list and delete partitions directly on one SPU (advanced)",
		Long: `These commands talk to one SPU directly (--spu URL or SPATE_SPU), bypassing the
control plane: for an SPU run on its own with ` + "`spate spu serve`" + `. In a cluster,
use ` + "`spate topic`" + ` instead; the control plane does not know of partitions made
here.`,
		Example: `  spate --spu http://127.0.0.1:9010 spu partition create events --partitions 6
  spate --spu http://127.0.0.1:9010 spu partition list`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if f.SPU == "" {
				f.SPU = cmdutil.DefaultSPU
			}
			return nil
		},
	}
	cmd.AddCommand(newCmdCreate(f), newCmdSPUList(f), newCmdDelete(f))
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
		Short: "Create partitions 0..N-1 of a topic on one SPU (or update their settings)",
		Long: `Create declares partitions 0..N-1 of TOPIC on the SPU given by --spu. It is
idempotent: run again with other settings to change them on the live
partitions.`,
		Example: `  spate spu partition create events --partitions 6
  spate spu partition create audit --retention-time 1y --durability fsync`,
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
	fl.Var(&format.DurationValue{D: &opts.SegmentAge}, "segment-age", "roll segments at this age (default: the SPU's)")
	fl.Var(&format.DurationValue{D: &opts.RetentionTime}, "retention-time", "keep records this long, e.g. 7d, 36h, 1y (default: the SPU's; forever or -1: forever)")
	fl.Int64Var(&opts.RetentionBytes, "retention-bytes", 0, "keep at most this many bytes per partition (default: the SPU's; negative: no limit)")
	fl.Int32Var(&opts.MaxBatchBytes, "max-batch-bytes", 0, "largest batch accepted (default: the SPU's)")
	fl.StringVar(&opts.Durability, "durability", "", "acknowledge after write or fsync (default: the SPU's)")
	return cmd
}

func newCmdSPUList(f *cmdutil.Factory) *cobra.Command {
	var topic, output string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the partitions on the SPU with their offsets and sizes",
		Example: "  spate spu partition list\n  spate spu partition list --topic events --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listSPU(cmd, f, topic, output)
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

// listSPU lists the partitions the SPUs hold, as they report them.
func listSPU(cmd *cobra.Command, f *cmdutil.Factory, topic, output string) error {
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
	if parts == nil {
		parts = []client.PartitionInfo{}
	}
	return out.Write(f.IO.Out, parts, func() error {
		rows := make([][]string, 0, len(parts))
		for _, p := range parts {
			rows = append(rows, []string{p.Topic, strconv.Itoa(int(p.Partition)),
				strconv.FormatInt(p.StartOffset, 10), strconv.FormatInt(p.EndOffset, 10),
				strconv.FormatInt(p.SizeBytes, 10), strconv.Itoa(int(p.Segments))})
		}
		return format.WriteTable(f.IO.Out, []string{"TOPIC", "PARTITION", "START", "END", "SIZE", "SEGMENTS"}, rows)
	})
}

// NewCmdPartition returns `spate partition`.
func NewCmdPartition(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "List the partitions of topics: leaders, replicas, offsets, sizes",
		Example: `  spate partition list
  spate partition list --topic orders --output json`,
	}
	cmd.AddCommand(newCmdList(f))
	return cmd
}

// partitionEntry is one partition as `spate partition list` prints it in
// JSON or YAML.
type partitionEntry struct {
	Topic                  string `json:"topic" yaml:"topic"`
	client.PartitionStatus `yaml:",inline"`
}

func newCmdList(f *cmdutil.Factory) *cobra.Command {
	var topic, output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the partitions of every topic, or of one",
		Long: `List shows each partition's leader SPU, replicas, status, start and end
offsets and size, as the control plane reports them. With --spu, it lists what
that one SPU holds instead.`,
		Example: "  spate partition list\n  spate partition list --topic orders --output yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Direct() {
				return listSPU(cmd, f, topic, output)
			}
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			c, err := f.AdminClient("partition list")
			if err != nil {
				return err
			}
			var names []string
			if topic != "" {
				names = []string{topic}
			} else {
				all, err := c.ListTopics(cmd.Context())
				if err != nil {
					return err
				}
				for _, t := range all {
					names = append(names, t.Spec.Name)
				}
			}
			var topics []client.Topic
			entries := []partitionEntry{}
			for _, name := range names {
				t, err := c.DescribeTopic(cmd.Context(), name)
				if err != nil {
					if topic == "" && client.IsNotFound(err) {
						continue // deleted since the list
					}
					return err
				}
				topics = append(topics, t)
				for _, p := range t.Partitions {
					entries = append(entries, partitionEntry{Topic: t.Spec.Name, PartitionStatus: p})
				}
			}
			return out.Write(f.IO.Out, entries, func() error { return topiccmd.PartitionTable(f, topics) })
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func newCmdDelete(f *cmdutil.Factory) *cobra.Command {
	var partitions int32
	cmd := &cobra.Command{
		Use:     "delete TOPIC",
		Short:   "Delete partitions 0..N-1 of a topic and their data from the SPU",
		Example: "  spate spu partition delete events --partitions 6",
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
