// Package suite runs the benchmark: it finds or installs the tools,
// measures the machine, starts each system in each durability mode, runs
// the scenarios side by side, samples the servers' memory and writes the
// report. bench/cmd/spatebench is a thin main around Run.
package suite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spatehq/spate/bench/internal/jetstream"
	"github.com/spatehq/spate/bench/internal/machine"
	"github.com/spatehq/spate/bench/internal/proc"
	"github.com/spatehq/spate/bench/internal/report"
	"github.com/spatehq/spate/bench/internal/scenario"
	"github.com/spatehq/spate/bench/internal/smartmodules"
	"github.com/spatehq/spate/bench/internal/spate"
	"github.com/spatehq/spate/bench/internal/tiered"
)

// Config configures a benchmark run.
type Config struct {
	// Spate is the path of the spate binary (make build writes bin/spate).
	Spate string
	// ToolsDir holds nats-server and nats. When empty, InstallScript is
	// run to install them (it prints the folder), then PATH is searched.
	ToolsDir string
	// InstallScript installs nats-server and nats, idempotently.
	InstallScript string
	// Out is the folder for RESULTS.md and results.json.
	Out string
	// WorkDir is where the temporary data directories go; the system's
	// temporary folder when empty. It must be on a real disk, not tmpfs.
	WorkDir string
	// Quick runs every scenario briefly, for a smoke test (under two minutes).
	Quick bool
	// Only keeps the scenarios whose name matches (and what they need).
	Only *regexp.Regexp
	// Systems lists the systems to run, of AllSystems.
	Systems []string
	// ProfileDir, when set, receives CPU profiles of the SPU and of the
	// in-process Spate client for each Spate scenario.
	ProfileDir string
	// SkipMachine skips the machine's reference figures.
	SkipMachine bool
	// KeepLogs keeps the servers' logs in Out/logs.
	KeepLogs bool
	// CommandLine is how the benchmark was invoked, for the report.
	CommandLine string
	// Tiered runs the tiered-storage scenarios (package tiered) after the
	// systems, against a Versity S3 Gateway started from VersityGW.
	Tiered bool
	// VersityGW is the versitygw binary
	// (infra/scripts/install-versitygw.sh installs .cache/bin/versitygw).
	VersityGW string
}

// AllSystems are the systems the benchmark knows, in the order they run.
var AllSystems = []string{spate.Name, spate.NameCluster, spate.NameMTLS, jetstream.Name}

// DefaultSystems are the systems run unless told otherwise: all but
// spate-cluster, which tells the cost of TLS from that of a control plane
// when asked for.
var DefaultSystems = []string{spate.Name, spate.NameMTLS, jetstream.Name}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	if c.Spate == "" && slices.ContainsFunc(c.Systems, func(s string) bool { return strings.HasPrefix(s, spate.Name) }) {
		return errors.New("suite: the spate binary is required (-spate bin/spate; make build writes it)")
	}
	if c.Out == "" {
		return errors.New("suite: an output folder is required (-out)")
	}
	if len(c.Systems) == 0 {
		return errors.New("suite: no systems to run")
	}
	for _, s := range c.Systems {
		if !slices.Contains(AllSystems, s) {
			return fmt.Errorf("suite: unknown system %q: use %s", s, strings.Join(AllSystems, ", "))
		}
	}
	return nil
}

// options returns the sizes of a full or a quick run.
func (c Config) options() (scenario.Options, machine.Options) {
	if c.Quick {
		return scenario.Options{Duration: time.Second, LatencyDuration: 2 * time.Second, LatencyRate: 10_000, Handshakes: 100},
			machine.Options{DiskMiB: 256, Syncs: 200, LoopbackBytes: 1 << 30}
	}
	return scenario.Options{Duration: 5 * time.Second, LatencyDuration: 10 * time.Second, LatencyRate: 10_000, Handshakes: 1000},
		machine.Options{DiskMiB: 1024, Syncs: 1000, LoopbackBytes: 4 << 30}
}

// System is a message system under test. One server runs at a time,
// started fresh for each durability mode.
type System interface {
	// Name names the system in reports: spate, spate-cluster, spate-mtls
	// or jetstream.
	Name() string
	// Runs reports whether the system runs scenario s; a system whose
	// plan for a durability mode is empty is not started in that mode.
	Runs(s scenario.Scenario) bool
	// Start starts the server for durability d on an empty data directory.
	Start(ctx context.Context, d scenario.Durability) error
	// ServerPID returns the server process's pid, for memory samples.
	ServerPID() int
	// Run runs one scenario (not Idle) and returns its figures; on error
	// the Result may still name the command that failed.
	Run(ctx context.Context, s scenario.Scenario) (scenario.Result, error)
	// Stop stops the server and deletes its data. It is safe to call when
	// nothing runs.
	Stop()
}

var (
	_ System = (*spate.System)(nil)
	_ System = (*jetstream.System)(nil)
)

// Run runs the benchmark and writes the report.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	started := time.Now()
	work, err := os.MkdirTemp(cfg.WorkDir, "spatebench-")
	if err != nil {
		return fmt.Errorf("suite: make a work directory: %w", err)
	}
	defer os.RemoveAll(work)
	logDir := filepath.Join(work, "logs")
	if cfg.KeepLogs {
		logDir = filepath.Join(cfg.Out, "logs")
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("suite: %w", err)
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return fmt.Errorf("suite: %w", err)
		}
	}

	systems, versions, closeLogs, err := makeSystems(ctx, cfg, work, logDir, logger)
	if err != nil {
		return err
	}
	defer closeLogs()

	so, mo := cfg.options()
	var info machine.Info
	if !cfg.SkipMachine {
		logger.Info("measuring the machine's reference figures", "dir", work)
		info = machine.Measure(ctx, work, mo)
		logger.Info("machine", "disk_write_mb_s", info.DiskWriteMBPerSec, "fdatasync_4k_ms", info.FdatasyncMs, "loopback_mb_s", info.LoopbackMBPerSec, "fs", info.Filesystem)
	}

	var results []scenario.Result
	for _, d := range scenario.Durabilities {
		plan := scenario.Filter(scenario.Plan(d, so), cfg.Only)
		if len(plan) == 0 {
			continue
		}
		for _, sys := range systems {
			rs, err := runSystem(ctx, sys, d, plan, logger)
			results = append(results, rs...)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				logger.Error("system failed", "system", sys.Name(), "durability", d, "err", err)
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var tier *report.Tiered
	if cfg.Tiered && slices.Contains(cfg.Systems, spate.Name) && matchesAny(cfg.Only, tiered.Names) {
		logger.Info("tiered storage: starting versitygw and an SPU with an S3 tier")
		f, err := os.Create(filepath.Join(logDir, "tiered.log"))
		if err != nil {
			return fmt.Errorf("suite: %w", err)
		}
		tier = tiered.Run(ctx, tiered.Config{Spate: cfg.Spate, VersityGW: cfg.VersityGW, WorkDir: work, Log: f,
			Logger: logger.With("system", "spate-tiered"), Quick: cfg.Quick, ProfileDir: cfg.ProfileDir})
		f.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	var sm *report.SmartModules
	if slices.Contains(cfg.Systems, spate.Name) && matchesAny(cfg.Only, smartmodules.Names) {
		logger.Info("smartmodules: consuming through SmartModules on a standalone SPU")
		f, err := os.Create(filepath.Join(logDir, "smartmodules.log"))
		if err != nil {
			return fmt.Errorf("suite: %w", err)
		}
		sm = smartmodules.Run(ctx, smartmodules.Config{Spate: cfg.Spate, WorkDir: work, Log: f,
			Logger: logger.With("system", "spate-smartmodules"), Quick: cfg.Quick})
		f.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	run := report.Run{
		Started:      started,
		Finished:     time.Now(),
		Quick:        cfg.Quick,
		CommandLine:  cfg.CommandLine,
		Machine:      info,
		Versions:     versions,
		Options:      so,
		Results:      results,
		Tiered:       tier,
		SmartModules: sm,
	}
	if err := report.Write(cfg.Out, run); err != nil {
		return err
	}
	logger.Info("wrote the report", "markdown", filepath.Join(cfg.Out, report.MarkdownFile),
		"json", filepath.Join(cfg.Out, report.JSONFile), "took", time.Since(started).Round(time.Second))
	return nil
}

// runSystem starts sys in durability d, runs plan and stops it. A failed
// scenario is recorded with its error and the next one runs, unless the
// server died.
func runSystem(ctx context.Context, sys System, d scenario.Durability, plan []scenario.Scenario, logger *slog.Logger) ([]scenario.Result, error) {
	plan = slices.DeleteFunc(slices.Clone(plan), func(sc scenario.Scenario) bool { return !sys.Runs(sc) })
	if len(plan) == 0 {
		return nil, nil
	}
	logger = logger.With("system", sys.Name(), "durability", d)
	logger.Info("starting the server")
	if err := sys.Start(ctx, d); err != nil {
		return nil, err
	}
	defer sys.Stop()
	var out []scenario.Result
	for _, sc := range plan {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		r, err := runScenario(ctx, sys, sc)
		l := logger.With("scenario", sc.Name())
		switch {
		case err != nil:
			r.Error = err.Error()
			l.Error("scenario failed", "err", err)
		case sc.Kind == scenario.Handshake:
			l.Info("done", "connections", r.Records, "p50_ms", r.P50Ms, "p99_ms", r.P99Ms, "client_cpu_ms", r.ClientCPUMs, "server_cpu_ms", r.ServerCPUMs)
		case sc.Kind == scenario.Latency:
			l.Info("done", "rate", r.RecordsPerSec, "p50_ms", r.P50Ms, "p99_ms", r.P99Ms, "p999_ms", r.P999Ms, "rss_mb", r.RSSMB)
		default:
			l.Info("done", "records_s", r.RecordsPerSec, "mb_s", r.MBPerSec, "rss_mb", r.RSSMB)
		}
		out = append(out, r)
	}
	return out, nil
}

// runScenario runs one scenario while sampling the server's memory; the
// Idle scenario is only the sampling.
func runScenario(ctx context.Context, sys System, sc scenario.Scenario) (scenario.Result, error) {
	pid := sys.ServerPID()
	if sc.Kind == scenario.Idle {
		r := scenario.NewResult(sc, sys.Name())
		select {
		case <-time.After(sc.Duration):
		case <-ctx.Done():
			return r, ctx.Err()
		}
		rss, err := proc.RSS(pid)
		r.RSSMB = mib(rss)
		r.Notes = fmt.Sprintf("VmRSS %s after start, before any topic or stream exists", sc.Duration)
		r.Command = "(idle server)"
		return r, err
	}
	// A scenario that hangs (a bug in a system under test) fails instead of
	// stalling the run.
	limit := 6*sc.Duration + time.Minute
	sctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	sampler := proc.SampleRSS(pid, 100*time.Millisecond)
	r, err := sys.Run(sctx, sc)
	if err != nil && ctx.Err() == nil && sctx.Err() != nil {
		err = fmt.Errorf("did not finish within %s (hung?): %w", limit, err)
	}
	r.Scenario, r.System = sc.Name(), sys.Name() // even when Run failed early
	r.RSSMB = mib(sampler.Stop())
	return r, err
}

func mib(b int64) float64 { return float64(b*10/(1<<20)) / 10 }

// makeSystems builds the selected systems, finding (or installing) their
// tools. It returns the tools' versions for the report and a function
// that closes the log files.
func makeSystems(ctx context.Context, cfg Config, work, logDir string, logger *slog.Logger) ([]System, map[string]string, func(), error) {
	var systems []System
	versions := make(map[string]string)
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	openLog := func(name string) (*os.File, error) {
		f, err := os.Create(filepath.Join(logDir, name))
		if err != nil {
			return nil, fmt.Errorf("suite: %w", err)
		}
		files = append(files, f)
		return f, nil
	}
	for _, name := range AllSystems {
		if !slices.Contains(cfg.Systems, name) {
			continue
		}
		switch name {
		case spate.Name, spate.NameMTLS, spate.NameCluster:
			setup := map[string]spate.Setup{spate.Name: spate.Standalone, spate.NameMTLS: spate.MTLS, spate.NameCluster: spate.ClusterH2C}[name]
			bin, err := proc.LookTool("spate", cfg.Spate, nil, "run `make build` to write bin/spate")
			if err != nil {
				closeAll()
				return nil, nil, nil, err
			}
			logName := "spu.log"
			if setup != spate.Standalone {
				logName = name + "-control-plane.log"
			}
			f, err := openLog(logName)
			if err != nil {
				closeAll()
				return nil, nil, nil, err
			}
			versions["spate"] = toolVersion(ctx, bin, "--version")
			systems = append(systems, spate.New(spate.Config{
				Binary:     bin,
				WorkDir:    work,
				ServerLog:  f,
				Logger:     logger.With("system", name),
				ProfileDir: cfg.ProfileDir,
				Rerun:      "go run ./bench/cmd/spatebench -spate bin/spate -systems " + name + " -only '^%s$'",
				Setup:      setup,
			}))
		case jetstream.Name:
			server, cli, err := natsTools(ctx, cfg, logger)
			if err != nil {
				closeAll()
				return nil, nil, nil, err
			}
			f, err := openLog("nats-server.log")
			if err != nil {
				closeAll()
				return nil, nil, nil, err
			}
			versions["nats-server"] = toolVersion(ctx, server, "--version")
			versions["nats"] = toolVersion(ctx, cli, "--version")
			systems = append(systems, jetstream.New(jetstream.Config{
				Server:    server,
				CLI:       cli,
				WorkDir:   work,
				ServerLog: f,
				Logger:    logger.With("system", jetstream.Name),
			}))
		}
	}
	return systems, versions, closeAll, nil
}

// natsTools returns the paths of nats-server and nats. Unless a tools
// folder was given, it runs the install script, which installs them when
// missing and prints their folder; without the script it looks in the
// script's default folder and on PATH.
func natsTools(ctx context.Context, cfg Config, logger *slog.Logger) (server, cli string, err error) {
	var dirs []string
	switch {
	case cfg.ToolsDir != "":
		dirs = append(dirs, cfg.ToolsDir)
	case cfg.InstallScript != "" && fileExists(cfg.InstallScript):
		logger.Info("installing nats-server and nats if missing", "script", cfg.InstallScript)
		cmd := exec.CommandContext(ctx, cfg.InstallScript)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return "", "", fmt.Errorf("suite: %s: %w (install nats-server and nats yourself and pass -tools DIR)", cfg.InstallScript, err)
		}
		if lines := strings.Fields(strings.TrimSpace(string(out))); len(lines) > 0 {
			dirs = append(dirs, lines[len(lines)-1])
		}
	default:
		if cfg.InstallScript != "" {
			logger.Warn("no install script here: run from the repository's root to install nats-server and nats", "script", cfg.InstallScript)
		}
		if cache, err := os.UserCacheDir(); err == nil {
			dirs = append(dirs, filepath.Join(cache, "spate", "bin"))
		}
	}
	hint := "run infra/scripts/install-bench-tools.sh (go install of nats-server v2.15.2 and natscli v0.5.1), or pass -tools DIR"
	if server, err = proc.LookTool("nats-server", "", dirs, hint); err != nil {
		return "", "", err
	}
	if cli, err = proc.LookTool("nats", "", dirs, hint); err != nil {
		return "", "", err
	}
	return server, cli, nil
}

// matchesAny reports whether re is nil or matches one of names.
func matchesAny(re *regexp.Regexp, names []string) bool {
	return re == nil || slices.ContainsFunc(names, re.MatchString)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// toolVersion returns the first line a tool prints for its version flag.
func toolVersion(ctx context.Context, bin string, args ...string) string {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
