package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
)

// PartitionConfig holds a partition's storage settings. Zero fields take
// the SPU's defaults.
type PartitionConfig struct {
	// SegmentBytes is the size at which the active segment rolls.
	SegmentBytes int64
	// SegmentAge is the age at which the active segment rolls.
	SegmentAge time.Duration
	// Retention is how long records are kept; negative keeps them forever.
	Retention time.Duration
	// RetentionBytes bounds the partition's size; negative means no bound.
	RetentionBytes int64
	// MaxBatchBytes is the largest batch the SPU accepts. Keep producers'
	// WithBatchBytes at or below it.
	MaxBatchBytes int32
	// Durability says when a produce with AcksTopicDefault is acknowledged.
	Durability Durability
	// Tiering uploads closed segments to the SPU's object store; then
	// Retention and RetentionBytes govern the whole log and the Local
	// ones the SPU's disk.
	Tiering bool
	// LocalRetention is how long uploaded segments stay on the SPU's disk;
	// negative keeps them as long as Retention. Only with Tiering.
	LocalRetention time.Duration
	// LocalRetentionBytes bounds the partition's size on the SPU's disk;
	// negative means no bound below RetentionBytes. Only with Tiering.
	LocalRetentionBytes int64
}

// Durability is when the SPU acknowledges a produce that does not say
// (AcksTopicDefault).
type Durability int8

// The durability settings.
const (
	// DurabilityDefault takes the SPU's default.
	DurabilityDefault Durability = iota
	// DurabilityWrite acknowledges after write(2): fast; a machine crash
	// can lose the last moments.
	DurabilityWrite
	// DurabilityFsync acknowledges after fsync, grouped across concurrent
	// producers.
	DurabilityFsync
)

// String returns "default", "write" or "fsync".
func (d Durability) String() string {
	switch d {
	case DurabilityDefault:
		return "default"
	case DurabilityWrite:
		return "write"
	case DurabilityFsync:
		return "fsync"
	}
	return fmt.Sprintf("durability(%d)", int8(d))
}

// PartitionInfo describes one partition replica held by an SPU.
type PartitionInfo struct {
	Topic       string
	Partition   int32
	StartOffset int64 // the first offset retained
	EndOffset   int64 // the offset the next record will get
	SizeBytes   int64 // on the SPU's disk
	Segments    int32 // log segments on the SPU's disk
	LeaderEpoch int32 // bumped by each change of leader
}

// PartitionOffsets are the offsets of one partition: it holds the records
// from Start to End-1, and the next record produced gets End.
type PartitionOffsets struct {
	Partition int32
	Start     int64
	End       int64
}

// EnsurePartition creates partition number partition of topic, or updates
// its settings if it exists, and reports whether it was created. It is
// idempotent. Until the control plane manages topics, this is how a topic
// comes to exist: create partitions 0 to n-1.
func (c *Client) EnsurePartition(ctx context.Context, topic string, partition int32, cfg PartitionConfig) (created bool, err error) {
	if err := checkPartitionName(topic, partition); err != nil {
		return false, err
	}
	rc, err := cfg.proto()
	if err != nil {
		return false, err
	}
	url, err := c.resolver.leader(ctx, topic, partition)
	if err != nil {
		return false, err
	}
	resp, err := c.spu(url).replicas.EnsureReplica(ctx, connect.NewRequest(&internalv1.EnsureReplicaRequest{
		Topic:     topic,
		Partition: partition,
		Config:    rc,
	}))
	if err != nil {
		return false, fmt.Errorf("client: ensure partition %d of topic %q: %w", partition, topic, err)
	}
	return resp.Msg.GetCreated(), nil
}

// RemovePartition deletes partition number partition of topic and all its
// records, and reports whether it existed. It is idempotent.
func (c *Client) RemovePartition(ctx context.Context, topic string, partition int32) (removed bool, err error) {
	if err := checkPartitionName(topic, partition); err != nil {
		return false, err
	}
	url, err := c.resolver.leader(ctx, topic, partition)
	if err != nil {
		return false, err
	}
	resp, err := c.spu(url).replicas.RemoveReplica(ctx, connect.NewRequest(&internalv1.RemoveReplicaRequest{
		Topic:     topic,
		Partition: partition,
	}))
	if err != nil {
		return false, fmt.Errorf("client: remove partition %d of topic %q: %w", partition, topic, err)
	}
	return resp.Msg.GetRemoved(), nil
}

// ListPartitions lists the partition replicas of topic, or of every topic
// when topic is empty, held by the cluster's SPUs, sorted by topic and
// partition. A topic without partitions gives an empty list, not an error.
func (c *Client) ListPartitions(ctx context.Context, topic string) ([]PartitionInfo, error) {
	urls, err := c.resolver.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	var out []PartitionInfo
	for _, url := range urls {
		resp, err := c.spu(url).partitions.ListPartitions(ctx,
			connect.NewRequest(&dataplanev1.ListPartitionsRequest{Topic: topic}))
		if err != nil {
			return nil, fmt.Errorf("client: list partitions on %s: %w", url, err)
		}
		for _, p := range resp.Msg.GetPartitions() {
			if topic != "" && p.GetTopic() != topic {
				continue
			}
			out = append(out, PartitionInfo{
				Topic:       p.GetTopic(),
				Partition:   p.GetPartition(),
				StartOffset: p.GetStartOffset(),
				EndOffset:   p.GetEndOffset(),
				SizeBytes:   p.GetSizeBytes(),
				Segments:    p.GetSegments(),
				LeaderEpoch: p.GetLeaderEpoch(),
			})
		}
	}
	slices.SortFunc(out, func(a, b PartitionInfo) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}

// Offsets returns the start and end offsets of the given partitions of
// topic, or of all of them when none are given, sorted by partition. It
// fails with an error for which IsNotFound is true when the topic or a
// partition does not exist.
func (c *Client) Offsets(ctx context.Context, topic string, partitions ...int32) ([]PartitionOffsets, error) {
	leaders, err := c.topicPartitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	byURL := make(map[string][]int32)
	var urls []string
	want := partitions
	if len(want) == 0 {
		for _, l := range leaders {
			want = append(want, l.partition)
		}
	}
	for _, p := range want {
		i := slices.IndexFunc(leaders, func(l partitionLeader) bool { return l.partition == p })
		if i < 0 {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("client: topic %q has no partition %d", topic, p))
		}
		url := leaders[i].leader
		if _, ok := byURL[url]; !ok {
			urls = append(urls, url)
		}
		byURL[url] = append(byURL[url], p)
	}
	var out []PartitionOffsets
	for _, url := range urls {
		offs, err := c.offsetsAt(ctx, url, topic, byURL[url])
		if err != nil {
			return nil, err
		}
		for _, p := range byURL[url] {
			o, ok := offs[p]
			if !ok {
				return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("client: the SPU at %s has no partition %d of topic %q", url, p, topic))
			}
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b PartitionOffsets) int { return cmp.Compare(a.Partition, b.Partition) })
	return slices.CompactFunc(out, func(a, b PartitionOffsets) bool { return a.Partition == b.Partition }), nil
}

// offsetsAt asks the SPU at url for the offsets of partitions of topic.
func (c *Client) offsetsAt(ctx context.Context, url, topic string, partitions []int32) (map[int32]PartitionOffsets, error) {
	resp, err := c.spu(url).consume.Offsets(ctx, connect.NewRequest(&dataplanev1.OffsetsRequest{
		Topic:      topic,
		Partitions: partitions,
	}))
	if err != nil {
		return nil, fmt.Errorf("client: offsets of topic %q on %s: %w", topic, url, err)
	}
	out := make(map[int32]PartitionOffsets, len(resp.Msg.GetPartitions()))
	for _, p := range resp.Msg.GetPartitions() {
		out[p.GetPartition()] = PartitionOffsets{Partition: p.GetPartition(), Start: p.GetStartOffset(), End: p.GetEndOffset()}
	}
	return out, nil
}

// checkPartitionName refuses an empty topic or a negative partition.
func checkPartitionName(topic string, partition int32) error {
	if topic == "" {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("client: empty topic name"))
	}
	if partition < 0 {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("client: negative partition %d", partition))
	}
	return nil
}

// proto returns cfg as the wire message.
func (cfg PartitionConfig) proto() (*internalv1.ReplicaConfig, error) {
	rc := &internalv1.ReplicaConfig{
		SegmentBytes:   cfg.SegmentBytes,
		SegmentAgeMs:   cfg.SegmentAge.Milliseconds(),
		RetentionMs:    cfg.Retention.Milliseconds(),
		RetentionBytes: cfg.RetentionBytes,
		MaxBatchBytes:  cfg.MaxBatchBytes,
	}
	if cfg.Retention < 0 {
		rc.RetentionMs = -1
	} else if cfg.Retention > 0 && rc.RetentionMs == 0 {
		rc.RetentionMs = 1
	}
	if cfg.RetentionBytes < 0 {
		rc.RetentionBytes = -1
	}
	if !cfg.Tiering && (cfg.LocalRetention != 0 || cfg.LocalRetentionBytes != 0) {
		return nil, errors.New("client: local retention applies only with tiering: set Tiering, or leave LocalRetention and LocalRetentionBytes 0")
	}
	rc.Tiering = cfg.Tiering
	switch {
	case cfg.LocalRetention < 0:
		rc.LocalRetentionMs = -1
	case cfg.LocalRetention > 0:
		rc.LocalRetentionMs = max(cfg.LocalRetention.Milliseconds(), 1)
	}
	switch {
	case cfg.LocalRetentionBytes < 0:
		rc.LocalRetentionBytes = -1
	case cfg.LocalRetentionBytes > 0:
		rc.LocalRetentionBytes = cfg.LocalRetentionBytes
	}
	switch cfg.Durability {
	case DurabilityDefault:
	case DurabilityWrite:
		rc.Durability = internalv1.Durability_DURABILITY_WRITE
	case DurabilityFsync:
		rc.Durability = internalv1.Durability_DURABILITY_FSYNC
	default:
		return nil, fmt.Errorf("client: unknown durability %d", cfg.Durability)
	}
	if cfg.SegmentBytes < 0 || cfg.SegmentAge < 0 || cfg.MaxBatchBytes < 0 {
		return nil, errors.New("client: negative segment size, segment age or max batch size: use 0 for the SPU's default")
	}
	return rc, nil
}
