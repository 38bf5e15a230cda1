package server

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/control-plane/internal/store"
)

// registryService implements RegistryService: SPU liveness in etcd leases,
// desired replica sets from the cache.
type registryService struct {
	s *Server
}

var _ internalv1connect.RegistryServiceHandler = (*registryService)(nil)

func checkSPU(id int32, addr string) error {
	if id < 0 {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("spu_id %d: must not be negative", id))
	}
	if addr == "" {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("address: the URL clients use to reach the SPU is required"))
	}
	return nil
}

// WatchReplicas implements RegistryService. The SPU is online from the
// first message on; each message is its complete desired set, sent again
// whenever the set, a replica's configuration or its leader's address
// changes.
func (rs *registryService) WatchReplicas(ctx context.Context, req *connect.Request[internalv1.WatchReplicasRequest], stream *connect.ServerStream[internalv1.WatchReplicasResponse]) error {
	id, addr := req.Msg.SpuId, req.Msg.Address
	if err := checkSPU(id, addr); err != nil {
		return err
	}
	m, tenant, err := rs.spuScope(ctx, req.Spec().Procedure, id)
	if err != nil {
		return err
	}
	if err := m.store.Heartbeat(ctx, store.SPU{ID: id, Address: addr}, nil, rs.s.cfg.LivenessTimeout); err != nil {
		return rs.s.internal(ctx, "register spu", err)
	}
	log := rs.s.logger.With("cluster", m.id, "spu", id)
	log.Info("spu watching replicas", "address", addr)
	defer log.Info("spu stopped watching replicas")
	select {
	case <-m.cache.Ready():
	case <-ctx.Done():
		return nil
	}
	var sent *internalv1.WatchReplicasResponse
	var gen, spusGen uint64
	var principals []*internalv1.Principal
	var principalsChanged <-chan struct{}
	for {
		if tenant != "" && principalsChanged == nil {
			p, ch, err := rs.s.tenantPrincipals(ctx, tenant)
			if err != nil {
				return rs.s.internal(ctx, "read principals", err)
			}
			principals, principalsChanged, sent = p, ch, nil
		}
		var msg *internalv1.WatchReplicasResponse
		changed := m.cache.Read(func(st *store.State) {
			// SPU changes matter too: a leader's address is in the set.
			if sent != nil && st.TopicsGen == gen && st.SPUsGen == spusGen {
				return
			}
			gen, spusGen = st.TopicsGen, st.SPUsGen
			msg = &internalv1.WatchReplicasResponse{Revision: st.Rev, Replicas: desiredReplicas(st, id), Principals: principals}
		})
		if msg != nil && (sent == nil || !sameReplicas(sent, msg)) {
			if err := stream.Send(msg); err != nil {
				return nil
			}
			sent = msg
		}
		select {
		case <-changed:
		case <-principalsChanged:
			principalsChanged = nil
		case <-ctx.Done():
			return nil
		}
	}
}

// spuScope checks that the caller is the SPU it says it is and returns its
// cluster's metadata and tenant (empty on an insecure control plane).
func (rs *registryService) spuScope(ctx context.Context, procedure string, id int32) (*clusterMeta, string, error) {
	s := rs.s
	if s.cfg.Insecure {
		return s.meta(LocalCluster), "", nil
	}
	c, err := s.caller(ctx, procedure)
	if err != nil {
		return nil, "", err
	}
	if c.Kind != identity.SPU || c.Via != "certificate" {
		return nil, "", s.denied(c, procedure, connect.NewError(connect.CodePermissionDenied, errors.New("only SPUs, with their certificates, may register")))
	}
	if want := fmt.Sprintf("spu-%d", id); c.Principal.Principal != want {
		return nil, "", s.denied(c, procedure, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("the certificate is for %s, not %s", c.Principal.Principal, want)))
	}
	return s.meta(c.Cluster), c.Tenant, nil
}

func sameReplicas(a, b *internalv1.WatchReplicasResponse) bool {
	if len(a.Replicas) != len(b.Replicas) || len(a.Principals) != len(b.Principals) {
		return false
	}
	for i := range a.Principals {
		if !proto.Equal(a.Principals[i], b.Principals[i]) {
			return false
		}
	}
	for i := range a.Replicas {
		if !proto.Equal(a.Replicas[i], b.Replicas[i]) {
			return false
		}
	}
	return true
}

// Heartbeat implements RegistryService.
func (rs *registryService) Heartbeat(ctx context.Context, req *connect.Request[internalv1.HeartbeatRequest]) (*connect.Response[internalv1.HeartbeatResponse], error) {
	id, addr := req.Msg.SpuId, req.Msg.Address
	if err := checkSPU(id, addr); err != nil {
		return nil, err
	}
	m, _, err := rs.spuScope(ctx, req.Spec().Procedure, id)
	if err != nil {
		return nil, err
	}
	status := &store.SPUStatus{HeartbeatMs: time.Now().UnixMilli()}
	for _, r := range req.Msg.Replicas {
		status.Replicas = append(status.Replicas, store.ReplicaStatus{
			Topic:       r.Topic,
			Partition:   r.Partition,
			StartOffset: r.StartOffset,
			EndOffset:   r.EndOffset,
			SizeBytes:   r.SizeBytes,
			LeaderEpoch: r.LeaderEpoch,

			RemoteStartOffset: r.RemoteStartOffset,
			RemoteSizeBytes:   r.RemoteSizeBytes,
			UploadLagBytes:    r.UploadLagBytes,
			TieringError:      truncateError(r.TieringError),
		})
	}
	if err := m.store.Heartbeat(ctx, store.SPU{ID: id, Address: addr}, status, rs.s.cfg.LivenessTimeout); err != nil {
		return nil, rs.s.internal(ctx, "heartbeat", err)
	}
	return connect.NewResponse(&internalv1.HeartbeatResponse{IntervalMs: rs.s.heartbeatInterval().Milliseconds()}), nil
}

// maxTieringError is the longest upload error kept per replica: the status
// is rewritten on every heartbeat.
const maxTieringError = 512

// truncateError shortens an SPU's error message to maxTieringError bytes,
// on a rune boundary.
func truncateError(msg string) string {
	if len(msg) <= maxTieringError {
		return msg
	}
	cut := maxTieringError
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}
