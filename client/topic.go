package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
)

// ErrNoControlPlane is returned by the admin calls of a Client made without
// WithControlPlane.
var ErrNoControlPlane = errors.New("client: no control plane: make the client WithControlPlane(url)")

// TopicSettings are a topic's storage settings. Zero fields are unset: in a
// create they take the cluster's defaults, in an update they stay as they
// are.
type TopicSettings struct {
	// Retention is how long records are kept; negative keeps them forever.
	Retention time.Duration `json:"retention_ns,omitempty" yaml:"retention,omitempty"`
	// RetentionBytes bounds one partition's size; negative means no bound.
	RetentionBytes int64 `json:"retention_bytes,omitempty" yaml:"retention_bytes,omitempty"`
	// SegmentBytes is the size at which the active segment rolls.
	SegmentBytes int64 `json:"segment_bytes,omitempty" yaml:"segment_bytes,omitempty"`
	// SegmentAge is the age at which the active segment rolls.
	SegmentAge time.Duration `json:"segment_age_ns,omitempty" yaml:"segment_age,omitempty"`
	// MaxBatchBytes is the largest batch the SPUs accept.
	MaxBatchBytes int32 `json:"max_batch_bytes,omitempty" yaml:"max_batch_bytes,omitempty"`
	// Durability says when a produce with AcksTopicDefault is acknowledged.
	Durability Durability `json:"durability,omitempty" yaml:"durability,omitempty"`
	// Tiering uploads closed segments to the cluster's object store and
	// serves reads below the SPU's local start from there; then Retention
	// and RetentionBytes govern the whole log, remote included. nil is
	// unset; Tiering(false) turns it off in an update, and the local
	// settings are kept, unused, until it is turned on again.
	Tiering *bool `json:"tiering,omitempty" yaml:"tiering,omitempty"`
	// LocalRetention is how long uploaded segments stay on the SPU's disk;
	// negative keeps them as long as Retention. It must not exceed
	// Retention, and needs Tiering on.
	LocalRetention time.Duration `json:"local_retention_ns,omitempty" yaml:"local_retention,omitempty"`
	// LocalRetentionBytes bounds a partition's size on the SPU's disk;
	// negative means no bound below RetentionBytes. It must not exceed
	// RetentionBytes, and needs Tiering on.
	LocalRetentionBytes int64 `json:"local_retention_bytes,omitempty" yaml:"local_retention_bytes,omitempty"`
}

// Tiering returns a pointer to on, for TopicSettings.Tiering.
func Tiering(on bool) *bool { return &on }

// Tiered reports whether s turns tiering on.
func (s TopicSettings) Tiered() bool { return s.Tiering != nil && *s.Tiering }

// TopicSpec is what a user declares about a topic.
type TopicSpec struct {
	Name              string        `json:"name" yaml:"name"`
	Partitions        int32         `json:"partitions" yaml:"partitions"`
	ReplicationFactor int32         `json:"replication_factor" yaml:"replication_factor"`
	Settings          TopicSettings `json:"settings" yaml:"settings"`
}

// TopicState is how far the cluster got in making a topic real.
type TopicState int8

// The topic states.
const (
	TopicStateUnknown TopicState = iota
	// TopicStatePending means the topic cannot be placed yet; see Reason.
	TopicStatePending
	// TopicStateProvisioning means its replicas are being created.
	TopicStateProvisioning
	// TopicStateReady means every partition's leader serves it.
	TopicStateReady
	// TopicStateDeleting means the topic is being deleted.
	TopicStateDeleting
)

// String returns "pending", "provisioning", "ready", "deleting" or
// "unknown".
func (s TopicState) String() string {
	switch s {
	case TopicStatePending:
		return "pending"
	case TopicStateProvisioning:
		return "provisioning"
	case TopicStateReady:
		return "ready"
	case TopicStateDeleting:
		return "deleting"
	}
	return "unknown"
}

// MarshalText returns the state's name, for JSON and YAML output.
func (s TopicState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalText returns the durability's name, for JSON and YAML output.
func (d Durability) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ParseDurability returns the durability named s: "write", "fsync", or
// "" or "default" for the default.
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "", "default":
		return DurabilityDefault, nil
	case "write":
		return DurabilityWrite, nil
	case "fsync":
		return DurabilityFsync, nil
	}
	return DurabilityDefault, fmt.Errorf("client: unknown durability %q: use write or fsync", s)
}

// Topic is a topic's spec and status.
type Topic struct {
	// Spec is what was declared.
	Spec TopicSpec `json:"spec" yaml:"spec"`
	// State is how far the cluster got; Reason says why it is not ready.
	State  TopicState `json:"state" yaml:"state"`
	Reason string     `json:"reason,omitempty" yaml:"reason,omitempty"`
	// CreatedAt is when the topic was created.
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
	// Partitions are filled in by DescribeTopic.
	Partitions []PartitionStatus `json:"partitions,omitempty" yaml:"partitions,omitempty"`
}

// PartitionStatus is where a partition lives and what it holds.
type PartitionStatus struct {
	Partition int32 `json:"partition" yaml:"partition"`
	// Leader is the ID of the leading SPU; -1 when not placed.
	Leader      int32   `json:"leader" yaml:"leader"`
	Replicas    []int32 `json:"replicas" yaml:"replicas"`
	LeaderEpoch int32   `json:"leader_epoch" yaml:"leader_epoch"`
	StartOffset int64   `json:"start_offset" yaml:"start_offset"`
	EndOffset   int64   `json:"end_offset" yaml:"end_offset"`
	SizeBytes   int64   `json:"size_bytes" yaml:"size_bytes"`
	// Status is "pending", "provisioning", "online" or "offline".
	Status string `json:"status" yaml:"status"`
	// With tiering, StartOffset and SizeBytes are the SPU's disk and these
	// the object store: RemoteStartOffset is its first offset (-1 when it
	// holds nothing), RemoteSize its bytes, UploadLag the bytes of closed
	// segments not uploaded yet, and TieringError why uploads fail.
	RemoteStartOffset int64  `json:"remote_start_offset" yaml:"remote_start_offset"`
	RemoteSize        int64  `json:"remote_size_bytes" yaml:"remote_size_bytes"`
	UploadLag         int64  `json:"upload_lag_bytes" yaml:"upload_lag_bytes"`
	TieringError      string `json:"tiering_error,omitempty" yaml:"tiering_error,omitempty"`
}

// SPU is one Streaming Processing Unit of the cluster.
type SPU struct {
	ID            int32     `json:"id" yaml:"id"`
	Address       string    `json:"address" yaml:"address"`
	Online        bool      `json:"online" yaml:"online"`
	LastHeartbeat time.Time `json:"last_heartbeat" yaml:"last_heartbeat"`
	Replicas      int32     `json:"replicas" yaml:"replicas"`
}

// CreateTopic declares a topic. It fails with an error for which
// IsAlreadyExists is true when the name is taken, and IsInvalidArgument for
// a bad name or setting. The topic may still be pending or provisioning
// when CreateTopic returns; producers and consumers wait for its leaders.
func (c *Client) CreateTopic(ctx context.Context, spec TopicSpec) (Topic, error) {
	if c.topics == nil {
		return Topic{}, ErrNoControlPlane
	}
	settings, err := spec.Settings.proto()
	if err != nil {
		return Topic{}, err
	}
	resp, err := c.topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{Spec: &controlplanev1.TopicSpec{
		Name:              spec.Name,
		Partitions:        spec.Partitions,
		ReplicationFactor: spec.ReplicationFactor,
		Settings:          settings,
	}}))
	if err != nil {
		return Topic{}, c.adminError("create topic", spec.Name, err)
	}
	return topicFromProto(resp.Msg.GetTopic()), nil
}

// ListTopics lists the topics, ordered by name, without partition details.
func (c *Client) ListTopics(ctx context.Context) ([]Topic, error) {
	if c.topics == nil {
		return nil, ErrNoControlPlane
	}
	resp, err := c.topics.ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{}))
	if err != nil {
		return nil, c.adminError("list topics", "", err)
	}
	out := make([]Topic, 0, len(resp.Msg.GetTopics()))
	for _, t := range resp.Msg.GetTopics() {
		out = append(out, topicFromProto(t))
	}
	return out, nil
}

// DescribeTopic returns a topic with the status of each partition. It fails
// with an error for which IsNotFound is true when there is no such topic.
func (c *Client) DescribeTopic(ctx context.Context, name string) (Topic, error) {
	if c.topics == nil {
		return Topic{}, ErrNoControlPlane
	}
	resp, err := c.topics.DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: name}))
	if err != nil {
		return Topic{}, c.adminError("describe topic", name, err)
	}
	return topicFromProto(resp.Msg.GetTopic()), nil
}

// UpdateTopic changes the settings of a live topic; zero fields of settings
// stay as they are.
func (c *Client) UpdateTopic(ctx context.Context, name string, settings TopicSettings) (Topic, error) {
	if c.topics == nil {
		return Topic{}, ErrNoControlPlane
	}
	ps, err := settings.proto()
	if err != nil {
		return Topic{}, err
	}
	resp, err := c.topics.UpdateTopic(ctx, connect.NewRequest(&controlplanev1.UpdateTopicRequest{Name: name, Settings: ps}))
	if err != nil {
		return Topic{}, c.adminError("update topic", name, err)
	}
	return topicFromProto(resp.Msg.GetTopic()), nil
}

// AddPartitions raises the topic's number of partitions to total.
func (c *Client) AddPartitions(ctx context.Context, name string, total int32) (Topic, error) {
	if c.topics == nil {
		return Topic{}, ErrNoControlPlane
	}
	resp, err := c.topics.AddPartitions(ctx, connect.NewRequest(&controlplanev1.AddPartitionsRequest{Name: name, Partitions: total}))
	if err != nil {
		return Topic{}, c.adminError("add partitions to topic", name, err)
	}
	return topicFromProto(resp.Msg.GetTopic()), nil
}

// DeleteTopic deletes a topic and, in the background, its records on the
// SPUs. It fails with an error for which IsNotFound is true when there is no
// such topic. The client's own view of the cluster follows through the
// metadata stream, a moment later: a producer made at once may still find
// the topic.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	if c.topics == nil {
		return ErrNoControlPlane
	}
	if _, err := c.topics.DeleteTopic(ctx, connect.NewRequest(&controlplanev1.DeleteTopicRequest{Name: name})); err != nil {
		return c.adminError("delete topic", name, err)
	}
	return nil
}

// ListSPUs lists the SPUs of the cluster.
func (c *Client) ListSPUs(ctx context.Context) ([]SPU, error) {
	if c.metadata == nil {
		return nil, ErrNoControlPlane
	}
	resp, err := c.metadata.ListSPUs(ctx, connect.NewRequest(&controlplanev1.ListSPUsRequest{}))
	if err != nil {
		return nil, c.adminError("list SPUs", "", err)
	}
	out := make([]SPU, 0, len(resp.Msg.GetSpus()))
	for _, s := range resp.Msg.GetSpus() {
		out = append(out, spuFromProto(s))
	}
	return out, nil
}

// adminError wraps err of an admin call, keeping its connect code. A
// transport error says which control plane could not be reached.
func (c *Client) adminError(op, name string, err error) error {
	if name != "" {
		op = fmt.Sprintf("%s %q", op, name)
	}
	code := connect.CodeOf(err)
	if code == connect.CodeUnavailable || (code == connect.CodeUnknown && isTransportError(err)) {
		return connect.NewError(connect.CodeUnavailable,
			fmt.Errorf("client: %s: control plane at %s unreachable: %w", op, c.controlPlane, err))
	}
	return fmt.Errorf("client: %s: %w", op, err)
}

// IsAlreadyExists reports whether err says that the object, such as a
// topic, exists already.
func IsAlreadyExists(err error) bool { return connect.CodeOf(err) == connect.CodeAlreadyExists }

// IsInvalidArgument reports whether err says that a request was malformed,
// such as a bad topic name or setting.
func IsInvalidArgument(err error) bool { return connect.CodeOf(err) == connect.CodeInvalidArgument }

// IsUnavailable reports whether err says that a server could not be
// reached or is not serving.
func IsUnavailable(err error) bool { return connect.CodeOf(err) == connect.CodeUnavailable }

func (s TopicSettings) proto() (*controlplanev1.TopicSettings, error) {
	if s.SegmentBytes < 0 || s.SegmentAge < 0 || s.MaxBatchBytes < 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument,
			errors.New("client: negative segment size, segment age or max batch size: leave it 0 for the default"))
	}
	out := &controlplanev1.TopicSettings{}
	switch {
	case s.Retention < 0:
		out.RetentionMs = ptr(int64(-1))
	case s.Retention > 0:
		out.RetentionMs = ptr(max(s.Retention.Milliseconds(), 1))
	}
	switch {
	case s.RetentionBytes < 0:
		out.RetentionBytes = ptr(int64(-1))
	case s.RetentionBytes > 0:
		out.RetentionBytes = ptr(s.RetentionBytes)
	}
	if s.Tiering != nil {
		out.Tiering = ptr(*s.Tiering)
	}
	switch {
	case s.LocalRetention < 0:
		out.LocalRetentionMs = ptr(int64(-1))
	case s.LocalRetention > 0:
		out.LocalRetentionMs = ptr(max(s.LocalRetention.Milliseconds(), 1))
	}
	switch {
	case s.LocalRetentionBytes < 0:
		out.LocalRetentionBytes = ptr(int64(-1))
	case s.LocalRetentionBytes > 0:
		out.LocalRetentionBytes = ptr(s.LocalRetentionBytes)
	}
	if s.SegmentBytes > 0 {
		out.SegmentBytes = ptr(s.SegmentBytes)
	}
	if s.SegmentAge > 0 {
		out.SegmentAgeMs = ptr(max(s.SegmentAge.Milliseconds(), 1))
	}
	if s.MaxBatchBytes > 0 {
		out.MaxBatchBytes = ptr(s.MaxBatchBytes)
	}
	switch s.Durability {
	case DurabilityDefault:
	case DurabilityWrite:
		out.Durability = ptr(controlplanev1.Durability_DURABILITY_WRITE)
	case DurabilityFsync:
		out.Durability = ptr(controlplanev1.Durability_DURABILITY_FSYNC)
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("client: unknown durability %d", s.Durability))
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

func settingsFromProto(p *controlplanev1.TopicSettings) TopicSettings {
	var s TopicSettings
	if p == nil {
		return s
	}
	if p.RetentionMs != nil {
		if ms := p.GetRetentionMs(); ms < 0 {
			s.Retention = -1
		} else {
			s.Retention = time.Duration(ms) * time.Millisecond
		}
	}
	s.RetentionBytes = p.GetRetentionBytes()
	if p.Tiering != nil {
		s.Tiering = Tiering(p.GetTiering())
	}
	if p.LocalRetentionMs != nil {
		if ms := p.GetLocalRetentionMs(); ms < 0 {
			s.LocalRetention = -1
		} else {
			s.LocalRetention = time.Duration(ms) * time.Millisecond
		}
	}
	s.LocalRetentionBytes = p.GetLocalRetentionBytes()
	s.SegmentBytes = p.GetSegmentBytes()
	s.SegmentAge = time.Duration(p.GetSegmentAgeMs()) * time.Millisecond
	s.MaxBatchBytes = p.GetMaxBatchBytes()
	switch p.GetDurability() {
	case controlplanev1.Durability_DURABILITY_WRITE:
		s.Durability = DurabilityWrite
	case controlplanev1.Durability_DURABILITY_FSYNC:
		s.Durability = DurabilityFsync
	}
	return s
}

func topicFromProto(t *controlplanev1.Topic) Topic {
	spec := t.GetSpec()
	out := Topic{
		Spec: TopicSpec{
			Name:              spec.GetName(),
			Partitions:        spec.GetPartitions(),
			ReplicationFactor: spec.GetReplicationFactor(),
			Settings:          settingsFromProto(spec.GetSettings()),
		},
		State:  TopicState(t.GetState()),
		Reason: t.GetReason(),
	}
	if ms := t.GetCreatedAtMs(); ms > 0 {
		out.CreatedAt = time.UnixMilli(ms).UTC()
	}
	for _, p := range t.GetPartitions() {
		out.Partitions = append(out.Partitions, PartitionStatus{
			Partition:   p.GetPartition(),
			Leader:      p.GetLeader(),
			Replicas:    p.GetReplicas(),
			LeaderEpoch: p.GetLeaderEpoch(),
			StartOffset: p.GetStartOffset(),
			EndOffset:   p.GetEndOffset(),
			SizeBytes:   p.GetSizeBytes(),
			Status:      p.GetStatus(),

			RemoteStartOffset: p.GetRemoteStartOffset(),
			RemoteSize:        p.GetRemoteSizeBytes(),
			UploadLag:         p.GetUploadLagBytes(),
			TieringError:      p.GetTieringError(),
		})
	}
	return out
}

func spuFromProto(s *controlplanev1.SPU) SPU {
	out := SPU{ID: s.GetId(), Address: s.GetAddress(), Online: s.GetOnline(), Replicas: s.GetReplicas()}
	if ms := s.GetLastHeartbeatMs(); ms > 0 {
		out.LastHeartbeat = time.UnixMilli(ms).UTC()
	}
	return out
}

// This stops compiling if the states' values drift from the protocol's.
var _ = [1]struct{}{}[int(TopicStatePending)-int(controlplanev1.TopicState_TOPIC_STATE_PENDING)+
	int(TopicStateProvisioning)-int(controlplanev1.TopicState_TOPIC_STATE_PROVISIONING)+
	int(TopicStateReady)-int(controlplanev1.TopicState_TOPIC_STATE_READY)+
	int(TopicStateDeleting)-int(controlplanev1.TopicState_TOPIC_STATE_DELETING)]
