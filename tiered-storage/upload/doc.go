// Package upload is the upload half of tiered storage: it copies the closed
// segments of an SPU's partition logs to the object store, once each and in
// offset order, and applies the whole log's retention to what is remote.
//
// # What goes up, and when a segment counts as uploaded
//
// For each closed segment the Uploader of its partition puts three objects
// (keys from package layout): the .index, the .timeindex and, last, the .log.
// A segment is remote once its .log object exists, so a crash or an outage
// between the three Puts leaves at worst index objects that the next attempt
// overwrites (the keys are deterministic and Put is idempotent). The
// uploader keeps a watermark, one past the last offset uploaded; local
// retention may delete a segment only below it ([Uploader.Uploaded] is the
// commit log's deletion gate).
//
// # Restarts
//
// Nothing is persisted locally: when an Uploader starts, and whenever its
// replica becomes the leader, it lists the partition's prefix and takes the
// remote index (layout.NewIndex) as the truth. The watermark is the end of
// that index, so a segment uploaded before a crash is not uploaded again, and
// one whose .log did not make it is uploaded (again) under the same keys.
// After a leader change the new leader's segments may not start where the
// remote index ends: it uploads the tail of the segment that straddles the
// end, from the batch that holds the first offset not yet remote. When that
// batch begins below the remote end, the new object overlaps the one
// before it by part of a batch; layout.NewIndex resolves overlaps without
// gaps or repeated offsets (a reader goes on in the next object from the
// offset after the previous one, inside that batch).
//
// # Shadowed objects
//
// Objects whose offsets are all held by others (layout.Index.Shadowed: the
// same offsets uploaded under a lower epoch by a former leader, or an
// object wholly covered by others) are deleted by the leader once they
// have been shadowed for Config.ShadowGrace (5 minutes by default, counted
// from when this leader first saw them so), so that readers holding an
// older listing can finish with them; remote retention deletes those below
// what it deletes at once. The leader lists the whole prefix at start, when
// it becomes the leader and every Config.FullListInterval, which is how it
// sees a former leader's late uploads.
//
// # Roles
//
// Only the partition's leader uploads and applies remote retention.
// A follower's Uploader only lists, so that its watermark, and with it the
// follower's local retention, follows what the leader uploaded. Since the
// watermark matters only for closed segments above it, a follower lists
// only while it holds such segments, and then only the keys from its newest
// known remote segment on (the leader's uploads sort after it: one small
// request, however long the partition's history), every PollInterval,
// doubling the wait up to 8 PollIntervals while nothing new appears. A full
// listing every FullListInterval catches up with the rest (remote
// retention's deletions, for the follower's Status).
//
// Followers could instead learn the remote end from their leader, but
// replication (a Consume stream) carries no such field, and what a
// follower's local retention deletes is better decided on the store's word
// than on a leader's, which may be a former leader's; the listing, made
// rare and small, is both cheap and authoritative.
//
// # Failures
//
// A failed upload is retried with capped exponential backoff, and again at
// once when the store answers; meanwhile segments stay on local disk (the
// watermark does not move), and the partition's [Status] and the metrics say
// why (the spate_tier_upload_failing gauge is 1, spate_tier_upload_lag_bytes
// and _segments grow, Status.Err says what failed). Segments whose newest
// record is already past the whole log's retention time are not uploaded
// at all.
//
// # Deleting a topic
//
// [PurgeTopic] deletes every object of a topic, all partitions, once its
// replicas are gone (the control plane calls it when a topic is deleted).
//
// # Concurrency and bandwidth
//
// One [Manager] runs the Uploaders of an SPU: each partition uploads one
// segment at a time, at most Config.Concurrency segments go up at once over
// all partitions, and Config.BytesPerSecond (when set) limits the bytes read
// for uploads over all of them.
package upload
