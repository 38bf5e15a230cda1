package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/control-plane/server"
)

const (
	dayMs  = int64(24 * time.Hour / time.Millisecond)
	yearMs = 365 * dayMs
)

// TestTieringValidation is the contract of the tiering settings: each
// value in range, local retention within the whole log's, and local
// retention only with tiering, on create and on update (where the
// request is checked against the topic's settings).
func TestTieringValidation(t *testing.T) {
	c := startCP(t, server.Config{DataDir: t.TempDir()})
	ctx := context.Background()
	create := func(name string, s *controlplanev1.TopicSettings) error {
		_, err := c.topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{
			Spec: &controlplanev1.TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1, Settings: s},
		}))
		return err
	}
	update := func(name string, s *controlplanev1.TopicSettings) error {
		_, err := c.topics.UpdateTopic(ctx, connect.NewRequest(&controlplanev1.UpdateTopicRequest{Name: name, Settings: s}))
		return err
	}
	// tiered keeps 30 days and 10 GB, 7 days and 1 GB of them on the SPUs.
	if err := create("tiered", &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionMs: ptr(30 * dayMs), RetentionBytes: ptr(int64(10e9)),
		LocalRetentionMs: ptr(7 * dayMs), LocalRetentionBytes: ptr(int64(1e9))}); err != nil {
		t.Fatal(err)
	}
	if err := create("plain", &controlplanev1.TopicSettings{RetentionMs: ptr(30 * dayMs)}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		update string // the topic to update; empty: create a topic named after the case
		s      *controlplanev1.TopicSettings
		msg    string // empty: accepted
	}{
		{name: "three years, seven days local", s: &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionMs: ptr(3 * yearMs), LocalRetentionMs: ptr(7 * dayMs)}},
		{name: "one hundred years", s: &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionMs: ptr(100 * yearMs), LocalRetentionMs: ptr(100 * yearMs)}},
		{name: "forever", s: &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionMs: ptr(int64(-1)), RetentionBytes: ptr(int64(-1)), LocalRetentionMs: ptr(7 * dayMs), LocalRetentionBytes: ptr(int64(1e9))}},
		{name: "local as long as the whole log", s: &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionMs: ptr(dayMs), LocalRetentionMs: ptr(int64(-1)), LocalRetentionBytes: ptr(int64(-1))}},
		{name: "local equal to whole", s: &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionMs: ptr(dayMs), LocalRetentionMs: ptr(dayMs)}},
		{name: "tiering without local settings", s: &controlplanev1.TopicSettings{Tiering: ptr(true)}},
		{name: "tiering off", s: &controlplanev1.TopicSettings{Tiering: ptr(false)}},
		{name: "over one hundred years", s: &controlplanev1.TopicSettings{RetentionMs: ptr(100*yearMs + 1)}, msg: "at most 3153600000000 (100 years)"},
		{name: "local over one hundred years", s: &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionMs: ptr(int64(-1)), LocalRetentionMs: ptr(100*yearMs + 1)}, msg: "local_retention_ms 3153600000001: at most"},
		{name: "zero local retention", s: &controlplanev1.TopicSettings{Tiering: ptr(true), LocalRetentionMs: ptr(int64(0))}, msg: "local_retention_ms 0: must be positive, or -1"},
		{name: "negative local bytes", s: &controlplanev1.TopicSettings{Tiering: ptr(true), LocalRetentionBytes: ptr(int64(-2))}, msg: "local_retention_bytes -2: must be positive, or -1"},
		{name: "local longer than whole", s: &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionMs: ptr(7 * dayMs), LocalRetentionMs: ptr(8 * dayMs)},
			msg: "local_retention_ms 691200000 (192h0m0s) exceeds retention_ms 604800000 (168h0m0s)"},
		{name: "local larger than whole", s: &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionBytes: ptr(int64(1e9)), LocalRetentionBytes: ptr(int64(2e9))},
			msg: "local_retention_bytes 2000000000 exceeds retention_bytes 1000000000"},
		{name: "local without tiering", s: &controlplanev1.TopicSettings{RetentionMs: ptr(30 * dayMs), LocalRetentionMs: ptr(dayMs)},
			msg: "local_retention_ms applies only to topics with tiering on"},
		{name: "local bytes with tiering off", s: &controlplanev1.TopicSettings{Tiering: ptr(false), LocalRetentionBytes: ptr(int64(1e9))},
			msg: "local_retention_bytes applies only to topics with tiering on"},

		{name: "update local retention", update: "tiered", s: &controlplanev1.TopicSettings{LocalRetentionMs: ptr(dayMs)}},
		{name: "update local beyond the topic's retention", update: "tiered", s: &controlplanev1.TopicSettings{LocalRetentionMs: ptr(60 * dayMs)},
			msg: "local_retention_ms 5184000000 (1440h0m0s) exceeds retention_ms 2592000000 (720h0m0s)"},
		{name: "update retention below the topic's local", update: "tiered", s: &controlplanev1.TopicSettings{RetentionBytes: ptr(int64(5e8))},
			msg: "local_retention_bytes 1000000000 exceeds retention_bytes 500000000"},
		{name: "update both sides at once", update: "tiered", s: &controlplanev1.TopicSettings{RetentionMs: ptr(2 * dayMs), LocalRetentionMs: ptr(dayMs)}},
		{name: "update local of an untiered topic", update: "plain", s: &controlplanev1.TopicSettings{LocalRetentionMs: ptr(dayMs)},
			msg: "local_retention_ms applies only to topics with tiering on"},
		{name: "update turning tiering off with local", update: "tiered", s: &controlplanev1.TopicSettings{Tiering: ptr(false), LocalRetentionMs: ptr(dayMs)},
			msg: "applies only to topics with tiering on"},
		{name: "update tiering on with local", update: "plain", s: &controlplanev1.TopicSettings{Tiering: ptr(true), LocalRetentionMs: ptr(dayMs)}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.update != "" {
				err = update(tt.update, tt.s)
			} else {
				err = create(fmt.Sprintf("case-%d", i), tt.s)
			}
			switch {
			case tt.msg == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.msg == "":
				return
			case codeOf(err) != connect.CodeInvalidArgument:
				t.Fatalf("err %v, want InvalidArgument", err)
			case !strings.Contains(err.Error(), tt.msg):
				t.Fatalf("err %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestTieringDefaultsValidate(t *testing.T) {
	tests := []struct {
		name string
		d    server.TopicDefaults
		ok   bool
	}{
		{name: "tiering with local retention", d: server.TopicDefaults{Tiering: true, RetentionTime: 365 * 24 * time.Hour, LocalRetentionTime: 24 * time.Hour}, ok: true},
		{name: "local retention for topics that turn tiering on", d: server.TopicDefaults{LocalRetentionTime: 24 * time.Hour, LocalRetentionBytes: 1 << 30}, ok: true},
		{name: "local longer than whole", d: server.TopicDefaults{RetentionTime: 24 * time.Hour, LocalRetentionTime: 48 * time.Hour}},
		{name: "local larger than whole", d: server.TopicDefaults{RetentionBytes: 1 << 20, LocalRetentionBytes: 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := server.Config{DataDir: "/tmp/x", DefaultTopicSettings: tt.d}.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, ok %v", err, tt.ok)
			}
		})
	}
}

// TestTieringSettingsReachSPUs follows the settings of a tiered topic
// through updates: what is not set stays, and each change reaches the
// SPUs' ReplicaConfig.
func TestTieringSettingsReachSPUs(t *testing.T) {
	c := startCP(t, server.Config{DataDir: t.TempDir(), DefaultTopicSettings: server.TopicDefaults{
		RetentionTime: 7 * 24 * time.Hour, SegmentBytes: 1 << 20, LocalRetentionBytes: 1 << 30,
	}})
	ctx := context.Background()
	spus := []*fakeSPU{startSPU(t, c.url, 0), startSPU(t, c.url, 1)}
	waitSPUs(t, c, 2)

	_, err := c.topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{Spec: &controlplanev1.TopicSpec{
		Name: "history", Partitions: 2, ReplicationFactor: 2,
		Settings: &controlplanev1.TopicSettings{Tiering: ptr(true), RetentionMs: ptr(3 * yearMs), LocalRetentionMs: ptr(7 * dayMs)},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	createTopic(t, c, "plain", 1, 1)

	// wantConfig waits until every replica of topic on the SPUs has want.
	wantConfig := func(topic string, want *internalv1.ReplicaConfig) {
		t.Helper()
		eventually(t, 5*time.Second, func() error {
			seen := 0
			for _, s := range spus {
				for _, r := range s.replicas() {
					if r.Topic != topic {
						continue
					}
					seen++
					g := r.Config
					if g.Tiering != want.Tiering || g.RetentionMs != want.RetentionMs || g.LocalRetentionMs != want.LocalRetentionMs ||
						g.LocalRetentionBytes != want.LocalRetentionBytes || g.SegmentBytes != want.SegmentBytes {
						return fmt.Errorf("spu %d has %s/%d with %v, want %v", s.id, r.Topic, r.Partition, g, want)
					}
				}
			}
			if seen == 0 {
				return fmt.Errorf("no SPU holds %s", topic)
			}
			return nil
		})
	}
	// wantSettings checks the topic's settings as DescribeTopic returns them.
	wantSettings := func(topic string, tiering bool, localMs, localBytes int64) {
		t.Helper()
		got, err := describe(ctx, c, topic)
		if err != nil {
			t.Fatal(err)
		}
		s := got.Spec.Settings
		if s.Tiering == nil || *s.Tiering != tiering || s.GetLocalRetentionMs() != localMs || s.GetLocalRetentionBytes() != localBytes {
			t.Fatalf("%s has settings %v, want tiering %v, local %d ms and %d bytes", topic, s, tiering, localMs, localBytes)
		}
	}

	// The request's settings over the cluster's defaults.
	wantSettings("history", true, 7*dayMs, 1<<30)
	wantConfig("history", &internalv1.ReplicaConfig{Tiering: true, RetentionMs: 3 * yearMs, LocalRetentionMs: 7 * dayMs, LocalRetentionBytes: 1 << 30, SegmentBytes: 1 << 20})
	// Tiering is off by default: the default local retention is kept but
	// not sent.
	wantSettings("plain", false, 0, 1<<30)
	wantConfig("plain", &internalv1.ReplicaConfig{RetentionMs: 7 * dayMs, SegmentBytes: 1 << 20})

	up := func(name string, s *controlplanev1.TopicSettings) {
		t.Helper()
		if _, err := c.topics.UpdateTopic(ctx, connect.NewRequest(&controlplanev1.UpdateTopicRequest{Name: name, Settings: s})); err != nil {
			t.Fatal(err)
		}
	}
	// One setting changes; the others stay.
	up("history", &controlplanev1.TopicSettings{LocalRetentionMs: ptr(dayMs)})
	wantSettings("history", true, dayMs, 1<<30)
	wantConfig("history", &internalv1.ReplicaConfig{Tiering: true, RetentionMs: 3 * yearMs, LocalRetentionMs: dayMs, LocalRetentionBytes: 1 << 30, SegmentBytes: 1 << 20})

	// Off: the SPUs get no local settings, the topic keeps them.
	up("history", &controlplanev1.TopicSettings{Tiering: ptr(false)})
	wantSettings("history", false, dayMs, 1<<30)
	wantConfig("history", &internalv1.ReplicaConfig{RetentionMs: 3 * yearMs, SegmentBytes: 1 << 20})

	// On again: they apply again.
	up("history", &controlplanev1.TopicSettings{Tiering: ptr(true)})
	wantConfig("history", &internalv1.ReplicaConfig{Tiering: true, RetentionMs: 3 * yearMs, LocalRetentionMs: dayMs, LocalRetentionBytes: 1 << 30, SegmentBytes: 1 << 20})

	// A live topic turns tiering on.
	up("plain", &controlplanev1.TopicSettings{Tiering: ptr(true), LocalRetentionMs: ptr(int64(-1))})
	wantConfig("plain", &internalv1.ReplicaConfig{Tiering: true, RetentionMs: 7 * dayMs, LocalRetentionMs: -1, LocalRetentionBytes: 1 << 30, SegmentBytes: 1 << 20})
}

// startReportingSPU is a fakeSPU whose heartbeats say what report returns
// for each of its replicas.
func startReportingSPU(t testing.TB, url string, id int32, report func(*internalv1.DesiredReplica) *internalv1.ReplicaStatus) *fakeSPU {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeSPU{
		id:     id,
		addr:   fmt.Sprintf("http://127.0.0.1:%d", 19000+id),
		client: internalv1connect.NewRegistryServiceClient(h2cClient(), url),
		cancel: cancel,
	}
	f.wg.Go(func() { f.watch(ctx) })
	f.wg.Go(func() {
		for {
			req := &internalv1.HeartbeatRequest{SpuId: f.id, Address: f.addr}
			for _, d := range f.replicas() {
				req.Replicas = append(req.Replicas, report(d))
			}
			_, _ = f.client.Heartbeat(ctx, connect.NewRequest(req))
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	t.Cleanup(f.stop)
	return f
}

// TestDescribeShowsRemoteTier: what the leader reports of the remote tier
// shows per partition in DescribeTopic.
func TestDescribeShowsRemoteTier(t *testing.T) {
	c := startCP(t, server.Config{DataDir: t.TempDir()})
	ctx := context.Background()
	longErr := "put object: " + strings.Repeat("é", 400)
	startReportingSPU(t, c.url, 0, func(d *internalv1.DesiredReplica) *internalv1.ReplicaStatus {
		r := &internalv1.ReplicaStatus{Topic: d.Topic, Partition: d.Partition, LeaderEpoch: d.LeaderEpoch, StartOffset: 500, EndOffset: 900, SizeBytes: 4000}
		switch {
		case d.Topic != "history":
			// An SPU that tiers nothing leaves the remote fields 0.
		case d.Partition == 0:
			r.RemoteStartOffset, r.RemoteSizeBytes, r.UploadLagBytes = 0, 50000, 1200
		case d.Partition == 1:
			r.RemoteStartOffset, r.RemoteSizeBytes, r.UploadLagBytes, r.TieringError = 100, 9000, 7000, longErr
		}
		return r
	})
	waitSPUs(t, c, 1)
	_, err := c.topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{Spec: &controlplanev1.TopicSpec{
		Name: "history", Partitions: 2, ReplicationFactor: 1, Settings: &controlplanev1.TopicSettings{Tiering: ptr(true)},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	createTopic(t, c, "plain", 1, 1)

	topic := waitState(t, c, "history", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)
	p0, p1 := topic.Partitions[0], topic.Partitions[1]
	if p0.StartOffset != 500 || p0.RemoteStartOffset != 0 || p0.RemoteSizeBytes != 50000 || p0.UploadLagBytes != 1200 || p0.TieringError != "" {
		t.Errorf("partition 0: %v", p0)
	}
	if p1.RemoteStartOffset != 100 || p1.RemoteSizeBytes != 9000 || p1.UploadLagBytes != 7000 {
		t.Errorf("partition 1: %v", p1)
	}
	if !strings.HasPrefix(p1.TieringError, "put object: é") || len(p1.TieringError) > 520 || !strings.HasSuffix(p1.TieringError, "…") {
		t.Errorf("partition 1 error %q (%d bytes): want the report cut to about 512 bytes", p1.TieringError, len(p1.TieringError))
	}
	plain := waitState(t, c, "plain", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)
	if p := plain.Partitions[0]; p.RemoteStartOffset != -1 || p.RemoteSizeBytes != 0 || p.UploadLagBytes != 0 {
		t.Errorf("untiered partition: %v, want remote start -1 and nothing remote", p)
	}
}
