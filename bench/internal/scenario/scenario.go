// Package scenario defines what the benchmark measures: the scenarios run
// against every system, and the Result each run produces. It holds no code
// that talks to a system; the runners in bench/internal/spate and
// bench/internal/jetstream do that.
package scenario

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Kind is what a scenario measures.
type Kind string

// The kinds of scenario.
const (
	// Produce measures how many records a producer writes per second,
	// counted from the first send to the last acknowledgement.
	Produce Kind = "produce"
	// Consume measures how many records a consumer reads per second from
	// a partition (or stream) filled by the Produce scenario it Needs.
	Consume Kind = "consume"
	// Latency measures the time from a producer's send to a consumer's
	// receipt at a fixed rate, with the send time carried in the value.
	Latency Kind = "latency"
	// Idle measures the server's resident memory with nothing to do.
	Idle Kind = "idle"
	// Handshake measures the time to open a new connection and complete
	// one small request on it, Connections times in a row, each on a new
	// HTTP client (no connection reuse, no TLS session resumption). Only
	// the Spate systems run it: it compares Spate over mTLS with Spate
	// over h2c.
	Handshake Kind = "handshake"
)

// Durability is when a write is acknowledged.
type Durability string

// The durability modes, and what each means per system.
const (
	// Write acknowledges after the write to the page cache (Spate: acks
	// after write; JetStream: default file storage, which syncs every 2
	// minutes).
	Write Durability = "write"
	// Fsync acknowledges after the data is on disk (Spate: acks after a
	// grouped fsync; JetStream: sync_interval: always, an fsync per
	// message).
	Fsync Durability = "fsync"
)

// Durabilities lists the modes in the order they run.
var Durabilities = []Durability{Write, Fsync}

// Scenario is one measurement, run against every system.
type Scenario struct {
	Kind        Kind
	RecordBytes int
	Partitions  int
	Durability  Durability
	// Duration is how long the measured part should take. Systems that
	// need a record count derive it from a measured rate.
	Duration time.Duration
	// Rate is the fixed send rate of a Latency scenario, records/s.
	Rate int
	// Needs names the scenario whose records a Consume scenario reads.
	Needs string
	// Connections is how many connections a Handshake scenario opens,
	// one after the other.
	Connections int
}

// Name identifies the scenario in tables, flags and topic names, such as
// "produce-100B-p6-fsync".
func (s Scenario) Name() string {
	switch s.Kind {
	case Idle:
		return fmt.Sprintf("idle-%s", s.Durability)
	case Latency:
		return fmt.Sprintf("latency-%s-%drps-%s", sizeName(s.RecordBytes), s.Rate, s.Durability)
	case Handshake:
		return fmt.Sprintf("handshake-%dconns-%s", s.Connections, s.Durability)
	}
	return fmt.Sprintf("%s-%s-p%d-%s", s.Kind, sizeName(s.RecordBytes), s.Partitions, s.Durability)
}

// Topic is the topic (Spate) or stream name prefix (JetStream) a scenario
// writes to, its name in lower case: a Consume scenario reads its
// producer's topic.
func (s Scenario) Topic() string {
	if s.Kind == Consume {
		return strings.ToLower(s.Needs)
	}
	return strings.ToLower(s.Name())
}

func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// Options size a plan.
type Options struct {
	// Duration is the measured time of each throughput scenario.
	Duration time.Duration
	// LatencyDuration is the measured time of each latency scenario.
	LatencyDuration time.Duration
	// LatencyRate is the fixed rate of the latency scenarios, records/s.
	LatencyRate int
	// Handshakes is how many connections the handshake scenario opens.
	Handshakes int
}

// Record sizes and partition counts of the throughput scenarios.
var (
	RecordSizes     = []int{100, 1024}
	PartitionCounts = []int{1, 6}
)

// Plan returns every scenario for one durability mode, in the order they
// run: idle memory first (before any load), then each Produce followed by
// the Consume that reads its records, then latency, then (Write mode only)
// the handshake scenario.
//
// Consume runs in the Write mode only: durability is a property of the
// write path, and JetStream's fsync-always mode stores ~2,600 records/s, too
// few to fill a stream whose read takes long enough to time. Handshake
// runs in the Write mode only too: a one-record produce with acks after
// write measures the connection, not the disk.
func Plan(d Durability, o Options) []Scenario {
	out := []Scenario{{Kind: Idle, Durability: d, Duration: 2 * time.Second}}
	for _, size := range RecordSizes {
		for _, parts := range PartitionCounts {
			p := Scenario{Kind: Produce, RecordBytes: size, Partitions: parts, Durability: d, Duration: o.Duration}
			out = append(out, p)
			if d == Write {
				out = append(out, Scenario{Kind: Consume, RecordBytes: size, Partitions: parts, Durability: d, Duration: o.Duration, Needs: p.Name()})
			}
		}
	}
	out = append(out, Scenario{Kind: Latency, RecordBytes: 100, Partitions: 1, Durability: d, Duration: o.LatencyDuration, Rate: o.LatencyRate})
	if d == Write && o.Handshakes > 0 {
		out = append(out, Scenario{Kind: Handshake, RecordBytes: 1, Partitions: 1, Durability: d, Connections: o.Handshakes})
	}
	return out
}

// Filter keeps the scenarios whose name matches re, and the Produce
// scenarios that the kept Consume scenarios need. A nil re keeps all.
func Filter(plan []Scenario, re *regexp.Regexp) []Scenario {
	if re == nil {
		return plan
	}
	needed := make(map[string]bool)
	for _, s := range plan {
		if re.MatchString(s.Name()) && s.Needs != "" {
			needed[s.Needs] = true
		}
	}
	var out []Scenario
	for _, s := range plan {
		if re.MatchString(s.Name()) || needed[s.Name()] {
			out = append(out, s)
		}
	}
	return out
}
