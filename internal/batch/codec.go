package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// The worst-case compression ratios of the streaming codecs: no valid stream
// decompresses to more than ratio × its compressed size. They only cap the
// buffer allocated up front from a size the stream declares, so that a small
// hostile stream cannot make Decode allocate MaxRecordsBytes before failing.
const (
	// maxSnappyRatio bounds a standard Snappy block: the densest element, a
	// 3-byte copy, yields 64 bytes.
	maxSnappyRatio = 22
	// maxDeflateRatio bounds DEFLATE, whose densest code yields 258 bytes
	// from about 2 bits.
	maxDeflateRatio = 1032
	// maxLZ4Ratio bounds an LZ4 block: each extra length byte adds 255.
	maxLZ4Ratio = 256
)

// compress appends the records section src, compressed with c, to dst.
func compress(c Compression, dst, src []byte) ([]byte, error) {
	switch c {
	case None:
		return append(dst, src...), nil
	case Gzip:
		return compressGzip(dst, src)
	case Snappy:
		return compressSnappy(dst, src), nil
	case LZ4:
		return compressLZ4(dst, src)
	case Zstd:
		return zstdEncoder().EncodeAll(src, dst), nil
	}
	return dst, fmt.Errorf("batch: unknown compression codec %d", c)
}

// decompress returns src decompressed with c, in a newly allocated buffer
// that the caller owns. It never allocates more than about limit bytes for
// the output, and fails with ErrCorrupt when the output would exceed limit.
// It must not be called with None.
func decompress(c Compression, src []byte, limit int) ([]byte, error) {
	var (
		out []byte
		err error
	)
	switch c {
	case Gzip:
		out, err = decompressGzip(src, limit)
	case Snappy:
		out, err = decompressSnappy(src, limit)
	case LZ4:
		out, err = decompressLZ4(src, limit)
	case Zstd:
		out, err = decompressZstd(src, limit)
	default:
		return nil, fmt.Errorf("%w: cannot decompress codec %s", ErrCorrupt, c)
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s records: %w", ErrCorrupt, c, err)
	}
	return out, nil
}

// errTooLarge reports a records section that decompresses to more than the limit.
func errTooLarge(c Compression, limit int) error {
	return fmt.Errorf("%w: %s records decompress to more than %d bytes (MaxRecordsBytes)", ErrCorrupt, c, limit)
}

// appendWriter is an io.Writer that appends to a byte slice, so that the
// streaming compressors write straight into the batch being built.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// readAll reads r to its end into a new buffer of initial capacity hint,
// failing once the output exceeds limit bytes. The buffer never grows past
// limit+1 bytes, and grows at all only when the stream proves longer than
// hint, so that a correct hint costs exactly one allocation.
func readAll(c Compression, r io.Reader, probe *[1]byte, hint, limit int) ([]byte, error) {
	buf := make([]byte, 0, min(max(hint, 512), limit+1))
	for {
		if len(buf) == cap(buf) {
			// Probe with one byte before growing: the hint is usually
			// exact, and then this read only finds the end. The probe
			// is the caller's, pooled, as r would make it escape.
			n, err := r.Read(probe[:])
			if n == 1 {
				if len(buf) >= limit {
					return nil, errTooLarge(c, limit)
				}
				grown := make([]byte, len(buf), min(2*cap(buf), limit+1))
				copy(grown, buf)
				buf = append(grown, probe[0])
			}
			if err == io.EOF {
				return buf, nil
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, errTooLarge(c, limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// gzip: RFC 1952 streams. Writers and readers are pooled: each holds a
// DEFLATE state of several hundred kilobytes.

// gzipWriter is a pooled gzip writer with the appendWriter it writes to.
type gzipWriter struct {
	dst appendWriter
	zw  *gzip.Writer
}

var gzipWriters = sync.Pool{New: func() any {
	zw, err := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	if err != nil {
		panic(err) // a constant level: cannot fail
	}
	return &gzipWriter{zw: zw}
}}

func compressGzip(dst, src []byte) ([]byte, error) {
	w := gzipWriters.Get().(*gzipWriter)
	defer gzipWriters.Put(w)
	w.dst.b = dst
	defer func() { w.dst.b = nil }() // let the pool keep no batch alive
	w.zw.Reset(&w.dst)
	if _, err := w.zw.Write(src); err != nil {
		return dst, fmt.Errorf("batch: gzip: %w", err)
	}
	if err := w.zw.Close(); err != nil {
		return dst, fmt.Errorf("batch: gzip: %w", err)
	}
	return w.dst.b, nil
}

// gzipReader is a pooled gzip reader with the bytes.Reader it reads from.
type gzipReader struct {
	src   bytes.Reader
	zr    gzip.Reader
	probe [1]byte
}

var gzipReaders = sync.Pool{New: func() any { return new(gzipReader) }}

func decompressGzip(src []byte, limit int) ([]byte, error) {
	// The trailer's ISIZE is the size of the last member mod 2^32: exact
	// for what Builder writes, a hint for anything else.
	hint := 0
	if len(src) >= 4 {
		hint = int(min(uint64(binary.LittleEndian.Uint32(src[len(src)-4:])), uint64(maxDeflateRatio)*uint64(len(src))))
	}
	r := gzipReaders.Get().(*gzipReader)
	defer gzipReaders.Put(r)
	r.src.Reset(src)
	defer r.src.Reset(nil) // let the pool keep no batch alive
	if err := r.zr.Reset(&r.src); err != nil {
		return nil, err
	}
	return readAll(Gzip, &r.zr, &r.probe, hint, limit)
}

// snappy: the Snappy block format (no framing), as Kafka writes it.

func compressSnappy(dst, src []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, snappy.MaxEncodedLen(len(src)))
	out := s2.EncodeSnappy(dst[n:cap(dst)], src)
	return dst[:n+len(out)]
}

func decompressSnappy(src []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, errTooLarge(Snappy, limit)
	}
	if n > maxSnappyRatio*len(src) {
		return nil, fmt.Errorf("%w: snappy records claim %d bytes from %d compressed", ErrCorrupt, n, len(src))
	}
	// DecodeStrict refuses the S2 extensions that other Snappy decoders
	// do not know, so that what this package accepts every client reads.
	return snappy.DecodeStrict(make([]byte, n), src)
}

// lz4: LZ4 frames with 64 KiB independent blocks, the size Kafka uses. The
// frame declares its content size, which sizes the decoder's buffer.

// lz4Writer is a pooled LZ4 writer with the appendWriter it writes to.
type lz4Writer struct {
	dst appendWriter
	zw  *lz4.Writer
}

var lz4Writers = sync.Pool{New: func() any {
	zw := lz4.NewWriter(nil)
	if err := zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
		panic(err) // a constant option: cannot fail
	}
	return &lz4Writer{zw: zw}
}}

func compressLZ4(dst, src []byte) ([]byte, error) {
	w := lz4Writers.Get().(*lz4Writer)
	defer lz4Writers.Put(w)
	w.dst.b = dst
	defer func() { w.dst.b = nil }() // let the pool keep no batch alive
	w.zw.Reset(&w.dst)
	if err := w.zw.Apply(lz4.SizeOption(uint64(len(src)))); err != nil {
		return dst, fmt.Errorf("batch: lz4: %w", err)
	}
	if _, err := w.zw.Write(src); err != nil {
		return dst, fmt.Errorf("batch: lz4: %w", err)
	}
	if err := w.zw.Close(); err != nil {
		return dst, fmt.Errorf("batch: lz4: %w", err)
	}
	w.zw.Reset(nil)
	return w.dst.b, nil
}

// lz4Reader is a pooled LZ4 reader with the bytes.Reader it reads from.
type lz4Reader struct {
	src   bytes.Reader
	zr    *lz4.Reader
	probe [1]byte
}

var lz4Readers = sync.Pool{New: func() any { return &lz4Reader{zr: lz4.NewReader(nil)} }}

// lz4ContentSize returns the content size an LZ4 frame header declares, or 0.
func lz4ContentSize(src []byte) uint64 {
	const magic = 0x184D2204
	if len(src) < 14 || binary.LittleEndian.Uint32(src) != magic || src[4]&0x08 == 0 {
		return 0
	}
	return binary.LittleEndian.Uint64(src[6:])
}

func decompressLZ4(src []byte, limit int) ([]byte, error) {
	hint := int(min(lz4ContentSize(src), uint64(maxLZ4Ratio)*uint64(len(src))))
	r := lz4Readers.Get().(*lz4Reader)
	defer lz4Readers.Put(r)
	r.src.Reset(src)
	defer r.src.Reset(nil) // let the pool keep no batch alive
	r.zr.Reset(&r.src)
	defer r.zr.Reset(nil)
	return readAll(LZ4, r.zr, &r.probe, hint, limit)
}

// zstd: Zstandard frames. One Encoder and one Decoder serve every goroutine:
// EncodeAll and DecodeAll are safe for concurrent use and keep their own
// pool of GOMAXPROCS block coders, which are too expensive to create per
// batch or to lose at every GC, as a sync.Pool would.

var (
	zstdEncoderOnce sync.Once
	zstdEnc         *zstd.Encoder
)

func zstdEncoder() *zstd.Encoder {
	zstdEncoderOnce.Do(func() {
		var err error
		zstdEnc, err = zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			panic(err) // constant options: cannot fail
		}
	})
	return zstdEnc
}

// zstdDecoder is the shared zstd decoder and the output limit it enforces.
type zstdDecoder struct {
	limit int
	dec   *zstd.Decoder
}

// zstdDec holds the decoder for the current MaxRecordsBytes. The limit is
// fixed when a decoder is made, so a new one replaces it when
// MaxRecordsBytes changes; the old one is left to the garbage collector
// (a Decoder used only through DecodeAll runs no goroutines).
var zstdDec atomic.Pointer[zstdDecoder]

func decompressZstd(src []byte, limit int) ([]byte, error) {
	d := zstdDec.Load()
	if d == nil || d.limit != limit {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(uint64(max(limit, 1))),
			zstd.WithDecoderMaxWindow(uint64(max(limit, zstd.MinWindowSize))))
		if err != nil {
			return nil, err
		}
		d = &zstdDecoder{limit: limit, dec: dec}
		zstdDec.Store(d)
	}
	out, err := d.dec.DecodeAll(src, nil)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return nil, errTooLarge(Zstd, limit)
	}
	if err != nil {
		return nil, err
	}
	if out == nil {
		// An input of only skippable frames holds no records; keep the
		// result non-nil like the other codecs'.
		out = []byte{}
	}
	return out, nil
}
