package wasmrewrite

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/spatehq/spate/smartmodule/smtest"
)

// sec encodes a section.
func sec(id byte, body ...byte) []byte {
	return append(appendU32([]byte{id}, uint32(len(body))), body...)
}

// vec encodes a vector of n already-encoded items.
func vec(n int, items ...byte) []byte { return append(appendU32(nil, uint32(n)), items...) }

// fnModule builds a module with type 0 = (i32) -> (i32), one memory, the
// given extra sections before the code (already encoded, in order) and one
// function, exported as "f", whose body (locals and expression) is body.
func fnModule(imports, globals []byte, body []byte) []byte {
	m := append([]byte{}, header...)
	m = append(m, sec(secType, vec(1, 0x60, 0x01, 0x7f, 0x01, 0x7f)...)...)
	if imports != nil {
		m = append(m, imports...)
	}
	m = append(m, sec(secFunction, vec(1, 0x00)...)...)
	m = append(m, sec(secMemory, vec(1, 0x00, 0x01)...)...)
	if globals != nil {
		m = append(m, globals...)
	}
	m = append(m, sec(secExport, vec(1, 0x01, 'f', 0x00, 0x00)...)...)
	m = append(m, sec(secCustom, 0x04, 'n', 'o', 't', 'e', 'x', 'y')...)
	code := appendU32(nil, uint32(len(body)))
	code = append(code, body...)
	m = append(m, sec(secCode, vec(1, code...)...)...)
	return m
}

// codeOf returns the only function body of a module AddStopFlag wrote.
func codeOf(t *testing.T, wasm []byte) []byte {
	t.Helper()
	r := &reader{b: wasm, pos: 8}
	for !r.eof() {
		id := r.byte()
		body := r.bytes(int(r.u32()))
		if id == secCode {
			cr := &reader{b: body}
			if n := cr.u32(); n != 1 {
				t.Fatalf("%d bodies", n)
			}
			b := cr.bytes(int(cr.u32()))
			if cr.err != nil || !cr.eof() {
				t.Fatalf("code section: %v", cr.err)
			}
			return b
		}
	}
	t.Fatalf("no code section: %v", r.err)
	return nil
}

// check is the inserted sequence for stop global g (< 127), spelt out.
func check(g byte) []byte {
	f := g + 1
	return []byte{
		0x23, f, 0x45, 0x04, 0x40, // global.get $fuel; i32.eqz; if
		0x41, 0x00, 0x40, 0x00, 0x1a, // i32.const 0; memory.grow 0; drop
		0x23, g, 0x04, 0x40, 0x00, 0x0b, // global.get $stop; if; unreachable; end
		0x41, 0x80, 0x80, 0x04, 0x24, f, 0x0b, // i32.const 65536; global.set $fuel; end
		0x23, f, 0x41, 0x01, 0x6b, 0x24, f, // fuel--
	}
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// compile compiles wasm with wazero, which validates it.
func compile(t *testing.T, wasm []byte) (wazero.Runtime, wazero.CompiledModule) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	c, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatalf("wazero refuses the rewritten module: %v", err)
	}
	return rt, c
}

func TestBodies(t *testing.T) {
	for _, tt := range []struct {
		name       string
		body, want []byte
		loops      int
	}{
		{
			name: "loop inside a block",
			// block loop (local.get 0; i32.eqz; br_if 1; local.get 0;
			// i32.const 1; i32.sub; local.set 0; br 0) end end i32.const 42
			body: join([]byte{0x00, 0x02, 0x40, 0x03, 0x40},
				[]byte{0x20, 0x00, 0x45, 0x0d, 0x01, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b, 0x41, 0x2a, 0x0b}),
			want: join([]byte{0x00, 0x02, 0x40, 0x03, 0x40}, check(0),
				[]byte{0x20, 0x00, 0x45, 0x0d, 0x01, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b, 0x41, 0x2a, 0x0b}),
			loops: 1,
		},
		{
			name: "br_table, nested loops, 0xFC ops",
			// (local i64) block block local.get 0 br_table [0 1] 0 end
			// loop loop end end end  i32.const 0 i32.const 0 i32.const 0
			// memory.fill  local.get 0 f32.convert_i32_s
			// i32.trunc_sat_f32_s
			body: join([]byte{0x01, 0x01, 0x7e, 0x02, 0x40, 0x02, 0x40, 0x20, 0x00, 0x0e, 0x02, 0x00, 0x01, 0x00, 0x0b},
				[]byte{0x03, 0x40, 0x03, 0x40, 0x0b, 0x0b, 0x0b},
				[]byte{0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0b, 0x00},
				[]byte{0x20, 0x00, 0xb2, 0xfc, 0x00, 0x0b}),
			want: join([]byte{0x01, 0x01, 0x7e, 0x02, 0x40, 0x02, 0x40, 0x20, 0x00, 0x0e, 0x02, 0x00, 0x01, 0x00, 0x0b},
				[]byte{0x03, 0x40}, check(0), []byte{0x03, 0x40}, check(0), []byte{0x0b, 0x0b, 0x0b},
				[]byte{0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0b, 0x00},
				[]byte{0x20, 0x00, 0xb2, 0xfc, 0x00, 0x0b}),
			loops: 2,
		},
		{
			name: "loop with a type index and constants that look like opcodes",
			// local.get 0 loop (type 0) i32.const 3 (0x03) i32.add
			// i64.const -1 drop f64.const (bytes of 0x03) drop end
			body: join([]byte{0x00, 0x20, 0x00, 0x03, 0x00},
				[]byte{0x41, 0x03, 0x6a, 0x42, 0x7f, 0x1a, 0x44, 3, 3, 3, 3, 3, 3, 3, 3, 0x1a, 0x0b, 0x0b}),
			want: join([]byte{0x00, 0x20, 0x00, 0x03, 0x00}, check(0),
				[]byte{0x41, 0x03, 0x6a, 0x42, 0x7f, 0x1a, 0x44, 3, 3, 3, 3, 3, 3, 3, 3, 0x1a, 0x0b, 0x0b}),
			loops: 1,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, st, err := AddStopFlag(fnModule(nil, nil, tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := codeOf(t, out); !bytes.Equal(got, tt.want) {
				t.Errorf("body\n got % x\nwant % x", got, tt.want)
			}
			if st.Loops != tt.loops || st.Functions != 1 || st.GlobalIndex != 0 {
				t.Errorf("stats %+v", st)
			}
			compile(t, out)
		})
	}
}

func TestGlobalIndexCountsImportsAndDefinitions(t *testing.T) {
	// Imports env.g (const i32); defines one global (mut i64 0).
	imports := sec(secImport, vec(1, 0x03, 'e', 'n', 'v', 0x01, 'g', 0x03, 0x7f, 0x00)...)
	globals := sec(secGlobal, vec(1, 0x7e, 0x01, 0x42, 0x00, 0x0b)...)
	body := []byte{0x00, 0x03, 0x40, 0x0b, 0x20, 0x00, 0x0b}
	out, st, err := AddStopFlag(fnModule(imports, globals, body))
	if err != nil {
		t.Fatal(err)
	}
	if st.GlobalIndex != 2 {
		t.Fatalf("stop global %d, want 2", st.GlobalIndex)
	}
	if got, want := codeOf(t, out), join([]byte{0x00, 0x03, 0x40}, check(2), []byte{0x0b, 0x20, 0x00, 0x0b}); !bytes.Equal(got, want) {
		t.Errorf("body\n got % x\nwant % x", got, want)
	}
	compile(t, out)
}

func TestStopsAnEndlessLoop(t *testing.T) {
	for _, tt := range []struct {
		name string
		body []byte
		arg  uint64
	}{
		// loop br 0 end local.get 0
		{"a loop", []byte{0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x20, 0x00, 0x0b}, 7},
		// if n { f(n-1); f(n-1) } n: 2^60 calls, never deeper than 60,
		// and no loop anywhere.
		{"recursion without a loop", []byte{0x00,
			0x20, 0x00, 0x04, 0x40,
			0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x00, 0x1a,
			0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x00, 0x1a,
			0x0b, 0x20, 0x00, 0x0b}, 60},
	} {
		t.Run(tt.name, func(t *testing.T) { stopsEndlessCall(t, tt.body, tt.arg) })
	}
}

// stopsEndlessCall calls f(arg) of a module whose f is body, rewritten,
// and sets the stop flag 50 ms later: the call must trap.
func stopsEndlessCall(t *testing.T, body []byte, arg uint64) {
	out, _, err := AddStopFlag(fnModule(nil, nil, body))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt, c := compile(t, out)
	mod, err := rt.InstantiateModule(ctx, c, wazero.NewModuleConfig())
	if err != nil {
		t.Fatal(err)
	}
	stop, ok := mod.ExportedGlobal(StopExport).(api.MutableGlobal)
	if !ok {
		t.Fatalf("no mutable global %s", StopExport)
	}
	time.AfterFunc(50*time.Millisecond, func() { stop.Set(1) })
	start := time.Now()
	_, err = mod.ExportedFunction("f").Call(ctx, arg)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("call: %v, want a trap", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stopped after %s", d)
	}
}

func TestRefuses(t *testing.T) {
	ok := fnModule(nil, nil, []byte{0x00, 0x20, 0x00, 0x0b})
	for _, tt := range []struct {
		name string
		wasm []byte
		want error
	}{
		{"not wasm", []byte("hello, world"), ErrMalformed},
		{"truncated", ok[:len(ok)-3], ErrMalformed},
		{"GC opcode", fnModule(nil, nil, []byte{0x00, 0x20, 0x00, 0xfb, 0x00, 0x0b}), ErrUnsupported},
		{"bytes after end", fnModule(nil, nil, []byte{0x00, 0x20, 0x00, 0x0b, 0x01}), ErrMalformed},
		{"no end", fnModule(nil, nil, []byte{0x00, 0x20, 0x00}), ErrMalformed},
		{"reserved export", fnModuleExport(StopExport), ErrUnsupported},
		{"no memory", bytes.Replace(ok, sec(secMemory, vec(1, 0x00, 0x01)...), nil, 1), ErrUnsupported},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := AddStopFlag(tt.wasm)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func fnModuleExport(name string) []byte {
	m := fnModule(nil, nil, []byte{0x00, 0x20, 0x00, 0x0b})
	old := sec(secExport, vec(1, 0x01, 'f', 0x00, 0x00)...)
	nw := sec(secExport, vec(1, append(appendName(nil, name), 0x00, 0x00)...)...)
	return bytes.Replace(m, old, nw, 1)
}

var examples = []string{"keepall", "keep1pct", "jsonfilter", "sum", "flatten", "uppercase"}

func TestExamplesCompile(t *testing.T) {
	for _, name := range examples {
		wasm := smtest.Example(t, name)
		out, st, err := AddStopFlag(wasm)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Loops == 0 {
			t.Errorf("%s: no loops", name)
		}
		t.Logf("%s: %d bytes -> %d, %d functions, %d loops", name, len(wasm), len(out), st.Functions, st.Loops)
		// wazero validates two of them here (a compile takes tens of
		// seconds under the race detector); the engine's tests run all of
		// them rewritten.
		if name == "keepall" || name == "jsonfilter" {
			compile(t, out)
		}
	}
}

// TestGarbage mutates example modules at random: AddStopFlag must not
// panic, and what it accepts must still be a module it can decode.
func TestGarbage(t *testing.T) {
	wasm := smtest.Example(t, "keepall")
	rng := rand.New(rand.NewPCG(1, 2))
	// Each mutation copies and rewrites a 2.7 MB module: a few hundred
	// here, more with go test -fuzz FuzzAddStopFlag.
	n := 300
	if testing.Short() {
		n = 30
	}
	for i := 0; i < n; i++ {
		b := mutate(rng, wasm)
		out, _, err := AddStopFlag(b)
		if err == nil {
			if _, _, err := AddStopFlag(out); err == nil || !strings.Contains(err.Error(), StopExport) {
				t.Fatalf("rewriting twice: %v", err)
			}
		}
	}
	for i := 0; i < 20000; i++ {
		b := make([]byte, rng.IntN(64))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		AddStopFlag(append(append([]byte{}, header...), b...))
	}
}

func mutate(rng *rand.Rand, wasm []byte) []byte {
	b := append([]byte{}, wasm...)
	switch rng.IntN(3) {
	case 0:
		return b[:rng.IntN(len(b))]
	case 1:
		for k := rng.IntN(4) + 1; k > 0; k-- {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
	default:
		i := rng.IntN(len(b))
		b = append(b[:i], append([]byte{byte(rng.Uint32())}, b[i:]...)...)
	}
	return b
}

func FuzzAddStopFlag(f *testing.F) {
	for _, name := range examples[:2] {
		f.Add(smtest.Example(f, name))
	}
	f.Add(fnModule(nil, nil, []byte{0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x20, 0x00, 0x0b}))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, _, err := AddStopFlag(wasm)
		if err != nil {
			return
		}
		// What it wrote, it decodes again (and refuses for the export).
		if _, _, err := AddStopFlag(out); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), StopExport) {
			t.Fatalf("rewriting twice: %v", err)
		}
	})
}
