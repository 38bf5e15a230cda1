// Package report writes a benchmark run as a Markdown page (RESULTS.md)
// for people and as JSON (results.json) for tools. Both hold the same
// figures: one Result per scenario and system.
package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spatehq/spate/bench/internal/machine"
	"github.com/spatehq/spate/bench/internal/scenario"
)

// The files Write writes.
const (
	MarkdownFile = "RESULTS.md"
	JSONFile     = "results.json"
)

// The system names the report compares, Spate first.
const (
	spateName     = "spate"
	jetstreamName = "jetstream"
	// The Spate setups under a control plane, compared with plaintext
	// Spate (a standalone SPU over h2c): over mTLS, and over h2c (run on
	// request only, to tell the cost of TLS from that of the control
	// plane).
	mtlsName    = "spate-mtls"
	clusterName = "spate-cluster"
)

// allSystems are the systems in the order the tables list them.
var allSystems = []string{spateName, clusterName, mtlsName, jetstreamName}

// variants are the Spate setups compared with plaintext Spate in extra
// columns, with their labels.
var variants = []struct{ name, label string }{
	{clusterName, "Spate h2c cluster"},
	{mtlsName, "Spate mTLS"},
}

// ran reports whether run has a result of system.
func ran(run Run, system string) bool {
	return slices.ContainsFunc(run.Results, func(r scenario.Result) bool { return r.System == system })
}

// Run is one benchmark run.
type Run struct {
	Started     time.Time         `json:"started"`
	Finished    time.Time         `json:"finished"`
	Quick       bool              `json:"quick"`
	CommandLine string            `json:"command_line"`
	Machine     machine.Info      `json:"machine"`
	Versions    map[string]string `json:"versions"`
	Options     scenario.Options  `json:"-"`
	// ScenarioSeconds and LatencySeconds are the planned durations.
	ScenarioSeconds float64 `json:"scenario_seconds"`
	LatencySeconds  float64 `json:"latency_seconds"`
	// Results has one object per scenario and system.
	Results []scenario.Result `json:"results"`
	// Tiered holds the tiered-storage scenarios' figures; nil when they
	// did not run.
	Tiered *Tiered `json:"tiered,omitempty"`
	// SmartModules holds the SmartModule consume scenarios' figures; nil
	// when they did not run.
	SmartModules *SmartModules `json:"smartmodules,omitempty"`
}

// Write writes RESULTS.md and results.json into dir.
func Write(dir string, run Run) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	run.ScenarioSeconds = run.Options.Duration.Seconds()
	run.LatencySeconds = run.Options.LatencyDuration.Seconds()
	js, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, JSONFile), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, MarkdownFile), Markdown(run), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Markdown renders run as the RESULTS.md page.
func Markdown(run Run) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Spate and NATS JetStream, side by side\n\n")
	p("Written by `make bench` on %s in %s (`%s`).\n\n",
		run.Started.UTC().Format("2006-01-02 15:04 MST"), run.Finished.Sub(run.Started).Round(time.Second), run.CommandLine)
	if run.Quick {
		p("> **Quick run** (`-quick`): every scenario ran for about a second, as a smoke test. Do not quote these figures; run `make bench` for them.\n\n")
	}
	p("Both systems ran on this machine, one server at a time, each with its load generator on the same cores. ")
	if ran(run, mtlsName) {
		p("Spate ran twice: in plaintext (a standalone SPU over h2c, the `spate` columns) and over mTLS (an SPU of a cluster of a secure control plane, with a user's client certificate, the `Spate mTLS` columns; see [Spate over mTLS](#spate-over-mtls)). ")
	}
	p("Run it again with `make bench`; `go run ./bench/cmd/spatebench -help` lists the flags (`-quick` for a smoke run of under two minutes, `-only REGEXP` and `-systems spate` to run part of it, `-systems spate,spate-cluster,spate-mtls` to add Spate over h2c under a control plane, `-profile DIR` for CPU profiles of the SPU and the Spate client, `-only '^tiered'` for the tiered-storage scenarios alone, `-tiered=false` to leave them out).\n\n")

	writeMachine(&b, run)
	writeTargets(&b, run)
	writeThroughput(&b, run)
	writeLatency(&b, run)
	writeTLS(&b, run)
	writeTiered(&b, run)
	writeSmartModules(&b, run)
	writeMemory(&b, run)
	writeAll(&b, run)
	writeMethod(&b, run)
	return b.Bytes()
}

func writeMachine(b *bytes.Buffer, run Run) {
	m := run.Machine
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## The machine\n\n")
	p("| CPU | cores | memory | kernel | file system of the data | Go |\n| --- | --- | --- | --- | --- | --- |\n")
	p("| %s | %d | %s | %s | %s | %s |\n\n", orDash(m.CPU), m.Cores, mem(m.MemoryMB), orDash(m.Kernel), orDash(m.Filesystem), orDash(m.GoVersion))
	var names []string
	for k := range run.Versions {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) > 0 {
		p("Versions: ")
		for i, k := range names {
			if i > 0 {
				p(", ")
			}
			p("%s `%s`", k, run.Versions[k])
		}
		p(".\n\n")
	}
	if m.DiskWriteMBPerSec == 0 && m.FdatasyncMs == 0 && m.LoopbackMBPerSec == 0 && len(m.Notes) == 0 {
		p("The machine's reference figures were not measured (-skip-machine).\n\n")
		return
	}
	p("Reference figures, measured at the start of the run in the folder that holds the data:\n\n")
	p("| what | measured | how |\n| --- | ---: | --- |\n")
	p("| sequential write with fsync | %s MB/s | `%s` |\n", num(m.DiskWriteMBPerSec), m.DiskWriteCommand)
	p("| one 4 KiB write + fdatasync (median) | %s ms | write(2) then fdatasync(2), appending to a fresh file |\n", dec(m.FdatasyncMs, 3))
	p("| loopback TCP, one stream | %s MB/s | one connection over 127.0.0.1, 256 KiB writes |\n\n", num(m.LoopbackMBPerSec))
	for _, n := range m.Notes {
		p("- Note: %s\n", n)
	}
	if len(m.Notes) > 0 {
		p("\n")
	}
}

// find returns the result of a scenario and system.
func find(run Run, scenarioName, system string) (scenario.Result, bool) {
	for _, r := range run.Results {
		if r.Scenario == scenarioName && r.System == system && r.Error == "" {
			return r, true
		}
	}
	return scenario.Result{}, false
}

func writeTargets(b *bytes.Buffer, run Run) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	type target struct {
		what     string
		scenario string
		value    func(scenario.Result) float64
		unit     string
		goal     float64 // 0 when it cannot be computed
		atMost   bool
	}
	rate := func(r scenario.Result) float64 { return r.RecordsPerSec }
	mbps := func(r scenario.Result) float64 { return r.MBPerSec }
	p99 := func(r scenario.Result) float64 { return r.P99Ms }
	rss := func(r scenario.Result) float64 { return r.RSSMB }
	fsyncGoal := 0.0
	if js, ok := find(run, "produce-100B-p1-fsync", jetstreamName); ok {
		fsyncGoal = 50 * js.RecordsPerSec
	}
	targets := []target{
		{"produce 100 B records, 1 partition: at least 1,000,000 records/s", "produce-100B-p1-write", rate, "records/s", 1_000_000, false},
		{"consume 100 B records, 1 partition: at least 1,000,000 records/s", "consume-100B-p1-write", rate, "records/s", 1_000_000, false},
		{"produce 1 KiB records, 1 partition: at least half the disk's sequential rate", "produce-1KiB-p1-write", mbps, "MB/s", run.Machine.DiskWriteMBPerSec / 2, false},
		{"produce with fsync before the ack, 100 B, 1 partition: at least 50 times JetStream's fsync-always rate", "produce-100B-p1-fsync", rate, "records/s", fsyncGoal, false},
		{"end-to-end p99 at 10,000 records/s: under 5 ms", "latency-100B-10000rps-write", p99, "ms", 5, true},
		{"idle SPU: under 30 MiB resident", "idle-write", rss, "MiB", 30, true},
	}
	p("## Spate against its targets\n\n")
	p("The targets of issue 2 (and of issue 5 for tiered storage, see [Tiered storage](#tiered-storage)), for client and SPU on the same 2 cores.\n\n")
	p("| target | goal | Spate | JetStream | met |\n| --- | ---: | ---: | ---: | --- |\n")
	for _, t := range targets {
		s, okS := find(run, t.scenario, spateName)
		j, okJ := find(run, t.scenario, jetstreamName)
		goal, spateV, jsV, met := "-", "-", "-", "not measured"
		if _, bad := failed(run, t.scenario, spateName); bad {
			met = "failed: see below"
		}
		if t.goal > 0 {
			goal = fmtFigure(t.goal, t.unit)
		}
		if okS {
			spateV = fmtFigure(t.value(s), t.unit)
			switch {
			case t.goal == 0:
				met = "no goal (JetStream not measured)"
			case t.atMost && t.value(s) < t.goal, !t.atMost && t.value(s) >= t.goal:
				met = "yes"
			default:
				met = "**no**"
			}
		}
		if okJ {
			jsV = fmtFigure(t.value(j), t.unit)
		}
		p("| %s | %s | %s | %s | %s |\n", t.what, goal, spateV, jsV, met)
	}
	if run.Tiered != nil {
		for _, r := range tieredTargets(run.Tiered) {
			p("| %s | %s | %s | - | %s |\n", r[0], r[1], r[2], r[3])
		}
	}
	p("\n")
}

func fmtFigure(v float64, unit string) string {
	switch unit {
	case "ms":
		return dec(v, 2) + " ms"
	case "MiB":
		return dec(v, 1) + " MiB"
	case "MB/s":
		return num(v) + " MB/s"
	}
	return num(v) + " " + unit
}

// scenarioNames returns the scenario names of the results with kind k, in
// the order they first appear.
func scenarioNames(run Run, kinds ...scenario.Kind) []string {
	var out []string
	for _, r := range run.Results {
		if slices.Contains(kinds, r.Kind) && !slices.Contains(out, r.Scenario) {
			out = append(out, r.Scenario)
		}
	}
	return out
}

func writeThroughput(b *bytes.Buffer, run Run) {
	names := scenarioNames(run, scenario.Produce, scenario.Consume)
	if len(names) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Throughput\n\n")
	p("Records/s and MB/s of payload (10^6 bytes of values per second); RSS is the server's peak resident memory during the scenario.")
	var extra []struct{ name, label string }
	for _, v := range variants {
		if ran(run, v.name) {
			extra = append(extra, v)
		}
	}
	if len(extra) > 0 {
		p(" The columns on the right are Spate in the other setups, against plaintext Spate (a ratio below 1.0x is slower); they ran in the write mode only.")
	}
	p("\n\n| scenario | Spate records/s | Spate MB/s | JetStream records/s | JetStream MB/s | Spate / JetStream | Spate RSS MiB | JetStream RSS MiB |")
	for _, v := range extra {
		p(" %s records/s | %s MB/s | %s / Spate | %s RSS MiB |", v.label, v.label, v.label, v.label)
	}
	p("\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |%s\n", strings.Repeat(" ---: | ---: | ---: | ---: |", len(extra)))
	for _, n := range names {
		s, okS := find(run, n, spateName)
		j, okJ := find(run, n, jetstreamName)
		ratio := "-"
		if okS && okJ && j.RecordsPerSec > 0 {
			ratio = times(s.RecordsPerSec / j.RecordsPerSec)
		}
		sRate, jRate := pick(okS, num(s.RecordsPerSec)), pick(okJ, num(j.RecordsPerSec))
		if _, bad := failed(run, n, spateName); bad {
			sRate = "failed"
		}
		if _, bad := failed(run, n, jetstreamName); bad {
			jRate = "failed"
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s |", n,
			sRate, pick(okS, dec(s.MBPerSec, 1)),
			jRate, pick(okJ, dec(j.MBPerSec, 1)),
			ratio, pick(okS, dec(s.RSSMB, 1)), pick(okJ, dec(j.RSSMB, 1)))
		for _, v := range extra {
			x, okX := find(run, n, v.name)
			xRate, xRatio := pick(okX, num(x.RecordsPerSec)), "-"
			if _, bad := failed(run, n, v.name); bad {
				xRate = "failed"
			}
			if okX && okS && s.RecordsPerSec > 0 {
				xRatio = fmt.Sprintf("%.2fx", x.RecordsPerSec/s.RecordsPerSec)
			}
			p(" %s | %s | %s | %s |", xRate, pick(okX, dec(x.MBPerSec, 1)), xRatio, pick(okX, dec(x.RSSMB, 1)))
		}
		p("\n")
	}
	p("\n")
}

func writeLatency(b *bytes.Buffer, run Run) {
	names := scenarioNames(run, scenario.Latency)
	if len(names) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## End-to-end latency\n\n")
	p("From the producer's send (a timestamp in the value) to the consumer's receipt, at a fixed rate of 100-byte records on one partition. \"Sent/s\" is the rate actually achieved.\n\n")
	p("| scenario | system | sent/s | records | p50 ms | p99 ms | p99.9 ms | RSS MiB | notes |\n")
	p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, n := range names {
		for _, sys := range allSystems {
			r, ok := find(run, n, sys)
			if !ok {
				if msg, bad := failed(run, n, sys); bad {
					p("| %s | %s | failed | | | | | | %s |\n", n, sys, cell(msg))
				}
				continue
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n, sys, num(r.RecordsPerSec), num(float64(r.Records)),
				dec(r.P50Ms, 2), dec(r.P99Ms, 2), dec(r.P999Ms, 2), dec(r.RSSMB, 1), cell(r.Notes))
		}
	}
	p("\n")
}

func writeMemory(b *bytes.Buffer, run Run) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Server memory\n\n")
	p("Resident memory (VmRSS of /proc/PID/status) of the SPU and of nats-server (not of Spate's control plane): idle right after start, and the peak over all the scenarios of a durability mode.\n\n")
	p("| durability | system | idle MiB | peak under load MiB | during |\n| --- | --- | ---: | ---: | --- |\n")
	for _, d := range scenario.Durabilities {
		for _, sys := range allSystems {
			idle, okIdle := find(run, "idle-"+string(d), sys)
			var peak scenario.Result
			for _, r := range run.Results {
				if r.System == sys && r.Durability == d && r.Kind != scenario.Idle && r.RSSMB > peak.RSSMB {
					peak = r
				}
			}
			if !okIdle && peak.Scenario == "" {
				continue
			}
			p("| %s | %s | %s | %s | %s |\n", d, sys, pick(okIdle, dec(idle.RSSMB, 1)),
				pick(peak.Scenario != "", dec(peak.RSSMB, 1)), orDash(peak.Scenario))
		}
	}
	p("\n")
}

func writeAll(b *bytes.Buffer, run Run) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Every result, with its command\n\n")
	p("| scenario | system | records | seconds | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | RSS MiB | command |\n")
	p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range run.Results {
		if r.Error != "" {
			p("| %s | %s | failed: %s | | | | | | | | %s |\n", r.Scenario, r.System, cell(firstLine(r.Error)), code(r.Command))
			continue
		}
		lat := func(v float64) string {
			return pick(r.Kind == scenario.Latency || r.Kind == scenario.Handshake, dec(v, 2))
		}
		tput := func(s string) string { return pick(r.Kind != scenario.Idle, s) }
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.System,
			tput(num(float64(r.Records))), tput(dec(r.Seconds, 2)), tput(num(r.RecordsPerSec)), tput(dec(r.MBPerSec, 1)),
			lat(r.P50Ms), lat(r.P99Ms), lat(r.P999Ms), dec(r.RSSMB, 1), code(r.Command))
	}
	p("\n")
	servers := map[string]string{}
	var settings []string
	for _, r := range run.Results {
		if r.Server != "" {
			servers[r.System+" "+string(r.Durability)] = r.Server
		}
		if r.Settings != "" {
			s := fmt.Sprintf("%s, %s: %s", r.System, r.Kind, r.Settings)
			if !slices.Contains(settings, s) {
				settings = append(settings, s)
			}
		}
	}
	if len(servers) > 0 {
		keys := make([]string, 0, len(servers))
		for k := range servers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		p("Servers:\n\n")
		for _, k := range keys {
			p("- %s: `%s`\n", k, servers[k])
		}
		p("\n")
	}
	if len(settings) > 0 {
		p("Client settings:\n\n")
		for _, s := range settings {
			p("- %s\n", s)
		}
		p("\n")
	}
}

func writeMethod(b *bytes.Buffer, run Run) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	o := run.Options
	p("## How each figure is measured\n\n")
	p("- **Scenarios.** Produce and consume of 100-byte and 1 KiB records, on 1 and 6 partitions, in two durability modes; end-to-end latency at %s records/s; server memory. Each throughput scenario runs for about %s, each latency scenario for %s. Every system gets a fresh server and data directory per durability mode; servers run one at a time.\n",
		num(float64(o.LatencyRate)), o.Duration, o.LatencyDuration)
	p("- **Durability.** Spate `write`: the SPU acknowledges after write(2); `fsync`: after fsync, grouped across the requests in flight (`spate spu serve --fsync` and acks=fsync on each request). JetStream `write`: default file storage (fsync every 2 minutes); `fsync`: `sync_interval: always` in the server configuration (an fsync per message).\n")
	p("- **Partitions.** A Spate partition is an ordered log; its JetStream counterpart is a stream with one subject. Six partitions are one Spate topic with six partitions, written by one producer and read by one consumer; on JetStream they are six streams, each written or read by its own `nats bench` process, all six at once, and the rate is all their records over the longest run.\n")
	p("- **Produce.** Spate: one producer of the Go SDK in the benchmark's process sends records in a loop for the scenario's time, then flushes; the rate is the records over the time from the first send to the last acknowledgement. JetStream: `nats bench js pub async` with 500 messages in flight, timed by nats bench from the first publish to the last acknowledgement; the message count comes from a short pilot run so that the run lasts about as long.\n")
	p("- **Consume.** Every record of the produce scenario, read from the beginning. Spate: one consumer of the Go SDK (all partitions in one stream), until it has seen every record. JetStream: `nats bench js ordered` (an ephemeral ordered consumer) per stream. Consume runs in the write mode only: durability does not touch the read path, and JetStream's fsync-always mode stores too few records in a few seconds to time a read.\n")
	p("- **Latency.** Values carry their send time (Unix nanoseconds) at the start; a consumer started beforehand subtracts it from its own clock when the record arrives (same machine, same clock); percentiles are nearest-rank. Spate: one SDK producer with linger 0, paced by the benchmark, and one SDK consumer, both in the benchmark's process; every record is a sample. JetStream: `nats bench js pub async --throughput` sends 9,000 records/s of zero-filled values and one `nats pub` sends 1,000 probes/s whose values start with the send time, into one stream; `nats sub --stream --new --raw` prints every value to a pipe that the benchmark reads as it comes, and the probes are the samples. No nats CLI publisher both stamps values and reaches 10,000/s on 2 cores: `nats pub` flushes after every message, so it reaches about 700/s under this load (the achieved rate is in the notes). \"Sent/s\" is the rate of all records, from the first to the last one received; when a system cannot keep up it falls below the target and the latencies include the backlog.\n")
	if ran(run, mtlsName) || ran(run, clusterName) {
		writeTLSMethod(b)
	}
	p("- **Memory.** VmRSS of the server process (`spate spu serve`, `nats-server`), read from /proc every 100 ms during each scenario; a scenario's figure is the peak. Idle is read %s after start. The clients' memory is not counted.\n", "2s")
	p("- **Commands.** The `nats` commands in the tables ran with `--no-context -s nats://127.0.0.1:PORT` before their arguments, against the server of the run. The Spate rows show how to run one scenario again: the Spate load runs inside spatebench, through the Go SDK.\n")
	p("- **Units.** MB/s counts 10^6 bytes of record values per second (keys, headers and framing excluded); memory is in MiB.\n")
}

// times formats a ratio: one decimal below 100, none above.
func times(x float64) string {
	if x >= 100 {
		return num(x) + "x"
	}
	return fmt.Sprintf("%.1fx", x)
}

// failed returns the error of a scenario and system's result, if it has one.
func failed(run Run, scenarioName, system string) (string, bool) {
	for _, r := range run.Results {
		if r.Scenario == scenarioName && r.System == system && r.Error != "" {
			return firstLine(r.Error), true
		}
	}
	return "", false
}

func pick(ok bool, s string) string {
	if !ok {
		return "-"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func mem(mb int64) string {
	if mb == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f GiB", float64(mb)/1024)
}

// num formats a figure with thousands separators and no decimals.
func num(v float64) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func dec(v float64, digits int) string { return fmt.Sprintf("%.*f", digits, v) }
