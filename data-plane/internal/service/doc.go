// Package service implements the SPU's Connect services: ProduceService,
// ConsumeService and PartitionService of spate.dataplane.v1, and the
// internal ReplicaService the control plane calls. Errors become Connect
// errors in one place (errors.go); clients never see paths or internals.
//
// With TLS, package authz's interceptor checks each call before it gets
// here; the handlers ask it only what a call alone cannot tell: each
// request of a Produce stream (Produce.Authz) and which topics
// ListPartitions may show (Partitions.Authz).
package service
