package report

import (
	"bytes"
	"fmt"
)

// Tiered holds the figures of the tiered-storage scenarios (package
// bench/internal/tiered), measured against a real S3-compatible server.
type Tiered struct {
	// Error says why the scenarios have no (or partial) figures.
	Error string `json:"error,omitempty"`
	// S3Server and SPU are the command lines of the S3 server and the SPU.
	S3Server string `json:"s3_server"`
	SPU      string `json:"spu"`

	// SegmentBytes is the partitions' segment size; Segments the closed
	// segments uploaded; ProducedBytes the bytes of values produced.
	SegmentBytes  int64 `json:"segment_bytes"`
	Segments      int   `json:"segments"`
	ProducedBytes int64 `json:"produced_bytes"`
	// UploadConcurrency is the SPU's --tier-upload-concurrency, also the
	// concurrency of the raw PUT baselines.
	UploadConcurrency int `json:"upload_concurrency"`

	// UploadBytes is what the SPU uploaded (spate_tier_uploaded_bytes_total:
	// segments and their indexes) in UploadSeconds, from turning tiering on
	// to an upload lag of zero.
	UploadBytes   int64   `json:"upload_bytes"`
	UploadSeconds float64 `json:"upload_seconds"`
	UploadMBps    float64 `json:"upload_mb_per_sec"`
	// RawPutStoreMBps is objstore/s3 Put of objects of the segments' sizes
	// from a file; RawPutSDKMBps the SDK's single PutObject of the same.
	RawPutStoreMBps float64 `json:"raw_put_objstore_mb_per_sec"`
	RawPutSDKMBps   float64 `json:"raw_put_sdk_mb_per_sec"`

	// Cold replay: a consumer from offset 0 of the partition whose local
	// segments were deleted.
	ColdRecords       int64   `json:"cold_records"`
	ColdSeconds       float64 `json:"cold_seconds"`
	ColdRecordsPerSec float64 `json:"cold_records_per_sec"`
	// ColdValueMBps counts the values; ColdLogMBps the segments' bytes
	// (batches with their headers), what the raw GETs read.
	ColdValueMBps float64 `json:"cold_value_mb_per_sec"`
	ColdLogMBps   float64 `json:"cold_log_mb_per_sec"`
	// RawGet1MBps and RawGet2MBps are ranged GETs (ChunkBytes each) of the
	// same .log objects, one and two at a time.
	RawGet1MBps float64 `json:"raw_get_1_mb_per_sec"`
	RawGet2MBps float64 `json:"raw_get_2_mb_per_sec"`
	ChunkBytes  int64   `json:"chunk_bytes"`

	// Time to first record of a consume that starts a year back by
	// timestamp, in a partition of YearSegments remote segments
	// (YearObjects objects) written directly into the bucket.
	YearSegments       int     `json:"year_segments"`
	YearObjects        int     `json:"year_objects"`
	YearStepHours      float64 `json:"year_step_hours"`
	FirstRecordColdMs  float64 `json:"first_record_cold_listing_ms"`
	FirstRecordP50Ms   float64 `json:"first_record_p50_ms"`
	FirstRecordP99Ms   float64 `json:"first_record_p99_ms"`
	FirstRecordMaxMs   float64 `json:"first_record_max_ms"`
	FirstRecordSamples int     `json:"first_record_samples"`

	// Notes says what a reader should know about these figures.
	Notes []string `json:"notes,omitempty"`
}

// rawPut returns the better raw PUT figure.
func (t *Tiered) rawPut() float64 { return max(t.RawPutStoreMBps, t.RawPutSDKMBps) }

// rawGet returns the better raw GET figure.
func (t *Tiered) rawGet() float64 { return max(t.RawGet1MBps, t.RawGet2MBps) }

// tieredTargets returns the rows of the targets table for tiered storage:
// what, goal, Spate's figure and whether it is met.
func tieredTargets(t *Tiered) [][4]string {
	row := func(what string, goal, v float64, unit string, atMost, measured bool) [4]string {
		if !measured {
			return [4]string{what, "-", "-", "not measured"}
		}
		met := "**no**"
		if atMost && v < goal || !atMost && v >= goal {
			met = "yes"
		}
		return [4]string{what, fmtFigure(goal, unit), fmtFigure(v, unit), met}
	}
	return [][4]string{
		row("tiered storage: uploads at least 80% of the S3 server's raw PUT throughput", 0.8*t.rawPut(), t.UploadMBps, "MB/s", false, t.UploadMBps > 0 && t.rawPut() > 0),
		row("tiered storage: cold replay from S3 at least 80% of the server's raw GET throughput", 0.8*t.rawGet(), t.ColdLogMBps, "MB/s", false, t.ColdLogMBps > 0 && t.rawGet() > 0),
		row("tiered storage: first record of a consume a year back under 100 ms (p99)", 100, t.FirstRecordP99Ms, "ms", true, t.FirstRecordSamples > 0),
	}
}

func writeTiered(b *bytes.Buffer, run Run) {
	t := run.Tiered
	if t == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Tiered storage\n\n")
	p("The scenarios of issue 5, against a real S3-compatible server: the Versity S3 Gateway (`versitygw`, posix backend over a temporary folder on the same disk, on 127.0.0.1), started by the benchmark, with the SPU as a separate process:\n\n")
	p("- S3 server: `%s`\n- SPU: `%s` (credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)\n\n", t.S3Server, t.SPU)
	if t.Error != "" {
		p("**Failed:** %s\n\n", cell(t.Error))
	}
	p("The SPU runs standalone (no control plane): partitions are made through its ReplicaService (`client.EnsurePartition`), as in the other plaintext scenarios, with the tiering settings in the replica's config (`Tiering`, `LocalRetentionBytes`), which a standalone SPU honours as a cluster's does: an uploader per tiered partition, local retention gated on uploads, and consumes below the local start served from the bucket.\n\n")
	p("**Uploads.** One partition with %s segments and tiering off; one producer writes %s of 1 KiB values (%d closed segments); then tiering is turned on (a live settings change, with local retention of 1 byte) and the clock runs until the SPU's upload lag is zero. The rate is `spate_tier_uploaded_bytes_total` (segments and their .index and .timeindex objects), sampled from the SPU's /metrics every 50 ms, over that time. The produced data is written back to disk (sync(2)) before the clock starts, and again before each baseline. The raw baselines PUT objects of the same sizes, from a file, %d at a time as the SPU uploads (`--tier-upload-concurrency %d`): through objstore/s3's Put (multipart above 16 MiB, as the SPU uploads) and through the AWS SDK's single PutObject; the goal is 80%% of the better one.\n\n",
		size(t.SegmentBytes), size(t.ProducedBytes), t.Segments, t.UploadConcurrency, t.UploadConcurrency)
	p("**Cold replay.** Once local retention has deleted the uploaded segments (the SPU keeps only its active segment), a new consumer reads the partition from offset 0 through the same consume stream; the SPU reads the bucket with ranged GETs, read-ahead and its cache. The rate in MB/s counts the segments' bytes (batches with headers), what the raw GETs read; the values' MB/s is given too. The raw baselines are ranged GETs of %s of the same .log objects, read to the end, one at a time and two at a time (the reader's read-ahead), and once more with the client decoding the records as a consumer does; the goal is 80%% of the best plain one. Replay and raw GETs run three rounds, interleaved, and the best of each counts; each round's note gives the CPU seconds per GB of the S3 server, the SPU and the client and the SPU's minor page faults. On a 2-core machine the three processes of a replay share the cores that the two of a raw GET have, which bounds the ratio (see the notes).\n\n", size(t.ChunkBytes))
	p("**First record a year back.** %d tiny segments (10 records of about 10 bytes each, %d objects with their indexes) are written straight into the bucket under the layout's keys (package tiered-storage/layout), one every %s hours from a year and a week ago to a day ago. A partition with tiering on is then made on the SPU; its uploader lists them and takes their end as its watermark; a producer writes as many records again so that local retention deletes the local copies of those offsets and the local log starts after the remote tier. Each sample is a new client and consumer starting at a timestamp a year back (shifted by one segment per sample so each reads a segment the SPU's cache does not hold), timed from the Consume call (which includes making the client) to the first record, checked to be the first record at or after that time. The SPU finds the segment from its remote index (the listing of the partition's prefix, cached for 30 s, then listed again): the first sample includes that listing and is shown on its own; the target is judged on the p99.\n\n", t.YearSegments, t.YearObjects, dec(t.YearStepHours, 2))
	p("| figure | Spate | raw S3 server | Spate / raw |\n| --- | ---: | ---: | ---: |\n")
	ratio := func(a, b float64) string {
		if a <= 0 || b <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*a/b)
	}
	p("| upload MB/s | %s | %s (objstore Put), %s (SDK PutObject) | %s |\n", dec(t.UploadMBps, 1), dec(t.RawPutStoreMBps, 1), dec(t.RawPutSDKMBps, 1), ratio(t.UploadMBps, t.rawPut()))
	p("| cold replay MB/s (segment bytes) | %s | %s (1 GET at a time), %s (2 at a time) | %s |\n", dec(t.ColdLogMBps, 1), dec(t.RawGet1MBps, 1), dec(t.RawGet2MBps, 1), ratio(t.ColdLogMBps, t.rawGet()))
	p("| cold replay records/s | %s | - | - |\n", num(t.ColdRecordsPerSec))
	p("| cold replay MB/s (values) | %s | - | - |\n\n", dec(t.ColdValueMBps, 1))
	p("| first record a year back | samples | first (cold listing) ms | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	p("| %d remote segments | %d | %s | %s | %s | %s |\n\n", t.YearSegments, t.FirstRecordSamples, dec(t.FirstRecordColdMs, 2), dec(t.FirstRecordP50Ms, 2), dec(t.FirstRecordP99Ms, 2), dec(t.FirstRecordMaxMs, 2))
	p("Uploaded %s in %.2f s; replayed %s records in %.2f s.\n\n", size(t.UploadBytes), t.UploadSeconds, num(float64(t.ColdRecords)), t.ColdSeconds)
	for _, n := range t.Notes {
		p("- %s\n", n)
	}
	if len(t.Notes) > 0 {
		p("\n")
	}
}

// size formats a byte count in MiB or GiB.
func size(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
