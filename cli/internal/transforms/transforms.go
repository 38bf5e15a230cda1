// Package transforms holds the SmartModule flags that `spate consume` and
// `spate produce` share, and reads transforms files.
//
// One module comes from the flags: a registry name with its kind
// (--filter NAME, --map, --filter-map, --array-map, --aggregate, or
// --smartmodule NAME for any kind) or a local file (--smartmodule-path
// F.wasm, with --smartmodule-kind K to check its kind); -e name=value
// gives it parameters, in order, and --aggregate-initial an aggregate's
// first accumulator. A chain of several modules comes from a transforms
// file (--transforms-file F), in YAML:
//
//	transforms:
//	  - uses: acme/json-filter@1.0.0   # a module of the registry
//	    kind: filter                   # optional: refuse a module of another kind
//	    with:                          # parameters, in this order
//	      field: level
//	      equals: error
//	  - path: uppercase.wasm           # a local file, relative to the transforms file
//	  - uses: acme/sum
//	    initial: "100"                 # an aggregate's initial accumulator
//
// The file and the module flags exclude each other.
package transforms

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/client"
)

// Flags are the SmartModule flags of one command.
type Flags struct {
	// By kind: the registry name given to --filter, --map, ...
	Filter, Map, FilterMap, ArrayMap, Aggregate string
	// Any is --smartmodule NAME: a registry module of any kind.
	Any string
	// Path and Kind are --smartmodule-path and --smartmodule-kind.
	Path, Kind string
	// Params are the -e name=value flags, in order.
	Params []string
	// Initial is --aggregate-initial.
	Initial    string
	hasInitial bool
	// File is --transforms-file.
	File string
}

// Help is the paragraph of long help the commands add about these flags.
const Help = `SmartModules (WebAssembly modules from the registry, see
` + "`spate smartmodule`" + `, or a local .wasm file) run on the SPU, in order: --filter,
--map, --filter-map, --array-map or --aggregate NAME (a registry module of
that kind; "group/name" is its highest version, "group/name@1.2.0" one
version), --smartmodule NAME (any kind), or --smartmodule-path F.wasm. -e
name=value passes parameters to the module, --aggregate-initial the
aggregate's first accumulator. A chain of several modules comes from a
YAML --transforms-file:

  transforms:
    - uses: acme/json-filter@1.0.0
      with: {field: level, equals: error}
    - path: uppercase.wasm
    - uses: acme/sum
      initial: "0"`

// Register adds the flags to cmd.
func (f *Flags) Register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.Filter, "filter", "", "run the registry's filter SmartModule `NAME` (group/name[@version])")
	fl.StringVar(&f.Map, "map", "", "run the registry's map SmartModule `NAME`")
	fl.StringVar(&f.FilterMap, "filter-map", "", "run the registry's filter-map SmartModule `NAME`")
	fl.StringVar(&f.ArrayMap, "array-map", "", "run the registry's array-map SmartModule `NAME`")
	fl.StringVar(&f.Aggregate, "aggregate", "", "run the registry's aggregate SmartModule `NAME`")
	fl.StringVar(&f.Any, "smartmodule", "", "run the registry's SmartModule `NAME`, whatever its kind")
	fl.StringVar(&f.Path, "smartmodule-path", "", "run the SmartModule in this local `FILE` (.wasm), unregistered")
	fl.StringVar(&f.Kind, "smartmodule-kind", "", "with --smartmodule-path: refuse a module not of this kind (filter, map, filter-map, array-map, aggregate)")
	fl.StringArrayVarP(&f.Params, "param", "e", nil, "parameter of the SmartModule, `name=value` (repeatable, in order)")
	fl.StringVar(&f.Initial, "aggregate-initial", "", "initial accumulator of the aggregate SmartModule")
	fl.StringVar(&f.File, "transforms-file", "", "YAML `FILE` with a chain of SmartModules (transforms: [{uses|path, kind, with, initial}])")
	cmd.MarkFlagsMutuallyExclusive("filter", "map", "filter-map", "array-map", "aggregate", "smartmodule", "smartmodule-path", "transforms-file")
	cmd.MarkFlagsMutuallyExclusive("transforms-file", "param")
	cmd.MarkFlagsMutuallyExclusive("transforms-file", "aggregate-initial")
	cmd.MarkFlagsMutuallyExclusive("transforms-file", "smartmodule-kind")
}

// Modules returns the chain the flags ask for, nil for none. cmd tells
// which flags were set.
func (f *Flags) Modules(cmd *cobra.Command) ([]client.Transform, error) {
	f.hasInitial = cmd.Flags().Changed("aggregate-initial")
	if f.File != "" {
		b, err := os.ReadFile(f.File)
		if err != nil {
			return nil, err
		}
		return Parse(b, filepath.Dir(f.File))
	}
	var m client.Transform
	for _, k := range []struct{ name, kind string }{
		{f.Filter, "filter"}, {f.Map, "map"}, {f.FilterMap, "filter-map"},
		{f.ArrayMap, "array-map"}, {f.Aggregate, "aggregate"}, {f.Any, ""},
	} {
		if k.name != "" {
			m.Name, m.Kind = k.name, k.kind
		}
	}
	if f.Path != "" {
		wasm, err := os.ReadFile(f.Path)
		if err != nil {
			return nil, err
		}
		m.Wasm, m.Kind = wasm, f.Kind
	} else if f.Kind != "" {
		return nil, cmdutil.Usagef("--smartmodule-kind applies to --smartmodule-path only")
	}
	if m.Name == "" && m.Wasm == nil {
		if len(f.Params) > 0 || f.hasInitial {
			return nil, cmdutil.Usagef("-e and --aggregate-initial need a SmartModule (--filter, --map, ..., --smartmodule-path)")
		}
		return nil, nil
	}
	for _, p := range f.Params {
		name, value, err := ParseParam(p)
		if err != nil {
			return nil, err
		}
		m.Params = append(m.Params, client.TransformParam{Name: name, Value: value})
	}
	if f.hasInitial {
		m.InitialAccumulator = []byte(f.Initial)
	}
	return []client.Transform{m}, nil
}

// file is a transforms file.
type file struct {
	Transforms []step `yaml:"transforms"`
}

// step is one module of a transforms file.
type step struct {
	Uses    string    `yaml:"uses"`
	Path    string    `yaml:"path"`
	Kind    string    `yaml:"kind"`
	With    yaml.Node `yaml:"with"`
	Initial *string   `yaml:"initial"`
}

// Parse reads a transforms file; relative paths are relative to dir.
func Parse(b []byte, dir string) ([]client.Transform, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("transforms file: %w", err)
	}
	if len(f.Transforms) == 0 {
		return nil, errors.New("transforms file: it lists no transforms (transforms: [{uses: group/name}, ...])")
	}
	var out []client.Transform
	for i, s := range f.Transforms {
		where := fmt.Sprintf("transforms file: transform %d", i+1)
		var m client.Transform
		switch {
		case s.Uses != "" && s.Path != "":
			return nil, fmt.Errorf("%s: give uses or path, not both", where)
		case s.Uses != "":
			m.Name = s.Uses
		case s.Path != "":
			p := s.Path
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			wasm, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			m.Wasm = wasm
		default:
			return nil, fmt.Errorf("%s: give uses (a registry module) or path (a .wasm file)", where)
		}
		m.Kind = s.Kind
		if s.Initial != nil {
			m.InitialAccumulator = []byte(*s.Initial)
		}
		switch s.With.Kind {
		case 0:
		case yaml.MappingNode:
			for j := 0; j+1 < len(s.With.Content); j += 2 {
				k, v := s.With.Content[j], s.With.Content[j+1]
				if v.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s: parameter %q: give a single value", where, k.Value)
				}
				m.Params = append(m.Params, client.TransformParam{Name: k.Value, Value: v.Value})
			}
		default:
			return nil, fmt.Errorf("%s: with: give parameters as name: value", where)
		}
		out = append(out, m)
	}
	return out, nil
}

// ParseParam splits one -e flag, "name=value"; the value may be empty and
// may hold '='. A flag without '=' or with an empty name is a usage error.
func ParseParam(flag string) (name, value string, err error) {
	name, value, ok := strings.Cut(flag, "=")
	if !ok || name == "" {
		return "", "", cmdutil.Usagef("-e %q: write name=value", flag)
	}
	return name, value, nil
}
