// Package replica keeps the partition replicas an SPU holds: one commit log
// each, with the settings the control plane declared for it, persisted so
// that a restarted SPU serves the same replicas before it hears from the
// control plane again.
//
// A replica is its partition's leader, which accepts produce, until it is
// made a follower (Replica.SetFollower); a follower's log is written only by
// replication (package follower). The role is not persisted: after a restart
// every replica leads until the agent applies the control plane's set.
//
// # Tiered storage
//
// With WithTiering, each replica whose settings turn tiering on gets an
// uploader (package tiered-storage/upload) that uploads its closed segments
// while the replica leads, and serves as its log's deletion gate: local
// retention deletes only what is uploaded. Replica.TierReport says where the
// remote tier stands, for heartbeats, and what is wrong: uploads failing,
// local retention holding segments for upload, the local disk running
// short (less than LowDiskFreeBytes or LowDiskFreePercent free) or full.
// The Manager's metrics include the free space of the data folder's file
// system (spate_spu_disk_free_bytes) next to the bytes held for upload
// (spate_spu_retention_held_bytes).
//
// # On-disk layout
//
//	<data dir>/<topic>/<partition>/replica.json   the declared Spec (JSON)
//	<data dir>/<topic>/<partition>/segments/      the commit log (see commitlog)
//
// replica.json is replaced atomically (write to a temporary file, fsync,
// rename, fsync the folder). A removed replica's folder is first renamed to
// <data dir>/.removed-* and then deleted, so a crash in the middle never
// leaves a half-deleted replica that would be loaded again.
package replica
