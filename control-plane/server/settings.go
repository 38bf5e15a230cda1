package server

import (
	"fmt"
	"time"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/control-plane/internal/store"
)

const (
	durabilityWrite = "write"
	durabilityFsync = "fsync"

	// MaxPartitions is the most partitions a topic may have.
	MaxPartitions = 10000
	// MaxReplicationFactor is the largest replication factor accepted.
	MaxReplicationFactor = 16
	// minSegmentBytes and maxSegmentBytes bound segment.bytes as the SPU
	// does; maxBatchBytes is the SPU's message limit.
	minSegmentBytes = 1 << 10
	maxSegmentBytes = 2 << 30
	maxBatchBytes   = 32 << 20
)

// TopicDefaults are the cluster's values for the settings a create leaves
// unset. A zero field leaves the choice to the SPUs' own defaults.
type TopicDefaults struct {
	// RetentionTime is how long records are kept; negative keeps them
	// forever.
	RetentionTime time.Duration
	// RetentionBytes is the largest size of a partition; negative means no
	// limit.
	RetentionBytes int64
	// SegmentBytes rolls a partition's active segment at this size.
	SegmentBytes int64
	// SegmentAge rolls a partition's active segment at this age.
	SegmentAge time.Duration
	// MaxBatchBytes is the largest batch a producer may send.
	MaxBatchBytes int32
	// Fsync acknowledges produces after fsync instead of write.
	Fsync bool
}

func (d TopicDefaults) settings() *controlplanev1.TopicSettings {
	s := &controlplanev1.TopicSettings{}
	switch {
	case d.RetentionTime < 0:
		s.RetentionMs = ptr(int64(-1))
	case d.RetentionTime > 0:
		s.RetentionMs = ptr(d.RetentionTime.Milliseconds())
	}
	switch {
	case d.RetentionBytes < 0:
		s.RetentionBytes = ptr(int64(-1))
	case d.RetentionBytes > 0:
		s.RetentionBytes = ptr(d.RetentionBytes)
	}
	if d.SegmentBytes > 0 {
		s.SegmentBytes = ptr(d.SegmentBytes)
	}
	if d.SegmentAge > 0 {
		s.SegmentAgeMs = ptr(d.SegmentAge.Milliseconds())
	}
	if d.MaxBatchBytes > 0 {
		s.MaxBatchBytes = ptr(d.MaxBatchBytes)
	}
	if d.Fsync {
		s.Durability = ptr(controlplanev1.Durability_DURABILITY_FSYNC)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// validateSettings says what is wrong with s, naming the field as the CLI
// and the API call it.
func validateSettings(s *controlplanev1.TopicSettings) error {
	if s == nil {
		return nil
	}
	if s.RetentionMs != nil && *s.RetentionMs <= 0 && *s.RetentionMs != -1 {
		return fmt.Errorf("retention_ms %d: must be positive, or -1 to keep records forever", *s.RetentionMs)
	}
	if s.RetentionBytes != nil && *s.RetentionBytes <= 0 && *s.RetentionBytes != -1 {
		return fmt.Errorf("retention_bytes %d: must be positive, or -1 for no size limit", *s.RetentionBytes)
	}
	if s.SegmentBytes != nil && (*s.SegmentBytes < minSegmentBytes || *s.SegmentBytes > maxSegmentBytes) {
		return fmt.Errorf("segment_bytes %d: must be between %d (1 KiB) and %d (2 GiB)", *s.SegmentBytes, minSegmentBytes, maxSegmentBytes)
	}
	if s.SegmentAgeMs != nil && *s.SegmentAgeMs <= 0 {
		return fmt.Errorf("segment_age_ms %d: must be positive", *s.SegmentAgeMs)
	}
	if s.MaxBatchBytes != nil && (*s.MaxBatchBytes < minSegmentBytes || *s.MaxBatchBytes > maxBatchBytes) {
		return fmt.Errorf("max_batch_bytes %d: must be between %d (1 KiB) and %d (32 MiB)", *s.MaxBatchBytes, minSegmentBytes, maxBatchBytes)
	}
	if s.Durability != nil {
		switch *s.Durability {
		case controlplanev1.Durability_DURABILITY_UNSPECIFIED, controlplanev1.Durability_DURABILITY_WRITE, controlplanev1.Durability_DURABILITY_FSYNC:
		default:
			return fmt.Errorf("durability %d: use DURABILITY_WRITE or DURABILITY_FSYNC", *s.Durability)
		}
	}
	return nil
}

// mergeSettings sets in base every field that s sets.
func mergeSettings(base store.Settings, s *controlplanev1.TopicSettings) store.Settings {
	if s == nil {
		return base
	}
	if s.RetentionMs != nil {
		base.RetentionMs = ptr(*s.RetentionMs)
	}
	if s.RetentionBytes != nil {
		base.RetentionBytes = ptr(*s.RetentionBytes)
	}
	if s.SegmentBytes != nil {
		base.SegmentBytes = ptr(*s.SegmentBytes)
	}
	if s.SegmentAgeMs != nil {
		base.SegmentAgeMs = ptr(*s.SegmentAgeMs)
	}
	if s.MaxBatchBytes != nil {
		base.MaxBatchBytes = ptr(*s.MaxBatchBytes)
	}
	if s.Durability != nil {
		switch *s.Durability {
		case controlplanev1.Durability_DURABILITY_WRITE:
			base.Durability = durabilityWrite
		case controlplanev1.Durability_DURABILITY_FSYNC:
			base.Durability = durabilityFsync
		default:
			base.Durability = ""
		}
	}
	return base
}

func settingsToProto(s store.Settings) *controlplanev1.TopicSettings {
	out := &controlplanev1.TopicSettings{
		RetentionMs:    s.RetentionMs,
		RetentionBytes: s.RetentionBytes,
		SegmentBytes:   s.SegmentBytes,
		SegmentAgeMs:   s.SegmentAgeMs,
		MaxBatchBytes:  s.MaxBatchBytes,
	}
	switch s.Durability {
	case durabilityWrite:
		out.Durability = ptr(controlplanev1.Durability_DURABILITY_WRITE)
	case durabilityFsync:
		out.Durability = ptr(controlplanev1.Durability_DURABILITY_FSYNC)
	}
	return out
}
