// Package batch defines Spate's record batch: the unit in which records are
// produced, stored on disk, replicated, tiered and consumed. The SPU writes a
// produced batch to its segment exactly as received (after validation and
// after stamping the base offset and leader epoch) and serves consumers the
// same bytes, so this format is both the wire format and the disk format.
//
// # Batch layout
//
// All integers in the header are big-endian. A batch is a fixed 61-byte
// header followed by the records section:
//
//	offset size field
//	     0    8 base offset        int64, offset of the first record; set by the SPU
//	     8    4 batch length       int32, bytes that follow this field (header rest + records)
//	    12    4 leader epoch       int32, set by the SPU
//	    16    1 magic              int8, format version, currently 1
//	    17    4 CRC                uint32, CRC32C (Castagnoli) of bytes 21 to the end
//	    21    2 attributes         int16, bits 0-2: compression codec (see Compression);
//	                                 bit 3: derived batch (AttrDerived); other bits 0
//	    23    4 last offset delta  int32, offset of the last record minus base offset
//	    27    8 first timestamp    int64, milliseconds since the Unix epoch
//	    35    8 max timestamp      int64, milliseconds since the Unix epoch
//	    43    8 producer id        int64, -1 when the producer is not idempotent
//	    51    2 producer epoch     int16
//	    53    4 base sequence      int32, -1 when the producer is not idempotent
//	    57    4 record count       int32
//	    61    - records            varint-encoded records, compressed as a whole by the codec
//
// The base offset, batch length and leader epoch lie outside the CRC, so the
// SPU can assign offsets without recomputing it. A batch is never split: the
// total size of a batch is 12 + batch length.
//
// The first timestamp is the first record's and the max timestamp the
// largest of the batch. Producers need not append records in timestamp
// order, so a record's timestamp delta may be negative.
//
// # Record layout
//
// After decompression, the records section holds record count records, each:
//
//	length            varint, bytes of the record after this field
//	attributes        int8, unused, 0
//	timestamp delta   varint, milliseconds after first timestamp
//	offset delta      varint, offset minus base offset
//	key length        varint, -1 for a null key
//	key               bytes
//	value length      varint, -1 for a null value
//	value             bytes
//	header count      varint
//	  header key length   varint
//	  header key          bytes (UTF-8)
//	  header value length varint, -1 for null
//	  header value        bytes
//
// Varints are zigzag-encoded signed integers, as encoding/binary's PutVarint
// writes them. Offset deltas in a batch are 0, 1, ... record count - 1: offsets
// are dense.
//
// # Derived batches
//
// A derived batch (attributes bit 3, AttrDerived) carries the output of
// SmartModules on the consume path: the SPU reads stored batches, runs the
// consumer's modules over their records and sends one derived batch per
// stored batch that kept any record (Builder.AppendAt writes them). Each
// output record keeps the offset of the stored record it came from, so its
// offset delta is that offset minus the base offset: offset deltas do not
// decrease, but they skip the records a filter dropped and repeat for the
// records an array map made of one. The last offset delta is that of the
// last stored record the batch covers, so that the offset after the batch
// (Header.NextOffset) is where the consumer goes on, whatever was dropped;
// the record count is independent of it. Readers check everything else as
// for an ordinary batch, and each record's offset delta lies between the
// previous record's and the last offset delta.
//
// A derived batch exists only on the wire to consumers: it is never stored,
// and the SPU refuses one on produce (ErrDerived).
//
// # Compression
//
// The codec compresses the records section as a whole, in its standard
// framing:
//
//	none    the records as they are
//	gzip    a gzip stream (RFC 1952)
//	snappy  one Snappy block in the raw block format: no stream framing, no
//	        S2 extensions
//	lz4     an LZ4 frame (LZ4 frame format); Builder writes 64 KiB
//	        independent blocks and declares the content size
//	zstd    one or more Zstandard frames (RFC 8878)
//
// Readers refuse a records section that decompresses to more than
// MaxRecordsBytes, whatever the codec, so that a small batch cannot make them
// allocate without bound.
//
// # Compatibility
//
// A reader refuses a magic it does not know. A new format version gets a new
// magic; fields are never reinterpreted within a version.
package batch
