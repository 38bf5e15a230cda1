// Package store keeps the control plane's metadata in etcd: topics, their
// placements, the registered SPUs and what the SPUs report. Every
// control-plane replica reads and writes the same keys, so any of them can
// answer any request, and a restart loses nothing.
//
// # Key layout
//
// All keys live under Prefix, "/spate/v1/". Values are JSON objects.
//
//	/spate/v1/topics/<name>       Topic: the declared spec, settings, creation
//	                              time and the deleting flag. Created with a
//	                              create-if-absent transaction.
//	/spate/v1/placements/<name>   Placement: per partition (by index) the
//	                              leader SPU, the replica SPUs and the leader
//	                              epoch. Written by the leading control plane
//	                              only, guarded by its election key; absent
//	                              until the first partition is placed, and
//	                              removed when the topic is being deleted.
//	/spate/v1/spus/<id>           SPU: id, address, registration time. Put
//	                              under an etcd lease of the liveness timeout
//	                              that each heartbeat keeps alive: the key
//	                              exists exactly while the SPU is online.
//	/spate/v1/spu-status/<id>     SPUStatus: the last heartbeat's time and
//	                              the replicas the SPU reported, under the
//	                              same lease.
//	/spate/v1/leader/<lease>      etcd election keys of the control-plane
//	                              replicas (concurrency.Election); the oldest
//	                              one leads the reconcilers.
//
// <id> is the SPU id in decimal. Topic names are validated with
// internal/names.Topic, so they never contain '/'.
package store
