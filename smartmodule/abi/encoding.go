package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrMalformed is wrapped by every decoding error: the buffer does not
// follow the encoding in the package documentation.
var ErrMalformed = errors.New("abi: malformed buffer")

var le = binary.LittleEndian

// Record is a record as it crosses into a SmartModule. A nil Key is a null
// key; Value is never null (a null value reads as empty).
type Record struct {
	Offset    int64
	Timestamp int64
	Key       []byte
	Value     []byte
}

// RecordSize is the number of bytes r takes in a Records buffer.
func RecordSize(r Record) int { return 8 + 8 + 4 + len(r.Key) + 4 + len(r.Value) }

// AppendRecordCount appends the count that starts a Records buffer; append
// each record with AppendRecord after it.
func AppendRecordCount(dst []byte, n int) []byte { return le.AppendUint32(dst, uint32(n)) }

// AppendRecord appends r in the Records encoding.
func AppendRecord(dst []byte, r Record) []byte {
	dst = le.AppendUint64(dst, uint64(r.Offset))
	dst = le.AppendUint64(dst, uint64(r.Timestamp))
	dst = appendBytes(dst, r.Key, r.Key == nil)
	return appendBytes(dst, r.Value, false)
}

// AppendRecords appends a whole Records buffer holding recs.
func AppendRecords(dst []byte, recs []Record) []byte {
	dst = AppendRecordCount(dst, len(recs))
	for _, r := range recs {
		dst = AppendRecord(dst, r)
	}
	return dst
}

func appendBytes(dst, b []byte, null bool) []byte {
	if null {
		return le.AppendUint32(dst, math.MaxUint32) // -1
	}
	dst = le.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// reader reads the encoding from a buffer; the first error sticks.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (r *reader) u8(what string) uint8 {
	if r.err != nil || len(r.buf) < 1 {
		r.fail("truncated " + what)
		return 0
	}
	v := r.buf[0]
	r.buf = r.buf[1:]
	return v
}

func (r *reader) u32(what string) uint32 {
	if r.err != nil || len(r.buf) < 4 {
		r.fail("truncated " + what)
		return 0
	}
	v := le.Uint32(r.buf)
	r.buf = r.buf[4:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if r.err != nil || len(r.buf) < 8 {
		r.fail("truncated " + what)
		return 0
	}
	v := le.Uint64(r.buf)
	r.buf = r.buf[8:]
	return v
}

// bytes reads a length-prefixed field; it returns nil for null (-1). The
// result aliases the buffer.
func (r *reader) bytes(what string, nullable bool) []byte {
	// Not r.u32(what + " length"): building that string for every field
	// cost a third of the time of decoding a record.
	if r.err != nil || len(r.buf) < 4 {
		r.fail("truncated " + what + " length")
		return nil
	}
	n := int32(le.Uint32(r.buf))
	r.buf = r.buf[4:]
	if n == -1 {
		if !nullable {
			r.fail("null " + what)
		}
		return nil
	}
	if n < 0 || int(n) > len(r.buf) {
		r.fail(fmt.Sprintf("%s of %d bytes with %d left", what, n, len(r.buf)))
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

// RecordReader reads a Records buffer without copying: the keys and values
// it returns alias the buffer.
type RecordReader struct {
	r    reader
	left uint32
}

// NewRecordReader starts reading buf and returns the number of records it
// says it holds.
func NewRecordReader(buf []byte) (*RecordReader, int, error) {
	rr := &RecordReader{}
	n, err := rr.Reset(buf)
	return rr, n, err
}

// Reset starts reading buf, as NewRecordReader does, reusing rr.
func (rr *RecordReader) Reset(buf []byte) (int, error) {
	rr.r = reader{buf: buf}
	rr.left = rr.r.u32("record count")
	// Every record takes at least 24 bytes: refuse counts the buffer cannot hold.
	if rr.r.err == nil && uint64(rr.left)*24 > uint64(len(rr.r.buf)) {
		rr.r.fail(fmt.Sprintf("%d records in %d bytes", rr.left, len(rr.r.buf)))
	}
	if rr.r.err != nil {
		rr.left = 0
		return 0, rr.r.err
	}
	return int(rr.left), nil
}

// Next returns the next record. It returns false after the last record or
// at the first malformed one; Err tells which.
func (rr *RecordReader) Next() (Record, bool) {
	if rr.left == 0 || rr.r.err != nil {
		return Record{}, false
	}
	// The fast path decodes a well-formed record with plain slice operations
	// and no calls: in a guest, every call costs more than the decoding.
	if b := rr.r.buf; len(b) >= 24 {
		rec := Record{Offset: int64(le.Uint64(b)), Timestamp: int64(le.Uint64(b[8:]))}
		kl, rest := int32(le.Uint32(b[16:])), b[20:]
		if kl >= 0 && int64(kl)+4 <= int64(len(rest)) {
			rec.Key, rest = rest[:kl:kl], rest[kl:]
		} else if kl != -1 {
			return rr.nextSlow()
		}
		vl, rest := int32(le.Uint32(rest)), rest[4:]
		if vl >= 0 && int64(vl) <= int64(len(rest)) {
			rec.Value, rr.r.buf = rest[:vl:vl], rest[vl:]
			rr.left--
			return rec, true
		}
	}
	return rr.nextSlow()
}

// nextSlow decodes the next record field by field, naming the first field
// that is malformed.
//
//go:noinline
func (rr *RecordReader) nextSlow() (Record, bool) {
	rr.left--
	rec := Record{
		Offset:    int64(rr.r.u64("offset")),
		Timestamp: int64(rr.r.u64("timestamp")),
	}
	rec.Key = rr.r.bytes("key", true)
	rec.Value = rr.r.bytes("value", true)
	if rec.Value == nil {
		rec.Value = []byte{}
	}
	return rec, rr.r.err == nil
}

// Err returns the first decoding error, or nil. Trailing bytes after the
// last record are an error too.
func (rr *RecordReader) Err() error {
	if rr.r.err == nil && rr.left == 0 && len(rr.r.buf) != 0 {
		rr.r.fail(fmt.Sprintf("%d bytes after the last record", len(rr.r.buf)))
	}
	return rr.r.err
}

// Param is one named parameter given to a module's init.
type Param struct {
	Name  string
	Value string
}

// AppendParams appends a Parameters buffer. A nil accumulator is "none
// given"; an empty, non-nil one is an empty initial accumulator.
func AppendParams(dst []byte, params []Param, accumulator []byte) []byte {
	dst = le.AppendUint32(dst, uint32(len(params)))
	for _, p := range params {
		dst = appendBytes(dst, []byte(p.Name), false)
		dst = appendBytes(dst, []byte(p.Value), false)
	}
	return appendBytes(dst, accumulator, accumulator == nil)
}

// DecodeParams decodes a Parameters buffer. The accumulator is nil when none
// was given; it aliases buf.
func DecodeParams(buf []byte) (params []Param, accumulator []byte, err error) {
	r := reader{buf: buf}
	n := r.u32("parameter count")
	if r.err == nil && uint64(n)*8 > uint64(len(r.buf)) {
		r.fail(fmt.Sprintf("%d parameters in %d bytes", n, len(r.buf)))
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.bytes("parameter name", false)
		value := r.bytes("parameter value", false)
		params = append(params, Param{Name: string(name), Value: string(value)})
	}
	accumulator = r.bytes("accumulator", true)
	if r.err == nil && len(r.buf) != 0 {
		r.fail(fmt.Sprintf("%d bytes after the accumulator", len(r.buf)))
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return params, accumulator, nil
}

// Output is one record a module emits.
type Output struct {
	// Index is the position, in the call's input, of the record this output
	// came from.
	Index uint32
	// Unchanged means the output is that input record as it was; Key and
	// Value are then unused.
	Unchanged bool
	Key       []byte // nil is a null key
	Value     []byte
}

// ResultWriter builds a result. The zero value is ready to use; Reset makes
// it so again, keeping its buffer.
type ResultWriter struct {
	buf   []byte
	count uint32
}

// Reset empties w for a new result.
func (w *ResultWriter) Reset() {
	w.buf = append(w.buf[:0], StatusOK, 0, 0, 0, 0)
	w.count = 0
}

func (w *ResultWriter) start() {
	if len(w.buf) == 0 {
		w.Reset()
	}
}

// Unchanged emits the input record at index as it was.
func (w *ResultWriter) Unchanged(index uint32) {
	w.start()
	w.buf = le.AppendUint32(w.buf, index)
	w.buf = append(w.buf, FlagUnchanged)
	w.count++
}

// Emit emits a new record derived from the input record at index. A nil
// key is a null key.
func (w *ResultWriter) Emit(index uint32, key, value []byte) {
	w.start()
	w.buf = le.AppendUint32(w.buf, index)
	w.buf = append(w.buf, 0)
	w.buf = appendBytes(w.buf, key, key == nil)
	w.buf = appendBytes(w.buf, value, false)
	w.count++
}

// Bytes returns the finished result. It stays valid until the next Reset,
// Emit, Unchanged or Fail.
func (w *ResultWriter) Bytes() []byte {
	w.start()
	le.PutUint32(w.buf[1:], w.count)
	return w.buf
}

// Fail replaces the result with an error about the input record at index
// (NoRecord when about none) and returns it.
func (w *ResultWriter) Fail(index uint32, message string) []byte {
	w.buf = append(w.buf[:0], StatusError)
	w.buf = le.AppendUint32(w.buf, index)
	w.buf = appendBytes(w.buf, []byte(message), false)
	w.count = 0
	return w.buf
}

// ModuleError is an error a module reported itself (status 1).
type ModuleError struct {
	// Index is the input record that failed, or NoRecord.
	Index   uint32
	Message string
}

func (e *ModuleError) Error() string { return e.Message }

// ResultReader reads a result without copying: keys and values alias the
// buffer.
type ResultReader struct {
	r    reader
	left uint32
}

// Reset starts reading the result in buf. It returns the number of outputs,
// a *ModuleError when the module reported one, or an error wrapping
// ErrMalformed.
func (rr *ResultReader) Reset(buf []byte) (int, error) {
	rr.r = reader{buf: buf}
	rr.left = 0
	switch status := rr.r.u8("status"); {
	case rr.r.err != nil:
		return 0, rr.r.err
	case status == StatusError:
		index := rr.r.u32("error record index")
		msg := rr.r.bytes("error message", false)
		if rr.r.err != nil {
			return 0, rr.r.err
		}
		return 0, &ModuleError{Index: index, Message: string(msg)}
	case status != StatusOK:
		rr.r.fail(fmt.Sprintf("status %d", status))
		return 0, rr.r.err
	}
	rr.left = rr.r.u32("output count")
	// Every output takes at least 5 bytes.
	if rr.r.err == nil && uint64(rr.left)*5 > uint64(len(rr.r.buf)) {
		rr.r.fail(fmt.Sprintf("%d outputs in %d bytes", rr.left, len(rr.r.buf)))
	}
	if rr.r.err != nil {
		rr.left = 0
		return 0, rr.r.err
	}
	return int(rr.left), nil
}

// Next returns the next output. It returns false after the last output or
// at the first malformed one; Err tells which.
func (rr *ResultReader) Next() (Output, bool) {
	if rr.left == 0 || rr.r.err != nil {
		return Output{}, false
	}
	rr.left--
	o := Output{Index: rr.r.u32("output index")}
	flags := rr.r.u8("output flags")
	switch {
	case rr.r.err != nil:
	case flags == FlagUnchanged:
		o.Unchanged = true
	case flags == 0:
		o.Key = rr.r.bytes("output key", true)
		o.Value = rr.r.bytes("output value", true)
		if o.Value == nil {
			o.Value = []byte{}
		}
	default:
		rr.r.fail(fmt.Sprintf("output flags %#x", flags))
	}
	return o, rr.r.err == nil
}

// Err returns the first decoding error, or nil. Trailing bytes after the
// last output are an error too.
func (rr *ResultReader) Err() error {
	if rr.r.err == nil && rr.left == 0 && len(rr.r.buf) != 0 {
		rr.r.fail(fmt.Sprintf("%d bytes after the last output", len(rr.r.buf)))
	}
	return rr.r.err
}
