// Package topiccmd implements `spate topic`: create, list, describe, update,
// add partitions to and delete topics through the control plane.
package topiccmd

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/client"
)

// NewCmdTopic returns `spate topic`.
func NewCmdTopic(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, update and delete topics",
		Long: `A topic is a named stream of records, split into partitions that the control
plane places on the SPUs. Declare a topic and the cluster does the rest: it
shows "pending" with a reason until it can be placed, then "ready".`,
		Example: `  spate topic create orders --partitions 6 --replication 1 --retention-time 7d
  spate topic list
  spate topic describe orders
  spate topic update orders --retention-time 30d
  spate topic create history --tiering --retention-time 3y --local-retention-time 7d
  spate topic add-partitions orders --partitions 12
  spate topic delete orders`,
	}
	cmd.AddCommand(newCmdCreate(f), newCmdList(f), newCmdDescribe(f), newCmdUpdate(f), newCmdAddPartitions(f), newCmdDelete(f))
	return cmd
}

// settingsFlags are the storage settings shared by create and update.
type settingsFlags struct {
	retention           time.Duration
	segmentAge          time.Duration
	retentionBytes      int64
	segmentBytes        int64
	maxBatchBytes       int32
	durability          string
	tiering             bool
	localRetention      time.Duration
	localRetentionBytes int64
	// fl is where the flags were added, to tell --tiering=false from no
	// --tiering.
	fl *pflag.FlagSet
}

func (s *settingsFlags) add(fl *pflag.FlagSet) {
	s.fl = fl
	fl.Var(&format.DurationValue{D: &s.retention}, "retention-time", "keep records this long (with --tiering: the whole log, object store included): 7d, 36h, 3y; forever or -1 to keep them forever (default: the cluster's)")
	fl.Int64Var(&s.retentionBytes, "retention-bytes", 0, "keep at most this many bytes per partition (with --tiering: the whole log); -1 for no limit (default: the cluster's)")
	fl.BoolVar(&s.tiering, "tiering", false, "upload closed segments to the cluster's object store and read old records back from there; --tiering=false turns it off (default: the cluster's)")
	fl.Var(&format.DurationValue{D: &s.localRetention}, "local-retention-time", "with --tiering: keep uploaded segments on the SPU's disk this long: 7d, 36h; -1 for as long as --retention-time (default: the cluster's)")
	fl.Int64Var(&s.localRetentionBytes, "local-retention-bytes", 0, "with --tiering: keep at most this many bytes per partition on the SPU's disk; -1 for no limit below --retention-bytes (default: the cluster's)")
	fl.Int64Var(&s.segmentBytes, "segment-bytes", 0, "roll log segments at this size (default: the cluster's)")
	fl.Var(&format.DurationValue{D: &s.segmentAge}, "segment-age", "roll log segments at this age: 1h, 1d (default: the cluster's)")
	fl.Int32Var(&s.maxBatchBytes, "max-batch-bytes", 0, "largest batch the SPUs accept (default: the cluster's)")
	fl.StringVar(&s.durability, "durability", "", "acknowledge produces after write or fsync (default: the cluster's)")
}

func (s *settingsFlags) settings() (client.TopicSettings, error) {
	d, err := client.ParseDurability(s.durability)
	if err != nil {
		return client.TopicSettings{}, cmdutil.Usagef("--durability %q: use write or fsync", s.durability)
	}
	switch {
	case s.segmentBytes < 0:
		return client.TopicSettings{}, cmdutil.Usagef("--segment-bytes must not be negative")
	case s.segmentAge < 0:
		return client.TopicSettings{}, cmdutil.Usagef("--segment-age must not be negative")
	case s.maxBatchBytes < 0:
		return client.TopicSettings{}, cmdutil.Usagef("--max-batch-bytes must not be negative")
	case s.retentionBytes < -1:
		return client.TopicSettings{}, cmdutil.Usagef("--retention-bytes must be positive, or -1 for no limit")
	case s.localRetentionBytes < -1:
		return client.TopicSettings{}, cmdutil.Usagef("--local-retention-bytes must be positive, or -1 for no limit below --retention-bytes")
	case s.retention > 0 && s.localRetention > s.retention:
		return client.TopicSettings{}, cmdutil.Usagef("--local-retention-time %s exceeds --retention-time %s: the SPU's disk cannot keep records longer than the whole log",
			format.FormatDuration(s.localRetention), format.FormatDuration(s.retention))
	case s.retentionBytes > 0 && s.localRetentionBytes > s.retentionBytes:
		return client.TopicSettings{}, cmdutil.Usagef("--local-retention-bytes %d exceeds --retention-bytes %d: the SPU's disk cannot hold more than the whole log",
			s.localRetentionBytes, s.retentionBytes)
	}
	out := client.TopicSettings{
		Retention:           s.retention,
		RetentionBytes:      s.retentionBytes,
		SegmentBytes:        s.segmentBytes,
		SegmentAge:          s.segmentAge,
		MaxBatchBytes:       s.maxBatchBytes,
		Durability:          d,
		LocalRetention:      s.localRetention,
		LocalRetentionBytes: s.localRetentionBytes,
	}
	if s.fl != nil && s.fl.Changed("tiering") {
		out.Tiering = client.Tiering(s.tiering)
	}
	return out, nil
}

// CreateOptions are the flags of `spate topic create`.
type CreateOptions struct {
	Partitions  int32
	Replication int32
	NoWait      bool
	WaitTimeout time.Duration
	settings    settingsFlags
}

func newCmdCreate(f *cmdutil.Factory) *cobra.Command {
	opts := &CreateOptions{}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: `Create declares a topic with N partitions, each kept on R SPUs. Names are 1 to
63 lower-case letters, digits and '-', starting and ending with a letter or a
digit. Creating a name that exists fails with exit code 5.

With --tiering, closed segments are uploaded to the cluster's object store:
--retention-time and --retention-bytes then govern the whole log, object store
included (up to 100 years), and --local-retention-time and
--local-retention-bytes what stays on the SPU's disk, which must not exceed
them. Consumers read old records from the object store transparently.`,
		Example: `  spate topic create orders --partitions 6 --replication 1
  spate topic create audit --partitions 3 --replication 3 --retention-time 1y --durability fsync
  spate topic create clicks --retention-time 36h --retention-bytes 10000000000 --segment-bytes 268435456

  # keep 7 days on the SPU, 3 years in S3
  spate topic create history --tiering --retention-time 3y --local-retention-time 7d`,
		Args: exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Partitions < 1 {
				return cmdutil.Usagef("--partitions must be at least 1, not %d", opts.Partitions)
			}
			if opts.Replication < 1 {
				return cmdutil.Usagef("--replication must be at least 1, not %d", opts.Replication)
			}
			settings, err := opts.settings.settings()
			if err != nil {
				return err
			}
			c, err := f.AdminClient("topic create")
			if err != nil {
				return err
			}
			t, err := c.CreateTopic(cmd.Context(), client.TopicSpec{
				Name:              args[0],
				Partitions:        opts.Partitions,
				ReplicationFactor: opts.Replication,
				Settings:          settings,
			})
			if err != nil {
				return err
			}
			if !opts.NoWait {
				t = waitReady(cmd.Context(), c, t, opts.WaitTimeout)
			}
			fmt.Fprintf(f.IO.Out, "topic %q created (%d partitions, replication %d): %s\n", t.Spec.Name, t.Spec.Partitions, t.Spec.ReplicationFactor, stateText(t))
			if t.State == client.TopicStatePending {
				fmt.Fprintln(f.IO.ErrOut, "The topic stays pending until the cluster can place it; see `spate topic describe "+t.Spec.Name+"`.")
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Int32VarP(&opts.Partitions, "partitions", "p", 1, "number of partitions")
	fl.Int32VarP(&opts.Replication, "replication", "r", 1, "number of SPUs that keep each partition")
	fl.BoolVar(&opts.NoWait, "no-wait", false, "return at once instead of waiting for the topic to be ready")
	fl.DurationVar(&opts.WaitTimeout, "wait-timeout", 30*time.Second, "how long to wait for the topic to be ready")
	opts.settings.add(fl)
	return cmd
}

func newCmdList(f *cmdutil.Factory) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics with their status",
		Example: "  spate topic list\n  spate topic list --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			c, err := f.AdminClient("topic list")
			if err != nil {
				return err
			}
			topics, err := c.ListTopics(cmd.Context())
			if err != nil {
				return err
			}
			if topics == nil {
				topics = []client.Topic{}
			}
			return out.Write(f.IO.Out, topics, func() error {
				if len(topics) == 0 {
					fmt.Fprintln(f.IO.ErrOut, "No topics. Create one with `spate topic create NAME --partitions N`.")
					return nil
				}
				rows := make([][]string, 0, len(topics))
				for _, t := range topics {
					rows = append(rows, []string{t.Spec.Name, t.State.String(), strconv.Itoa(int(t.Spec.Partitions)),
						strconv.Itoa(int(t.Spec.ReplicationFactor)), format.FormatDuration(t.Spec.Settings.Retention), t.Reason})
				}
				return format.WriteTable(f.IO.Out, []string{"NAME", "STATUS", "PARTITIONS", "REPLICATION", "RETENTION", "REASON"}, rows)
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newCmdDescribe(f *cmdutil.Factory) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "describe NAME",
		Short:   "Show a topic's settings, status and partitions",
		Example: "  spate topic describe orders\n  spate topic describe orders --output yaml",
		Args:    exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			c, err := f.AdminClient("topic describe")
			if err != nil {
				return err
			}
			t, err := c.DescribeTopic(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return out.Write(f.IO.Out, t, func() error { return writeTopic(f, t) })
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func writeTopic(f *cmdutil.Factory, t client.Topic) error {
	w := f.IO.Out
	s := t.Spec.Settings
	line := func(label, value string) { fmt.Fprintf(w, "%-23s%s\n", label+":", value) }
	line("Name", t.Spec.Name)
	line("Status", stateText(t))
	line("Partitions", strconv.Itoa(int(t.Spec.Partitions)))
	line("Replication", strconv.Itoa(int(t.Spec.ReplicationFactor)))
	line("Retention time", format.FormatDuration(s.Retention))
	line("Retention bytes", bytesText(s.RetentionBytes))
	line("Segment bytes", bytesText(s.SegmentBytes))
	line("Segment age", format.FormatDuration(s.SegmentAge))
	line("Max batch bytes", bytesText(int64(s.MaxBatchBytes)))
	line("Durability", s.Durability.String())
	line("Tiering", onOff(s.Tiered()))
	if s.Tiered() || s.LocalRetention != 0 || s.LocalRetentionBytes != 0 {
		unused := ""
		if !s.Tiered() {
			unused = " (unused: tiering is off)"
		}
		line("Local retention time", localDurationText(s.LocalRetention)+unused)
		line("Local retention bytes", localBytesText(s.LocalRetentionBytes)+unused)
	}
	if !t.CreatedAt.IsZero() {
		line("Created", t.CreatedAt.Format(time.RFC3339))
	}
	if len(t.Partitions) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	if !s.Tiered() && !hasRemote(t.Partitions) {
		return format.WriteTable(w, partitionHeader, partitionRows("", t.Partitions))
	}
	if err := format.WriteTable(w, tieredHeader, tieredRows(t.Partitions)); err != nil {
		return err
	}
	for _, p := range t.Partitions {
		if p.TieringError != "" {
			fmt.Fprintf(w, "partition %d: uploads failing: %s\n", p.Partition, p.TieringError)
		}
	}
	return nil
}

// tieredHeader and tieredRows render the partitions of a tiered topic:
// LOCAL START and LOCAL SIZE are the SPU's disk, REMOTE the object store.
var tieredHeader = []string{"PARTITION", "LEADER", "REPLICAS", "STATUS", "LOCAL START", "REMOTE START", "END", "LOCAL SIZE", "REMOTE SIZE", "UPLOAD LAG"}

func tieredRows(parts []client.PartitionStatus) [][]string {
	rows := partitionRows("", parts)
	for i, p := range parts {
		remoteStart := "-"
		if p.RemoteStartOffset >= 0 && p.RemoteSize > 0 {
			remoteStart = strconv.FormatInt(p.RemoteStartOffset, 10)
		}
		r := rows[i] // PARTITION LEADER REPLICAS STATUS START END SIZE
		rows[i] = []string{r[0], r[1], r[2], r[3], r[4], remoteStart, r[5], r[6],
			strconv.FormatInt(p.RemoteSize, 10), strconv.FormatInt(p.UploadLag, 10)}
	}
	return rows
}

// hasRemote reports whether any partition has something in, or on its way
// to, the object store: tiering may have been turned off since.
func hasRemote(parts []client.PartitionStatus) bool {
	for _, p := range parts {
		if p.RemoteSize > 0 || p.UploadLag > 0 || p.TieringError != "" {
			return true
		}
	}
	return false
}

// partitionHeader and partitionRows render partitions, as in `spate
// partition list`.
var partitionHeader = []string{"PARTITION", "LEADER", "REPLICAS", "STATUS", "START", "END", "SIZE"}

func partitionRows(topic string, parts []client.PartitionStatus) [][]string {
	rows := make([][]string, 0, len(parts))
	for _, p := range parts {
		leader := "-"
		if p.Leader >= 0 {
			leader = strconv.Itoa(int(p.Leader))
		}
		reps := make([]string, len(p.Replicas))
		for i, r := range p.Replicas {
			reps[i] = strconv.Itoa(int(r))
		}
		row := []string{strconv.Itoa(int(p.Partition)), leader, "[" + strings.Join(reps, ",") + "]", p.Status,
			strconv.FormatInt(p.StartOffset, 10), strconv.FormatInt(p.EndOffset, 10), strconv.FormatInt(p.SizeBytes, 10)}
		if topic != "" {
			row = append([]string{topic}, row...)
		}
		rows = append(rows, row)
	}
	return rows
}

// PartitionTable writes the partitions of topics as `spate partition list`
// shows them.
func PartitionTable(f *cmdutil.Factory, topics []client.Topic) error {
	var rows [][]string
	for _, t := range topics {
		rows = append(rows, partitionRows(t.Spec.Name, t.Partitions)...)
	}
	return format.WriteTable(f.IO.Out, append([]string{"TOPIC"}, partitionHeader...), rows)
}

func newCmdUpdate(f *cmdutil.Factory) *cobra.Command {
	var sf settingsFlags
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change the settings of a live topic",
		Long: `Update changes a topic's storage settings while it serves producers and
consumers. Settings not given stay as they are.

--tiering turns tiering on; --tiering=false turns it off, keeping the local
retention settings, unused, until it is turned on again. The local retention
settings need tiering on and must not exceed --retention-time and
--retention-bytes.`,
		Example: `  spate topic update orders --retention-time 30d
  spate topic update orders --retention-bytes -1 --durability fsync

  # keep 7 days on the SPU, 3 years in S3
  spate topic update orders --tiering --retention-time 3y --local-retention-time 7d
  spate topic update orders --local-retention-time 1d
  spate topic update orders --tiering=false`,
		Args: exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			settings, err := sf.settings()
			if err != nil {
				return err
			}
			if settings == (client.TopicSettings{}) {
				return cmdutil.Usagef("nothing to update: give at least one of --retention-time, --retention-bytes, --segment-bytes, --segment-age, --max-batch-bytes, --durability, --tiering, --local-retention-time, --local-retention-bytes")
			}
			c, err := f.AdminClient("topic update")
			if err != nil {
				return err
			}
			t, err := c.UpdateTopic(cmd.Context(), args[0], settings)
			if err != nil {
				return err
			}
			ts := t.Spec.Settings
			tiering := "tiering off"
			if ts.Tiered() {
				tiering = fmt.Sprintf("tiering on, local retention %s, local retention bytes %s",
					localDurationText(ts.LocalRetention), localBytesText(ts.LocalRetentionBytes))
			}
			fmt.Fprintf(f.IO.Out, "topic %q updated: retention %s, retention bytes %s, %s\n", t.Spec.Name,
				format.FormatDuration(ts.Retention), bytesText(ts.RetentionBytes), tiering)
			return nil
		},
	}
	sf.add(cmd.Flags())
	return cmd
}

func newCmdAddPartitions(f *cmdutil.Factory) *cobra.Command {
	var total int32
	cmd := &cobra.Command{
		Use:   "add-partitions NAME --partitions TOTAL",
		Short: "Raise the number of partitions of a topic",
		Long: `Add-partitions raises the number of partitions of a topic to TOTAL. Keys map to
partitions by hash, so records of one key produced after the change may go to
another partition than before.`,
		Example: "  spate topic add-partitions orders --partitions 12",
		Args:    exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if total < 1 {
				return cmdutil.Usagef("--partitions (the new total) must be given and at least 1")
			}
			c, err := f.AdminClient("topic add-partitions")
			if err != nil {
				return err
			}
			t, err := c.AddPartitions(cmd.Context(), args[0], total)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.IO.Out, "topic %q now has %d partitions: %s\n", t.Spec.Name, t.Spec.Partitions, stateText(t))
			return nil
		},
	}
	cmd.Flags().Int32VarP(&total, "partitions", "p", 0, "the new total number of partitions")
	return cmd
}

func newCmdDelete(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete topics and their records",
		Example: "  spate topic delete orders\n  spate topic delete a b c",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.AdminClient("topic delete")
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := c.DeleteTopic(cmd.Context(), name); err != nil {
					return err
				}
				fmt.Fprintf(f.IO.Out, "topic %q deleted\n", name)
			}
			return nil
		},
	}
	return cmd
}

// pendingPatience is how long waitReady waits for a pending topic to be
// placed: a topic that needs more SPUs than there are stays pending.
const pendingPatience = 3 * time.Second

// waitReady polls the topic until it is ready, stays pending for
// pendingPatience, or timeout passes, and returns its last state. Errors
// while polling leave the last known state.
func waitReady(ctx context.Context, c *client.Client, t client.Topic, timeout time.Duration) client.Topic {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	pendingSince := time.Now()
	for t.State != client.TopicStateReady {
		if t.State != client.TopicStatePending {
			pendingSince = time.Now()
		} else if time.Since(pendingSince) > pendingPatience {
			return t
		}
		select {
		case <-ctx.Done():
			return t
		case <-tick.C:
		}
		nt, err := c.DescribeTopic(ctx, t.Spec.Name)
		if err == nil {
			t = nt
		}
	}
	return t
}

// exactName checks for one NAME argument.
func exactName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cmdutil.Usagef("`%s` takes one topic name, got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}

func addOutputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", "table", "table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

func stateText(t client.Topic) string {
	if t.Reason != "" {
		return t.State.String() + " (" + t.Reason + ")"
	}
	return t.State.String()
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// localDurationText and localBytesText print the local retention settings,
// whose -1 means "as much as the whole log".
func localDurationText(d time.Duration) string {
	if d < 0 {
		return "as long as retention time"
	}
	return format.FormatDuration(d)
}

func localBytesText(n int64) string {
	if n < 0 {
		return "no limit below retention bytes"
	}
	return bytesText(n)
}

func bytesText(n int64) string {
	switch {
	case n < 0:
		return "no limit"
	case n == 0:
		return "default"
	}
	return strconv.FormatInt(n, 10)
}
