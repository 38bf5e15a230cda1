package abi

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors of Inspect. Each is wrapped with the details.
var (
	// ErrNotWasm: the bytes are not a WebAssembly binary module.
	ErrNotWasm = errors.New("abi: not a WebAssembly module")
	// ErrNoKind: the module exports no SmartModule function of a known kind,
	// or more than one.
	ErrNoKind = errors.New("abi: not a SmartModule")
	// ErrVersion: the module is a SmartModule of an ABI version this host
	// does not implement.
	ErrVersion = errors.New("abi: unsupported SmartModule ABI version")
)

// Info is what Inspect learns from a module's export section.
type Info struct {
	Kind    Kind
	Version int
	// Exports lists the names of the module's exported functions.
	Exports []string
}

// Inspect reads the export section of a WebAssembly module and tells which
// kind of SmartModule it is. It does not compile or run anything: it is
// cheap enough to run on every upload. It refuses (with the errors above) a
// module that is not WebAssembly, that exports no kind function or several,
// that lacks memory, alloc or init, or whose exports are of another ABI
// version.
func Inspect(wasm []byte) (Info, error) {
	funcs, memory, err := exports(wasm)
	if err != nil {
		return Info{}, err
	}
	info := Info{Exports: funcs}
	var kinds []string
	versions := map[string]bool{}
	for _, name := range funcs {
		rest, ok := strings.CutPrefix(name, exportPrefix)
		if !ok {
			continue
		}
		if v, _, ok := strings.Cut(rest, "_"); ok {
			versions[v] = true
		}
		for _, k := range Kinds {
			if name == k.Export() {
				info.Kind = k
				kinds = append(kinds, k.String())
			}
		}
	}
	delete(versions, "1")
	switch {
	case len(kinds) == 0 && len(versions) > 0:
		vs := make([]string, 0, len(versions))
		for v := range versions {
			vs = append(vs, v)
		}
		slices.Sort(vs)
		return Info{}, fmt.Errorf("%w: the module is built for ABI version %s; this host implements version %d (rebuild it with this release's SDK)", ErrVersion, strings.Join(vs, ", "), Version)
	case len(kinds) == 0:
		return Info{}, fmt.Errorf("%w: it exports none of %s (build it with the SDK in github.com/spatehq/spate/smartmodule)", ErrNoKind, kindExports())
	case len(kinds) > 1:
		return Info{}, fmt.Errorf("%w: it exports functions of several kinds (%s); a module has exactly one", ErrNoKind, strings.Join(kinds, ", "))
	}
	var missing []string
	for _, name := range []string{ExportAlloc, ExportInit} {
		if !slices.Contains(funcs, name) {
			missing = append(missing, name)
		}
	}
	if !memory {
		missing = append(missing, "memory \""+ExportMemory+"\"")
	}
	if len(missing) > 0 {
		return Info{}, fmt.Errorf("%w: a %s module must also export %s", ErrNoKind, info.Kind, strings.Join(missing, " and "))
	}
	info.Version = Version
	return info, nil
}

func kindExports() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = k.Export()
	}
	return strings.Join(names, ", ")
}

var wasmHeader = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

// exports walks the module's sections and returns the names of its
// exported functions and whether it exports a memory named "memory".
func exports(wasm []byte) (funcs []string, memory bool, err error) {
	if !bytes.HasPrefix(wasm, wasmHeader) {
		if bytes.HasPrefix(wasm, wasmHeader[:4]) {
			return nil, false, fmt.Errorf("%w: binary format version %x, want 1", ErrNotWasm, wasm[4:min(8, len(wasm))])
		}
		return nil, false, fmt.Errorf("%w: it does not start with \\0asm (is it a .wat text file or something else?)", ErrNotWasm)
	}
	p := parser{buf: wasm[len(wasmHeader):]}
	for len(p.buf) > 0 && p.err == nil {
		id := p.byte()
		size := p.uleb()
		if p.err != nil {
			break
		}
		if size > uint64(len(p.buf)) {
			p.fail(fmt.Sprintf("section %d of %d bytes with %d left", id, size, len(p.buf)))
			break
		}
		body := p.buf[:size]
		p.buf = p.buf[size:]
		if id != 7 { // the export section
			continue
		}
		s := parser{buf: body}
		n := s.uleb()
		for i := uint64(0); i < n && s.err == nil; i++ {
			name := s.name()
			kind := s.byte()
			s.uleb() // index
			switch kind {
			case 0: // function
				funcs = append(funcs, name)
			case 2: // memory
				memory = memory || name == ExportMemory
			}
		}
		if s.err != nil {
			p.fail("export section: " + s.err.Error())
		}
	}
	if p.err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrNotWasm, p.err)
	}
	return funcs, memory, nil
}

type parser struct {
	buf []byte
	err error
}

func (p *parser) fail(what string) {
	if p.err == nil {
		p.err = errors.New(what)
	}
}

func (p *parser) byte() byte {
	if p.err != nil || len(p.buf) == 0 {
		p.fail("truncated")
		return 0
	}
	b := p.buf[0]
	p.buf = p.buf[1:]
	return b
}

func (p *parser) uleb() uint64 {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		b := p.byte()
		if p.err != nil {
			return 0
		}
		v |= uint64(b&0x7f) << shift
		if b&0x80 == 0 {
			return v
		}
	}
	p.fail("LEB128 integer too long")
	return 0
}

func (p *parser) name() string {
	n := p.uleb()
	if p.err == nil && n > uint64(len(p.buf)) {
		p.fail("name past the end")
	}
	if p.err != nil {
		return ""
	}
	s := string(p.buf[:n])
	p.buf = p.buf[n:]
	return s
}
