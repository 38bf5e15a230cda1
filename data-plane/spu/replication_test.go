package spu_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// endOffset returns the end offset of topic/partition on one SPU.
func endOffset(t *testing.T, c clients, topic string, partition int32) int64 {
	t.Helper()
	resp, err := c.consume.Offsets(context.Background(), connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: topic, Partitions: []int32{partition}}))
	if err != nil {
		t.Fatalf("offsets: %v", err)
	}
	return resp.Msg.Partitions[0].EndOffset
}

// rawLog returns the stored batches of topic/partition up to end, exactly as
// the SPU serves them.
func rawLog(t *testing.T, c clients, topic string, partition int32, end int64) []byte {
	t.Helper()
	stream, err := c.consume.Consume(testContext(t), connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic:      topic,
		Partitions: []*dataplanev1.PartitionConsume{{Partition: partition, EndOffset: &end}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var out []byte
	for stream.Receive() {
		out = append(out, stream.Msg().Batches...)
		if stream.Msg().EndReached {
			break
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("consume: %v", err)
	}
	return out
}

// waitCaughtUp waits until the follower holds what the leader holds, byte
// for byte, and returns how long that took.
func waitCaughtUp(t *testing.T, leader, follower clients, topic string, partition int32) time.Duration {
	t.Helper()
	start := time.Now()
	want := endOffset(t, leader, topic, partition)
	for endOffset(t, follower, topic, partition) < want {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("follower at %d, leader at %d after 20s", endOffset(t, follower, topic, partition), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	lag := time.Since(start)
	if got := endOffset(t, follower, topic, partition); got != want {
		t.Fatalf("follower end offset %d, leader %d", got, want)
	}
	if !bytes.Equal(rawLog(t, follower, topic, partition, want), rawLog(t, leader, topic, partition, want)) {
		t.Fatalf("the follower's log differs from the leader's")
	}
	return lag
}

// refusedNotLeader checks that produce to c is refused, naming leader.
func refusedNotLeader(t *testing.T, c clients, topic string, leader int32) {
	t.Helper()
	_, err := c.produceOne(t, topic, 0, makeBatch(t, 0, "x"))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("produce to a follower = %v, want FailedPrecondition", err)
	}
	want := fmt.Sprintf("not the leader of %s/0; the leader is SPU %d", topic, leader)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("produce to a follower = %q, want it to say %q", err, want)
	}
}

func TestFollowerReplicatesAndTakesOverAsLeader(t *testing.T) {
	reg, cp := startRegistry(t, "", nil)
	a := sputest.Start(t, spu.Config{ID: 1, ControlPlane: cp.URL})
	b := sputest.Start(t, spu.Config{ID: 2, ControlPlane: cp.URL})
	ca, cb := newClients(a.URL), newClients(b.URL)
	urls := map[int32]string{1: a.URL, 2: b.URL}
	declare := func(rev int64, leader, epoch int32) {
		d := &internalv1.DesiredReplica{Topic: "repl", Partition: 0, LeaderEpoch: epoch, Leader: leader, LeaderAddress: urls[leader], Config: &internalv1.ReplicaConfig{SegmentBytes: 64 << 10}}
		reg.push(t, 1, rev, d)
		reg.push(t, 2, rev, d)
	}

	// A leads, B follows.
	declare(1, 1, 1)
	waitHeld(t, ca, "repl/0")
	waitHeld(t, cb, "repl/0")
	const batches, perBatch = 200, 10
	for i := range batches {
		resp, err := ca.produceOne(t, "repl", 0, makeBatch(t, 0, values("a", i*perBatch, perBatch)...))
		if err != nil {
			t.Fatalf("produce to the leader: %v", err)
		}
		if resp.BaseOffset != int64(i*perBatch) {
			t.Fatalf("base offset %d, want %d", resp.BaseOffset, i*perBatch)
		}
	}
	lag := waitCaughtUp(t, ca, cb, "repl", 0)
	t.Logf("follower caught up %v after the last of %d produces", lag, batches)
	recs := cb.consumeRange(t, "repl", 0, nil, batches*perBatch)
	if len(recs) != batches*perBatch || recs[17].Offset != 17 || string(recs[17].Value) != "a-17" {
		t.Fatalf("follower holds %d records; record 17 = %d %q", len(recs), recs[17].Offset, recs[17].Value)
	}
	refusedNotLeader(t, cb, "repl", 1)

	// B takes over at epoch 2; A follows it.
	declare(2, 2, 2)
	end := int64(batches * perBatch)
	deadline := time.Now().Add(10 * time.Second)
	var resp *dataplanev1.ProduceOneResponse
	for {
		var err error
		resp, err = cb.produceOne(t, "repl", 0, makeBatch(t, 0, values("b", 0, perBatch)...))
		if err == nil {
			break
		}
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || time.Now().After(deadline) {
			t.Fatalf("produce to the new leader: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp.BaseOffset != end {
		t.Fatalf("the new leader wrote at %d, want its end offset %d", resp.BaseOffset, end)
	}
	for i := 1; i < 20; i++ {
		if _, err := cb.produceOne(t, "repl", 0, makeBatch(t, 0, values("b", i*perBatch, perBatch)...)); err != nil {
			t.Fatal(err)
		}
	}
	waitCaughtUp(t, cb, ca, "repl", 0)
	refusedNotLeader(t, ca, "repl", 2)
	recs = ca.consumeRange(t, "repl", 0, nil, end+20*perBatch)
	if got := recordValues(recs, end); len(got) != 20*perBatch || got[0] != "b-0" {
		t.Fatalf("A holds %d of B's records, first %v", len(got), got[:min(1, len(got))])
	}
	var parts *connect.Response[dataplanev1.ListPartitionsResponse]
	parts, err := ca.parts.ListPartitions(context.Background(), connect.NewRequest(&dataplanev1.ListPartitionsRequest{}))
	if err != nil || parts.Msg.Partitions[0].LeaderEpoch != 2 {
		t.Fatalf("A's partitions = %v, %v", parts, err)
	}
}

func TestFollowerWaitsForTheLeaderAndStopsWhenRemoved(t *testing.T) {
	reg, cp := startRegistry(t, "", nil)
	b := sputest.Start(t, spu.Config{ID: 2, ControlPlane: cp.URL})
	cb := newClients(b.URL)
	// The leader is not up yet: the follower retries with backoff.
	a := sputest.Start(t, spu.Config{ID: 1, ControlPlane: cp.URL})
	ca := newClients(a.URL)
	d := &internalv1.DesiredReplica{Topic: "late", Partition: 0, LeaderEpoch: 1, Leader: 1, LeaderAddress: a.URL}
	reg.push(t, 2, 1, d)
	waitHeld(t, cb, "late/0")
	time.Sleep(300 * time.Millisecond) // a few failed attempts: A has no such partition yet
	reg.push(t, 1, 1, d)
	waitHeld(t, ca, "late/0")
	if _, err := ca.produceOne(t, "late", 0, makeBatch(t, 0, "1", "2", "3")); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, ca, cb, "late", 0)

	// Removed from B: the fetch loop stops and the data goes.
	reg.push(t, 2, 2)
	waitHeld(t, cb)
	if _, err := ca.produceOne(t, "late", 0, makeBatch(t, 0, "4")); err != nil {
		t.Fatal(err)
	}
	_, err := cb.consume.Offsets(context.Background(), connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: "late"}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound {
		t.Fatalf("offsets on B after removal = %v, want NotFound", err)
	}
}

// TestDivergedFollowerKeepsItsLog: without truncation, a follower whose end
// offset falls inside one of the leader's batches must not write anything.
// TestDivergedFollowerFetchesTheLeadersLogAgain has two SPUs that each
// believe they lead, as an old leader that returns after a failover does,
// and take produce; then B follows A at a new epoch. B's log ends inside
// one of A's batches, or past A's end: B discards it and ends up holding
// A's log byte for byte.
func TestDivergedFollowerFetchesTheLeadersLogAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		aCount int // records A takes while B leads too
	}{
		{"EndInsideALeaderBatch", 40},
		{"AheadOfTheLeader", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, cp := startRegistry(t, "", nil)
			a := sputest.Start(t, spu.Config{ID: 1, ControlPlane: cp.URL})
			b := sputest.Start(t, spu.Config{ID: 2, ControlPlane: cp.URL})
			ca, cb := newClients(a.URL), newClients(b.URL)
			ledBy := func(leader, epoch int32, addr string) *internalv1.DesiredReplica {
				return &internalv1.DesiredReplica{Topic: "split", Partition: 0, LeaderEpoch: epoch, Leader: leader, LeaderAddress: addr}
			}
			// Each SPU believes it leads, and writes its own records.
			reg.push(t, 1, 1, ledBy(1, 1, a.URL))
			reg.push(t, 2, 1, ledBy(2, 1, b.URL))
			waitHeld(t, ca, "split/0")
			waitHeld(t, cb, "split/0")
			if _, err := ca.produceOne(t, "split", 0, makeBatch(t, 0, values("a", 0, tc.aCount)...)); err != nil {
				t.Fatal(err)
			}
			if _, err := cb.produceOne(t, "split", 0, makeBatch(t, 0, "b0", "b1", "b2")); err != nil {
				t.Fatal(err)
			}
			// B now follows A at a new epoch.
			reg.push(t, 1, 2, ledBy(1, 2, a.URL))
			reg.push(t, 2, 2, ledBy(1, 2, a.URL))
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := cb.produceOne(t, "split", 0, makeBatch(t, 0, "x"))
				if connect.CodeOf(err) == connect.CodeFailedPrecondition {
					break
				}
				if err != nil || time.Now().After(deadline) {
					t.Fatalf("B never became a follower: %v", err)
				}
				// Written before the new set arrived: B diverges a bit more.
				time.Sleep(10 * time.Millisecond)
			}
			refusedNotLeader(t, cb, "split", 1)
			// Ahead of A, B must first shrink.
			for endOffset(t, cb, "split", 0) > endOffset(t, ca, "split", 0) {
				if time.Now().After(deadline) {
					t.Fatalf("B still ahead of A: %d > %d", endOffset(t, cb, "split", 0), endOffset(t, ca, "split", 0))
				}
				time.Sleep(5 * time.Millisecond)
			}
			waitCaughtUp(t, ca, cb, "split", 0)
			if got := recordValues(cb.consumeRange(t, "split", 0, nil, 1), 0); len(got) != tc.aCount || got[0] != "a-0" {
				t.Fatalf("B holds %v", got)
			}

			// And B keeps following.
			if _, err := ca.produceOne(t, "split", 0, makeBatch(t, 0, "after0", "after1")); err != nil {
				t.Fatal(err)
			}
			waitCaughtUp(t, ca, cb, "split", 0)
		})
	}
}
