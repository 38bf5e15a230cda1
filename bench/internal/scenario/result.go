package scenario

import (
	"math"
	"slices"
	"time"
)

// Result is what one system measured in one scenario. It is written, one
// object per scenario and system, to results.json; the JSON names are a
// stable interface for tools that compare runs.
type Result struct {
	Scenario    string     `json:"scenario"`
	System      string     `json:"system"`
	Kind        Kind       `json:"kind"`
	RecordBytes int        `json:"record_bytes"`
	Partitions  int        `json:"partitions"`
	Durability  Durability `json:"durability"`
	// Records is how many records were counted.
	Records int64 `json:"records"`
	// Seconds is the measured time.
	Seconds float64 `json:"seconds"`
	// RecordsPerSec is Records / Seconds.
	RecordsPerSec float64 `json:"records_per_sec"`
	// MBPerSec is the payload (values only) in 10^6 bytes per second.
	MBPerSec float64 `json:"mb_per_sec"`
	// P50Ms, P99Ms and P999Ms are end-to-end latencies of a Latency
	// scenario, or the times to connect and complete one request of a
	// Handshake scenario, in milliseconds.
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	// ClientCPUMs and ServerCPUMs are, for a Handshake scenario, the CPU
	// time (user + system) per connection of the benchmark's process (the
	// client) and of the server process, in milliseconds.
	ClientCPUMs float64 `json:"client_cpu_ms,omitempty"`
	ServerCPUMs float64 `json:"server_cpu_ms,omitempty"`
	// RSSMB is the server's peak resident memory during the scenario
	// (VmRSS, sampled), in MiB.
	RSSMB float64 `json:"rss_mb"`
	// Command is what ran the load: the CLI command lines for JetStream,
	// the spatebench invocation for Spate, whose load runs in-process.
	Command string `json:"command"`
	// Server is the command line of the server process.
	Server string `json:"server"`
	// Settings describes the client's settings (batching, acks).
	Settings string `json:"settings,omitempty"`
	// Notes says what a reader should know about these figures.
	Notes string `json:"notes,omitempty"`
	// Error says why the scenario has no figures.
	Error string `json:"error,omitempty"`
}

// NewResult returns a Result naming s and system, with no figures yet.
func NewResult(s Scenario, system string) Result {
	return Result{
		Scenario:    s.Name(),
		System:      system,
		Kind:        s.Kind,
		RecordBytes: s.RecordBytes,
		Partitions:  s.Partitions,
		Durability:  s.Durability,
	}
}

// SetThroughput fills Records, Seconds, RecordsPerSec and MBPerSec.
func (r *Result) SetThroughput(records int64, recordBytes int, d time.Duration) {
	r.Records = records
	r.Seconds = round(d.Seconds(), 3)
	if d <= 0 {
		return
	}
	rate := float64(records) / d.Seconds()
	r.RecordsPerSec = math.Round(rate)
	r.MBPerSec = round(rate*float64(recordBytes)/1e6, 2)
}

// SetLatencies fills the percentiles from samples, which it sorts.
func (r *Result) SetLatencies(samples []time.Duration) {
	slices.Sort(samples)
	ms := func(q float64) float64 { return round(float64(Percentile(samples, q))/1e6, 3) }
	r.P50Ms, r.P99Ms, r.P999Ms = ms(0.50), ms(0.99), ms(0.999)
}

// Percentile returns the q-quantile (0 < q <= 1) of sorted samples by the
// nearest-rank method, or 0 when there are none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
