package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/control-plane/server"
)

func ptr[T any](v T) *T { return &v }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  server.Config
		ok   bool
	}{
		{name: "data dir", cfg: server.Config{DataDir: "/tmp/x"}, ok: true},
		{name: "external etcd", cfg: server.Config{EtcdEndpoints: []string{"http://127.0.0.1:2379"}}, ok: true},
		{name: "nothing", cfg: server.Config{}},
		{name: "external and embedded", cfg: server.Config{EtcdEndpoints: []string{"http://127.0.0.1:2379"}, EtcdDir: "/tmp/x"}},
		{name: "short liveness", cfg: server.Config{DataDir: "/tmp/x", LivenessTimeout: time.Millisecond}},
		{name: "local spus without provisioner", cfg: server.Config{DataDir: "/tmp/x", LocalSPUs: 3}},
		{name: "bad advertise url", cfg: server.Config{DataDir: "/tmp/x", AdvertiseURL: "localhost:9000"}},
		{name: "bad default segment", cfg: server.Config{DataDir: "/tmp/x", DefaultTopicSettings: server.TopicDefaults{SegmentBytes: 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, ok %v", err, tt.ok)
			}
		})
	}
}

func TestTopicErrors(t *testing.T) {
	c := startCP(t, server.Config{DataDir: t.TempDir()})
	ctx := context.Background()
	createTopic(t, c, "taken", 1, 1)
	spec := func(name string, partitions, rf int32) *controlplanev1.CreateTopicRequest {
		return &controlplanev1.CreateTopicRequest{Spec: &controlplanev1.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: rf}}
	}
	tests := []struct {
		name string
		call func() error
		code connect.Code
		msg  string
	}{
		{name: "duplicate", code: connect.CodeAlreadyExists, msg: `topic "taken" already exists`, call: func() error {
			_, err := c.topics.CreateTopic(ctx, connect.NewRequest(spec("taken", 1, 1)))
			return err
		}},
		{name: "bad name", code: connect.CodeInvalidArgument, msg: "lower-case", call: func() error {
			_, err := c.topics.CreateTopic(ctx, connect.NewRequest(spec("Bad_Name", 1, 1)))
			return err
		}},
		{name: "no spec", code: connect.CodeInvalidArgument, msg: "spec is required", call: func() error {
			_, err := c.topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{}))
			return err
		}},
		{name: "zero partitions", code: connect.CodeInvalidArgument, msg: "at least 1 partition", call: func() error {
			_, err := c.topics.CreateTopic(ctx, connect.NewRequest(spec("zero", 0, 1)))
			return err
		}},
		{name: "too many partitions", code: connect.CodeInvalidArgument, msg: "at most 10000", call: func() error {
			_, err := c.topics.CreateTopic(ctx, connect.NewRequest(spec("many", 10001, 1)))
			return err
		}},
		{name: "zero replication", code: connect.CodeInvalidArgument, msg: "replication_factor 0", call: func() error {
			_, err := c.topics.CreateTopic(ctx, connect.NewRequest(spec("norep", 1, 0)))
			return err
		}},
		{name: "bad retention", code: connect.CodeInvalidArgument, msg: "retention_ms 0", call: func() error {
			req := spec("ret", 1, 1)
			req.Spec.Settings = &controlplanev1.TopicSettings{RetentionMs: ptr(int64(0))}
			_, err := c.topics.CreateTopic(ctx, connect.NewRequest(req))
			return err
		}},
		{name: "describe unknown", code: connect.CodeNotFound, msg: `topic "nope" not found`, call: func() error {
			_, err := describe(ctx, c, "nope")
			return err
		}},
		{name: "update unknown", code: connect.CodeNotFound, call: func() error {
			_, err := c.topics.UpdateTopic(ctx, connect.NewRequest(&controlplanev1.UpdateTopicRequest{Name: "nope", Settings: &controlplanev1.TopicSettings{RetentionMs: ptr(int64(1000))}}))
			return err
		}},
		{name: "update nothing", code: connect.CodeInvalidArgument, msg: "nothing to update", call: func() error {
			_, err := c.topics.UpdateTopic(ctx, connect.NewRequest(&controlplanev1.UpdateTopicRequest{Name: "taken"}))
			return err
		}},
		{name: "add partitions unknown", code: connect.CodeNotFound, call: func() error {
			_, err := c.topics.AddPartitions(ctx, connect.NewRequest(&controlplanev1.AddPartitionsRequest{Name: "nope", Partitions: 3}))
			return err
		}},
		{name: "shrink", code: connect.CodeInvalidArgument, msg: "cannot be removed", call: func() error {
			if _, err := c.topics.AddPartitions(ctx, connect.NewRequest(&controlplanev1.AddPartitionsRequest{Name: "taken", Partitions: 3})); err != nil {
				return err
			}
			_, err := c.topics.AddPartitions(ctx, connect.NewRequest(&controlplanev1.AddPartitionsRequest{Name: "taken", Partitions: 2}))
			return err
		}},
		{name: "delete unknown", code: connect.CodeNotFound, call: func() error {
			_, err := c.topics.DeleteTopic(ctx, connect.NewRequest(&controlplanev1.DeleteTopicRequest{Name: "nope"}))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if codeOf(err) != tt.code {
				t.Fatalf("err %v, want code %v", err, tt.code)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestTopicLifecycle(t *testing.T) {
	c := startCP(t, server.Config{DataDir: t.TempDir(), DefaultTopicSettings: server.TopicDefaults{SegmentBytes: 1 << 20}})
	ctx := context.Background()
	spus := []*fakeSPU{startSPU(t, c.url, 0), startSPU(t, c.url, 1), startSPU(t, c.url, 2)}
	waitSPUs(t, c, 3)

	createTopic(t, c, "events", 6, 1)
	createTopic(t, c, "alpha", 1, 1)
	topic := waitState(t, c, "events", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)
	if got := topic.Spec.Settings.GetSegmentBytes(); got != 1<<20 {
		t.Errorf("segment bytes %d, want the cluster default %d", got, 1<<20)
	}
	leaders := map[int32]int{}
	for _, p := range topic.Partitions {
		leaders[p.Leader]++
		if p.Status != "online" || p.EndOffset != 10+int64(p.Partition) || p.SizeBytes != 1000 {
			t.Errorf("partition %+v: want online with the reported offsets", p)
		}
	}
	if len(leaders) != 3 || leaders[0] != 2 || leaders[1] != 2 || leaders[2] != 2 {
		t.Errorf("leaders %v, want 2 on each SPU", leaders)
	}

	list, err := c.topics.ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range list.Msg.Topics {
		names = append(names, tp.Spec.Name)
	}
	if !slices.Equal(names, []string{"alpha", "events"}) {
		t.Errorf("list %v, want alpha, events", names)
	}

	// A live update reaches the SPUs.
	_, err = c.topics.UpdateTopic(ctx, connect.NewRequest(&controlplanev1.UpdateTopicRequest{
		Name:     "events",
		Settings: &controlplanev1.TopicSettings{RetentionMs: ptr(int64(3600_000)), Durability: ptr(controlplanev1.Durability_DURABILITY_FSYNC)},
	}))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		for _, s := range spus {
			for _, r := range s.replicas() {
				cfg := r.Config
				if r.Topic == "events" && (cfg.RetentionMs != 3600_000 || cfg.Durability != internalv1.Durability_DURABILITY_FSYNC || cfg.SegmentBytes != 1<<20) {
					return fmt.Errorf("spu %d has %v", s.id, cfg)
				}
			}
		}
		return nil
	})

	// New partitions are placed.
	if _, err := c.topics.AddPartitions(ctx, connect.NewRequest(&controlplanev1.AddPartitionsRequest{Name: "events", Partitions: 9})); err != nil {
		t.Fatal(err)
	}
	topic = waitState(t, c, "events", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)
	if len(topic.Partitions) != 9 {
		t.Fatalf("%d partitions, want 9", len(topic.Partitions))
	}

	// Delete: the replicas leave the SPUs, then the topic is gone.
	if _, err := c.topics.DeleteTopic(ctx, connect.NewRequest(&controlplanev1.DeleteTopicRequest{Name: "events"})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		_, err := describe(ctx, c, "events")
		if codeOf(err) != connect.CodeNotFound {
			return fmt.Errorf("describe after delete: %v", err)
		}
		return nil
	})
	for _, s := range spus {
		for _, r := range s.replicas() {
			if r.Topic == "events" {
				t.Errorf("spu %d still holds %s/%d", s.id, r.Topic, r.Partition)
			}
		}
	}
	// The name is free again.
	createTopic(t, c, "events", 1, 1)
}

func TestPendingUntilSPUsArrive(t *testing.T) {
	c := startCP(t, server.Config{DataDir: t.TempDir()})
	startSPU(t, c.url, 0)
	waitSPUs(t, c, 1)
	createTopic(t, c, "replicated", 2, 3)
	topic := waitState(t, c, "replicated", controlplanev1.TopicState_TOPIC_STATE_PENDING, 5*time.Second)
	if want := "needs 3 SPUs for replication factor 3; 1 is online"; topic.Reason != want {
		t.Fatalf("reason %q, want %q", topic.Reason, want)
	}
	startSPU(t, c.url, 1)
	eventually(t, 5*time.Second, func() error {
		topic, err := describe(context.Background(), c, "replicated")
		if err != nil {
			return err
		}
		if want := "needs 3 SPUs for replication factor 3; 2 are online"; topic.Reason != want {
			return fmt.Errorf("reason %q, want %q", topic.Reason, want)
		}
		return nil
	})
	startSPU(t, c.url, 2)
	topic = waitState(t, c, "replicated", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)
	for _, p := range topic.Partitions {
		r := slices.Clone(p.Replicas)
		slices.Sort(r)
		if !slices.Equal(r, []int32{0, 1, 2}) {
			t.Errorf("partition %d on %v, want one replica on each SPU", p.Partition, p.Replicas)
		}
	}
}

func TestLeaderFailover(t *testing.T) {
	c := startCP(t, server.Config{DataDir: t.TempDir()})
	spus := []*fakeSPU{startSPU(t, c.url, 0), startSPU(t, c.url, 1), startSPU(t, c.url, 2)}
	waitSPUs(t, c, 3)
	createTopic(t, c, "ha", 3, 2)
	before := waitState(t, c, "ha", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch, err := c.meta.WatchMetadata(ctx, connect.NewRequest(&controlplanev1.WatchMetadataRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	if !watch.Receive() || !watch.Msg().Snapshot || len(watch.Msg().Topics) != 1 || len(watch.Msg().Spus) != 3 {
		t.Fatalf("first message %v (err %v), want a snapshot of 1 topic and 3 SPUs", watch.Msg(), watch.Err())
	}

	spus[0].stop()
	var after *controlplanev1.Topic
	eventually(t, 10*time.Second, func() error {
		after = waitState(t, c, "ha", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)
		for _, p := range after.Partitions {
			if p.Leader == 0 {
				return fmt.Errorf("partition %d is still led by the stopped SPU 0", p.Partition)
			}
		}
		return nil
	})
	for i, p := range after.Partitions {
		old := before.Partitions[i]
		if !slices.Equal(p.Replicas, old.Replicas) {
			t.Errorf("partition %d moved from %v to %v", i, old.Replicas, p.Replicas)
		}
		switch {
		case old.Leader == 0 && (p.Leader == 0 || p.LeaderEpoch != old.LeaderEpoch+1):
			t.Errorf("partition %d: leader %d epoch %d, want a new leader and epoch %d", i, p.Leader, p.LeaderEpoch, old.LeaderEpoch+1)
		case old.Leader != 0 && (p.Leader != old.Leader || p.LeaderEpoch != old.LeaderEpoch):
			t.Errorf("partition %d: leader changed from %d to %d", i, old.Leader, p.Leader)
		}
	}
	// The watch tells about the lost SPU and the new leaders.
	sawLeaders, sawSPU := false, false
	for !(sawLeaders && sawSPU) && watch.Receive() {
		m := watch.Msg()
		for _, s := range m.Spus {
			if s.Id == 0 && !s.Online {
				sawSPU = true
			}
		}
		for _, tp := range m.Topics {
			ok := true
			for _, p := range tp.Partitions {
				ok = ok && p.Leader != 0
			}
			sawLeaders = sawLeaders || ok
		}
	}
	if !sawLeaders || !sawSPU {
		t.Fatalf("watch ended (%v) before it showed the failover", watch.Err())
	}
}

func TestRestartKeepsTopics(t *testing.T) {
	dir := t.TempDir()
	c := startCP(t, server.Config{DataDir: dir})
	createTopic(t, c, "durable", 4, 1)
	startSPU(t, c.url, 0).stop()
	c.stop(t)

	c = startCP(t, server.Config{DataDir: dir})
	topic, err := describe(context.Background(), c, "durable")
	if err != nil {
		t.Fatal(err)
	}
	if topic.Spec.Partitions != 4 {
		t.Fatalf("after restart: %v", topic)
	}
	startSPU(t, c.url, 0)
	waitState(t, c, "durable", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)
}

func TestTwoControlPlanes(t *testing.T) {
	endpoint := startEtcd(t)
	a := startCP(t, server.Config{EtcdEndpoints: []string{endpoint}})
	b := startCP(t, server.Config{EtcdEndpoints: []string{endpoint}})
	eventually(t, 5*time.Second, func() error {
		if a.srv.Leader() == b.srv.Leader() {
			return fmt.Errorf("leaders: a %v, b %v; want exactly one", a.srv.Leader(), b.srv.Leader())
		}
		return nil
	})
	leader, follower := a, b
	if b.srv.Leader() {
		leader, follower = b, a
	}
	// SPUs may talk to either replica.
	startSPU(t, follower.url, 0)
	startSPU(t, leader.url, 1)
	waitSPUs(t, leader, 2)
	createTopic(t, follower, "shared", 2, 2)
	waitState(t, leader, "shared", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)

	leader.stop(t)
	eventually(t, 10*time.Second, func() error {
		if !follower.srv.Leader() {
			return fmt.Errorf("the follower did not take over")
		}
		return nil
	})
	// SPU 1 talked to the stopped replica only: it goes offline.
	waitSPUs(t, follower, 1)
	createTopic(t, follower, "after", 2, 1)
	waitState(t, follower, "after", controlplanev1.TopicState_TOPIC_STATE_READY, 10*time.Second)
}
