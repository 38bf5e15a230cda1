package service

import (
	"context"
	"log/slog"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/data-plane/internal/authz"
	"github.com/spatehq/spate/data-plane/internal/replica"
)

// Partitions implements the admin view (dataplanev1connect.PartitionServiceHandler)
// and the control plane's ReplicaService.
type Partitions struct {
	Replicas *replica.Manager
	Logger   *slog.Logger
	// Authz hides from ListPartitions the topics a caller may not see;
	// nil shows everything.
	Authz *authz.Authorizer
}

var (
	_ dataplanev1connect.PartitionServiceHandler = (*Partitions)(nil)
	_ internalv1connect.ReplicaServiceHandler    = (*Partitions)(nil)
)

// ListPartitions lists the replicas on this SPU of the topics the caller
// sees.
func (p *Partitions) ListPartitions(ctx context.Context, req *connect.Request[dataplanev1.ListPartitionsRequest]) (*connect.Response[dataplanev1.ListPartitionsResponse], error) {
	resp := &dataplanev1.ListPartitionsResponse{}
	for _, r := range p.Replicas.List(req.Msg.Topic) {
		if !p.Authz.Sees(ctx, r.Topic) {
			continue
		}
		info := r.Log.Info()
		resp.Partitions = append(resp.Partitions, &dataplanev1.PartitionStatus{
			Topic:       r.Topic,
			Partition:   r.Partition,
			StartOffset: info.StartOffset,
			EndOffset:   info.EndOffset,
			SizeBytes:   info.Size,
			Segments:    int32(info.Segments),
			LeaderEpoch: r.Spec().LeaderEpoch,
		})
	}
	return connect.NewResponse(resp), nil
}

// EnsureReplica creates a replica or updates its settings; idempotent.
func (p *Partitions) EnsureReplica(ctx context.Context, req *connect.Request[internalv1.EnsureReplicaRequest]) (*connect.Response[internalv1.EnsureReplicaResponse], error) {
	m := req.Msg
	spec := replica.Spec{Topic: m.Topic, Partition: m.Partition, LeaderEpoch: m.LeaderEpoch, Settings: replica.SettingsFromProto(m.Config)}
	created, err := p.Replicas.Ensure(spec)
	if err != nil {
		if connectCode(err) == connect.CodeInternal {
			p.Logger.Error("ensure replica", "topic", m.Topic, "partition", m.Partition, "err", err)
		}
		return nil, toConnect(err)
	}
	return connect.NewResponse(&internalv1.EnsureReplicaResponse{Created: created}), nil
}

// RemoveReplica deletes a replica and its data; idempotent.
func (p *Partitions) RemoveReplica(ctx context.Context, req *connect.Request[internalv1.RemoveReplicaRequest]) (*connect.Response[internalv1.RemoveReplicaResponse], error) {
	removed, err := p.Replicas.Remove(replica.Key{Topic: req.Msg.Topic, Partition: req.Msg.Partition})
	if err != nil {
		p.Logger.Error("remove replica", "topic", req.Msg.Topic, "partition", req.Msg.Partition, "err", err)
		return nil, toConnect(err)
	}
	return connect.NewResponse(&internalv1.RemoveReplicaResponse{Removed: removed}), nil
}
