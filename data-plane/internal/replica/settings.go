package replica

import (
	"fmt"
	"time"

	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/data-plane/internal/commitlog"
)

// Settings are a replica's declared storage settings. A zero field takes the
// SPU's default; RetentionMS and RetentionBytes take -1 for "no limit".
type Settings struct {
	SegmentBytes   int64  `json:"segment_bytes,omitempty"`
	SegmentAgeMS   int64  `json:"segment_age_ms,omitempty"`
	RetentionMS    int64  `json:"retention_ms,omitempty"`
	RetentionBytes int64  `json:"retention_bytes,omitempty"`
	MaxBatchBytes  int    `json:"max_batch_bytes,omitempty"`
	Durability     string `json:"durability,omitempty"` // "write", "fsync" or "" for the default
	// Tiering uploads closed segments to the SPU's object store; then
	// RetentionMS and RetentionBytes govern the whole log (remote
	// included), and LocalRetentionMS and LocalRetentionBytes the SPU's
	// disk (0: the SPU's default, -1: no local limit beyond the whole
	// log's).
	Tiering             bool  `json:"tiering,omitempty"`
	LocalRetentionMS    int64 `json:"local_retention_ms,omitempty"`
	LocalRetentionBytes int64 `json:"local_retention_bytes,omitempty"`
}

// Apply overlays s on the defaults d and returns the log configuration.
func (s Settings) Apply(d commitlog.Config) (commitlog.Config, error) {
	c := d
	if s.SegmentBytes < 0 || s.SegmentAgeMS < 0 || s.MaxBatchBytes < 0 {
		return c, fmt.Errorf("segment bytes, segment age and max batch bytes must not be negative")
	}
	if s.SegmentBytes > 0 {
		c.SegmentBytes = s.SegmentBytes
	}
	if s.SegmentAgeMS > 0 {
		c.SegmentAge = time.Duration(s.SegmentAgeMS) * time.Millisecond
	}
	switch {
	case s.RetentionMS == -1:
		c.RetentionTime = 0
	case s.RetentionMS > 0:
		c.RetentionTime = time.Duration(s.RetentionMS) * time.Millisecond
	case s.RetentionMS < -1:
		return c, fmt.Errorf("retention time %d ms: use a positive value, or -1 to keep records forever", s.RetentionMS)
	}
	switch {
	case s.RetentionBytes == -1:
		c.RetentionBytes = 0
	case s.RetentionBytes > 0:
		c.RetentionBytes = s.RetentionBytes
	case s.RetentionBytes < -1:
		return c, fmt.Errorf("retention bytes %d: use a positive value, or -1 for no size limit", s.RetentionBytes)
	}
	if s.MaxBatchBytes > 0 {
		c.MaxBatchBytes = s.MaxBatchBytes
	}
	c.Tiering = s.Tiering
	switch {
	case s.LocalRetentionMS == -1:
		c.LocalRetentionTime = 0
	case s.LocalRetentionMS > 0:
		c.LocalRetentionTime = time.Duration(s.LocalRetentionMS) * time.Millisecond
	case s.LocalRetentionMS < -1:
		return c, fmt.Errorf("local retention time %d ms: use a positive value, or -1 for the whole log's", s.LocalRetentionMS)
	}
	switch {
	case s.LocalRetentionBytes == -1:
		c.LocalRetentionBytes = 0
	case s.LocalRetentionBytes > 0:
		c.LocalRetentionBytes = s.LocalRetentionBytes
	case s.LocalRetentionBytes < -1:
		return c, fmt.Errorf("local retention bytes %d: use a positive value, or -1 for the whole log's", s.LocalRetentionBytes)
	}
	switch s.Durability {
	case "":
	case "write":
		c.Durability = commitlog.Write
	case "fsync":
		c.Durability = commitlog.Fsync
	default:
		return c, fmt.Errorf("durability %q: use write or fsync", s.Durability)
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// SettingsFromProto maps the control plane's ReplicaConfig to Settings; a
// nil config gives the zero Settings (every field at the SPU's default).
func SettingsFromProto(c *internalv1.ReplicaConfig) Settings {
	if c == nil {
		return Settings{}
	}
	s := Settings{
		SegmentBytes:   c.SegmentBytes,
		SegmentAgeMS:   c.SegmentAgeMs,
		RetentionMS:    c.RetentionMs,
		RetentionBytes: c.RetentionBytes,
		MaxBatchBytes:  int(c.MaxBatchBytes),

		Tiering:             c.Tiering,
		LocalRetentionMS:    c.LocalRetentionMs,
		LocalRetentionBytes: c.LocalRetentionBytes,
	}
	switch c.Durability {
	case internalv1.Durability_DURABILITY_WRITE:
		s.Durability = "write"
	case internalv1.Durability_DURABILITY_FSYNC:
		s.Durability = "fsync"
	}
	return s
}
