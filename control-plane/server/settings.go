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
	// maxRetentionMs is the longest retention accepted, 100 years of 365
	// days: tiered topics keep years of history.
	maxRetentionMs = 100 * 365 * 24 * int64(time.Hour/time.Millisecond)
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
	// Tiering turns tiering on for new topics.
	Tiering bool
	// LocalRetentionTime and LocalRetentionBytes bound what a tiered
	// topic keeps on the SPU's disk once uploaded; negative: no bound
	// below the whole log's. They take effect for topics with tiering on.
	LocalRetentionTime  time.Duration
	LocalRetentionBytes int64
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
	if d.Tiering {
		s.Tiering = ptr(true)
	}
	switch {
	case d.LocalRetentionTime < 0:
		s.LocalRetentionMs = ptr(int64(-1))
	case d.LocalRetentionTime > 0:
		s.LocalRetentionMs = ptr(d.LocalRetentionTime.Milliseconds())
	}
	switch {
	case d.LocalRetentionBytes < 0:
		s.LocalRetentionBytes = ptr(int64(-1))
	case d.LocalRetentionBytes > 0:
		s.LocalRetentionBytes = ptr(d.LocalRetentionBytes)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// validateSettings says what is wrong with s on its own, naming the field
// as the API calls it: each value in range, and a local retention that
// does not exceed the whole log's when s sets both. checkTiering checks
// the settings a topic ends up with.
func validateSettings(s *controlplanev1.TopicSettings) error {
	if s == nil {
		return nil
	}
	if s.RetentionMs != nil {
		if err := checkRetentionMs("retention_ms", *s.RetentionMs, "to keep records forever"); err != nil {
			return err
		}
	}
	if s.RetentionBytes != nil && *s.RetentionBytes <= 0 && *s.RetentionBytes != -1 {
		return fmt.Errorf("retention_bytes %d: must be positive, or -1 for no size limit", *s.RetentionBytes)
	}
	if s.LocalRetentionMs != nil {
		if err := checkRetentionMs("local_retention_ms", *s.LocalRetentionMs, "to keep uploaded segments on the SPU as long as retention_ms"); err != nil {
			return err
		}
	}
	if s.LocalRetentionBytes != nil && *s.LocalRetentionBytes <= 0 && *s.LocalRetentionBytes != -1 {
		return fmt.Errorf("local_retention_bytes %d: must be positive, or -1 for no limit below retention_bytes", *s.LocalRetentionBytes)
	}
	if err := checkLocalBelowWhole(s.LocalRetentionMs, s.RetentionMs, s.LocalRetentionBytes, s.RetentionBytes); err != nil {
		return err
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

// checkRetentionMs checks a retention in milliseconds: positive up to 100
// years, or -1 (forever says what -1 means for the field).
func checkRetentionMs(field string, ms int64, forever string) error {
	switch {
	case ms == -1:
		return nil
	case ms <= 0:
		return fmt.Errorf("%s %d: must be positive, or -1 %s", field, ms, forever)
	case ms > maxRetentionMs:
		return fmt.Errorf("%s %d: at most %d (100 years) is allowed; use -1 %s", field, ms, maxRetentionMs, forever)
	}
	return nil
}

// checkLocalBelowWhole refuses a local retention, in time or bytes, above
// the whole log's; -1 on either side, or a side not set, always passes.
func checkLocalBelowWhole(localMs, wholeMs, localBytes, wholeBytes *int64) error {
	if localMs != nil && wholeMs != nil && *localMs > 0 && *wholeMs > 0 && *localMs > *wholeMs {
		return fmt.Errorf("local_retention_ms %d (%s) exceeds retention_ms %d (%s): the SPU's disk cannot keep records longer than the whole log; lower local_retention_ms or raise retention_ms",
			*localMs, time.Duration(*localMs)*time.Millisecond, *wholeMs, time.Duration(*wholeMs)*time.Millisecond)
	}
	if localBytes != nil && wholeBytes != nil && *localBytes > 0 && *wholeBytes > 0 && *localBytes > *wholeBytes {
		return fmt.Errorf("local_retention_bytes %d exceeds retention_bytes %d: the SPU's disk cannot hold more than the whole log; lower local_retention_bytes or raise retention_bytes",
			*localBytes, *wholeBytes)
	}
	return nil
}

// checkTiering checks merged, the settings a topic gets from a create or
// update request req, as a whole:
//
//   - A request that sets local_retention_ms or local_retention_bytes
//     while the topic's tiering is (or is being turned) off is refused:
//     without tiering the SPU's disk holds the whole log and retention_ms
//     and retention_bytes govern it, so the local settings would do
//     nothing, and a user who sets them most likely forgot tiering.
//   - Turning tiering off keeps the stored local settings, unused (the
//     SPUs get none), so that turning it back on restores them; refusing
//     the switch instead would leave no way to turn tiering off, as an
//     update cannot unset a setting.
//   - With tiering on, the local retention must not exceed the whole
//     log's, checked against the topic's values when the request sets
//     only one side.
func checkTiering(merged store.Settings, req *controlplanev1.TopicSettings) error {
	if req == nil {
		return nil
	}
	if !merged.Tiered() {
		for _, f := range []struct {
			name string
			set  bool
		}{{"local_retention_ms", req.LocalRetentionMs != nil}, {"local_retention_bytes", req.LocalRetentionBytes != nil}} {
			if f.set {
				return fmt.Errorf("%s applies only to topics with tiering on: without tiering the SPU keeps the whole log, which retention_ms and retention_bytes govern; set tiering too, or leave %s out", f.name, f.name)
			}
		}
		return nil
	}
	return checkLocalBelowWhole(merged.LocalRetentionMs, merged.RetentionMs, merged.LocalRetentionBytes, merged.RetentionBytes)
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
	if s.Tiering != nil {
		base.Tiering = ptr(*s.Tiering)
	}
	if s.LocalRetentionMs != nil {
		base.LocalRetentionMs = ptr(*s.LocalRetentionMs)
	}
	if s.LocalRetentionBytes != nil {
		base.LocalRetentionBytes = ptr(*s.LocalRetentionBytes)
	}
	return base
}

// settingsEmpty reports whether s sets nothing.
func settingsEmpty(s *controlplanev1.TopicSettings) bool {
	return s == nil || (s.RetentionMs == nil && s.RetentionBytes == nil && s.SegmentBytes == nil && s.SegmentAgeMs == nil &&
		s.MaxBatchBytes == nil && s.Durability == nil && s.Tiering == nil && s.LocalRetentionMs == nil && s.LocalRetentionBytes == nil)
}

func settingsToProto(s store.Settings) *controlplanev1.TopicSettings {
	out := &controlplanev1.TopicSettings{
		RetentionMs:    s.RetentionMs,
		RetentionBytes: s.RetentionBytes,
		SegmentBytes:   s.SegmentBytes,
		SegmentAgeMs:   s.SegmentAgeMs,
		MaxBatchBytes:  s.MaxBatchBytes,
		// Tiering is always set, so that a client sees it is off.
		Tiering:             ptr(s.Tiered()),
		LocalRetentionMs:    s.LocalRetentionMs,
		LocalRetentionBytes: s.LocalRetentionBytes,
	}
	switch s.Durability {
	case durabilityWrite:
		out.Durability = ptr(controlplanev1.Durability_DURABILITY_WRITE)
	case durabilityFsync:
		out.Durability = ptr(controlplanev1.Durability_DURABILITY_FSYNC)
	}
	return out
}
