// Package remote reads the remote tier of partitions: the segments that
// package upload put in an object store under the keys of package layout.
// A [Reader] serves every partition of an SPU; the consume service asks it
// for the offsets below a partition's local start offset and then goes on
// from the local log, so that a consumer cannot tell where a batch came
// from, apart from speed.
//
// # How a read is served
//
//  1. The partition's remote index is the listing of its prefix
//     (layout.NewIndex), cached. A first read lists it page by page (1000
//     keys a request) only as far as it needs, so that a read a year back
//     in a partition of thousands of segments waits for one page, and the
//     rest is listed in the background. Once older than IndexTTL it is
//     listed again in full in the background (to see deletions by remote
//     retention and the segments of a new leader) while readers go on with
//     the old one: objects are immutable, so it is at worst incomplete. An
//     offset past its end extends it at once from the last key seen (new
//     uploads sort after every key listed; after an extension that found
//     nothing, at most once per second).
//  2. A read that goes on where an earlier one ended (the Reader
//     remembers those positions) or at a segment's first offset starts
//     there. Any other offset needs the segment's .index object (the
//     commit log's sparse offset index), fetched once and cached: its last
//     entry at or below the offset gives the byte position from which the
//     batch headers are walked to the batch holding the offset. A missing or damaged .index is not
//     fatal: the walk then starts at byte 0 (it is derived data, as in the
//     commit log), and a warning is logged.
//  3. The .log object is read in aligned chunks of ChunkBytes with ranged
//     GETs, straight into buffers recycled from a pool (no zeroing, no
//     fresh memory per chunk). Chunks are kept in a byte-bounded LRU cache
//     shared by every partition, together with the decoded indexes.
//     Concurrent readers of one chunk share one GET. A chunk's buffer is
//     reference-counted (the cache holds one reference, each read using it
//     another) and goes back to the pool only when nothing uses it. A
//     sequential read (one that goes on where another ended, or starts a
//     segment) drops from the cache the chunks it has read to their end,
//     unless another read is using them: a replay then cycles through the
//     few buffers of its read-ahead, warm in memory, instead of pushing
//     everything else out of the cache and touching a cache's worth of
//     fresh memory (on this project's VMs, the first touch of memory cost
//     the SPU more than the rest of a replay). A batch that spans two
//     chunks is put together in a recycled buffer too. Read
//     returns a copy of the batches, so that nothing outside the Reader
//     ever holds a pooled buffer; ReadFunc lends them, straight from the
//     chunk, to a function for as long as it runs, which saves that copy
//     (the larger part of what a replay costs the SPU beyond the GETs).
//  4. Every returned batch is checked: a sane header, offsets that follow
//     on from the index entry and from each other, inside the segment's
//     offsets, and its CRC (batch.Next), once per read (on Read's copy,
//     while it is in the CPU's caches). Whatever does not agree fails the read with an error
//     naming the topic, partition and the offset range of the segment;
//     nothing is skipped. The S3 store asks for no response checksum on
//     ranged GETs: S3 keeps none for a range, and these CRCs cover the
//     bytes.
//  5. Read-ahead: after each read the next ReadAhead chunks of the segment,
//     and at its end the next segments' first chunks, are fetched in the
//     background (bounded in number), so that a sequential consumer finds
//     them in the cache. A read-ahead is registered as the chunk's fetch
//     before it starts, so a read never fetches the same bytes beside it. A read that has to wait for a chunk already being
//     fetched starts the read-ahead past it first, so that the store
//     keeps ReadAhead+1 GETs of a sequential consumer in flight.
//
// # Why the cache is in memory
//
// The cache holds what read-ahead fetched until the consumer gets there,
// what several consumers replaying the same range together share, and what
// random reads fetched. The first two are short-lived working sets of a
// few chunks per active remote consumer, so memory (a
// bounded LRU, 256 MiB by default) serves them without a second copy
// through the page cache, without a folder to clean up after a crash, and
// without competing with the commit log for the SPU's disk, whose space
// local retention manages and the object store exists to spare. A
// consumer replaying years of data reads each chunk once anyway: a disk
// cache would not save GETs for it.
//
// # Errors
//
// Errors wrap one of the package's sentinels, or objstore.ErrUnavailable
// when the store could not be reached (retry later: [IsRetriable]).
// Segment errors are a *[SegmentError], which names the segment.
package remote
