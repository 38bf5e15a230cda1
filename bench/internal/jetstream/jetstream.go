// Package jetstream runs the benchmark scenarios against NATS JetStream
// with file storage, the peer Spate is measured beside. It starts
// nats-server and drives it only through the nats CLI (`nats bench`,
// `nats pub`, `nats sub`), so the figures are the ones anyone can reproduce
// with the commands in the report.
//
// How each scenario maps onto JetStream:
//
//   - A partition is a stream with one subject. P partitions are P streams,
//     each with its own `nats bench` process, run concurrently; the
//     aggregate rate is the records of all of them over the longest run.
//     (One stream with P subjects would still be one ordered log, which is
//     what a Spate partition is.)
//   - Produce: `nats bench js pub async --batch 500` (asynchronous publish,
//     up to 500 unacknowledged messages), timed by nats bench from the
//     first publish to the last acknowledgement.
//   - Consume: `nats bench js ordered` (an ephemeral ordered consumer) over
//     the messages of the Produce scenario.
//   - Durability: write is JetStream's default file storage (it syncs every
//     2 minutes); fsync is the server option `sync_interval: always`.
//   - Latency: `nats bench js pub async --throughput` sends most of the
//     fixed rate, and one `nats pub` sends 1,000 probes/s whose values start
//     with the send time (UnixNano); `nats sub --stream --new --raw` prints
//     each value on a pipe to the benchmark, which subtracts a probe's send
//     time from the time it reads the line. (No nats CLI publisher both
//     stamps values and reaches 10,000 messages/s on 2 cores.)
//
// `nats bench` needs a record count, not a duration: each Produce scenario
// first runs a short pilot, and sizes the measured run from its rate.
package jetstream

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/spatehq/spate/bench/internal/proc"
	"github.com/spatehq/spate/bench/internal/scenario"
)

// Name is the system's name in reports.
const Name = "jetstream"

// Config configures the JetStream side.
type Config struct {
	// Server and CLI are the paths of nats-server and nats.
	Server, CLI string
	// WorkDir holds the server's configuration, store and the CSV files
	// of nats bench; it must exist.
	WorkDir string
	// ServerLog receives the server's output; discarded when nil.
	ServerLog io.Writer
	// Logger reports progress.
	Logger *slog.Logger
}

// System drives one nats-server at a time.
type System struct {
	cfg Config

	// Set by Start, cleared by Stop.
	server     *proc.Process
	url        string
	dir        string
	serverLine string
	durability scenario.Durability
	// produced is, per topic, the messages in each of its streams.
	produced map[string]int
	// streams lists the streams made so far, to delete before the next
	// scenario writes: JetStream reserves each stream's byte limit.
	streams []string
}

// New returns a System; it starts nothing.
func New(cfg Config) *System {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &System{cfg: cfg}
}

// Name returns "jetstream".
func (s *System) Name() string { return Name }

// Runs reports whether the system runs sc: every scenario but Handshake,
// which compares Spate over mTLS with Spate over h2c.
func (s *System) Runs(sc scenario.Scenario) bool { return sc.Kind != scenario.Handshake }

// Start starts nats-server with JetStream on a fresh file store, syncing
// every message to disk in the Fsync mode.
func (s *System) Start(ctx context.Context, d scenario.Durability) error {
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(s.cfg.WorkDir, "jetstream-"+string(d)+"-")
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	syncLine := ""
	if d == scenario.Fsync {
		syncLine = "  sync_interval: always\n"
	}
	conf := fmt.Sprintf("# nats-server for spatebench, durability %s\nlisten: %q\njetstream {\n  store_dir: %q\n%s}\n",
		d, addr, filepath.Join(dir, "store"), syncLine)
	confPath := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("jetstream: write server config: %w", err)
	}
	spec := proc.Spec{Path: s.cfg.Server, Args: []string{"-c", confPath}, Log: s.cfg.ServerLog}
	p, err := proc.Start(spec)
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := proc.WaitListening(ctx, p, addr, 30*time.Second); err != nil {
		p.Stop()
		os.RemoveAll(dir)
		return fmt.Errorf("jetstream: %w", err)
	}
	s.server, s.dir, s.durability = p, dir, d
	s.url = "nats://" + addr
	s.serverLine = "nats-server -c nats.conf # jetstream { store_dir }"
	if d == scenario.Fsync {
		s.serverLine = "nats-server -c nats.conf # jetstream { store_dir, sync_interval: always }"
	}
	s.produced = make(map[string]int)
	s.streams = nil
	// The JetStream API answers once the server is ready for streams.
	if _, err := s.nats(ctx, "account", "info"); err != nil {
		s.Stop()
		return fmt.Errorf("jetstream: server not ready: %w", err)
	}
	return nil
}

// ServerPID returns the pid of the running nats-server.
func (s *System) ServerPID() int { return s.server.Pid() }

// Stop stops the server and deletes its store.
func (s *System) Stop() {
	if s.server != nil {
		s.server.Stop()
		s.server = nil
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// Run runs one scenario.
func (s *System) Run(ctx context.Context, sc scenario.Scenario) (scenario.Result, error) {
	if err := s.server.Exited(); err != nil {
		return scenario.Result{}, fmt.Errorf("jetstream: server is down: %w", err)
	}
	r := scenario.NewResult(sc, Name)
	r.Server = s.serverLine
	var err error
	switch sc.Kind {
	case scenario.Produce:
		err = s.produce(ctx, sc, &r)
	case scenario.Consume:
		err = s.consume(ctx, sc, &r)
	case scenario.Latency:
		err = s.latency(ctx, sc, &r)
	default:
		err = fmt.Errorf("jetstream: no runner for scenario kind %q", sc.Kind)
	}
	return r, err
}

// guessRate is a first estimate of the aggregate publish rate, records/s,
// to size the pilot run: the figures measured on a 2-core machine.
func guessRate(sc scenario.Scenario) float64 {
	if sc.Durability == scenario.Fsync {
		return 2_600
	}
	if sc.RecordBytes >= 1024 {
		return 72_000
	}
	return 88_000
}

// streams returns the stream and subject names of a topic.
func streams(topic string, partitions int) (names, subjects []string) {
	for i := range partitions {
		names = append(names, fmt.Sprintf("%s-%d", topic, i))
		subjects = append(subjects, fmt.Sprintf("%s.%d", strings.ReplaceAll(topic, "-", "_"), i))
	}
	return names, subjects
}

// deleteStreams deletes the streams of earlier scenarios.
func (s *System) deleteStreams(ctx context.Context) error {
	for _, name := range s.streams {
		if _, err := s.nats(ctx, "stream", "rm", "-f", name); err != nil {
			return err
		}
	}
	s.streams = nil
	clear(s.produced)
	return nil
}

func (s *System) produce(ctx context.Context, sc scenario.Scenario, r *scenario.Result) error {
	if err := s.deleteStreams(ctx); err != nil {
		return err
	}
	// The pilot takes about a quarter of the measured time.
	pilot := int(math.Max(200, guessRate(sc)*sc.Duration.Seconds()/4/float64(sc.Partitions)))
	st, err := s.publish(ctx, sc, pilot)
	if err != nil {
		return fmt.Errorf("pilot run: %w", err)
	}
	// The measured run makes its streams afresh, with a byte limit to fit.
	if err := s.deleteStreams(ctx); err != nil {
		return err
	}
	perStream := int(math.Max(500, st.rate()*sc.Duration.Seconds()/float64(sc.Partitions)))
	// Stay well under the stream's byte limit.
	perStream = min(perStream, int(4e9)/max(sc.RecordBytes, 1))
	st, err = s.publish(ctx, sc, perStream)
	if err != nil {
		return err
	}
	s.produced[sc.Topic()] = perStream
	r.SetThroughput(st.records, sc.RecordBytes, st.elapsed)
	r.Command = st.command
	r.Settings = "async publish, 500 messages in flight per client, one client per stream"
	return nil
}

func (s *System) publish(ctx context.Context, sc scenario.Scenario, perStream int) (benchStats, error) {
	names, subjects := streams(sc.Topic(), sc.Partitions)
	// Room for the messages with their subjects and headers, and more.
	maxMB := 64 + perStream*(sc.RecordBytes+128)/(1<<20)*2
	cmds := make([][]string, len(names))
	for i := range names {
		if !slices.Contains(s.streams, names[i]) {
			s.streams = append(s.streams, names[i])
		}
		cmds[i] = []string{"bench", "js", "pub", "async", "--create", "--storage", "file", "--purge",
			"--maxbytes", fmt.Sprintf("%dMB", maxMB), "--stream", names[i], "--msgs", strconv.Itoa(perStream),
			"--size", strconv.Itoa(sc.RecordBytes), "--batch", "500", "--no-progress", "--csv", "CSV",
			subjects[i]}
	}
	return s.benchAll(ctx, cmds, int64(perStream))
}

func (s *System) consume(ctx context.Context, sc scenario.Scenario, r *scenario.Result) error {
	perStream, ok := s.produced[sc.Topic()]
	if !ok {
		return fmt.Errorf("jetstream: nothing to consume: scenario %s did not run", sc.Needs)
	}
	names, _ := streams(sc.Topic(), sc.Partitions)
	cmds := make([][]string, len(names))
	for i := range names {
		cmds[i] = []string{"bench", "js", "ordered", "--stream", names[i], "--msgs", strconv.Itoa(perStream),
			"--size", strconv.Itoa(sc.RecordBytes), "--no-progress", "--csv", "CSV"}
	}
	st, err := s.benchAll(ctx, cmds, int64(perStream))
	if err != nil {
		return err
	}
	r.SetThroughput(st.records, sc.RecordBytes, st.elapsed)
	r.Command = st.command
	r.Settings = "ephemeral ordered consumer, 500 messages buffered, one client per stream"
	return nil
}

// benchStats is the aggregate of concurrent nats bench runs.
type benchStats struct {
	records int64
	elapsed time.Duration // the longest run
	command string
}

func (b benchStats) rate() float64 {
	if b.elapsed <= 0 {
		return 0
	}
	return float64(b.records) / b.elapsed.Seconds()
}

// benchAll runs one nats bench per argument list concurrently, each writing
// its figures to a CSV file whose path replaces the argument "CSV", and
// sums them: perRun records each, over the longest duration.
func (s *System) benchAll(ctx context.Context, cmds [][]string, perRun int64) (benchStats, error) {
	durations := make([]time.Duration, len(cmds))
	g, gctx := errgroup.WithContext(ctx)
	for i, args := range cmds {
		csvPath := filepath.Join(s.dir, fmt.Sprintf("bench-%d.csv", i))
		args = replaceArg(args, "CSV", csvPath)
		g.Go(func() error {
			os.Remove(csvPath)
			if _, err := s.nats(gctx, args...); err != nil {
				return err
			}
			d, err := readBenchCSV(csvPath)
			durations[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return benchStats{}, err
	}
	st := benchStats{records: perRun * int64(len(cmds))}
	for _, d := range durations {
		st.elapsed = max(st.elapsed, d)
	}
	st.command = s.commandLine(replaceArg(cmds[0], "CSV", "FILE"))
	if len(cmds) > 1 {
		st.command = fmt.Sprintf("%s # x%d concurrently, streams/subjects ...-0 to ...-%d", st.command, len(cmds), len(cmds)-1)
	}
	return st, nil
}

// readBenchCSV returns the duration nats bench measured, from the first
// data row of the CSV file it wrote (--csv): the column DurationSecs.
func readBenchCSV(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("jetstream: nats bench wrote no figures: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("jetstream: read %s: %w", path, err)
	}
	if len(rows) < 2 {
		return 0, fmt.Errorf("jetstream: %s has no data row", path)
	}
	col := -1
	for i, h := range rows[0] {
		if strings.TrimPrefix(h, "#") == "DurationSecs" {
			col = i
		}
	}
	if col < 0 || col >= len(rows[1]) {
		return 0, fmt.Errorf("jetstream: %s has no DurationSecs column (header %q)", path, rows[0])
	}
	secs, err := strconv.ParseFloat(rows[1][col], 64)
	if err != nil || secs <= 0 {
		return 0, fmt.Errorf("jetstream: %s: bad DurationSecs %q", path, rows[1][col])
	}
	return time.Duration(secs * float64(time.Second)), nil
}

func replaceArg(args []string, old, new string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == old {
			a = new
		}
		out[i] = a
	}
	return out
}

// natsArgs returns the global flags followed by args.
func (s *System) natsArgs(args ...string) []string {
	return append([]string{"--no-context", "-s", s.url}, args...)
}

// commandLine renders a nats command for the report, without the global
// flags (--no-context -s URL), whose server address changes every run.
func (s *System) commandLine(args []string) string {
	return proc.CommandLine("nats", args...)
}

// nats runs the nats CLI with args and returns its output.
func (s *System) nats(ctx context.Context, args ...string) ([]byte, error) {
	s.cfg.Logger.Debug("run", "cmd", proc.CommandLine(s.cfg.CLI, s.natsArgs(args...)...))
	out, err := proc.Run(ctx, proc.Spec{Path: s.cfg.CLI, Args: s.natsArgs(args...)})
	if err != nil {
		return out, fmt.Errorf("jetstream: %s: %w", s.commandLine(args), err)
	}
	return out, nil
}

// latencySamples collects what the subscriber printed.
type latencySamples struct {
	mu        sync.Mutex // guards the fields below
	lines     int64      // every record received
	firstRead int64      // when the first record arrived, UnixNano
	lastRead  int64      // when the last record arrived, UnixNano
	samples   []time.Duration
	first     int64 // the earliest probe send time, UnixNano
	last      int64 // the latest probe send time, UnixNano
}

func (l *latencySamples) probes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.samples)
}

// add counts a record read at received, and a sample if it is a probe
// sent at sent.
func (l *latencySamples) add(received, sent int64, probe bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines++
	if l.firstRead == 0 {
		l.firstRead = received
	}
	l.lastRead = received
	if !probe {
		return
	}
	l.samples = append(l.samples, time.Duration(received-sent))
	if l.first == 0 || sent < l.first {
		l.first = sent
	}
	l.last = max(l.last, sent)
}
