package jetstream

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spatehq/spate/bench/internal/proc"
	"github.com/spatehq/spate/bench/internal/scenario"
)

// probeRate is the rate of the timestamped probe messages, messages/s. The
// nats CLI has no publisher that both stamps each message and reaches
// 10,000/s on 2 cores (`nats pub` flushes after every message and uses
// ~130 µs of CPU for each, more under load), so the fixed rate is made of a
// paced `nats bench` load (zero-filled values) plus one `nats pub` whose
// values carry the send time. Latency is measured on the probes, which
// share the stream, the server and the consumer with the load. The load
// runs until the probes are done.
const probeRate = 1_000

// latency runs a Latency scenario: a paced load and a timestamped probe into
// one stream, and one JetStream subscriber whose output the benchmark reads
// through a pipe.
func (s *System) latency(ctx context.Context, sc scenario.Scenario, r *scenario.Result) error {
	if err := s.deleteStreams(ctx); err != nil {
		return err
	}
	stream := sc.Topic()
	s.streams = append(s.streams, stream)
	_, subjects := streams(stream, 1)
	subject := subjects[0]
	if _, err := s.nats(ctx, "stream", "add", stream, "--subjects", subject, "--storage", "file", "--defaults"); err != nil {
		return err
	}

	probes := max(1, int(probeRate*sc.Duration.Seconds()))
	loadRate := max(0, sc.Rate-probeRate)
	// Enough load for twice the time: it is stopped when the probes end.
	load := int(float64(loadRate) * sc.Duration.Seconds() * 2)
	// The probe's value: the send time in nanoseconds (19 digits), a
	// space, and padding to the record size.
	body := "{{UnixNano}} " + strings.Repeat("x", max(0, sc.RecordBytes-20))

	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	subArgs := []string{"sub", "--stream", stream, "--new", "--raw", subject}
	sub, err := proc.Start(proc.Spec{Path: s.cfg.CLI, Args: s.natsArgs(subArgs...), Stdout: pw})
	pw.Close()
	if err != nil {
		pr.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	defer sub.Stop()

	var got latencySamples
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer pr.Close()
		readLatencies(pr, &got)
	}()
	if err := waitOutput(ctx, sub, "Subscribing", 10*time.Second); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond) // let the consumer settle on the server

	probeArgs := []string{"pub", subject, "--count", strconv.Itoa(probes), "--sleep", fmt.Sprintf("%dus", time.Second.Microseconds()/probeRate), "-q", body}
	loadArgs := []string{"bench", "js", "pub", "async", "--stream", stream, "--msgs", strconv.Itoa(load),
		"--size", strconv.Itoa(sc.RecordBytes), "--batch", "50", "--throughput", strconv.Itoa(loadRate), "--no-progress", subject}
	var loader *proc.Process
	if load > 0 {
		loader, err = proc.Start(proc.Spec{Path: s.cfg.CLI, Args: s.natsArgs(loadArgs...)})
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		defer loader.Stop()
	}
	if _, err := s.nats(ctx, probeArgs...); err != nil {
		return err
	}
	if loader != nil {
		if exited, err := loader.Status(); exited && err != nil {
			return fmt.Errorf("jetstream: the load failed: %w\n%s", err, loader.Output())
		}
		loader.Stop()
	}
	// Wait until the subscriber has printed every probe, or give up after
	// a drain time.
	drain := max(10*time.Second, 4*sc.Duration)
	deadline := time.Now().Add(drain)
	for got.probes() < probes && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	sub.Stop()
	<-readDone

	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.samples) == 0 {
		return fmt.Errorf("jetstream: the subscriber received no probe\n%s", sub.Output())
	}
	r.SetThroughput(got.lines, sc.RecordBytes, time.Duration(got.lastRead-got.firstRead))
	r.Records = int64(len(got.samples))
	r.SetLatencies(got.samples)
	r.Command = fmt.Sprintf("%s & %s & %s", s.commandLine(subArgs), s.commandLine(loadArgs), s.commandLine(probeArgs))
	r.Settings = fmt.Sprintf("load: nats bench async publish paced at %d msg/s, 50 in flight; probes: nats pub at %d msg/s with the send time in the value; consumer: nats sub --stream --new (push, no acks)", loadRate, probeRate)
	probeSecs := time.Duration(got.last - got.first).Seconds()
	r.Notes = fmt.Sprintf("percentiles over %d timestamped probes (%.0f/s achieved) among %d records received", len(got.samples), float64(len(got.samples))/max(probeSecs, 1e-9), got.lines)
	if len(got.samples) < probes {
		r.Notes += fmt.Sprintf("; %d of %d probes arrived within %s of the last send", len(got.samples), probes, drain)
	}
	return nil
}

// readLatencies reads the subscriber's output, one value per line. A line
// that starts with a number is a probe carrying its send time in Unix
// nanoseconds: the time from then to the read is a sample.
func readLatencies(rd *os.File, got *latencySamples) {
	br := bufio.NewReaderSize(rd, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		now := time.Now().UnixNano()
		if len(line) > 0 && err != bufio.ErrBufferFull {
			field, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(" "))
			sent, perr := strconv.ParseInt(string(field), 10, 64)
			got.add(now, sent, perr == nil)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return // EOF: the subscriber exited
		}
	}
}

// waitOutput waits until p's output contains marker.
func waitOutput(ctx context.Context, p *proc.Process, marker string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), marker) {
		if err := p.Exited(); err != nil {
			return fmt.Errorf("jetstream: subscriber: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jetstream: subscriber did not start within %s\n%s", timeout, p.Output())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
