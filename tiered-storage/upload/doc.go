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
// end, from the first offset not yet remote, so objects never overlap.
//
// # Roles
//
// Only the partition's leader uploads and applies remote retention.
// A follower's Uploader only lists the prefix now and then, so that its
// watermark, and with it the follower's local retention, follows what the
// leader uploaded.
//
// # Failures
//
// A failed upload is retried with capped exponential backoff, and again at
// once when the store answers; meanwhile segments stay on local disk (the
// watermark does not move), and the partition's [Status] and the metrics say
// why. Segments whose newest record is already past the whole log's
// retention time are not uploaded at all.
//
// # Concurrency and bandwidth
//
// One [Manager] runs the Uploaders of an SPU: each partition uploads one
// segment at a time, at most Config.Concurrency segments go up at once over
// all partitions, and Config.BytesPerSecond (when set) limits the bytes read
// for uploads over all of them.
package upload
