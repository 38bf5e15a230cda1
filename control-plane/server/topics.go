package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/auth/access"
	"github.com/spatehq/spate/control-plane/internal/store"
	"github.com/spatehq/spate/internal/names"
)

// topicService implements TopicService on the store.
type topicService struct {
	s *Server
}

var _ controlplanev1connect.TopicServiceHandler = (*topicService)(nil)

// CreateTopic implements TopicService.
func (ts *topicService) CreateTopic(ctx context.Context, req *connect.Request[controlplanev1.CreateTopicRequest]) (*connect.Response[controlplanev1.CreateTopicResponse], error) {
	spec := req.Msg.GetSpec()
	if spec == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("a topic spec is required"))
	}
	if err := names.Topic(spec.Name); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	m, err := ts.topicScope(ctx, req.Spec().Procedure, req.Header(), access.Administer, spec.Name)
	if err != nil {
		return nil, err
	}

	if err := checkPartitions(spec.Partitions); err != nil {
		return nil, err
	}
	switch {
	case spec.ReplicationFactor < 1:
		return nil, invalid("replication_factor %d: must be at least 1", spec.ReplicationFactor)
	case spec.ReplicationFactor > MaxReplicationFactor:
		return nil, invalid("replication_factor %d: at most %d is allowed", spec.ReplicationFactor, MaxReplicationFactor)
	}
	if err := validateSettings(spec.Settings); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	settings := mergeSettings(mergeSettings(store.Settings{}, ts.s.cfg.DefaultTopicSettings.settings()), spec.Settings)
	if err := checkTiering(settings, spec.Settings); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	t := store.Topic{
		Name:              spec.Name,
		Partitions:        spec.Partitions,
		ReplicationFactor: spec.ReplicationFactor,
		Settings:          settings,
		CreatedAtMs:       time.Now().UnixMilli(),
	}
	t, err = m.store.CreateTopic(ctx, t)
	if errors.Is(err, store.ErrTopicExists) {
		// A topic being deleted keeps its name until its replicas are
		// gone and its objects purged from the remote tier, so that the
		// new topic never sees the old one's data.
		if old, gerr := m.store.GetTopic(ctx, spec.Name); gerr == nil && old.Deleting {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("topic %q is still being deleted (its replicas removed and its objects purged from the remote tier); create it again once `spate topic list` no longer shows it", spec.Name))
		}
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("topic %q already exists; choose another name, or delete it first", spec.Name))
	}
	if err != nil {
		return nil, ts.s.internal(ctx, "create topic", err)
	}
	ts.s.logger.Info("topic created", "topic", t.Name, "partitions", t.Partitions, "replication", t.ReplicationFactor)
	topic, err := ts.s.describe(ctx, m, t.Name, t.Revision, false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlplanev1.CreateTopicResponse{Topic: topic}), nil
}

// ListTopics implements TopicService.
func (ts *topicService) ListTopics(ctx context.Context, req *connect.Request[controlplanev1.ListTopicsRequest]) (*connect.Response[controlplanev1.ListTopicsResponse], error) {
	c, m, err := ts.s.scope(ctx, req.Spec().Procedure, req.Header())
	if err != nil {
		return nil, err
	}

	rev, err := ts.s.currentRev(ctx)
	if err != nil {
		return nil, err
	}
	if err := ts.s.waitCache(ctx, m, rev); err != nil {
		return nil, err
	}
	out := &controlplanev1.ListTopicsResponse{}
	m.cache.Read(func(st *store.State) {
		idx := indexStatuses(st)
		for _, t := range st.Topics {
			if c != nil && !c.Sees(t.Name) {
				continue
			}
			out.Topics = append(out.Topics, topicView(st, idx, t, false))
		}
	})
	sort.Slice(out.Topics, func(a, b int) bool { return out.Topics[a].Spec.Name < out.Topics[b].Spec.Name })
	return connect.NewResponse(out), nil
}

// DescribeTopic implements TopicService.
func (ts *topicService) DescribeTopic(ctx context.Context, req *connect.Request[controlplanev1.DescribeTopicRequest]) (*connect.Response[controlplanev1.DescribeTopicResponse], error) {
	if err := names.Topic(req.Msg.Name); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	m, err := ts.topicScope(ctx, req.Spec().Procedure, req.Header(), access.Consume, req.Msg.Name)
	if err != nil {
		return nil, err
	}

	rev, err := ts.s.currentRev(ctx)
	if err != nil {
		return nil, err
	}
	topic, err := ts.s.describe(ctx, m, req.Msg.Name, rev, true)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlplanev1.DescribeTopicResponse{Topic: topic}), nil
}

// UpdateTopic implements TopicService.
func (ts *topicService) UpdateTopic(ctx context.Context, req *connect.Request[controlplanev1.UpdateTopicRequest]) (*connect.Response[controlplanev1.UpdateTopicResponse], error) {
	name := req.Msg.Name
	if err := names.Topic(name); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	m, err := ts.topicScope(ctx, req.Spec().Procedure, req.Header(), access.Administer, name)
	if err != nil {
		return nil, err
	}

	s := req.Msg.Settings
	if settingsEmpty(s) {
		return nil, invalid("nothing to update: set at least one setting")
	}
	if err := validateSettings(s); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	t, err := m.store.UpdateTopic(ctx, name, func(t *store.Topic) error {
		if t.Deleting {
			return errDeleting
		}
		merged := mergeSettings(t.Settings, s)
		if err := checkTiering(merged, s); err != nil {
			return connect.NewError(connect.CodeInvalidArgument, err)
		}
		t.Settings = merged
		return nil
	})
	if err != nil {
		return nil, ts.s.topicErr(ctx, "update topic", name, err)
	}
	ts.s.logger.Info("topic updated", "topic", name, "tiering", t.Settings.Tiered())
	topic, err := ts.s.describe(ctx, m, name, t.Revision, false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlplanev1.UpdateTopicResponse{Topic: topic}), nil
}

// AddPartitions implements TopicService.
func (ts *topicService) AddPartitions(ctx context.Context, req *connect.Request[controlplanev1.AddPartitionsRequest]) (*connect.Response[controlplanev1.AddPartitionsResponse], error) {
	name := req.Msg.Name
	if err := names.Topic(name); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	m, err := ts.topicScope(ctx, req.Spec().Procedure, req.Header(), access.Administer, name)
	if err != nil {
		return nil, err
	}

	if err := checkPartitions(req.Msg.Partitions); err != nil {
		return nil, err
	}
	t, err := m.store.UpdateTopic(ctx, name, func(t *store.Topic) error {
		if t.Deleting {
			return errDeleting
		}
		if req.Msg.Partitions < t.Partitions {
			return invalid("topic %q has %d partitions and partitions cannot be removed; ask for a total above %d", name, t.Partitions, t.Partitions)
		}
		t.Partitions = req.Msg.Partitions
		return nil
	})
	if err != nil {
		return nil, ts.s.topicErr(ctx, "add partitions", name, err)
	}
	ts.s.logger.Info("partitions added", "topic", name, "partitions", t.Partitions)
	topic, err := ts.s.describe(ctx, m, name, t.Revision, false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlplanev1.AddPartitionsResponse{Topic: topic}), nil
}

// DeleteTopic implements TopicService. It is idempotent while the topic is
// being deleted.
func (ts *topicService) DeleteTopic(ctx context.Context, req *connect.Request[controlplanev1.DeleteTopicRequest]) (*connect.Response[controlplanev1.DeleteTopicResponse], error) {
	name := req.Msg.Name
	if err := names.Topic(name); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	m, err := ts.topicScope(ctx, req.Spec().Procedure, req.Header(), access.Administer, name)
	if err != nil {
		return nil, err
	}

	_, err = m.store.UpdateTopic(ctx, name, func(t *store.Topic) error {
		t.Deleting = true
		return nil
	})
	if err != nil {
		return nil, ts.s.topicErr(ctx, "delete topic", name, err)
	}
	ts.s.logger.Info("topic deleting", "topic", name)
	return connect.NewResponse(&controlplanev1.DeleteTopicResponse{}), nil
}

var errDeleting = errors.New("topic is being deleted")

func checkPartitions(n int32) error {
	switch {
	case n < 1:
		return invalid("partitions %d: a topic needs at least 1 partition", n)
	case n > MaxPartitions:
		return invalid("partitions %d: at most %d are allowed", n, MaxPartitions)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// topicErr turns a store error about topic name into a Connect error.
func (s *Server) topicErr(ctx context.Context, op, name string, err error) error {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, store.ErrTopicNotFound):
		return notFound(name)
	case errors.Is(err, errDeleting):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("topic %q is being deleted; wait until it is gone and create it again", name))
	}
	return s.internal(ctx, op, err)
}

// topicScope authenticates a call on one topic and authorizes op on it,
// returning the cluster it acts on.
func (ts *topicService) topicScope(ctx context.Context, procedure string, h http.Header, op access.Op, topic string) (*clusterMeta, error) {
	c, m, err := ts.s.scope(ctx, procedure, h)
	if err != nil {
		return nil, err
	}
	if err := ts.s.authorizeTopic(c, procedure, op, topic); err != nil {
		return nil, err
	}
	return m, nil
}

// authorizeTopic checks that c may perform op on topic; with c nil (an
// insecure control plane) everything is allowed. A caller that may not
// see the topic at all gets exactly the answer for a missing topic.
func (s *Server) authorizeTopic(c *caller, procedure string, op access.Op, topic string) error {
	switch {
	case c == nil:
		return nil
	case !c.Sees(topic):
		s.logger.Info("request refused", "procedure", procedure, "principal", c.Identity.String(), "reason", "topic not visible", "topic", topic)
		s.metrics.refused.WithLabelValues("hidden").Inc()
		return notFound(topic)
	case op == access.Consume && procedure == controlplanev1connect.TopicServiceDescribeTopicProcedure:
		return nil
	case !c.Allows(op, topic):
		return s.denied(c, procedure, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s may not %s topic %q; ask an admin of your tenant for a grant", c.Name, op, topic)))
	}
	return nil
}

func notFound(name string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("topic %q not found; `spate topic list` shows the topics", name))
}

// internal logs an unexpected error and returns what a client may see.
func (s *Server) internal(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return connect.NewError(connect.CodeCanceled, ctx.Err())
	case ctx.Err() != nil:
		return connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
	}
	s.logger.Error(op, "err", err)
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: the metadata store is unavailable; try again", op))
}

// currentRev returns etcd's current revision with a linearizable read, so
// that a read of the cache at that revision sees every completed write.
func (s *Server) currentRev(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, store.SyncKey)
	if err != nil {
		return 0, s.internal(ctx, "read metadata", err)
	}
	return resp.Header.Revision, nil
}

// waitCache waits until the cluster's cache reflects rev.
func (s *Server) waitCache(ctx context.Context, m *clusterMeta, rev int64) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.cache.WaitRev(wctx, rev); err != nil {
		return s.internal(ctx, "read metadata", err)
	}
	return nil
}

// describe returns a topic as of revision rev or later.
func (s *Server) describe(ctx context.Context, m *clusterMeta, name string, rev int64, detail bool) (*controlplanev1.Topic, error) {
	if err := s.waitCache(ctx, m, rev); err != nil {
		return nil, err
	}
	var out *controlplanev1.Topic
	m.cache.Read(func(st *store.State) {
		if t, ok := st.Topics[name]; ok {
			out = topicView(st, indexStatuses(st), t, detail)
		}
	})
	if out == nil {
		return nil, notFound(name)
	}
	return out, nil
}
