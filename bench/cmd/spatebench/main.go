// Command spatebench runs Spate's benchmark scenarios side by side against
// NATS JetStream and writes bench/RESULTS.md and bench/results.json. `make
// bench` runs it; see bench/RESULTS.md for what it measures and how.
//
//	go run ./bench/cmd/spatebench -spate bin/spate -out bench [-quick]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/spatehq/spate/bench/internal/suite"
)

func main() {
	var cfg suite.Config
	var only, systems, logLevel string
	fl := flag.NewFlagSet("spatebench", flag.ContinueOnError)
	fl.StringVar(&cfg.Spate, "spate", "bin/spate", "the spate binary (make build writes bin/spate)")
	fl.StringVar(&cfg.Out, "out", "bench", "folder for RESULTS.md and results.json")
	fl.StringVar(&cfg.WorkDir, "workdir", "", "parent of the temporary data directories (default: the system's temporary folder; use a real disk, not tmpfs)")
	fl.BoolVar(&cfg.Quick, "quick", false, "run every scenario briefly, for a smoke test (under two minutes)")
	fl.StringVar(&only, "only", "", "run only the scenarios whose name matches this regular expression (and the produce scenarios they read)")
	fl.StringVar(&systems, "systems", strings.Join(suite.DefaultSystems, ","), "comma-separated systems to run, of "+strings.Join(suite.AllSystems, ", ")+" (spate-cluster: h2c under a control plane, to tell TLS from the control plane)")
	fl.StringVar(&cfg.ToolsDir, "tools", "", "folder with nats-server and nats (default: run -install-script, which installs them if missing)")
	fl.StringVar(&cfg.InstallScript, "install-script", "infra/scripts/install-bench-tools.sh", "script that installs nats-server and nats and prints their folder")
	fl.StringVar(&cfg.ProfileDir, "profile", "", "write CPU profiles of the SPU and of the Spate client per scenario into this folder")
	fl.BoolVar(&cfg.SkipMachine, "skip-machine", false, "skip the machine's reference figures (dd, fdatasync, loopback)")
	fl.BoolVar(&cfg.KeepLogs, "keep-logs", false, "keep the servers' logs in OUT/logs")
	fl.BoolVar(&cfg.Tiered, "tiered", true, "run the tiered-storage scenarios against a Versity S3 Gateway (with -systems including spate)")
	defGW := os.Getenv("SPATE_VERSITYGW")
	if defGW == "" {
		defGW = ".cache/bin/versitygw"
	}
	fl.StringVar(&cfg.VersityGW, "versitygw", defGW, "the versitygw binary of the tiered-storage scenarios (infra/scripts/install-versitygw.sh installs it; default $SPATE_VERSITYGW or .cache/bin/versitygw)")
	fl.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := fl.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "spatebench: -log-level %q: use debug, info, warn or error\n", logLevel)
		os.Exit(2)
	}
	if only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			fmt.Fprintf(os.Stderr, "spatebench: -only: %v\n", err)
			os.Exit(2)
		}
		cfg.Only = re
	}
	for s := range strings.SplitSeq(systems, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Systems = append(cfg.Systems, s)
		}
	}
	cfg.CommandLine = "spatebench " + strings.Join(os.Args[1:], " ")
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := suite.Run(ctx, cfg, logger); err != nil {
		logger.Error("benchmark failed", "err", err)
		stop()
		os.Exit(1)
	}
}
