package report_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spatehq/spate/bench/internal/machine"
	"github.com/spatehq/spate/bench/internal/report"
	"github.com/spatehq/spate/bench/internal/scenario"
)

func TestWrite(t *testing.T) {
	o := scenario.Options{Duration: time.Second, LatencyDuration: time.Second, LatencyRate: 10_000}
	var results []scenario.Result
	o.Handshakes = 10
	for _, s := range scenario.Plan(scenario.Write, o) {
		for _, sys := range []string{"spate", "jetstream", "spate-mtls"} {
			if s.Kind == scenario.Handshake && sys == "jetstream" {
				continue
			}
			r := scenario.NewResult(s, sys)
			r.SetThroughput(1_000_000, s.RecordBytes, time.Second)
			if sys == "spate-mtls" {
				r.SetThroughput(500_000, s.RecordBytes, time.Second)
			}
			if s.Kind == scenario.Handshake {
				r.SetLatencies([]time.Duration{time.Millisecond, 3 * time.Millisecond})
				r.ClientCPUMs = 0.5
			}
			r.Command = "cmd | with a pipe"
			results = append(results, r)
		}
	}
	results[4].Error = "it broke\nbadly" // produce-100B-p1-write on jetstream
	run := report.Run{
		Started: time.Unix(0, 0), Finished: time.Unix(60, 0), CommandLine: "spatebench",
		Machine: machine.Info{DiskWriteMBPerSec: 500}, Options: o, Results: results,
	}
	dir := t.TempDir()
	if err := report.Write(dir, run); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, report.MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| produce-100B-p1-write | 1,000,000 |", "1.0x", "failed: it broke", `cmd \| with a pipe`, "## How each figure is measured",
		"| Spate mTLS records/s |", "| 500,000 | 50.0 | 0.50x |", "## Spate over mTLS", "| handshake-10conns-write | spate-mtls | 500,000 | 1.00 | 3.00 |", "| handshake-10conns-write | client CPU ms | 0.50 | 0.50 | 1.00x |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("RESULTS.md has no %q", want)
		}
	}
	js, err := os.ReadFile(filepath.Join(dir, report.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != len(results) {
		t.Fatalf("results.json has %d results, want %d", len(got.Results), len(results))
	}
	for _, k := range []string{"scenario", "system", "record_bytes", "partitions", "durability", "records_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "p999_ms", "rss_mb", "command"} {
		if _, ok := got.Results[0][k]; !ok {
			t.Errorf("a result in results.json has no %q", k)
		}
	}
}

func TestTieredTargets(t *testing.T) {
	run := report.Run{
		Started: time.Unix(0, 0), Finished: time.Unix(60, 0), CommandLine: "spatebench",
		Tiered: &report.Tiered{
			SegmentBytes: 64 << 20, ProducedBytes: 1 << 30, Segments: 16, UploadConcurrency: 2, ChunkBytes: 8 << 20,
			UploadMBps: 300, RawPutStoreMBps: 350, RawPutSDKMBps: 400,
			ColdLogMBps: 200, RawGet1MBps: 800, RawGet2MBps: 700,
			FirstRecordSamples: 10, FirstRecordP50Ms: 5, FirstRecordP99Ms: 50, FirstRecordColdMs: 50,
		},
	}
	md := string(report.Markdown(run))
	for _, want := range []string{
		"| tiered storage: uploads at least 80% of the S3 server's raw PUT throughput | 320 MB/s | 300 MB/s | - | **no** |",
		"| tiered storage: cold replay from S3 at least 80% of the server's raw GET throughput | 640 MB/s | 200 MB/s | - | **no** |",
		"| tiered storage: first record of a consume a year back under 100 ms (p99) | 100.00 ms | 50.00 ms | - | yes |",
		"## Tiered storage", "| upload MB/s | 300.0 | 350.0 (objstore Put), 400.0 (SDK PutObject) | 75% |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md has no %q", want)
		}
	}
}
