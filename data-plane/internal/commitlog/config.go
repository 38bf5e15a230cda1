package commitlog

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/spatehq/spate/internal/batch"
)

// Durability says when a produce is acknowledged: after the write(2) that
// puts the batch in the page cache, or after the fsync that puts it on disk.
// The Log does not act on it: the caller acknowledges after Append returns
// for Write, and after Sync returns for Fsync.
type Durability int

const (
	// Write acknowledges a batch once Append has written it to the segment
	// file. A process crash loses nothing; a machine crash may lose what the
	// kernel had not written back. It is the default.
	Write Durability = iota
	// Fsync acknowledges a batch once Sync has fsynced it. Concurrent
	// Syncs share one fsync (group commit).
	Fsync
)

// String returns "write" or "fsync".
func (d Durability) String() string {
	switch d {
	case Write:
		return "write"
	case Fsync:
		return "fsync"
	}
	return fmt.Sprintf("durability(%d)", int(d))
}

// Defaults and limits of Config. DefaultConfig returns the defaults; WithDefaults
// fills them in for zero fields.
const (
	// DefaultSegmentBytes is the default Config.SegmentBytes: 1 GiB.
	DefaultSegmentBytes = 1 << 30
	// MaxSegmentBytes is the largest Config.SegmentBytes: 2 GiB, so that a
	// segment plus one append stays below the 4 GiB the indexes can address.
	MaxSegmentBytes = 2 << 30
	// DefaultSegmentAge is the default Config.SegmentAge: 7 days.
	DefaultSegmentAge = 7 * 24 * time.Hour
	// DefaultRetentionTime is the RetentionTime of DefaultConfig: 7 days.
	DefaultRetentionTime = 7 * 24 * time.Hour
	// DefaultMaxBatchBytes is the default Config.MaxBatchBytes: 1 MiB.
	DefaultMaxBatchBytes = 1 << 20
	// DefaultIndexIntervalBytes is the default Config.IndexIntervalBytes: 4 KiB.
	DefaultIndexIntervalBytes = 4096
	// DefaultRetentionCheckInterval is the default
	// Config.RetentionCheckInterval: 1 minute.
	DefaultRetentionCheckInterval = time.Minute
)

// Config holds the settings of a Log. Start from DefaultConfig: in a Config
// literal, a zero RetentionTime means keeping data forever, not 7 days. All
// fields can be changed on a live Log with SetConfig.
type Config struct {
	// SegmentBytes is the size at which the active segment is rolled: an
	// append that would make it larger goes to a new segment. An append
	// larger than SegmentBytes still goes whole into one (new) segment.
	// Zero means DefaultSegmentBytes (1 GiB); at most MaxSegmentBytes.
	SegmentBytes int64
	// SegmentAge rolls the active segment once its first batch was written
	// this long ago, so that time-based retention can delete it. Zero means
	// DefaultSegmentAge (7 days).
	SegmentAge time.Duration
	// RetentionTime deletes a closed segment once its newest record (by the
	// records' max timestamp) is older than this. Zero keeps segments
	// forever. The active segment is rolled when all of its records are
	// older, so it is deleted too.
	RetentionTime time.Duration
	// RetentionBytes deletes the oldest closed segments while the log is
	// larger than this, so that the log stays within it except for the
	// active segment. Zero means no limit.
	RetentionBytes int64
	// MaxBatchBytes is the largest batch Append accepts, header included;
	// larger ones fail with ErrBatchTooLarge. Zero means
	// DefaultMaxBatchBytes (1 MiB).
	MaxBatchBytes int
	// IndexIntervalBytes is the number of log bytes between two entries of
	// the sparse offset index: smaller is faster to look up, larger is a
	// smaller index. Zero means DefaultIndexIntervalBytes (4 KiB).
	IndexIntervalBytes int
	// Durability is the topic's default durability. The Log only stores
	// it; see Durability.
	Durability Durability
	// RetentionCheckInterval is the period of the background loop that
	// enforces retention and rolls aged segments. Zero means
	// DefaultRetentionCheckInterval (1 minute).
	RetentionCheckInterval time.Duration

	// Tiering means the closed segments are uploaded to an object store,
	// which keeps the whole log: RetentionTime and RetentionBytes then
	// govern the remote tier (the uploader enforces them), and local
	// retention follows LocalRetentionTime and LocalRetentionBytes, and
	// deletes a segment only once the DeletionGate allows it (see
	// Log.SetDeletionGate). Without tiering the Local fields are ignored.
	Tiering bool
	// LocalRetentionTime and LocalRetentionBytes bound what stays on the
	// local disk under tiering, like RetentionTime and RetentionBytes do
	// without it. Zero means the whole log's limit (RetentionTime,
	// RetentionBytes); a local limit larger than the whole log's is
	// lowered to it.
	LocalRetentionTime  time.Duration
	LocalRetentionBytes int64
}

// localRetention returns the time and size limits that local retention
// applies: the whole log's without tiering, the local ones (capped by the
// whole log's) with it. Zero means no limit.
func (c *Config) localRetention() (time.Duration, int64) {
	if !c.Tiering {
		return c.RetentionTime, c.RetentionBytes
	}
	t, b := c.RetentionTime, c.RetentionBytes
	if c.LocalRetentionTime > 0 && (t == 0 || c.LocalRetentionTime < t) {
		t = c.LocalRetentionTime
	}
	if c.LocalRetentionBytes > 0 && (b == 0 || c.LocalRetentionBytes < b) {
		b = c.LocalRetentionBytes
	}
	return t, b
}

// DefaultConfig returns the default settings: 1 GiB segments rolled after 7
// days, 7 days of retention with no size limit, batches up to 1 MiB, an index
// entry every 4 KiB, Write durability, and a retention check every minute.
func DefaultConfig() Config {
	return Config{RetentionTime: DefaultRetentionTime}.WithDefaults()
}

// WithDefaults returns c with its zero fields set to their defaults, except
// RetentionTime and RetentionBytes, for which zero means no limit.
func (c Config) WithDefaults() Config {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = DefaultSegmentAge
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = DefaultRetentionCheckInterval
	}
	return c
}

// Validate reports every field of c that is out of range, after defaults are
// applied to its zero fields.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.SegmentBytes < batch.HeaderSize || c.SegmentBytes > MaxSegmentBytes {
		errs = append(errs, fmt.Errorf("segment bytes %d: must be between %d and %d", c.SegmentBytes, batch.HeaderSize, int64(MaxSegmentBytes)))
	}
	if c.SegmentAge < 0 {
		errs = append(errs, fmt.Errorf("segment age %v: must not be negative", c.SegmentAge))
	}
	if c.RetentionTime < 0 {
		errs = append(errs, fmt.Errorf("retention time %v: must not be negative (0 keeps data forever)", c.RetentionTime))
	}
	if c.RetentionBytes < 0 {
		errs = append(errs, fmt.Errorf("retention bytes %d: must not be negative (0 means no limit)", c.RetentionBytes))
	}
	if c.MaxBatchBytes < batch.HeaderSize || c.MaxBatchBytes > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("max batch bytes %d: must be between %d and %d", c.MaxBatchBytes, batch.HeaderSize, math.MaxInt32))
	}
	if c.IndexIntervalBytes < 1 || c.IndexIntervalBytes > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("index interval bytes %d: must be between 1 and %d", c.IndexIntervalBytes, math.MaxInt32))
	}
	if c.Durability != Write && c.Durability != Fsync {
		errs = append(errs, fmt.Errorf("durability %d: must be Write or Fsync", int(c.Durability)))
	}
	if c.LocalRetentionTime < 0 {
		errs = append(errs, fmt.Errorf("local retention time %v: must not be negative (0 means the whole log's)", c.LocalRetentionTime))
	}
	if c.LocalRetentionBytes < 0 {
		errs = append(errs, fmt.Errorf("local retention bytes %d: must not be negative (0 means the whole log's)", c.LocalRetentionBytes))
	}
	if c.RetentionCheckInterval < 0 {
		errs = append(errs, fmt.Errorf("retention check interval %v: must not be negative", c.RetentionCheckInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("commitlog: invalid config: %w", err)
	}
	return nil
}
