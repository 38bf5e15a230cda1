package smartmodulecmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/transforms"
	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine"
)

// TestOptions are the flags of `spate smartmodule test`.
type TestOptions struct {
	// Name is a registry module; WasmFile a local one. Exactly one is set.
	Name     string
	WasmFile string
	// Params are -e name=value, in order.
	Params []string
	// Initial is --aggregate-initial; HasInitial says it was given.
	Initial    string
	HasInitial bool
	// Texts are --text values, one record each; File is --file, one record
	// a line ("-" for standard input). Neither: standard input.
	Texts []string
	File  string
	// Key is --key: every input record's key.
	Key string
	// Verbose prints offsets and keys too.
	Verbose bool
}

func newCmdTest(f *cmdutil.Factory) *cobra.Command {
	opts := &TestOptions{}
	cmd := &cobra.Command{
		Use:   "test [NAME] [--wasm-file FILE] [--text T]... [--file F]",
		Short: "Run a SmartModule here, on records you give, and print what it emits",
		Long: `Test runs a SmartModule in this process, with the same engine and limits as the
SPU, on records you give: each --text is one record, or each line of --file (or
of standard input, when neither is given). It prints each record the module
emits, one a line; with --verbose, each with the offset of the input record it
came from and its key. A module that fails prints the module's own message and
the offset of the record, and the command exits with status 1.

The module is a local file (--wasm-file) or a module of your tenant's registry
(NAME, downloaded from the control plane). Input records get offsets 0, 1, ...
and the current time as timestamp.`,
		Example: `  spate smartmodule test --wasm-file json-filter.wasm -e field=level -e equals=error \
    --text '{"level":"error"}' --text '{"level":"info"}'
  spate smartmodule test acme/sum@1.0.0 --aggregate-initial 100 --file numbers.txt
  tail -f app.log | spate smartmodule test --wasm-file uppercase.wasm`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Name = args[0]
			}
			opts.HasInitial = cmd.Flags().Changed("aggregate-initial")
			return runTest(cmd.Context(), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.WasmFile, "wasm-file", "", "a local module `FILE` (.wasm) instead of a registry NAME")
	fl.StringArrayVarP(&opts.Params, "param", "e", nil, "parameter of the module, `name=value` (repeatable, in order)")
	fl.StringVar(&opts.Initial, "aggregate-initial", "", "initial accumulator of an aggregate module")
	fl.StringArrayVar(&opts.Texts, "text", nil, "a record's value (repeatable)")
	fl.StringVar(&opts.File, "file", "", "read records from `FILE`, one a line (\"-\": standard input)")
	fl.StringVar(&opts.Key, "key", "", "the key of every input record (default: none)")
	fl.BoolVarP(&opts.Verbose, "verbose", "v", false, "print each output's offset and key")
	_ = cmd.MarkFlagFilename("wasm-file", "wasm")
	cmd.MarkFlagsMutuallyExclusive("text", "file")
	return cmd
}

func runTest(ctx context.Context, f *cmdutil.Factory, opts *TestOptions) error {
	var params []abi.Param
	for _, p := range opts.Params {
		name, value, err := transforms.ParseParam(p)
		if err != nil {
			return err
		}
		params = append(params, abi.Param{Name: name, Value: value})
	}
	wasm, label, err := testModule(ctx, f, opts)
	if err != nil {
		return err
	}
	input, err := testInput(f, opts)
	if err != nil {
		return err
	}

	cfg := engine.Config{}
	if dir, err := os.UserCacheDir(); err == nil {
		cfg.CacheDir = filepath.Join(dir, "spate", "smartmodule-compiled")
	}
	e, err := engine.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer e.Close(context.WithoutCancel(ctx))
	m, err := e.Compile(ctx, wasm)
	if err != nil {
		return cmdutil.Usagef("%s: %v", label, err)
	}
	spec := engine.Spec{Module: m, Name: label, Params: params}
	if opts.HasInitial {
		if m.Kind() != abi.KindAggregate {
			return cmdutil.Usagef("--aggregate-initial: %s is a %s, not an aggregate", label, m.Kind())
		}
		spec.InitialAccumulator = []byte(opts.Initial)
	}
	chain, err := e.NewChain(ctx, spec)
	if err != nil {
		return err
	}
	defer chain.Close(context.WithoutCancel(ctx))
	out, err := chain.Process(ctx, input, nil)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f.IO.Out)
	for _, r := range out {
		if opts.Verbose {
			key := "null"
			if r.Key != nil {
				key = fmt.Sprintf("%q", r.Key)
			}
			fmt.Fprintf(w, "[%d] key=%s ", r.Offset, key)
		}
		w.Write(r.Value)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if opts.Verbose {
		fmt.Fprintf(f.IO.ErrOut, "%s (%s): %d records in, %d out\n", label, m.Kind(), len(input), len(out))
	}
	return nil
}

// testModule reads the module to test and names it for messages.
func testModule(ctx context.Context, f *cmdutil.Factory, opts *TestOptions) (wasm []byte, label string, err error) {
	switch {
	case opts.Name != "" && opts.WasmFile != "":
		return nil, "", cmdutil.Usagef("give a registry NAME or --wasm-file, not both")
	case opts.WasmFile != "":
		wasm, err := os.ReadFile(opts.WasmFile)
		if err != nil {
			return nil, "", cmdutil.Usagef("--wasm-file: %v", err)
		}
		return wasm, filepath.Base(opts.WasmFile), nil
	case opts.Name != "":
		c, err := f.AdminClient("smartmodule test")
		if err != nil {
			return nil, "", err
		}
		sm, wasm, err := c.DownloadSmartModule(ctx, opts.Name)
		if err != nil {
			return nil, "", err
		}
		return wasm, sm.Ref(), nil
	}
	return nil, "", cmdutil.Usagef("name a module of the registry, or a local one with --wasm-file FILE")
}

// testInput returns the records to run the module on.
func testInput(f *cmdutil.Factory, opts *TestOptions) ([]batch.Record, error) {
	var values [][]byte
	for _, t := range opts.Texts {
		values = append(values, []byte(t))
	}
	if len(opts.Texts) == 0 {
		var in io.Reader = f.IO.In
		if opts.File != "" && opts.File != "-" {
			file, err := os.Open(opts.File)
			if err != nil {
				return nil, cmdutil.Usagef("--file: %v", err)
			}
			defer file.Close()
			in = file
		}
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			values = append(values, append([]byte(nil), sc.Bytes()...))
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return nil, cmdutil.Usagef("a line is longer than 16 MiB")
			}
			return nil, err
		}
	}
	now := time.Now().UnixMilli()
	var key []byte
	if opts.Key != "" {
		key = []byte(opts.Key)
	}
	recs := make([]batch.Record, len(values))
	for i, v := range values {
		recs[i] = batch.Record{Offset: int64(i), Timestamp: now, Key: key, Value: v}
	}
	return recs, nil
}
