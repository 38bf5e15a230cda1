// Package commitlog is the partition log of an SPU: an append-only sequence
// of record batches (package internal/batch) stored in a folder of segment
// files, with dense offsets, a sparse offset index, a time index, group-commit
// fsync, size- and age-based segment rolling, retention by time and by size,
// and crash recovery that never serves a torn batch.
//
// # On-disk layout
//
// A partition log is one folder. Its files are:
//
//	<base>.log        a segment: batches back to back, exactly as produced
//	<base>.index      the segment's sparse offset index
//	<base>.timeindex  the segment's time index
//	recovery-point    the base offset below which every segment is durable
//	.lock             held with flock(2) while a process has the log open
//
// <base> is the offset of the segment's first record, written as 20 decimal
// digits, zero-padded (00000000000000001234.log), so that the names sort in
// offset order. Every other file in the folder is ignored; files named
// *.tmp are leftovers of an interrupted write and are deleted on Open.
//
// A log file holds whole batches one after the other, each in the batch
// format of package internal/batch, with the base offset and the leader epoch
// stamped by the SPU. The batches of a segment and of consecutive segments
// are contiguous: a batch's base offset is the previous batch's last offset
// plus one, and a segment's base offset is the previous segment's next
// offset. The last segment is the active one: it alone is appended to. The
// others are closed and never change again until retention deletes them.
// A log always has at least one segment, possibly empty, so that the next
// offset to assign survives retention.
//
// A segment's size is bounded by Config.SegmentBytes, except that a segment
// always takes at least one append, so an append larger than SegmentBytes
// makes a segment of its own. A segment is smaller than 4 GiB and holds fewer
// than 2^32 offsets, because the indexes store 32-bit positions and relative
// offsets.
//
// # Offset index
//
// The .index file is a sequence of 8-byte entries, big-endian:
//
//	relative offset uint32  base offset of a batch minus the segment's base
//	position        uint32  byte position of that batch in the .log file
//
// Entries are sorted by both fields. An entry is written for a batch when at
// least Config.IndexIntervalBytes bytes of the segment lie between the
// previous entry (or the start of the segment) and the batch, so the part of
// the log after an entry that has no entry of its own is shorter than
// IndexIntervalBytes plus one batch. To find the batch holding an offset, a
// reader takes the last entry at or below it and walks the batch headers
// forward from there.
//
// # Time index
//
// The .timeindex file is a sequence of 12-byte entries, big-endian:
//
//	timestamp       int64   the segment's largest max timestamp so far, Unix ms
//	relative offset uint32  base offset of the batch that raised it, minus the segment's base
//
// An entry is written only when a batch raises the segment's max timestamp,
// and, like the offset index, at most about once every IndexIntervalBytes;
// when a segment is closed a last entry is written if its max timestamp grew
// since the last entry, so the last entry of a closed segment holds the
// segment's newest timestamp, which time-based retention uses. Timestamps in
// the file are strictly increasing.
//
// # Derived data and recovery
//
// The indexes are derived from the log file: they are written through a
// buffer, never fsynced on the hot path, and rebuilt from the log whenever
// they are missing or do not agree with it. The recovery-point file holds one
// line, a decimal offset: every segment whose base offset is below it was
// fsynced together with its indexes. On Open, the segments from the recovery
// point on (always including the active one) are scanned batch by batch,
// checking the header, that the batch lies within the file, its CRC, and that
// its offsets follow the previous batch's. The log is truncated at the first
// batch that fails a check and the segments after it are deleted; what was
// cut is logged. The leader epoch lies outside the batch CRC and so cannot be
// checked.
//
// # Tiering
//
// With Config.Tiering the closed segments are also uploaded to an object
// store (package tiered-storage/upload, wired in by package replica). The Log
// offers what an uploader needs: ClosedSegments (base and last offsets,
// leader epoch of the last batch, newest timestamp, size), Rolled (closed
// when a segment closes), OpenClosedSegment (a segment, or its tail from a
// batch boundary, with its indexes, readable even if deleted meanwhile), and
// SetDeletionGate. Local retention then follows LocalRetentionTime and
// LocalRetentionBytes, and deletes a segment only once the gate says it is
// uploaded; what it holds back is reported by Info. RetentionTime and
// RetentionBytes govern the remote tier. Without tiering none of this changes
// what the Log does.
//
// # Concurrency
//
// A Log is safe for concurrent use: appends are serialized, and any number of
// reads run concurrently with an append, with a Sync and with retention. See
// the Log type for the lock order.
package commitlog
