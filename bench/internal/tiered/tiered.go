// Package tiered runs the tiered-storage scenarios of the benchmark against
// a real S3-compatible server: the Versity S3 Gateway (versitygw) over a
// temporary folder on 127.0.0.1, and a standalone SPU (`spate spu serve
// --tier-s3-*`) as a separate process, driven in-process with the Go SDK.
//
//   - Upload: a partition with tiering off receives N bytes in closed
//     segments; tiering is then turned on (a live settings change) and the
//     time to an upload lag of zero gives the SPU's upload rate, from its
//     metrics. Raw baselines PUT objects of the same sizes with objstore/s3
//     and with the AWS SDK's PutObject.
//   - Cold replay: once local retention has deleted the uploaded segments,
//     a new consumer reads the partition from offset 0; raw baselines are
//     ranged GETs of 8 MiB (the reader's chunk) of the same objects, read
//     to the end one object and two objects at a time, and two at a time
//     with the records decoded as the Go client decodes a consume
//     response (what reading the bucket directly would cost the client).
//     The replay and the baselines run replayRounds times, one after the
//     other, and the best of each is reported; each round's figures, its
//     ratio and the CPU time of the S3 server, the SPU and this process
//     (CPU s/GB: on two shared cores the replay, which moves every byte
//     over two connections and decodes it, is bound by the sum) go into
//     the notes, with the SPU's minor page faults (fresh memory).
//   - First record a year back: thousands of tiny segments written directly
//     into the bucket under the layout's keys, found by the SPU through its
//     remote index; repeated fresh consumers start at a timestamp a year
//     back.
//
// See the "Tiered storage" section of bench/RESULTS.md for the method.
package tiered

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/spatehq/spate/bench/internal/proc"
	"github.com/spatehq/spate/bench/internal/report"
	"github.com/spatehq/spate/bench/internal/scenario"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore/s3"
)

// Names of the scenarios, for -only.
var Names = []string{"tiered-upload", "tiered-cold-replay", "tiered-first-record"}

// Credentials, region, bucket and prefix of the benchmark's S3 server.
const (
	accessKey = "spatebench-access"
	secretKey = "spatebench-secret-0123456789"
	region    = "us-east-1"
	bucket    = "spatebench"
	prefix    = "bench/tier"
)

// Sizes of the scenarios.
const (
	segmentBytes      = 64 << 20
	recordBytes       = 1024
	uploadConcurrency = 2
	chunkBytes        = 8 << 20 // the remote reader's default chunk
	// replayRounds is how many times the cold replay and its raw
	// baselines run, one after the other: on a machine shared with other
	// work, the best of each is the least disturbed.
	replayRounds = 3
	yearRecords  = 10 // records per tiny segment
)

// Config configures a run.
type Config struct {
	// Spate is the spate binary; VersityGW the versitygw binary.
	Spate, VersityGW string
	// WorkDir is the parent of the temporary folders.
	WorkDir string
	// Log receives the servers' output; discarded when nil.
	Log io.Writer
	// Logger reports progress.
	Logger *slog.Logger
	// Quick makes everything smaller, for a smoke test.
	Quick bool
	// ProfileDir, when set, receives CPU profiles of the first cold
	// replay: of the SPU (tiered-cold-replay.spu.pprof, from its
	// /debug/pprof, so the SPU runs with --pprof) and of this process, the
	// consumer (tiered-cold-replay.client.pprof), and an execution trace of
	// the SPU (tiered-cold-replay.spu.trace).
	ProfileDir string
}

// bench is one run: the S3 server, the SPU and their clients.
type bench struct {
	cfg    Config
	dir    string
	s3     *proc.Process
	spu    *proc.Process
	spuURL string
	s3URL  string
	// yearStep is the time between the tiny segments of the year back.
	yearStep time.Duration
	store    *s3.Store // under prefix, as the SPU's
	raw      *s3.Store // under "raw/", for the baselines
	client   *client.Client
	res      *report.Tiered
}

// Run runs the three scenarios and returns their figures. On error the
// figures measured so far are returned with Error set.
func Run(ctx context.Context, cfg Config) *report.Tiered {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	res := &report.Tiered{SegmentBytes: segmentBytes, UploadConcurrency: uploadConcurrency, ChunkBytes: chunkBytes}
	b := &bench{cfg: cfg, res: res}
	defer b.stop()
	if err := b.run(ctx); err != nil {
		res.Error = err.Error()
		cfg.Logger.Error("tiered storage", "err", err)
	}
	return res
}

func (b *bench) run(ctx context.Context) error {
	if _, err := os.Stat(b.cfg.VersityGW); err != nil {
		return fmt.Errorf("tiered: no versitygw at %s (run infra/scripts/install-versitygw.sh, or pass -versitygw): %w", b.cfg.VersityGW, err)
	}
	dir, err := os.MkdirTemp(b.cfg.WorkDir, "tiered-")
	if err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	b.dir = dir
	if err := b.startS3(ctx); err != nil {
		return err
	}
	if err := b.startSPU(ctx); err != nil {
		return err
	}
	total := int64(1 << 30)
	if b.cfg.Quick {
		total = 256 << 20
	}
	segs, err := b.upload(ctx, total)
	if err != nil {
		return err
	}
	if err := b.rawPut(ctx, segs); err != nil {
		return err
	}
	if err := b.coldReplay(ctx, segs); err != nil {
		return err
	}
	count, samples := 2920, 200 // a segment about every 3 hours for a year
	if b.cfg.Quick {
		count, samples = 400, 10
	}
	return b.yearBack(ctx, count, samples)
}

func (b *bench) stop() {
	if b.client != nil {
		b.client.Close()
	}
	if b.spu != nil {
		b.spu.Stop()
	}
	if b.s3 != nil {
		b.s3.Stop()
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// startS3 starts versitygw on a free port over a temporary folder and
// creates the bucket.
func (b *bench) startS3(ctx context.Context) error {
	root := filepath.Join(b.dir, "s3")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	spec := proc.Spec{
		Path: b.cfg.VersityGW,
		Args: []string{"--port", addr, "--region", region, "--quiet", "posix", root},
		Env:  []string{"ROOT_ACCESS_KEY=" + accessKey, "ROOT_SECRET_KEY=" + secretKey},
		Log:  b.cfg.Log,
	}
	p, err := proc.Start(spec)
	if err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	b.s3 = p
	b.res.S3Server = strings.Replace(spec.CommandLine(), addr, "127.0.0.1:PORT", 1)
	b.res.S3Server = strings.Replace(b.res.S3Server, root, "DIR", 1)
	if err := proc.WaitListening(ctx, p, addr, 30*time.Second); err != nil {
		return fmt.Errorf("tiered: versitygw: %w", err)
	}
	endpoint := "http://" + addr
	mk := func(pfx string) (*s3.Store, error) {
		return s3.New(ctx, s3.Config{Endpoint: endpoint, Region: region, Bucket: bucket, Prefix: pfx, PathStyle: true, AccessKey: accessKey, SecretKey: secretKey})
	}
	st, err := mk(prefix) // s3.New makes a client; it does not check the bucket
	if err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	if _, err := st.Client().CreateBucket(ctx, &s3api.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("tiered: create bucket: %w\n%s", err, p.Output())
	}
	b.store = st
	if b.raw, err = mk("raw"); err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	b.s3URL = endpoint
	return nil
}

// startSPU starts a standalone SPU with the bucket as its object store.
func (b *bench) startSPU(ctx context.Context) error {
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	data := filepath.Join(b.dir, "spu")
	args := []string{"spu", "serve", "--addr", addr, "--data-dir", data, "--log-level", "warn",
		"--retention-check-interval", "1s",
		"--tier-s3-endpoint", b.s3URL, "--tier-s3-region", region, "--tier-s3-bucket", bucket,
		"--tier-s3-prefix", prefix, "--tier-s3-path-style",
		"--tier-upload-concurrency", strconv.Itoa(uploadConcurrency)}
	if b.cfg.ProfileDir != "" {
		args = append(args, "--pprof")
	}
	spec := proc.Spec{Path: b.cfg.Spate, Args: args, Log: b.cfg.Log,
		Env: []string{"AWS_ACCESS_KEY_ID=" + accessKey, "AWS_SECRET_ACCESS_KEY=" + secretKey}}
	p, err := proc.Start(spec)
	if err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	b.spu = p
	line := strings.Replace(spec.CommandLine(), addr, "127.0.0.1:PORT", 1)
	line = strings.Replace(line, data, "DIR", 1)
	b.res.SPU = strings.Replace(line, b.s3URL, "http://127.0.0.1:S3PORT", 1)
	if err := proc.WaitListening(ctx, p, addr, 30*time.Second); err != nil {
		return fmt.Errorf("tiered: spu: %w", err)
	}
	b.spuURL = "http://" + addr
	c, err := client.New(client.WithSPU(b.spuURL), client.WithLogger(b.cfg.Logger))
	if err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	b.client = c
	return nil
}

// metrics returns the value of metric for topic from the SPU's /metrics
// (0 when absent).
func (b *bench) metric(ctx context.Context, name, topic string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.spuURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("tiered: metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	label := `topic="` + topic + `"`
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, label) {
			continue
		}
		f := strings.Fields(line)
		return strconv.ParseFloat(f[len(f)-1], 64)
	}
	return 0, sc.Err()
}

// tierMetrics returns the SPU's spate_tier_* metrics of topic, for errors.
func (b *bench) tierMetrics(ctx context.Context, topic string) string {
	var out []string
	for _, name := range []string{"spate_tier_uploaded_segments_total", "spate_tier_upload_failures_total", "spate_tier_upload_lag_bytes", "spate_tier_remote_size_bytes"} {
		v, err := b.metric(ctx, name, topic)
		if err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("%s %g", name, v))
	}
	return strings.Join(out, ", ")
}

// waitFor polls cond every 50 ms until it is true, for at most limit.
func (b *bench) waitFor(ctx context.Context, what string, limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := b.spu.Exited(); err != nil {
			return fmt.Errorf("tiered: the SPU is down while waiting for %s: %w\n%s", what, err, b.spu.Output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tiered: %s did not happen within %s", what, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// produce writes records of size bytes until total bytes of values, or
// count records when count > 0, and returns how many it wrote.
func (b *bench) produce(ctx context.Context, topic string, size int, total, count int64) (int64, error) {
	p, err := b.client.NewProducer(ctx, topic, client.WithLinger(5*time.Millisecond), client.WithBatchBytes(1<<20), client.WithAcks(client.AcksWrite))
	if err != nil {
		return 0, fmt.Errorf("tiered: %w", err)
	}
	defer p.Close()
	value := make([]byte, size)
	rand.Read(value)
	if count == 0 {
		count = (total + int64(size) - 1) / int64(size)
	}
	for range count {
		p.Produce(ctx, client.Record{Value: value}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		return 0, fmt.Errorf("tiered: produce: %w", err)
	}
	return count, nil
}

// remoteSegments lists the .log objects of a partition in the bucket.
func (b *bench) remoteSegments(ctx context.Context, topic string) ([]layout.Segment, error) {
	var out []layout.Segment
	after := ""
	for {
		objs, err := b.store.List(ctx, layout.PartitionPrefix(topic, 0), after, 1000)
		if err != nil {
			return nil, fmt.Errorf("tiered: list: %w", err)
		}
		for _, o := range objs {
			if s, suf, ok := layout.Parse(o.Key); ok && suf == layout.LogSuffix {
				s.Size = o.Size
				out = append(out, s)
			}
		}
		if len(objs) < 1000 {
			return out, nil
		}
		after = objs[len(objs)-1].Key
	}
}

// upload produces total bytes into a partition with tiering off, turns
// tiering on and times the upload of its closed segments.
func (b *bench) upload(ctx context.Context, total int64) ([]layout.Segment, error) {
	const topic = "tiered-upload"
	log := b.cfg.Logger.With("scenario", "tiered-upload")
	pc := client.PartitionConfig{SegmentBytes: segmentBytes, Retention: -1, Durability: client.DurabilityWrite}
	if _, err := b.client.EnsurePartition(ctx, topic, 0, pc); err != nil {
		return nil, fmt.Errorf("tiered: %w", err)
	}
	// A little more than total, so that total bytes of values are in
	// closed segments.
	n, err := b.produce(ctx, topic, recordBytes, total+(4<<20), 0)
	if err != nil {
		return nil, err
	}
	b.res.ProducedBytes = n * recordBytes
	parts, err := b.client.ListPartitions(ctx, topic)
	if err != nil || len(parts) != 1 {
		return nil, fmt.Errorf("tiered: list partitions: %v (%d)", err, len(parts))
	}
	closed := int(parts[0].Segments) - 1
	log.Info("produced; turning tiering on", "records", n, "closed_segments", closed)

	// Write the produced data back to disk first, so that the uploads do
	// not compete with the kernel's writeback of it; the raw baselines
	// start after a sync too.
	syscall.Sync()
	pc.Tiering, pc.LocalRetentionBytes = true, 1
	start := time.Now()
	if _, err := b.client.EnsurePartition(ctx, topic, 0, pc); err != nil {
		return nil, fmt.Errorf("tiered: turn tiering on: %w", err)
	}
	var uploaded float64
	var last time.Time
	err = b.waitFor(ctx, "the upload of every closed segment", 5*time.Minute, func() (bool, error) {
		segs, err := b.metric(ctx, "spate_tier_uploaded_segments_total", topic)
		if err != nil {
			return false, err
		}
		now := time.Now()
		by, err := b.metric(ctx, "spate_tier_uploaded_bytes_total", topic)
		if err != nil {
			return false, err
		}
		if by != uploaded {
			uploaded, last = by, now
		}
		return int(segs) >= closed, nil
	})
	if err != nil {
		return nil, err
	}
	elapsed := last.Sub(start)
	b.res.Segments = closed
	b.res.UploadBytes = int64(uploaded)
	b.res.UploadSeconds = round(elapsed.Seconds(), 3)
	b.res.UploadMBps = round(uploaded/elapsed.Seconds()/1e6, 1)
	log.Info("done", "segments", closed, "bytes", int64(uploaded), "mb_s", b.res.UploadMBps)
	segs, err := b.remoteSegments(ctx, topic)
	if err != nil {
		return nil, err
	}
	if len(segs) != closed {
		return nil, fmt.Errorf("tiered: %d segments in the bucket, want %d", len(segs), closed)
	}
	return segs, nil
}

// rawPut PUTs objects of the segments' sizes from a file, with objstore/s3
// and with the SDK's PutObject, uploadConcurrency at a time.
func (b *bench) rawPut(ctx context.Context, segs []layout.Segment) error {
	var biggest int64
	for _, s := range segs {
		biggest = max(biggest, s.Size)
	}
	path := filepath.Join(b.dir, "raw.dat")
	if err := writeRandomFile(path, biggest); err != nil {
		return err
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	defer f.Close()
	put := func(name string, do func(ctx context.Context, key string, r *io.SectionReader) error) (float64, error) {
		syscall.Sync()
		var bytes atomic.Int64
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(uploadConcurrency)
		start := time.Now()
		for i, s := range segs {
			g.Go(func() error {
				r := io.NewSectionReader(f, 0, s.Size)
				bytes.Add(s.Size)
				return do(gctx, fmt.Sprintf("%s/%06d", name, i), r)
			})
		}
		if err := g.Wait(); err != nil {
			return 0, fmt.Errorf("tiered: raw put (%s): %w", name, err)
		}
		return round(float64(bytes.Load())/time.Since(start).Seconds()/1e6, 1), nil
	}
	b.res.RawPutStoreMBps, err = put("objstore", func(ctx context.Context, key string, r *io.SectionReader) error {
		return b.raw.Put(ctx, key, r, r.Size())
	})
	if err != nil {
		return err
	}
	b.res.RawPutSDKMBps, err = put("sdk", func(ctx context.Context, key string, r *io.SectionReader) error {
		_, err := b.raw.Client().PutObject(ctx, &s3api.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("raw/" + key), Body: r, ContentLength: aws.Int64(r.Size()),
		})
		return err
	})
	b.cfg.Logger.Info("raw put", "objstore_mb_s", b.res.RawPutStoreMBps, "sdk_mb_s", b.res.RawPutSDKMBps)
	return err
}

func writeRandomFile(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			f.Close()
			return fmt.Errorf("tiered: %w", err)
		}
		left -= k
	}
	return f.Close()
}

// coldReplay waits for local retention to delete the uploaded segments,
// then reads the partition from offset 0.
func (b *bench) coldReplay(ctx context.Context, segs []layout.Segment) error {
	const topic = "tiered-upload"
	remoteEnd := segs[len(segs)-1].Last + 1
	err := b.waitFor(ctx, "local retention of the uploaded segments", 2*time.Minute, func() (bool, error) {
		parts, err := b.client.ListPartitions(ctx, topic)
		if err != nil || len(parts) != 1 {
			return false, fmt.Errorf("tiered: list partitions: %v", err)
		}
		return parts[0].StartOffset >= remoteEnd, nil
	})
	if err != nil {
		return err
	}
	offs, err := b.client.Offsets(ctx, topic, 0)
	if err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	want := offs[0].End
	var logBytes int64
	for _, s := range segs {
		logBytes += s.Size
	}
	rounds := replayRounds
	if b.cfg.Quick {
		rounds = 1
	}
	var best time.Duration
	for i := 1; i <= rounds; i++ {
		stopProfiles := func() error { return nil }
		if i == 1 && b.cfg.ProfileDir != "" {
			stopProfiles = b.startProfiles(ctx)
		}
		cpu := b.startCPU()
		n, values, elapsed, err := b.replay(ctx, topic, remoteEnd)
		if err != nil {
			return err
		}
		if err := stopProfiles(); err != nil {
			return err
		}
		replayCPU := cpu.stop(elapsed, logBytes)
		mbps := float64(logBytes) / elapsed.Seconds() / 1e6
		b.cfg.Logger.Info("cold replay", "round", i, "records", n, "end", want, "mb_s", round1(mbps))
		if best == 0 || elapsed < best {
			best = elapsed
			sec := elapsed.Seconds()
			b.res.ColdRecords, b.res.ColdSeconds = n, round(sec, 3)
			b.res.ColdRecordsPerSec = float64(int64(float64(n) / sec))
			b.res.ColdValueMBps = round(float64(values)/sec/1e6, 1)
			b.res.ColdLogMBps = round1(mbps)
		}
		raw1, raw1CPU, err := b.rawGet(ctx, segs, 1)
		if err != nil {
			return err
		}
		raw2, raw2CPU, err := b.rawGet(ctx, segs, 2)
		if err != nil {
			return err
		}
		rawDecode, rawDecodeCPU, err := b.rawGetDecode(ctx, segs, 2)
		if err != nil {
			return err
		}
		b.res.RawGet1MBps = max(b.res.RawGet1MBps, raw1)
		b.res.RawGet2MBps = max(b.res.RawGet2MBps, raw2)
		b.res.Notes = append(b.res.Notes, fmt.Sprintf("Cold replay round %d of %d: %.1f MB/s, %.0f%% of the better raw GET figure of the round (%.1f MB/s 1 at a time, %.1f MB/s 2 at a time), %.0f%% of raw GETs whose records the client decodes as a consumer does (%.1f MB/s, 2 at a time). CPU of the replay: %s; of the raw GETs 1 at a time: %s; 2 at a time: %s; with decoding: %s.",
			i, rounds, mbps, 100*mbps/max(raw1, raw2), raw1, raw2, 100*mbps/rawDecode, rawDecode, replayCPU, raw1CPU, raw2CPU, rawDecodeCPU))
		b.cfg.Logger.Info("raw get", "round", i, "one_mb_s", raw1, "two_mb_s", raw2, "decoded_mb_s", rawDecode, "replay_cpu", replayCPU, "raw1_cpu", raw1CPU, "raw2_cpu", raw2CPU, "decoded_cpu", rawDecodeCPU)
	}
	return nil
}

// replay reads the partition from offset 0 to remoteEnd with a new
// consumer and returns the records and bytes of values it read and the
// time it took.
func (b *bench) replay(ctx context.Context, topic string, remoteEnd int64) (n, values int64, elapsed time.Duration, err error) {
	var responses int
	defer func() {
		b.cfg.Logger.Debug("replay", "records", n, "responses", responses, "seconds", elapsed.Seconds())
	}()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	cons, err := b.client.Consume(cctx, topic, client.WithStart(client.Beginning()), client.WithEndOffset(remoteEnd))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("tiered: %w", err)
	}
	defer cons.Close()
	first := int64(-1)
	for n < remoteEnd {
		recs, err := cons.NextBatch(cctx)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("tiered: cold replay: %d of %d records: %w", n, remoteEnd, err)
		}
		if first < 0 && len(recs) > 0 {
			first = recs[0].Offset
		}
		responses++
		n += int64(len(recs))
		for i := range recs {
			values += int64(len(recs[i].Value))
		}
	}
	elapsed = time.Since(start)
	if first != 0 {
		return 0, 0, 0, fmt.Errorf("tiered: cold replay started at offset %d, want 0", first)
	}
	return n, values, elapsed, nil
}

// startProfiles starts CPU profiles of the SPU and of this process, for
// the first profileSeconds of the first cold replay, and an execution
// trace of the SPU for its first second; the function it returns waits
// for them and writes them into the profile folder.
func (b *bench) startProfiles(ctx context.Context) func() error {
	if err := os.MkdirAll(b.cfg.ProfileDir, 0o755); err != nil {
		return func() error { return fmt.Errorf("tiered: %w", err) }
	}
	base := filepath.Join(b.cfg.ProfileDir, "tiered-cold-replay")
	done := make(chan error, 3)
	go func() {
		done <- proc.FetchProfile(ctx, http.DefaultClient, b.spuURL, "profile", profileSeconds, base+".spu.pprof")
	}()
	go func() { done <- proc.FetchProfile(ctx, http.DefaultClient, b.spuURL, "trace", 1, base+".spu.trace") }()
	go func() {
		f, err := os.Create(base + ".client.pprof")
		if err == nil {
			err = pprof.StartCPUProfile(f)
			if err == nil {
				time.Sleep(profileSeconds * time.Second)
				pprof.StopCPUProfile()
			}
			err = errors.Join(err, f.Close())
		}
		done <- err
	}()
	return func() error { return errors.Join(<-done, <-done, <-done) }
}

// profileSeconds is how long the cold replay is profiled.
const profileSeconds = 2

// cpuMeter measures the CPU time the S3 server, the SPU and this process
// (the benchmark's client) use over a scenario.
type cpuMeter struct {
	b            *bench
	s3, spu, own time.Duration
	spuFaults    int64 // minor page faults of the SPU
}

func (b *bench) startCPU() *cpuMeter {
	m := &cpuMeter{b: b}
	m.s3, m.spu, m.own = b.cpuTimes()
	m.spuFaults = minorFaults(b.spu.Pid())
	return m
}

// minorFaults returns the minor page faults of process pid so far (the
// first touches of fresh memory), or 0 when they cannot be read.
func minorFaults(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	// After the comm: state(0) ppid(1) pgrp(2) session(3) tty(4) tpgid(5)
	// flags(6) minflt(7).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 8 {
		return 0
	}
	n, _ := strconv.ParseInt(f[7], 10, 64)
	return n
}

// cpuTimes returns the CPU time used so far by the S3 server, the SPU and
// this process (0 for what cannot be read).
func (b *bench) cpuTimes() (s3, spu, own time.Duration) {
	s3, _ = proc.CPUTime(b.s3.Pid())
	spu, _ = proc.CPUTime(b.spu.Pid())
	own, _ = proc.SelfCPUTime()
	return s3, spu, own
}

// stop returns the CPU used since start, in cores (CPU seconds per second
// of elapsed) and in CPU seconds per GB read.
func (m *cpuMeter) stop(elapsed time.Duration, bytes int64) string {
	s3, spu, own := m.b.cpuTimes()
	gb := float64(bytes) / 1e9
	part := func(name string, d time.Duration) string {
		return fmt.Sprintf("%s %.2f cores (%.2f CPU s/GB)", name, d.Seconds()/elapsed.Seconds(), d.Seconds()/gb)
	}
	faults := fmt.Sprintf("SPU minor page faults %.0f/GB", float64(minorFaults(m.b.spu.Pid())-m.spuFaults)/gb)
	return strings.Join([]string{part("S3 server", s3-m.s3), part("SPU", spu-m.spu), part("client", own-m.own), faults}, ", ")
}

// rawGet reads the segments' .log objects with ranged GETs of chunkBytes,
// conc objects at a time, and returns the MB/s and the CPU it took.
func (b *bench) rawGet(ctx context.Context, segs []layout.Segment, conc int) (float64, string, error) {
	cpu := b.startCPU()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	var total atomic.Int64
	start := time.Now()
	for _, s := range segs {
		g.Go(func() error {
			buf := make([]byte, 256<<10)
			for off := int64(0); off < s.Size; off += chunkBytes {
				rc, err := b.store.Get(gctx, s.Key(layout.LogSuffix), off, min(chunkBytes, s.Size-off))
				if err != nil {
					return err
				}
				n, err := io.CopyBuffer(io.Discard, rc, buf)
				rc.Close()
				if err != nil {
					return err
				}
				total.Add(n)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, "", fmt.Errorf("tiered: raw get: %w", err)
	}
	elapsed := time.Since(start)
	return round1(float64(total.Load()) / elapsed.Seconds() / 1e6), cpu.stop(elapsed, total.Load()), nil
}

// rawGetDecode reads the segments' .log objects as rawGet does, conc
// objects at a time, into a buffer per object, and decodes their records
// with batch.DecodeAll, as the Go client decodes each consume response (a
// batch that spans two GETs is decoded once the second has come): what a
// client that read the bucket itself would spend, without the SPU. It
// returns the MB/s and the CPU it took.
func (b *bench) rawGetDecode(ctx context.Context, segs []layout.Segment, conc int) (float64, string, error) {
	cpu := b.startCPU()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	var total, records atomic.Int64
	start := time.Now()
	for _, s := range segs {
		g.Go(func() error {
			buf := make([]byte, 0, 2*chunkBytes)
			var recs []batch.Record
			for off := int64(0); off < s.Size; off += chunkBytes {
				n := min(chunkBytes, s.Size-off)
				rc, err := b.store.Get(gctx, s.Key(layout.LogSuffix), off, n)
				if err != nil {
					return err
				}
				have := len(buf)
				buf = slices.Grow(buf, int(n))[:have+int(n)]
				_, err = io.ReadFull(rc, buf[have:])
				rc.Close()
				if err != nil {
					return err
				}
				total.Add(n)
				// Decode the whole batches; keep the tail of one that
				// goes on in the next range.
				whole := 0
				for whole < len(buf) {
					h, err := batch.ParseHeader(buf[whole:])
					if err != nil || whole+h.Size() > len(buf) {
						break
					}
					whole += h.Size()
				}
				if recs, err = batch.DecodeAll(buf[:whole], recs[:0]); err != nil {
					return err
				}
				records.Add(int64(len(recs)))
				buf = buf[:copy(buf, buf[whole:])]
			}
			if len(buf) > 0 {
				return fmt.Errorf("tiered: %s ends in %d bytes that are not a whole batch", s.Key(layout.LogSuffix), len(buf))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, "", fmt.Errorf("tiered: raw get with decoding: %w", err)
	}
	elapsed := time.Since(start)
	return round1(float64(total.Load()) / elapsed.Seconds() / 1e6), cpu.stop(elapsed, total.Load()), nil
}

// yearBack writes count tiny segments, evenly over a year, into the bucket,
// makes the partition on the SPU and times fresh consumers that start a
// year back.
func (b *bench) yearBack(ctx context.Context, count, samples int) error {
	const topic = "tiered-year"
	log := b.cfg.Logger.With("scenario", "tiered-first-record")
	now := time.Now()
	// From a week more than a year ago to a day ago: the consumers a
	// year back (shifted by one segment each) find their first record
	// in a remote segment.
	ts0 := now.AddDate(-1, 0, -7)
	step := now.Add(-24*time.Hour).Sub(ts0) / time.Duration(count)
	b.yearStep = step
	b.res.YearStepHours = round(step.Hours(), 2)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	start := time.Now()
	for i := range count {
		g.Go(func() error {
			return b.putTiny(gctx, topic, int64(i*yearRecords), ts0.Add(time.Duration(i)*step).UnixMilli())
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("tiered: write the year's segments: %w", err)
	}
	b.res.YearSegments, b.res.YearObjects = count, 3*count
	remoteEnd := int64(count * yearRecords)
	log.Info("wrote the remote segments", "segments", count, "took", time.Since(start).Round(time.Millisecond))

	pc := client.PartitionConfig{SegmentBytes: 64 << 10, Retention: -1, Durability: client.DurabilityWrite, Tiering: true, LocalRetentionBytes: 1}
	if _, err := b.client.EnsurePartition(ctx, topic, 0, pc); err != nil {
		return fmt.Errorf("tiered: %w", err)
	}
	// The uploader lists the remote index before anything is written, and
	// takes its end as the watermark.
	err := b.waitFor(ctx, "the uploader's listing", time.Minute, func() (bool, error) {
		v, err := b.metric(ctx, "spate_tier_remote_size_bytes", topic)
		return v > 0, err
	})
	if err != nil {
		return err
	}
	// The offsets the remote tier holds, then more in batches of their
	// own: no batch straddles the remote end (a segment whose first batch
	// starts below the watermark would be uploaded whole, overlapping the
	// remote index).
	for _, n := range []int64{remoteEnd, 2000} {
		if _, err := b.produce(ctx, topic, 100, 0, n); err != nil {
			return err
		}
	}
	var localStart int64
	err = b.waitFor(ctx, "local retention below the remote end", time.Minute, func() (bool, error) {
		parts, err := b.client.ListPartitions(ctx, topic)
		if err != nil || len(parts) != 1 {
			return false, fmt.Errorf("tiered: list partitions: %v", err)
		}
		localStart = parts[0].StartOffset
		return localStart >= remoteEnd, nil
	})
	if err != nil {
		return fmt.Errorf("%w (local start %d, remote end %d; %s)", err, localStart, remoteEnd, b.tierMetrics(ctx, topic))
	}

	yearAgo := now.AddDate(-1, 0, 0)
	var times []time.Duration
	for i := range samples {
		at := yearAgo.Add(time.Duration(i) * step)
		d, off, err := b.firstRecord(ctx, at)
		if err != nil {
			return fmt.Errorf("tiered: first record at %s: %w", at.UTC().Format(time.RFC3339), err)
		}
		if off >= remoteEnd {
			return fmt.Errorf("tiered: the consume at %s started at offset %d, past the remote tier's end %d", at.UTC().Format(time.RFC3339), off, remoteEnd)
		}
		if i == 0 {
			b.res.FirstRecordColdMs = ms(d)
		}
		times = append(times, d)
	}
	var r scenario.Result
	r.SetLatencies(times)
	b.res.FirstRecordSamples = len(times)
	b.res.FirstRecordP50Ms, b.res.FirstRecordP99Ms = r.P50Ms, r.P99Ms
	b.res.FirstRecordMaxMs = ms(times[len(times)-1])
	log.Info("done", "cold_listing_ms", b.res.FirstRecordColdMs, "p50_ms", r.P50Ms, "p99_ms", r.P99Ms)
	return nil
}

// firstRecord times a new client and consumer from at to its first record.
func (b *bench) firstRecord(ctx context.Context, at time.Time) (time.Duration, int64, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	c, err := client.New(client.WithSPU(b.spuURL), client.WithLogger(b.cfg.Logger))
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	cons, err := c.Consume(cctx, "tiered-year", client.WithStart(client.AtTime(at)))
	if err != nil {
		return 0, 0, err
	}
	defer cons.Close()
	for {
		recs, err := cons.NextBatch(cctx)
		if err != nil {
			return 0, 0, err
		}
		if len(recs) > 0 {
			d := time.Since(start)
			if recs[0].Timestamp.Before(at.Truncate(time.Millisecond)) || recs[0].Timestamp.After(at.Add(2*b.yearStep)) {
				return 0, 0, fmt.Errorf("first record at offset %d has time %s, not near %s", recs[0].Offset, recs[0].Timestamp.UTC(), at.UTC())
			}
			return d, recs[0].Offset, nil
		}
	}
}

// putTiny writes one segment of yearRecords records at ts, from offset
// base, with its index objects, under the layout's keys.
func (b *bench) putTiny(ctx context.Context, topic string, base, ts int64) error {
	bl := batch.NewBuilder(batch.None)
	for i := range yearRecords {
		bl.Append(batch.Record{Value: fmt.Appendf(nil, "record %d", base+int64(i)), Timestamp: ts})
	}
	data, err := bl.Build()
	if err != nil {
		return err
	}
	batch.SetBaseOffset(data, base)
	h, err := batch.ParseHeader(data)
	if err != nil {
		return err
	}
	seg := layout.Segment{Topic: topic, Partition: 0, Base: base, Last: h.LastOffset(), Epoch: h.LeaderEpoch, MaxTimestamp: h.MaxTimestamp}
	// One batch at byte 0: no offset index entry, one time index entry
	// (timestamp, position), as the commit log writes them.
	ti := binary.BigEndian.AppendUint64(nil, uint64(ts))
	ti = binary.BigEndian.AppendUint32(ti, 0)
	for _, o := range []struct {
		suffix string
		b      []byte
	}{{layout.IndexSuffix, nil}, {layout.TimeIndexSuffix, ti}, {layout.LogSuffix, data}} {
		if err := b.store.Put(ctx, seg.Key(o.suffix), strings.NewReader(string(o.b)), int64(len(o.b))); err != nil {
			return err
		}
	}
	return nil
}

func round1(x float64) float64 { return round(x, 1) }

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}
