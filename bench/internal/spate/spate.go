// Package spate runs the benchmark scenarios against Spate: it starts an
// SPU as a separate process (`spate spu serve`) and drives it in-process
// with the Go SDK (package client), the way an application would.
//
//   - Produce: one Producer sends records in a loop for the scenario's
//     time, then flushes; the rate counts from the first send to the last
//     acknowledgement. Keyless records spread over the partitions, a batch
//     at a time (the SDK's default partitioner).
//   - Consume: one Consumer reads every partition of the produce
//     scenario's topic from the beginning until it has seen every record.
//   - Latency: a Producer with linger 0, paced by the benchmark, writes its
//     clock into the first 8 bytes of each value; a Consumer started first
//     subtracts it on receipt.
//   - Handshake: new connections one after another, each making one
//     ProduceOne (see handshake.go).
//   - Durability: the SPU runs with --fsync in the Fsync mode, and the
//     producer asks for the matching acks (AcksWrite or AcksFsync).
//
// Spate runs in one of three setups (Config.Setup), with the same producer,
// consumer and settings:
//
//   - plaintext ("spate"): a standalone SPU serving h2c, which lets every
//     caller do everything; topics are partitions declared on the SPU
//     (EnsurePartition).
//   - mTLS ("spate-mtls"): a secure control plane (`spate control-plane
//     serve`, TLS and authentication on, as `spate local up` runs it) and
//     one cluster of one SPU that it provisions with its certificates
//     (`spate spu serve --tls-cert --tls-key --cluster-ca
//     --control-plane-ca`). The benchmark creates a tenant with the
//     operator's key, logs in as its owner with an API key, creates the
//     cluster and gets a user's client certificate for it
//     (cloud.UseCluster); the SDK then speaks mTLS to the SPU
//     (client.FromProfile, which sets client.WithSPUTLS) and the SPU
//     authorizes every request against the access list its control plane
//     pushes. An SPU with TLS refuses the calls of users until it has that
//     list, so it cannot run standalone with a user's certificate. Topics
//     are created through the control plane (CreateTopic).
//   - h2c cluster ("spate-cluster", run on request): an insecure control
//     plane (`spate control-plane serve --insecure --local-spus 1`) and
//     the SPU it runs over h2c, topics created through the control plane:
//     the mTLS setup without TLS and authorization, to tell their cost
//     from that of running under a control plane.
package spate

import (
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
	"time"

	"github.com/spatehq/spate/bench/internal/proc"
	"github.com/spatehq/spate/bench/internal/scenario"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/internal/h2c"
)

// The systems' names in reports.
const (
	// Name is plaintext Spate: a standalone SPU over h2c.
	Name = "spate"
	// NameMTLS is Spate over mTLS: an SPU of a cluster of a secure
	// control plane, called with a user's client certificate.
	NameMTLS = "spate-mtls"
	// NameCluster is Spate over h2c under an insecure control plane.
	NameCluster = "spate-cluster"
)

// Setup is how Spate runs; see the package comment.
type Setup int

// The setups.
const (
	// Standalone is one SPU over h2c, on its own (Name).
	Standalone Setup = iota
	// MTLS is a secure control plane and its cluster's SPU (NameMTLS).
	MTLS
	// ClusterH2C is an insecure control plane and its SPU (NameCluster).
	ClusterH2C
)

// Producer settings of the throughput scenarios.
const (
	linger     = 5 * time.Millisecond
	batchBytes = 1 << 20
)

// Config configures the Spate side.
type Config struct {
	// Binary is the path of the spate binary.
	Binary string
	// WorkDir holds the SPU's data directory; it must exist.
	WorkDir string
	// ServerLog receives the SPU's output; discarded when nil.
	ServerLog io.Writer
	// Logger reports progress.
	Logger *slog.Logger
	// ProfileDir, when set, receives a CPU profile of the SPU (from its
	// /debug/pprof, so the SPU runs with --pprof) and one of the
	// benchmark's own process (the client) for each scenario.
	ProfileDir string
	// Rerun is a format for the command that runs one scenario again; %s
	// is the scenario's name.
	Rerun string
	// Setup chooses the setup (see the package comment); the zero value is
	// a standalone SPU. With a control plane, ServerLog receives the
	// control plane's output; the SPU's log stays in its data directory
	// and its end is quoted when the SPU fails.
	Setup Setup
}

// System drives one SPU at a time.
type System struct {
	cfg Config

	// Set by Start, cleared by Stop.
	spu        *proc.Process // the standalone SPU; nil with a control plane
	cluster    *cluster      // the control plane and its SPU; nil standalone
	spuURL     string        // http:// or https:// URL of the SPU
	dir        string
	serverLine string
	durability scenario.Durability
	client     *client.Client
	// newHTTP returns an HTTP client of the SPU that shares nothing with
	// earlier ones: h2c, or HTTP/2 over TLS with the client certificate.
	newHTTP func() *http.Client
	// produced counts the records of each topic.
	produced map[string]int64
	// topics holds the partition counts of the topics made so far, to
	// delete before the next scenario writes, as the JetStream side does.
	topics map[string]int
}

// New returns a System; it starts nothing.
func New(cfg Config) *System {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &System{cfg: cfg}
}

// Name returns "spate", "spate-mtls" or "spate-cluster".
func (s *System) Name() string {
	switch s.cfg.Setup {
	case MTLS:
		return NameMTLS
	case ClusterH2C:
		return NameCluster
	}
	return Name
}

// Runs reports whether the system runs sc. Plaintext Spate runs every
// scenario. The setups with a control plane run the Write mode only, to
// keep `make bench` short: TLS costs the same whatever the durability, and
// the fsync mode measures the disk.
func (s *System) Runs(sc scenario.Scenario) bool {
	return s.cfg.Setup == Standalone || sc.Durability == scenario.Write
}

// Start starts an SPU on a fresh data directory, with --fsync in the Fsync
// mode: a standalone one, or a control plane and the SPU of its cluster.
func (s *System) Start(ctx context.Context, d scenario.Durability) error {
	if s.cfg.Setup != Standalone {
		return s.startCluster(ctx, d)
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(s.cfg.WorkDir, "spate-"+string(d)+"-")
	if err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	args := []string{"spu", "serve", "--addr", addr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn"}
	if d == scenario.Fsync {
		args = append(args, "--fsync")
	}
	if s.cfg.ProfileDir != "" {
		args = append(args, "--pprof")
	}
	p, err := proc.Start(proc.Spec{Path: s.cfg.Binary, Args: args, Log: s.cfg.ServerLog})
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("spate: %w", err)
	}
	if err := proc.WaitListening(ctx, p, addr, 30*time.Second); err != nil {
		p.Stop()
		os.RemoveAll(dir)
		return fmt.Errorf("spate: %w", err)
	}
	c, err := client.New(client.WithSPU("http://"+addr), client.WithLogger(s.cfg.Logger))
	if err != nil {
		p.Stop()
		os.RemoveAll(dir)
		return fmt.Errorf("spate: %w", err)
	}
	s.spu, s.spuURL, s.dir, s.durability, s.client = p, "http://"+addr, dir, d, c
	s.newHTTP = h2c.NewClient
	s.serverLine = "spate spu serve --addr 127.0.0.1:PORT --data-dir DIR --log-level warn"
	if d == scenario.Fsync {
		s.serverLine += " --fsync"
	}
	s.produced = make(map[string]int64)
	s.topics = make(map[string]int)
	return nil
}

// ServerPID returns the SPU's pid (with a control plane, that of its
// child process, found again at each call since the
// control plane restarts an SPU that dies), or 0 when it cannot be found.
func (s *System) ServerPID() int {
	if s.cluster != nil {
		return s.cluster.spuPID()
	}
	return s.spu.Pid()
}

// Stop stops the SPU (and the control plane) and deletes their data.
func (s *System) Stop() {
	if s.client != nil {
		s.client.Close()
		s.client = nil
	}
	if s.spu != nil {
		s.spu.Stop()
		s.spu = nil
	}
	if s.cluster != nil {
		s.cluster.stop()
		s.cluster = nil
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// Run runs one scenario.
func (s *System) Run(ctx context.Context, sc scenario.Scenario) (scenario.Result, error) {
	r := scenario.NewResult(sc, s.Name())
	r.Server = s.serverLine
	if s.cfg.Rerun != "" {
		r.Command = fmt.Sprintf(s.cfg.Rerun, sc.Name())
	}
	if err := s.down(); err != nil {
		return r, err
	}
	stopProfiles := s.startProfiles(ctx, sc)
	var err error
	switch sc.Kind {
	case scenario.Produce:
		err = s.produce(ctx, sc, &r)
	case scenario.Consume:
		err = s.consume(ctx, sc, &r)
	case scenario.Latency:
		err = s.latency(ctx, sc, &r)
	case scenario.Handshake:
		err = s.handshake(ctx, sc, &r)
	default:
		err = fmt.Errorf("spate: no runner for scenario kind %q", sc.Kind)
	}
	if perr := stopProfiles(); perr != nil {
		s.cfg.Logger.Warn("profile", "scenario", sc.Name(), "err", perr)
	}
	if err != nil {
		if derr := s.down(); derr != nil {
			err = fmt.Errorf("%w\n%w", err, derr)
		}
	}
	return r, err
}

// down returns an error with the end of the server's log when the SPU (or
// the control plane) has exited, and nil while it runs.
func (s *System) down() error {
	if s.cluster != nil {
		return s.cluster.down()
	}
	if err := s.spu.Exited(); err != nil {
		return fmt.Errorf("spate: the SPU is down: %w", err)
	}
	return nil
}

func (s *System) acks() client.Acks {
	if s.durability == scenario.Fsync {
		return client.AcksFsync
	}
	return client.AcksWrite
}

// createTopic deletes the topics of earlier scenarios, then creates the
// partitions of topic.
func (s *System) createTopic(ctx context.Context, topic string, partitions int) error {
	if s.cluster != nil {
		return s.createClusterTopic(ctx, topic, partitions)
	}
	for t, n := range s.topics {
		for i := range n {
			if _, err := s.client.RemovePartition(ctx, t, int32(i)); err != nil {
				return fmt.Errorf("spate: %w", err)
			}
		}
		delete(s.topics, t)
		delete(s.produced, t)
	}
	s.topics[topic] = partitions
	d := client.DurabilityWrite
	if s.durability == scenario.Fsync {
		d = client.DurabilityFsync
	}
	for i := range partitions {
		if _, err := s.client.EnsurePartition(ctx, topic, int32(i), client.PartitionConfig{Durability: d, Retention: -1}); err != nil {
			return fmt.Errorf("spate: %w", err)
		}
	}
	return nil
}

func (s *System) produce(ctx context.Context, sc scenario.Scenario, r *scenario.Result) error {
	topic := sc.Topic()
	if err := s.createTopic(ctx, topic, sc.Partitions); err != nil {
		return err
	}
	p, err := s.client.NewProducer(ctx, topic, client.WithLinger(linger), client.WithBatchBytes(batchBytes), client.WithAcks(s.acks()))
	if err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	defer p.Close()
	r.Settings = fmt.Sprintf("one producer, linger %s, batches up to %d KiB, no compression, %d requests in flight, acks %s",
		linger, batchBytes>>10, client.DefaultMaxInFlight, s.acks())

	value := make([]byte, sc.RecordBytes)
	rand.Read(value)
	var n int64
	start := time.Now()
	deadline := start.Add(sc.Duration)
	for {
		// Look at the clock every 256 records only.
		for range 256 {
			p.Produce(ctx, client.Record{Value: value}, nil)
		}
		n += 256
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
	}
	if err := p.Flush(ctx); err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	elapsed := time.Since(start)
	s.produced[topic] = n
	r.SetThroughput(n, sc.RecordBytes, elapsed)
	return nil
}

func (s *System) consume(ctx context.Context, sc scenario.Scenario, r *scenario.Result) error {
	topic := sc.Topic()
	want, ok := s.produced[topic]
	if !ok {
		return fmt.Errorf("spate: nothing to consume: scenario %s did not run", sc.Needs)
	}
	r.Settings = "one consumer of every partition from the beginning, NextBatch, responses up to 1 MiB"
	start := time.Now()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := s.client.Consume(cctx, topic, client.WithStart(client.Beginning()))
	if err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	defer cons.Close()
	var n, bytes int64
	for n < want {
		recs, err := cons.NextBatch(cctx)
		if err != nil {
			return fmt.Errorf("spate: consumed %d of %d records: %w", n, want, err)
		}
		n += int64(len(recs))
		for i := range recs {
			bytes += int64(len(recs[i].Value))
		}
	}
	elapsed := time.Since(start)
	if bytes != n*int64(sc.RecordBytes) {
		return fmt.Errorf("spate: consumed %d bytes of values in %d records, want %d bytes each", bytes, n, sc.RecordBytes)
	}
	r.SetThroughput(n, sc.RecordBytes, elapsed)
	return nil
}

func (s *System) latency(ctx context.Context, sc scenario.Scenario, r *scenario.Result) error {
	topic := sc.Topic()
	if err := s.createTopic(ctx, topic, 1); err != nil {
		return err
	}
	total := int(float64(sc.Rate) * sc.Duration.Seconds())
	r.Settings = fmt.Sprintf("one producer, linger 0, acks %s, paced by the benchmark; one consumer from the beginning, in the same process", s.acks())

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := s.client.Consume(cctx, topic, client.WithStart(client.Beginning()))
	if err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	defer cons.Close()
	type sample struct{ sent, latency int64 }
	samples := make([]sample, 0, total)
	consumed := make(chan error, 1)
	go func() {
		for len(samples) < total {
			recs, err := cons.NextBatch(cctx)
			now := time.Now().UnixNano()
			if err != nil {
				consumed <- err
				return
			}
			for i := range recs {
				sent := int64(binary.LittleEndian.Uint64(recs[i].Value))
				samples = append(samples, sample{sent, now - sent})
			}
		}
		consumed <- nil
	}()

	p, err := s.client.NewProducer(ctx, topic, client.WithLinger(0), client.WithAcks(s.acks()))
	if err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	defer p.Close()
	value := make([]byte, sc.RecordBytes)
	rand.Read(value)
	interval := time.Second / time.Duration(sc.Rate)
	start := time.Now()
	for sent := 0; sent < total && ctx.Err() == nil; {
		due := min(total, int(time.Since(start)/interval)+1)
		for ; sent < due; sent++ {
			binary.LittleEndian.PutUint64(value, uint64(time.Now().UnixNano()))
			p.Produce(ctx, client.Record{Value: value}, nil)
		}
		time.Sleep(interval)
	}
	if err := p.Flush(ctx); err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	drain := max(10*time.Second, 4*sc.Duration)
	select {
	case err := <-consumed:
		if err != nil {
			return fmt.Errorf("spate: consume: %w", err)
		}
	case <-time.After(drain):
		cancel()
		<-consumed
		r.Notes = fmt.Sprintf("received %d of %d records within %s of the last send", len(samples), total, drain)
	}
	if len(samples) == 0 {
		return errors.New("spate: the consumer received nothing")
	}
	lat := make([]time.Duration, len(samples))
	first, last := samples[0].sent, samples[0].sent
	for i, x := range samples {
		lat[i] = time.Duration(x.latency)
		first, last = min(first, x.sent), max(last, x.sent)
	}
	r.SetThroughput(int64(len(samples)), sc.RecordBytes, time.Duration(last-first))
	r.SetLatencies(lat)
	return nil
}

// startProfiles starts CPU profiles of the SPU and of this process when a
// profile folder is set, and returns the function that stops them and
// writes the files.
func (s *System) startProfiles(ctx context.Context, sc scenario.Scenario) func() error {
	if s.cfg.ProfileDir == "" {
		return func() error { return nil }
	}
	base := filepath.Join(s.cfg.ProfileDir, sc.Name())
	clientFile, err := os.Create(base + ".client.pprof")
	if err == nil {
		if err = pprof.StartCPUProfile(clientFile); err != nil {
			clientFile.Close()
			clientFile = nil
		}
	}
	// The SPU profiles for the scenario's time; the request runs alongside.
	secs := max(1, int(sc.Duration.Seconds()))
	spuDone := make(chan error, 1)
	go func() {
		hc := s.newHTTP()
		defer hc.CloseIdleConnections()
		spuDone <- proc.FetchProfile(ctx, hc, s.spuURL, "profile", secs, base+".spu.pprof")
	}()
	return func() error {
		if clientFile != nil {
			pprof.StopCPUProfile()
			clientFile.Close()
		}
		return errors.Join(err, <-spuDone)
	}
}
