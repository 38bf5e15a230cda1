// Package smartmodulecmd implements `spate smartmodule`: build a
// SmartModule from Go sources, run one locally on given records, and
// create, list, describe and delete modules in the registry of the
// caller's tenant.
package smartmodulecmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/build"
)

// maxWasmBytes is the largest module the registry accepts (32 MiB).
const maxWasmBytes = 32 << 20

// NewCmdSmartModule returns `spate smartmodule`.
func NewCmdSmartModule(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "smartmodule",
		Aliases: []string{"sm"},
		Short:   "Build, test and manage SmartModules in your tenant's registry",
		Long: `A SmartModule is a WebAssembly module that filters, maps or aggregates records
inline in a stream, on the SPU, so that only what a consumer needs crosses the
network. Write one in Go with the SDK in github.com/spatehq/spate/smartmodule,
build it, and create it in the registry: every cluster of your tenant can then
run it by name.

Names are "group/name"; each version ("group/name@1.2.0") never changes once
created. "group/name" alone means its highest version.`,
		Example: `  spate smartmodule build ./my-filter -o my-filter.wasm
  spate smartmodule test --wasm-file my-filter.wasm -e field=level -e equals=error --text '{"level":"error"}'
  spate smartmodule create acme/my-filter --wasm-file my-filter.wasm --version 1.0.0
  spate smartmodule list
  spate smartmodule describe acme/my-filter
  spate consume events --filter acme/my-filter -e field=level -e equals=error
  spate smartmodule delete acme/my-filter@1.0.0`,
	}
	cmd.AddCommand(newCmdBuild(f), newCmdCreate(f), newCmdList(f), newCmdDescribe(f), newCmdDelete(f), newCmdTest(f))
	return cmd
}

// BuildOptions are the flags of `spate smartmodule build`.
type BuildOptions struct {
	// Dir is the Go package main of the module; default ".".
	Dir string
	// Out is the .wasm file to write; default <folder name>.wasm in the
	// current folder.
	Out string
}

func newCmdBuild(f *cmdutil.Factory) *cobra.Command {
	opts := &BuildOptions{}
	cmd := &cobra.Command{
		Use:   "build [DIR] [-o FILE.wasm]",
		Short: "Build a SmartModule from a Go package",
		Long: `Build compiles the Go package main in DIR (default: the current folder) into a
SmartModule with the Go toolchain on your PATH (Go 1.24 or later), then checks
that it exports exactly one kind. It runs the equivalent of

  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o FILE.wasm .`,
		Example: "  spate smartmodule build ./json-filter -o json-filter.wasm\n  spate smartmodule build",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			return runBuild(cmd.Context(), f, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Out, "output", "o", "", "the .wasm file to write (default: the folder's name, .wasm)")
	return cmd
}

func runBuild(ctx context.Context, f *cmdutil.Factory, opts *BuildOptions) error {
	dir := opts.Dir
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return cmdutil.Usagef("%s is not a folder with a Go package main", dir)
	}
	out := opts.Out
	if out == "" {
		out = filepath.Base(abs) + ".wasm"
	}
	if err := build.Build(ctx, abs, out); err != nil {
		return err
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	info, err := abi.Inspect(wasm)
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.Out, "built %s: a %s SmartModule, %s\n", out, info.Kind, sizeText(int64(len(wasm))))
	fmt.Fprintf(f.IO.ErrOut, "Create it in the registry with `spate smartmodule create GROUP/NAME --wasm-file %s`.\n", out)
	return nil
}

// CreateOptions are the flags of `spate smartmodule create`.
type CreateOptions struct {
	Name        string
	WasmFile    string
	Version     string
	Description string
}

func newCmdCreate(f *cmdutil.Factory) *cobra.Command {
	opts := &CreateOptions{}
	cmd := &cobra.Command{
		Use:   "create NAME --wasm-file FILE [--version V]",
		Short: "Upload a SmartModule to your tenant's registry",
		Long: `Create validates a module and stores it in the registry of your tenant under
NAME ("group/name", lower-case letters, digits and '-', each starting with a
letter) and a semantic version (default 0.1.0). The control plane refuses, with
the reason, a file that is not WebAssembly, that exports no SmartModule kind or
several, or that was built for another ABI version. A version never changes:
creating one that exists fails with exit code 5.`,
		Example: `  spate smartmodule create acme/json-filter --wasm-file json-filter.wasm --version 1.0.0
  spate smartmodule create acme/json-filter@1.1.0 --wasm-file json-filter.wasm --description "keeps matching JSON records"`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			return runCreate(cmd.Context(), f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.WasmFile, "wasm-file", "", "the module's .wasm file (required)")
	fl.StringVar(&opts.Version, "version", "", "the module's semantic version (default 0.1.0, or the version in NAME@VERSION)")
	fl.StringVar(&opts.Description, "description", "", "what the module does, shown by describe")
	_ = cmd.MarkFlagFilename("wasm-file", "wasm")
	return cmd
}

func runCreate(ctx context.Context, f *cmdutil.Factory, opts *CreateOptions) error {
	if opts.WasmFile == "" {
		return cmdutil.Usagef("give the module with --wasm-file FILE.wasm (build one with `spate smartmodule build`)")
	}
	fi, err := os.Stat(opts.WasmFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return cmdutil.Usagef("--wasm-file %s: no such file", opts.WasmFile)
	case err != nil:
		return cmdutil.Usagef("--wasm-file %s: %v", opts.WasmFile, err)
	case fi.IsDir():
		return cmdutil.Usagef("--wasm-file %s is a folder; build it first with `spate smartmodule build %s`", opts.WasmFile, opts.WasmFile)
	case fi.Size() > maxWasmBytes:
		return cmdutil.Usagef("--wasm-file %s is %s; the registry accepts at most 32 MiB", opts.WasmFile, sizeText(fi.Size()))
	}
	wasm, err := os.ReadFile(opts.WasmFile)
	if err != nil {
		return cmdutil.Usagef("--wasm-file %s: %v", opts.WasmFile, err)
	}
	c, err := f.AdminClient("smartmodule create")
	if err != nil {
		return err
	}
	m, err := c.CreateSmartModule(ctx, client.SmartModuleSpec{Name: opts.Name, Version: opts.Version, Wasm: wasm, Description: opts.Description})
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.Out, "SmartModule %s created (%s, %s, %s)\n", m.Ref(), m.Kind, sizeText(m.SizeBytes), m.Digest)
	return nil
}

func newCmdList(f *cmdutil.Factory) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List your tenant's SmartModules, every version",
		Example: "  spate smartmodule list\n  spate smartmodule list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			c, err := f.AdminClient("smartmodule list")
			if err != nil {
				return err
			}
			all, err := c.ListSmartModules(cmd.Context())
			if err != nil {
				return err
			}
			return out.Write(f.IO.Out, all, func() error {
				if len(all) == 0 {
					fmt.Fprintln(f.IO.ErrOut, "No SmartModules. Create one with `spate smartmodule create GROUP/NAME --wasm-file FILE.wasm`.")
					return nil
				}
				rows := make([][]string, 0, len(all))
				for _, m := range all {
					rows = append(rows, []string{m.Name, m.Version, m.Kind, sizeText(m.SizeBytes), when(m.CreatedAt), shortDigest(m.Digest)})
				}
				return format.WriteTable(f.IO.Out, []string{"NAME", "VERSION", "KIND", "SIZE", "CREATED", "DIGEST"}, rows)
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newCmdDescribe(f *cmdutil.Factory) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "describe NAME[@VERSION]",
		Short:   "Show a SmartModule: its highest version, or the one named",
		Example: "  spate smartmodule describe acme/json-filter\n  spate smartmodule describe acme/json-filter@1.0.0 -o yaml",
		Args:    oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			c, err := f.AdminClient("smartmodule describe")
			if err != nil {
				return err
			}
			m, err := c.DescribeSmartModule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return out.Write(f.IO.Out, m, func() error {
				w := f.IO.Out
				line := func(label, value string) { fmt.Fprintf(w, "%-13s%s\n", label+":", value) }
				line("Name", m.Name)
				line("Version", m.Version)
				line("Kind", m.Kind)
				line("Size", sizeText(m.SizeBytes)+" ("+strconv.FormatInt(m.SizeBytes, 10)+" bytes)")
				line("Digest", m.Digest)
				line("ABI version", strconv.Itoa(int(m.ABIVersion)))
				if m.Description != "" {
					line("Description", m.Description)
				}
				line("Created", when(m.CreatedAt))
				if m.CreatedBy != "" {
					line("Created by", m.CreatedBy)
				}
				return nil
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newCmdDelete(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME[@VERSION]...",
		Aliases: []string{"rm"},
		Short:   "Delete a version of a SmartModule, or every version of it",
		Long: `Delete removes NAME@VERSION, or every version of NAME when no version is given.
Streams already running a deleted module go on with it.`,
		Example: "  spate smartmodule delete acme/json-filter@1.0.0\n  spate smartmodule delete acme/json-filter",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.AdminClient("smartmodule delete")
			if err != nil {
				return err
			}
			for _, ref := range args {
				deleted, err := c.DeleteSmartModule(cmd.Context(), ref)
				if err != nil {
					return err
				}
				for _, m := range deleted {
					fmt.Fprintf(f.IO.Out, "SmartModule %s deleted\n", m.Ref())
				}
			}
			return nil
		},
	}
}

func oneName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cmdutil.Usagef("`%s` takes one SmartModule name (group/name or group/name@version), got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}

func addOutputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", "table", "table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

// sizeText writes a byte count for people: 812 B, 1.4 MiB.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + suffix
}

// shortDigest shortens "sha256:<64 hex>" to its first 12 hex digits, as
// container tools do.
func shortDigest(d string) string {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) < 12 {
		return d
	}
	return h[:12]
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}
