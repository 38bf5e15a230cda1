// Package service implements the SPU's Connect services: ProduceService,
// ConsumeService and PartitionService of spate.dataplane.v1, and the
// internal ReplicaService the control plane calls. Errors become Connect
// errors in one place (errors.go); clients never see paths or internals.
package service
