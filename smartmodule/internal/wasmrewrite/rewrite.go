// Package wasmrewrite rewrites a WebAssembly module so that the host can
// stop it cheaply: it adds a stop flag the guest checks at every loop.
//
// # Contract
//
// AddStopFlag takes a WebAssembly 1.0/2.0 binary module with a linear
// memory (32-bit) and returns a new binary that differs from it in exactly
// three ways:
//
//   - the global section gains two last globals, both (mut i32)
//     initialised to 0: the stop flag $stop, whose index is the number of
//     imported globals plus the number of globals the module defines
//     (Stats.GlobalIndex), and the countdown $fuel, the next one. The
//     section is created (in its place in the section order) when the
//     module has none;
//   - the export section gains an export of $stop named StopExport
//     (created when the module has none);
//   - in every function body, right after each loop instruction and its
//     block type, it inserts the check below, and it re-encodes the size of
//     each body and of the code section.
//
// The check:
//
//	global.get $fuel
//	i32.eqz
//	if                      ;; once every FuelPerCheck iterations
//	  i32.const 0
//	  memory.grow 0         ;; a no-op that leaves machine code for the host
//	  drop
//	  global.get $stop
//	  if
//	    unreachable         ;; the host asked it to stop
//	  end
//	  i32.const FuelPerCheck
//	  global.set $fuel
//	end
//	global.get $fuel
//	i32.const 1
//	i32.sub
//	global.set $fuel
//
// Why the countdown and the memory.grow: a runtime like wazero runs
// compiled guest code that the Go scheduler cannot preempt, so a guest
// spinning in a loop that never left for Go would hold off every
// stop-the-world of the garbage collector, and with it the very timer that
// should set its stop flag: the process would hang. memory.grow 0 is the
// cheapest instruction that returns to the host (in wazero), and it changes
// nothing. The guest reads $stop only there: it stops within FuelPerCheck
// loop iterations of the flag being set.
//
// Every other section (custom sections, the name section included) is
// copied byte for byte. The rewritten module is valid whenever the input
// is: the inserted sequence takes and leaves nothing on the operand stack,
// and a loop's label (its start) still heads the check, so every backward
// branch runs it. Every unbounded execution in WebAssembly goes through a
// loop's back edge or a call; recursion may stay shallow and still never
// end (f calling itself twice, n deep, makes 2^n calls), so a function that
// calls gets the check at its entry as well, unless its body opens with a
// loop (every function of Go's wasm backend does). A guest whose flag the
// host sets to 1 therefore traps with "unreachable" soon after, wherever
// it is.
//
// AddStopFlag never panics on any input; it returns an error (wrapping
// ErrUnsupported for a construct it does not know, or ErrMalformed) when it
// cannot decode the module: opcodes of proposals it does not handle (GC,
// typed function references, try_table), a module that already exports
// StopExport, malformed or truncated input. It decodes the instruction
// streams of core WebAssembly 2.0 (control, br_table, call_indirect,
// memory and table instructions, 0xFC saturating truncation, bulk memory
// and table ops, 0xFD SIMD, reference types, typed select), threads
// (0xFE atomics), tail calls and the legacy exception-handling
// instructions. It does not validate: the caller compiles the result,
// which validates it.
package wasmrewrite

import (
	"bytes"
	"errors"
	"fmt"
)

// StopExport is the name under which the rewritten module exports its stop
// flag, reserved: a module that already exports it is refused.
const StopExport = "spate_stop"

// FuelPerCheck is how many loop iterations run between two checks of the
// stop flag.
const FuelPerCheck = 1 << 16

var (
	// ErrMalformed: the input is not a well-formed WebAssembly binary.
	ErrMalformed = errors.New("wasmrewrite: malformed module")
	// ErrUnsupported: the input uses something the rewriter does not
	// decode.
	ErrUnsupported = errors.New("wasmrewrite: unsupported")
)

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// order gives the place of each known section id in a module.
var order = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

var header = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

type section struct {
	id   byte
	body []byte
}

// Stats tells what AddStopFlag did.
type Stats struct {
	// GlobalIndex is the index of the stop flag global.
	GlobalIndex uint32
	// Functions is the number of function bodies rewritten, Loops the
	// number of loops that got a check.
	Functions, Loops int
}

// AddStopFlag returns wasm with a stop flag, as the package doc says.
func AddStopFlag(wasm []byte) (out []byte, st Stats, err error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:8], header) {
		return nil, st, fmt.Errorf("%w: not a WebAssembly 1 binary (bad magic or version)", ErrMalformed)
	}
	var secs []section
	r := &reader{b: wasm, pos: 8}
	last := 0
	for !r.eof() {
		id := r.byte()
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return nil, st, r.err
		}
		if id != secCustom {
			o, ok := order[id]
			if !ok {
				return nil, st, fmt.Errorf("%w: section id %d", ErrUnsupported, id)
			}
			if o <= last {
				return nil, st, fmt.Errorf("%w: section %d out of order or repeated", ErrMalformed, id)
			}
			last = o
		}
		secs = append(secs, section{id, body})
	}

	// Imported globals and the number of globals defined; memories.
	var importedGlobals, definedGlobals, memories uint32
	for _, s := range secs {
		switch s.id {
		case secImport:
			var m uint32
			if importedGlobals, m, err = countImports(s.body); err != nil {
				return nil, st, err
			}
			memories += m
		case secMemory:
			mr := &reader{b: s.body}
			n := mr.u32()
			for i := uint32(0); i < n && mr.err == nil; i++ {
				if mr.limits() {
					mr.fail(ErrUnsupported, "64-bit memory")
				}
			}
			if mr.err != nil {
				return nil, st, mr.err
			}
			memories += n
		case secGlobal:
			gr := &reader{b: s.body}
			definedGlobals = gr.u32()
			if gr.err != nil {
				return nil, st, gr.err
			}
		}
	}
	if memories == 0 {
		return nil, st, fmt.Errorf("%w: a module without a memory", ErrUnsupported)
	}
	if uint64(importedGlobals)+uint64(definedGlobals) >= 1<<32-2 {
		return nil, st, fmt.Errorf("%w: too many globals", ErrMalformed)
	}
	st.GlobalIndex = importedGlobals + definedGlobals

	// The new globals: twice (mut i32) (i32.const 0).
	newGlobal := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b}
	newExport := appendName(nil, StopExport)
	newExport = append(newExport, 0x03)
	newExport = appendU32(newExport, st.GlobalIndex)

	haveGlobal, haveExport := false, false
	for i := range secs {
		s := &secs[i]
		switch s.id {
		case secGlobal:
			haveGlobal = true
			s.body = appendCountPlus(s.body, 2, newGlobal)
		case secExport:
			haveExport = true
			if err := checkExports(s.body); err != nil {
				return nil, st, err
			}
			s.body = appendCountPlus(s.body, 1, newExport)
		case secCode:
			if s.body, err = rewriteCode(s.body, st.GlobalIndex, &st); err != nil {
				return nil, st, err
			}
		}
	}
	if !haveGlobal {
		secs = insertSection(secs, section{secGlobal, append([]byte{0x02}, newGlobal...)})
	}
	if !haveExport {
		secs = insertSection(secs, section{secExport, append([]byte{0x01}, newExport...)})
	}

	n := len(header)
	for _, s := range secs {
		n += 1 + 5 + len(s.body)
	}
	out = make([]byte, 0, n)
	out = append(out, header...)
	for _, s := range secs {
		if uint64(len(s.body)) > 1<<32-1 {
			return nil, st, fmt.Errorf("%w: section %d grows past 4 GiB", ErrUnsupported, s.id)
		}
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out, st, nil
}

// insertSection puts s before the first known section that follows it in
// the order (custom sections stay where they are).
func insertSection(secs []section, s section) []section {
	at := len(secs)
	for i, x := range secs {
		if x.id != secCustom && order[x.id] > order[s.id] {
			at = i
			break
		}
	}
	return append(secs[:at], append([]section{s}, secs[at:]...)...)
}

// appendCountPlus returns a vector section body with k more entries, items,
// at its end.
func appendCountPlus(body []byte, k uint32, items []byte) []byte {
	r := &reader{b: body}
	n := r.u32()
	rest := body[r.pos:]
	out := appendU32(make([]byte, 0, len(body)+len(items)+5), n+k)
	out = append(out, rest...)
	return append(out, items...)
}

// countImports returns the number of imported globals and memories.
func countImports(body []byte) (globals, memories uint32, err error) {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0x00: // func: type index
			r.u32()
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			if r.limits() {
				r.fail(ErrUnsupported, "64-bit memory")
			}
			memories++
		case 0x03: // global: valtype, mutability
			r.valtype()
			r.byte()
			globals++
		case 0x04: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			r.fail(ErrUnsupported, "import kind %d", kind)
		}
	}
	if r.err == nil && !r.eof() {
		r.fail(ErrMalformed, "trailing bytes in the import section")
	}
	return globals, memories, r.err
}

func checkExports(body []byte) error {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if name := r.name(); name == StopExport {
			return fmt.Errorf("%w: the module already exports %q, a name reserved for the host", ErrUnsupported, StopExport)
		}
		r.byte()
		r.u32()
	}
	if r.err == nil && !r.eof() {
		r.fail(ErrMalformed, "trailing bytes in the export section")
	}
	return r.err
}

// rewriteCode rewrites the code section body.
func rewriteCode(body []byte, stop uint32, st *Stats) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	check := Check(stop)

	out := make([]byte, 0, len(body)+len(body)/8)
	out = appendU32(out, n)
	var fn []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		code := r.bytes(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("function body %d: %w", i, r.err)
		}
		var loops int
		var err error
		fn, loops, err = rewriteBody(fn[:0], code, check)
		if err != nil {
			return nil, fmt.Errorf("function body %d: %w", i, err)
		}
		st.Functions++
		st.Loops += loops
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if !r.eof() {
		return nil, fmt.Errorf("%w: trailing bytes in the code section", ErrMalformed)
	}
	return out, nil
}

// rewriteBody appends to out the function body code with check after each
// loop's block type, and at the entry of a function that calls and does not
// open with a loop; it returns the number of loops. out must be empty.
func rewriteBody(out, code, check []byte) ([]byte, int, error) {
	r := &reader{b: code}
	// Locals.
	groups := r.u32()
	var total uint64
	for i := uint32(0); i < groups && r.err == nil; i++ {
		total += uint64(r.u32())
		r.valtype()
	}
	if r.err == nil && total > 50000 {
		r.fail(ErrMalformed, "%d locals", total)
	}
	loops := 0
	depth := 1 // the function's own block
	copied := 0
	bodyStart := r.pos
	// A function that calls others may recurse without a loop: 2^n calls
	// of a shallow recursion never reach the stack limit. Such a function
	// gets the check at its entry too, unless its body opens with a loop
	// (as every function of Go's wasm backend does), whose check then runs
	// first anyway.
	calls, opensWithLoop := false, false
	for r.err == nil {
		if r.eof() {
			r.fail(ErrMalformed, "function body ends without end")
			break
		}
		op := r.byte()
		if r.pos == bodyStart+1 {
			opensWithLoop = op == 0x03
		}
		switch op {
		case 0x10, 0x11, 0x12, 0x13, 0x14, 0x15:
			calls = true
		}
		switch op {
		case 0x00, 0x01, 0x05, 0x0a, 0x0f, 0x19, 0x1a, 0x1b, 0xd1:
			// unreachable, nop, else, throw_ref, return, catch_all, drop,
			// select, ref.is_null: no immediates.
		case 0x02, 0x04, 0x06: // block, if, try
			r.blocktype()
			depth++
		case 0x03: // loop
			r.blocktype()
			depth++
			if r.err == nil {
				out = append(out, code[copied:r.pos]...)
				out = append(out, check...)
				copied = r.pos
				loops++
			}
		case 0x0b: // end
			depth--
			if depth == 0 {
				if !r.eof() {
					r.fail(ErrMalformed, "bytes after the function's end")
				}
				if r.err != nil {
					return nil, 0, r.err
				}
				out = append(out, code[copied:]...)
				if calls && !opensWithLoop {
					// Every check so far lies after bodyStart: out[:bodyStart]
					// is code[:bodyStart], the locals.
					rest := append([]byte(nil), out[bodyStart:]...)
					out = append(append(out[:bodyStart], check...), rest...)
				}
				return out, loops, nil
			}
		case 0x07, 0x08, 0x09, 0x0c, 0x0d, 0x10, 0x12, 0x14, 0x15, 0x18,
			0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0xd2:
			// catch, throw (tag); rethrow, br, br_if, delegate (label);
			// call, return_call (func); call_ref, return_call_ref (type);
			// local.*, global.* (index); table.get/set (table); ref.func.
			r.u32()
		case 0x0e: // br_table
			n := r.u32()
			for i := uint32(0); i <= n && r.err == nil; i++ {
				r.u32()
			}
		case 0x11, 0x13: // call_indirect, return_call_indirect: type, table
			r.u32()
			r.u32()
		case 0x1c: // select t*
			n := r.u32()
			for i := uint32(0); i < n && r.err == nil; i++ {
				r.valtype()
			}
		case 0x3f, 0x40: // memory.size, memory.grow: memory index
			r.u32()
		case 0x41: // i32.const
			r.sleb(32)
		case 0x42: // i64.const
			r.sleb(64)
		case 0x43: // f32.const
			r.bytes(4)
		case 0x44: // f64.const
			r.bytes(8)
		case 0xd0: // ref.null
			r.heaptype()
		case 0xfc:
			r.prefixFC()
		case 0xfd:
			r.prefixFD()
		case 0xfe:
			r.prefixFE()
		default:
			switch {
			case op >= 0x28 && op <= 0x3e: // loads and stores
				r.memarg()
			case op >= 0x45 && op <= 0xc4: // numeric, sign extension
			default:
				r.fail(ErrUnsupported, "opcode 0x%02x at byte %d of the body", op, r.pos-1)
			}
		}
	}
	return nil, 0, r.err
}

// reader decodes; the first error sticks and every later read returns
// zero values.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) fail(kind error, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
	}
}

func (r *reader) eof() bool { return r.err != nil || r.pos >= len(r.b) }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.fail(ErrMalformed, "unexpected end at byte %d", r.pos)
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.fail(ErrMalformed, "%d bytes wanted at byte %d, %d left", n, r.pos, len(r.b)-r.pos)
		return nil
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b
}

// uleb reads an unsigned LEB128 of at most bits bits.
func (r *reader) uleb(bits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift+7 > bits && (c&0x80 != 0 || uint64(c&0x7f)>>(bits-shift) != 0) {
			// The last byte may hold only the bits left.
			r.fail(ErrMalformed, "integer too long or too large at byte %d", r.pos-1)
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) u32() uint32 { return uint32(r.uleb(32)) }

// sleb reads a signed LEB128 of at most bits bits; the value is not
// needed, only its length, but the encoding is checked.
func (r *reader) sleb(bits uint) {
	maxBytes := int((bits + 6) / 7)
	for i := 0; ; i++ {
		c := r.byte()
		if r.err != nil {
			return
		}
		if c&0x80 == 0 {
			return
		}
		if i+1 >= maxBytes {
			r.fail(ErrMalformed, "signed integer too long at byte %d", r.pos-1)
			return
		}
	}
}

func (r *reader) name() string {
	n := r.u32()
	return string(r.bytes(int(n)))
}

// limits reads limits and returns whether they are 64-bit.
func (r *reader) limits() bool {
	flags := r.byte()
	if flags > 0x07 {
		r.fail(ErrUnsupported, "limits flags 0x%02x", flags)
		return false
	}
	bits := uint(32)
	if flags&0x04 != 0 {
		bits = 64
	}
	r.uleb(bits)
	if flags&0x01 != 0 {
		r.uleb(bits)
	}
	return bits == 64
}

func isValtype(c byte) bool {
	switch c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return true
	}
	return false
}

func (r *reader) valtype() {
	if c := r.byte(); r.err == nil && !isValtype(c) {
		r.fail(ErrUnsupported, "value type 0x%02x at byte %d", c, r.pos-1)
	}
}

func (r *reader) heaptype() {
	if c := r.byte(); r.err == nil && c != 0x70 && c != 0x6f {
		r.fail(ErrUnsupported, "reference type 0x%02x at byte %d", c, r.pos-1)
	}
}

// blocktype reads a block type: empty, a value type or a type index (a
// non-negative signed 33-bit integer).
func (r *reader) blocktype() {
	if r.err != nil {
		return
	}
	if r.pos >= len(r.b) {
		r.fail(ErrMalformed, "unexpected end at byte %d", r.pos)
		return
	}
	c := r.b[r.pos]
	if c == 0x40 || isValtype(c) {
		r.pos++
		return
	}
	if c&0x40 != 0 && c&0x80 == 0 {
		r.fail(ErrUnsupported, "block type 0x%02x at byte %d", c, r.pos)
		return
	}
	// A type index: read it as signed 33 bits and require it non-negative.
	start := r.pos
	r.sleb(33)
	if r.err == nil && r.b[r.pos-1]&0x40 != 0 {
		r.fail(ErrMalformed, "negative block type index at byte %d", start)
	}
}

// memarg reads alignment (with the multi-memory bit, a memory index) and
// offset.
func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 {
		r.u32()
	}
	r.uleb(64)
}

func (r *reader) prefixFC() {
	op := r.u32()
	switch {
	case op <= 7: // saturating truncations
	case op == 8: // memory.init data memory
		r.u32()
		r.u32()
	case op == 9: // data.drop
		r.u32()
	case op == 10: // memory.copy dst src
		r.u32()
		r.u32()
	case op == 11: // memory.fill
		r.u32()
	case op == 12: // table.init elem table
		r.u32()
		r.u32()
	case op == 13: // elem.drop
		r.u32()
	case op == 14: // table.copy dst src
		r.u32()
		r.u32()
	case op == 15, op == 16, op == 17: // table.grow, table.size, table.fill
		r.u32()
	default:
		r.fail(ErrUnsupported, "opcode 0xfc %d", op)
	}
}

func (r *reader) prefixFD() {
	op := r.u32()
	switch {
	case op <= 11: // v128.load*, v128.store
		r.memarg()
	case op == 12, op == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case op >= 21 && op <= 34: // extract_lane, replace_lane
		r.byte()
	case op >= 84 && op <= 91: // load/store lane
		r.memarg()
		r.byte()
	case op == 92, op == 93: // load32_zero, load64_zero
		r.memarg()
	case op <= 0x113: // no immediates (relaxed SIMD up to 0x113)
	default:
		r.fail(ErrUnsupported, "opcode 0xfd %d", op)
	}
}

func (r *reader) prefixFE() {
	op := r.u32()
	switch {
	case op == 0x03: // atomic.fence
		if c := r.byte(); r.err == nil && c != 0 {
			r.fail(ErrMalformed, "atomic.fence with 0x%02x", c)
		}
	case op <= 0x02, op >= 0x10 && op <= 0x4e:
		r.memarg()
	default:
		r.fail(ErrUnsupported, "opcode 0xfe %d", op)
	}
}

// Check returns the instructions AddStopFlag inserts after each loop's
// block type, for the stop flag global stop (the countdown is stop+1).
func Check(stop uint32) []byte {
	fuel := stop + 1
	b := []byte{0x23}
	b = appendU32(b, fuel)
	b = append(b, 0x45, 0x04, 0x40, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x23)
	b = appendU32(b, stop)
	b = append(b, 0x04, 0x40, 0x00, 0x0b, 0x41)
	b = appendS32(b, FuelPerCheck)
	b = append(b, 0x24)
	b = appendU32(b, fuel)
	b = append(b, 0x0b, 0x23)
	b = appendU32(b, fuel)
	b = append(b, 0x41, 0x01, 0x6b, 0x24)
	return appendU32(b, fuel)
}

func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
