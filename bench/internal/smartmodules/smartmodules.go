// Package smartmodules measures consumes through SmartModules on the SPU,
// side by side with the same consume without one: a standalone SPU
// process, one partition of 100-byte JSON records, and a consumer from the
// beginning to the end with no module, with a trivial filter that keeps
// every record, with the JSON filter keeping 1% and with a trivial filter
// keeping 1%. The figure compared is the stored records moved per second
// (those the chain reads, whether or not it keeps them): a filter that
// keeps 1% sends a hundredth of the bytes, so it should move records much
// faster than a plain consume.
package smartmodules

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spatehq/spate/bench/internal/proc"
	"github.com/spatehq/spate/bench/internal/report"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/smartmodule/build"
)

// Names are the names of the scenarios, for the suite's -only filter.
var Names = []string{"smartmodule-consume"}

// Config configures a run.
type Config struct {
	// Spate is the spate binary.
	Spate string
	// WorkDir holds the SPU's data and the built modules.
	WorkDir string
	// Log receives the SPU's output.
	Log    io.Writer
	Logger *slog.Logger
	// Quick produces fewer records.
	Quick bool
}

// recordBytes is the size of each value.
const recordBytes = 100

// Run measures the scenarios. Errors are in the result.
func Run(ctx context.Context, cfg Config) *report.SmartModules {
	res := &report.SmartModules{RecordBytes: recordBytes, Records: 2_000_000}
	if cfg.Quick {
		res.Records = 200_000
	}
	if err := run(ctx, cfg, res); err != nil {
		res.Error = err.Error()
		cfg.Logger.Error("smartmodule scenarios failed", "err", err)
	}
	return res
}

func run(ctx context.Context, cfg Config, res *report.SmartModules) error {
	dir, err := os.MkdirTemp(cfg.WorkDir, "spate-smartmodules-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The modules, built from the examples' sources.
	_, file, _, _ := runtime.Caller(0)
	examples := filepath.Join(filepath.Dir(file), "..", "..", "..", "smartmodule", "examples")
	wasm := map[string][]byte{}
	for _, name := range []string{"keepall", "jsonfilter", "keep1pct"} {
		out := filepath.Join(dir, name+".wasm")
		if err := build.Build(ctx, filepath.Join(examples, name), out); err != nil {
			return fmt.Errorf("build %s: %w", name, err)
		}
		if wasm[name], err = os.ReadFile(out); err != nil {
			return err
		}
	}

	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	args := []string{"spu", "serve", "--addr", addr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn"}
	p, err := proc.Start(proc.Spec{Path: cfg.Spate, Args: args, Log: cfg.Log})
	if err != nil {
		return err
	}
	defer p.Stop()
	if err := proc.WaitListening(ctx, p, addr, 30*time.Second); err != nil {
		return err
	}
	res.SPU = "spate spu serve --addr 127.0.0.1:PORT --data-dir DIR --log-level warn"
	c, err := client.New(client.WithSPU("http://"+addr), client.WithLogger(cfg.Logger))
	if err != nil {
		return err
	}
	defer c.Close()
	const topic = "smartmodules"
	if _, err := c.EnsurePartition(ctx, topic, 0, client.PartitionConfig{Durability: client.DurabilityWrite, Retention: -1}); err != nil {
		return err
	}
	if err := produce(ctx, c, topic, res.Records); err != nil {
		return err
	}

	params := func(kv ...string) []client.TransformParam {
		var ps []client.TransformParam
		for i := 0; i+1 < len(kv); i += 2 {
			ps = append(ps, client.TransformParam{Name: kv[i], Value: kv[i+1]})
		}
		return ps
	}
	cases := []struct {
		name, module string
		t            *client.Transform
	}{
		{"no module", "", nil},
		{"filter keeping all", "keepall", &client.Transform{Wasm: wasm["keepall"], Kind: "filter"}},
		{"JSON filter keeping 1%", "jsonfilter (level = error)", &client.Transform{Wasm: wasm["jsonfilter"], Kind: "filter", Params: params("field", "level", "equals", "error")}},
		{"filter keeping 1%", "keep1pct", &client.Transform{Wasm: wasm["keep1pct"], Kind: "filter"}},
	}
	// A first plain consume warms the page cache.
	if _, _, err := consume(ctx, c, topic, nil); err != nil {
		return err
	}
	for _, cs := range cases {
		var best report.SmartModuleCase
		for range 2 {
			start := time.Now()
			out, bytes, err := consume(ctx, c, topic, cs.t)
			if err != nil {
				return fmt.Errorf("%s: %w", cs.name, err)
			}
			secs := time.Since(start).Seconds()
			rc := report.SmartModuleCase{
				Name: cs.name, Module: cs.module, Seconds: secs, OutRecords: out, OutValueBytes: bytes,
				RecordsPerSec: float64(res.Records) / secs,
				StoredMBps:    float64(res.Records) * recordBytes / secs / 1e6,
			}
			if rc.RecordsPerSec > best.RecordsPerSec {
				best = rc
			}
		}
		cfg.Logger.Info("smartmodule consume", "case", best.Name, "records_per_sec", int64(best.RecordsPerSec), "out_records", best.OutRecords)
		res.Cases = append(res.Cases, best)
	}
	base := res.Cases[0].RecordsPerSec
	for i := range res.Cases {
		res.Cases[i].VsPlain = res.Cases[i].RecordsPerSec / base
	}
	return nil
}

// produce writes n JSON values of recordBytes bytes; one in a hundred has
// level "error".
func produce(ctx context.Context, c *client.Client, topic string, n int64) error {
	p, err := c.NewProducer(ctx, topic, client.WithBatchBytes(256<<10))
	if err != nil {
		return err
	}
	defer p.Close()
	for i := range n {
		level := "info "
		if i%100 == 0 {
			level = "error"
		}
		v := fmt.Appendf(nil, `{"level":%q,"n":%12d,"pad":"`, level, i)
		for len(v) < recordBytes-2 {
			v = append(v, 'x')
		}
		v = append(v, '"', '}')
		p.Produce(ctx, client.Record{Value: v}, nil)
	}
	return p.Flush(ctx)
}

// consume reads topic from the beginning to its end through t (none when
// nil) and returns the records and value bytes received.
func consume(ctx context.Context, c *client.Client, topic string, t *client.Transform) (records, bytes int64, err error) {
	opts := []client.ConsumeOption{client.WithStart(client.Beginning()), client.WithStopAtEnd()}
	if t != nil {
		opts = append(opts, client.WithSmartModules(*t))
	}
	cons, err := c.Consume(ctx, topic, opts...)
	if err != nil {
		return 0, 0, err
	}
	defer cons.Close()
	for {
		recs, err := cons.NextBatch(ctx)
		if errors.Is(err, io.EOF) {
			return records, bytes, nil
		}
		if err != nil {
			return records, bytes, err
		}
		records += int64(len(recs))
		for i := range recs {
			bytes += int64(len(recs[i].Value))
		}
	}
}
