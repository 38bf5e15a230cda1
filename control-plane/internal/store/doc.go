// Package store keeps the control plane's metadata in etcd: topics, their
// placements, the registered SPUs and what the SPUs report. Every
// control-plane replica reads and writes the same keys, so any of them can
// answer any request, and a restart loses nothing.
//
// # Key layout
//
// All keys live under Root, "/spate/v1/". Each cluster's metadata lives
// under its own prefix, ClusterPrefix(id) = "/spate/v1/clusters/<id>/", and
// a Store reads and writes one cluster's; the keys below are relative to
// it. Tenants, people and the clusters' records are the tenancy package's,
// under "/spate/v1/cloud/". Values are JSON objects.
//
//	topics/<name>                 Topic: the declared spec, settings (tiering
//	                              and local retention among them), creation
//	                              time and the deleting flag. Created with a
//	                              create-if-absent transaction.
//	placements/<name>             Placement: per partition (by index) the
//	                              leader SPU, the replica SPUs and the leader
//	                              epoch. Written by the leading control plane
//	                              only, guarded by its election key; absent
//	                              until the first partition is placed, and
//	                              removed when the topic is being deleted.
//	spus/<id>                     SPU: id, address, registration time. Put
//	                              under an etcd lease of the liveness timeout
//	                              that each heartbeat keeps alive: the key
//	                              exists exactly while the SPU is online.
//	spu-status/<id>               SPUStatus: the last heartbeat's time and
//	                              the replicas the SPU reported (offsets,
//	                              sizes and, with tiering, the remote start,
//	                              remote size, upload lag and upload error),
//	                              under the same lease.
//	/spate/v1/leader/<lease>      (global) etcd election keys of the control-plane
//	                              replicas (concurrency.Election); the oldest
//	                              one leads the reconcilers.
//
// <id> is the SPU id in decimal. Topic names are validated with
// internal/names.Topic, so they never contain '/'.
package store
