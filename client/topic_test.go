package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/client"
)

// echoTopics is a TopicService that records the settings of each create
// and update and answers with a topic that has them, and with partitions
// that report a remote tier.
type echoTopics struct {
	controlplanev1connect.UnimplementedTopicServiceHandler

	mu   sync.Mutex                    // guards last
	last *controlplanev1.TopicSettings // the settings of the last request
}

func (e *echoTopics) topic(name string, s *controlplanev1.TopicSettings) *controlplanev1.Topic {
	return &controlplanev1.Topic{
		Spec:  &controlplanev1.TopicSpec{Name: name, Partitions: 2, ReplicationFactor: 1, Settings: s},
		State: controlplanev1.TopicState_TOPIC_STATE_READY,
		Partitions: []*controlplanev1.PartitionStatus{
			{Partition: 0, Leader: 1, Replicas: []int32{1}, Status: "online", StartOffset: 700, EndOffset: 900, SizeBytes: 2000,
				RemoteStartOffset: 0, RemoteSizeBytes: 7000, UploadLagBytes: 300},
			{Partition: 1, Leader: 1, Replicas: []int32{1}, Status: "online", StartOffset: 0, EndOffset: 10, SizeBytes: 100,
				RemoteStartOffset: -1, TieringError: "object store unreachable"},
		},
	}
}

func (e *echoTopics) record(s *controlplanev1.TopicSettings) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.last = s
}

func (e *echoTopics) lastSettings() *controlplanev1.TopicSettings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last
}

func (e *echoTopics) CreateTopic(_ context.Context, req *connect.Request[controlplanev1.CreateTopicRequest]) (*connect.Response[controlplanev1.CreateTopicResponse], error) {
	e.record(req.Msg.Spec.Settings)
	return connect.NewResponse(&controlplanev1.CreateTopicResponse{Topic: e.topic(req.Msg.Spec.Name, req.Msg.Spec.Settings)}), nil
}

func (e *echoTopics) UpdateTopic(_ context.Context, req *connect.Request[controlplanev1.UpdateTopicRequest]) (*connect.Response[controlplanev1.UpdateTopicResponse], error) {
	e.record(req.Msg.Settings)
	return connect.NewResponse(&controlplanev1.UpdateTopicResponse{Topic: e.topic(req.Msg.Name, req.Msg.Settings)}), nil
}

func (e *echoTopics) DescribeTopic(_ context.Context, req *connect.Request[controlplanev1.DescribeTopicRequest]) (*connect.Response[controlplanev1.DescribeTopicResponse], error) {
	return connect.NewResponse(&controlplanev1.DescribeTopicResponse{Topic: e.topic(req.Msg.Name, e.lastSettings())}), nil
}

// TestTieringSettingsRoundTrip: the tiering settings go on the wire as the
// API defines them and come back unchanged; the remote tier of each
// partition comes back from DescribeTopic.
func TestTieringSettingsRoundTrip(t *testing.T) {
	e := &echoTopics{}
	mux := http.NewServeMux()
	mux.Handle(controlplanev1connect.NewTopicServiceHandler(e))
	srv := httptest.NewUnstartedServer(mux)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	c := newCPClient(t, srv.URL)
	ctx := testContext(t)
	const day = 24 * time.Hour
	ms := func(d time.Duration) *int64 { v := d.Milliseconds(); return &v }
	n := func(v int64) *int64 { return &v }

	tests := []struct {
		name   string
		update bool
		in     client.TopicSettings
		wire   *controlplanev1.TopicSettings
	}{
		{name: "three years, seven days local",
			in:   client.TopicSettings{Tiering: client.Tiering(true), Retention: 3 * 365 * day, LocalRetention: 7 * day, LocalRetentionBytes: 1 << 30},
			wire: &controlplanev1.TopicSettings{Tiering: proto.Bool(true), RetentionMs: ms(3 * 365 * day), LocalRetentionMs: ms(7 * day), LocalRetentionBytes: n(1 << 30)}},
		{name: "local as long as the whole log",
			in:   client.TopicSettings{Tiering: client.Tiering(true), Retention: -1, LocalRetention: -1, LocalRetentionBytes: -1},
			wire: &controlplanev1.TopicSettings{Tiering: proto.Bool(true), RetentionMs: n(-1), LocalRetentionMs: n(-1), LocalRetentionBytes: n(-1)}},
		{name: "update turns tiering off and sets nothing else", update: true,
			in:   client.TopicSettings{Tiering: client.Tiering(false)},
			wire: &controlplanev1.TopicSettings{Tiering: proto.Bool(false)}},
		{name: "update of local retention leaves tiering unset", update: true,
			in:   client.TopicSettings{LocalRetention: day},
			wire: &controlplanev1.TopicSettings{LocalRetentionMs: ms(day)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got client.Topic
			var err error
			if tt.update {
				got, err = c.UpdateTopic(ctx, "history", tt.in)
			} else {
				got, err = c.CreateTopic(ctx, client.TopicSpec{Name: "history", Partitions: 2, ReplicationFactor: 1, Settings: tt.in})
			}
			if err != nil {
				t.Fatal(err)
			}
			if w := e.lastSettings(); !proto.Equal(w, tt.wire) {
				t.Errorf("on the wire %v, want %v", w, tt.wire)
			}
			if !reflect.DeepEqual(got.Spec.Settings, tt.in) {
				t.Errorf("back %+v, want %+v", got.Spec.Settings, tt.in)
			}
		})
	}

	topic, err := c.DescribeTopic(ctx, "history")
	if err != nil {
		t.Fatal(err)
	}
	p0, p1 := topic.Partitions[0], topic.Partitions[1]
	if p0.StartOffset != 700 || p0.RemoteStartOffset != 0 || p0.RemoteSize != 7000 || p0.UploadLag != 300 || p0.TieringError != "" {
		t.Errorf("partition 0: %+v", p0)
	}
	if p1.RemoteStartOffset != -1 || p1.RemoteSize != 0 || p1.TieringError != "object store unreachable" {
		t.Errorf("partition 1: %+v", p1)
	}
}
