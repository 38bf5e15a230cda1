package server

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/control-plane/internal/store"
)

// metadataService implements MetadataService from the cache.
type metadataService struct {
	s *Server
}

var _ controlplanev1connect.MetadataServiceHandler = (*metadataService)(nil)

// ListSPUs implements MetadataService.
func (ms *metadataService) ListSPUs(ctx context.Context, req *connect.Request[controlplanev1.ListSPUsRequest]) (*connect.Response[controlplanev1.ListSPUsResponse], error) {
	_, m, err := ms.s.scope(ctx, req.Spec().Procedure, req.Header())
	if err != nil {
		return nil, err
	}
	rev, err := ms.s.currentRev(ctx)
	if err != nil {
		return nil, err
	}
	if err := ms.s.waitCache(ctx, m, rev); err != nil {
		return nil, err
	}
	out := &controlplanev1.ListSPUsResponse{}
	m.cache.Read(func(st *store.State) { out.Spus = spuViews(st) })
	return connect.NewResponse(out), nil
}

// WatchMetadata implements MetadataService: a snapshot, then a message with
// the SPUs and topics that changed whenever the placement or the set of
// SPUs changes. Heartbeat times alone do not make a message.
func (ms *metadataService) WatchMetadata(ctx context.Context, req *connect.Request[controlplanev1.WatchMetadataRequest], stream *connect.ServerStream[controlplanev1.WatchMetadataResponse]) error {
	c, m, err := ms.s.scope(ctx, req.Spec().Procedure, req.Header())
	if err != nil {
		return err
	}
	// The caller is checked again whenever its tenant's people or service
	// accounts change: the stream of a removed principal ends, and a
	// narrowed grant hides topics from then on.
	var principalsChanged <-chan struct{}
	if c != nil {
		if _, principalsChanged, err = ms.s.tenantPrincipals(ctx, c.Tenant); err != nil {
			return ms.s.internal(ctx, "read principals", err)
		}
	}
	// Nor does a stream outlive the credentials it was opened with.
	var expired <-chan time.Time
	if c != nil && !c.Expires.IsZero() {
		t := time.NewTimer(time.Until(c.Expires))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-m.cache.Ready():
	case <-ctx.Done():
		return nil
	}
	sentSPUs := make(map[int32]*controlplanev1.SPU)
	sentTopics := make(map[string]*controlplanev1.TopicPlacement)
	first, recheck := true, false
	var topicsGen, spusGen uint64
	for {
		var msg *controlplanev1.WatchMetadataResponse
		changed := m.cache.Read(func(st *store.State) {
			if !first && !recheck && st.TopicsGen == topicsGen && st.SPUsGen == spusGen {
				return
			}
			recheck = false
			topicsGen, spusGen = st.TopicsGen, st.SPUsGen
			msg = &controlplanev1.WatchMetadataResponse{Snapshot: first}
			spus := make(map[int32]*controlplanev1.SPU)
			for _, v := range spuViews(st) {
				spus[v.Id] = v
				if old, ok := sentSPUs[v.Id]; first || !ok || !sameSPU(old, v) {
					msg.Spus = append(msg.Spus, v)
				}
			}
			for id := range sentSPUs {
				if _, ok := spus[id]; !ok {
					msg.DeletedSpus = append(msg.DeletedSpus, id)
				}
			}
			sentSPUs = spus
			topics := make(map[string]*controlplanev1.TopicPlacement)
			for name, t := range st.Topics {
				if t.Deleting || (c != nil && !c.Sees(name)) {
					continue
				}
				v := placementView(st, t)
				topics[name] = v
				if old, ok := sentTopics[name]; first || !ok || !proto.Equal(old, v) {
					msg.Topics = append(msg.Topics, v)
				}
			}
			for name := range sentTopics {
				if _, ok := topics[name]; !ok {
					msg.DeletedTopics = append(msg.DeletedTopics, name)
				}
			}
			sentTopics = topics
		})
		if msg != nil && (first || len(msg.Spus)+len(msg.Topics)+len(msg.DeletedSpus)+len(msg.DeletedTopics) > 0) {
			if err := stream.Send(msg); err != nil {
				return nil
			}
			first = false
		}
		select {
		case <-changed:
		case <-expired:
			ms.s.logger.Info("stream ended", "procedure", req.Spec().Procedure, "principal", c.Identity.String(), "reason", "credentials expired")
			return connect.NewError(connect.CodeUnauthenticated, errors.New("the credentials of this stream expired; reconnect with fresh ones"))
		case <-principalsChanged:
			again := *c
			if err := ms.s.resolve(ctx, &again); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				ms.s.logger.Info("request refused", "procedure", req.Spec().Procedure, "principal", c.Identity.String(), "reason", err.Error())
				ms.s.metrics.refused.WithLabelValues("unauthenticated").Inc()
				return connect.NewError(connect.CodeUnauthenticated, err)
			}
			c, recheck = &again, true
			if _, principalsChanged, err = ms.s.tenantPrincipals(ctx, c.Tenant); err != nil {
				return ms.s.internal(ctx, "read principals", err)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func sameSPU(a, b *controlplanev1.SPU) bool {
	return a.Id == b.Id && a.Address == b.Address && a.Online == b.Online && a.Replicas == b.Replicas
}
