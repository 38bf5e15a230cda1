package spu_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// TestKill9DuringProduceLosesNoAcknowledgedRecord runs a real `spate spu
// serve` process, streams pipelined produce requests at it, kills it with
// SIGKILL in the middle of the stream, restarts it, and checks that every
// acknowledged record is there, at the offset it was acknowledged with, and
// that the log is readable and writable to its end.
func TestKill9DuringProduceLosesNoAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills SPU processes; skipped with -short")
	}
	for _, mode := range []string{"write", "fsync"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{}
			if mode == "fsync" {
				args = append(args, "--fsync")
			}
			// Small segments, so that the kill can land during a roll too.
			args = append(args, "--segment-bytes", "262144")
			p := sputest.StartProcess(t, t.TempDir(), args...)
			c := newClients(p.URL)
			c.ensure(t, "crash", 1, nil)

			for round := range 3 {
				acked := produceUntilKilled(t, c, p, round)
				p.Restart(t)
				c = newClients(p.URL)
				offs, err := c.consume.Offsets(context.Background(), connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: "crash"}))
				if err != nil {
					t.Fatal(err)
				}
				end := offs.Msg.Partitions[0].EndOffset
				stored := map[int64]string{}
				for _, r := range c.consumeRange(t, "crash", 0, nil, end) {
					stored[r.Offset] = string(r.Value)
				}
				if int64(len(stored)) != end {
					t.Fatalf("round %d: the log holds %d records below its end offset %d", round, len(stored), end)
				}
				for off, want := range acked {
					if got, ok := stored[off]; !ok || got != want {
						t.Fatalf("round %d: acknowledged record %q at offset %d reads back as %q (end offset %d)\nSPU log:\n%s", round, want, off, got, end, p.Log())
					}
				}
				t.Logf("round %d: %d acknowledged records survived kill -9", round, len(acked))
			}
		})
	}
}

// produceUntilKilled streams batches of 10 records and kills the SPU once
// some hundreds are acknowledged, while requests are still in flight. It
// returns the acknowledged records by offset.
func produceUntilKilled(t *testing.T, c clients, p *sputest.Process, round int) map[int64]string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream := c.produce.Produce(ctx)
	sent := map[uint64][]string{}
	sendErr := make(chan error, 1)
	go func() {
		for i := uint64(0); ; i++ {
			vals := values(fmt.Sprintf("round%d-req%d", round, i), 0, 10)
			sent[i] = vals // read only after the sender has stopped
			if err := stream.Send(&dataplanev1.ProduceRequest{RequestId: i, Topic: "crash", Batches: makeBatch(t, 0, vals...)}); err != nil {
				sendErr <- err
				return
			}
		}
	}()
	ackedBase := map[int64]uint64{} // base offset -> request id
	ackedRequests := 0
	for {
		resp, err := stream.Receive()
		if err != nil {
			break // the SPU is gone
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("request %d refused: %s", resp.RequestId, resp.ErrorMessage)
		}
		ackedRequests++
		ackedBase[resp.BaseOffset] = resp.RequestId
		if ackedRequests == 200 {
			p.Kill(t)
		}
	}
	cancel()
	<-sendErr // the sender has stopped: sent is ours now
	if ackedRequests < 200 {
		t.Fatalf("only %d requests acknowledged before the stream ended", ackedRequests)
	}
	out := map[int64]string{}
	for base, req := range ackedBase {
		for j, v := range sent[req] {
			out[base+int64(j)] = v
		}
	}
	return out
}
