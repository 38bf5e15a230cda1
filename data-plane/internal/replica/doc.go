// Package replica keeps the partition replicas an SPU holds: one commit log
// each, with the settings the control plane declared for it, persisted so
// that a restarted SPU serves the same replicas before it hears from the
// control plane again.
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
