package spu_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
	"github.com/spatehq/spate/internal/batch"
)

func TestProduceStreamIsPipelinedAndAcknowledgedInOrder(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	c := newClients(s.URL)
	c.ensure(t, "events", 1, nil)

	stream := c.produce.Produce(testContext(t))
	const requests = 50
	for i := range requests {
		// Send everything before reading any acknowledgement.
		err := stream.Send(&dataplanev1.ProduceRequest{RequestId: uint64(i), Topic: "events", Batches: makeBatch(t, 0, values("r", i*3, 3)...)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseRequest(); err != nil {
		t.Fatal(err)
	}
	for i := range requests {
		resp, err := stream.Receive()
		if err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
		if resp.RequestId != uint64(i) || resp.ErrorCode != 0 || resp.BaseOffset != int64(i*3) || resp.LastOffset != int64(i*3+2) {
			t.Fatalf("ack %d = %+v, want request %d at offsets %d-%d", i, resp, i, i*3, i*3+2)
		}
	}
	if _, err := stream.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last ack: %v, want EOF", err)
	}
	got := recordValues(c.consumeRange(t, "events", 0, nil, requests*3), 0)
	if want := values("r", 0, requests*3); !slices.Equal(got, want) {
		t.Fatalf("consumed %v, want %v", got, want)
	}
}

func TestConsumePushesNewBatchesWithoutPolling(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	c := newClients(s.URL)
	c.ensure(t, "live", 1, nil)

	ctx := testContext(t)
	stream, err := c.consume.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic:      "live",
		Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, Start: &dataplanev1.Offset{Position: &dataplanev1.Offset_End{End: true}}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	got := make(chan string, 10)
	go func() {
		for stream.Receive() {
			recs, _ := batch.DecodeAll(stream.Msg().Batches, nil)
			for _, r := range recs {
				got <- string(r.Value)
			}
		}
		close(got)
	}()
	for i := range 3 {
		time.Sleep(20 * time.Millisecond) // the consumer is waiting at the end
		if _, err := c.produceOne(t, "live", 0, makeBatch(t, 0, values("live", i, 1)...)); err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-got:
			if want := values("live", i, 1)[0]; v != want {
				t.Fatalf("pushed %q, want %q", v, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("record %d was not pushed to the waiting consumer", i)
		}
	}
}

func TestConsumeStartPositions(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	c := newClients(s.URL)
	c.ensure(t, "pos", 1, nil)
	// Ten batches of one record, with timestamps 1000, 2000, ... 10000.
	for i := range 10 {
		if _, err := c.produceOne(t, "pos", 0, makeBatch(t, int64(i+1)*1000, values("v", i, 1)...)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		start *dataplanev1.Offset
		end   int64
		want  []string
	}{
		{name: "beginning", start: &dataplanev1.Offset{Position: &dataplanev1.Offset_Beginning{Beginning: true}}, end: 10, want: values("v", 0, 10)},
		{name: "absolute", start: &dataplanev1.Offset{Position: &dataplanev1.Offset_Absolute{Absolute: 7}}, end: 10, want: values("v", 7, 3)},
		{name: "from beginning", start: &dataplanev1.Offset{Position: &dataplanev1.Offset_FromBeginning{FromBeginning: 4}}, end: 6, want: values("v", 4, 2)},
		{name: "from end", start: &dataplanev1.Offset{Position: &dataplanev1.Offset_FromEnd{FromEnd: 2}}, end: 10, want: values("v", 8, 2)},
		{name: "from end past the beginning", start: &dataplanev1.Offset{Position: &dataplanev1.Offset_FromEnd{FromEnd: 99}}, end: 2, want: values("v", 0, 2)},
		{name: "timestamp", start: &dataplanev1.Offset{Position: &dataplanev1.Offset_TimestampMs{TimestampMs: 5500}}, end: 8, want: values("v", 5, 3)},
		{name: "end offset stops early", start: nil, end: 3, want: values("v", 0, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := c.consumeRange(t, "pos", 0, tt.start, tt.end)
			var got []string
			for _, r := range recs {
				if r.Offset < tt.end {
					got = append(got, string(r.Value))
				}
			}
			// Every batch holds one record, so the SPU must start exactly
			// at the resolved offset: no record to skip.
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConsumeSeveralPartitionsInOneStream(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	c := newClients(s.URL)
	c.ensure(t, "multi", 3, nil)
	for p := range int32(3) {
		for i := range 5 {
			if _, err := c.produceOne(t, "multi", p, makeBatch(t, 0, values(string(rune('a'+p)), i, 1)...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	end := int64(5)
	req := &dataplanev1.ConsumeRequest{Topic: "multi"}
	for p := range int32(3) {
		req.Partitions = append(req.Partitions, &dataplanev1.PartitionConsume{Partition: p, EndOffset: &end})
	}
	stream, err := c.consume.Consume(testContext(t), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32][]string{}
	for stream.Receive() {
		recs, err := batch.DecodeAll(stream.Msg().Batches, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got[stream.Msg().Partition] = append(got[stream.Msg().Partition], string(r.Value))
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		if want := values(string(rune('a'+p)), 0, 5); !slices.Equal(got[p], want) {
			t.Errorf("partition %d: got %v, want %v", p, got[p], want)
		}
	}
}

func TestBadInputIsRefusedAndNothingIsWritten(t *testing.T) {
	s := sputest.Start(t, spu.Config{MaxBatchBytes: 64 << 10})
	c := newClients(s.URL)
	c.ensure(t, "strict", 1, nil)
	if _, err := c.produceOne(t, "strict", 0, makeBatch(t, 0, "before")); err != nil {
		t.Fatal(err)
	}
	good := makeBatch(t, 0, "good")
	badCRC := makeBatch(t, 0, "bad crc")
	badCRC[len(badCRC)-1] ^= 0xff
	badLength := makeBatch(t, 0, "bad length")
	badLength = badLength[:len(badLength)-3]
	huge := makeBatch(t, 0, strings.Repeat("x", 100<<10))

	tests := []struct {
		name      string
		topic     string
		partition int32
		batches   []byte
		code      connect.Code
		message   string
	}{
		{name: "bad CRC", topic: "strict", batches: badCRC, code: connect.CodeInvalidArgument, message: "CRC"},
		{name: "bad length", topic: "strict", batches: badLength, code: connect.CodeInvalidArgument, message: "truncated"},
		{name: "good batch followed by a bad one", topic: "strict", batches: append(slices.Clone(good), badCRC...), code: connect.CodeInvalidArgument, message: "CRC"},
		{name: "record over the size limit", topic: "strict", batches: huge, code: connect.CodeInvalidArgument, message: "large"},
		{name: "garbage", topic: "strict", batches: []byte("not a batch"), code: connect.CodeInvalidArgument},
		{name: "empty", topic: "strict", batches: nil, code: connect.CodeInvalidArgument, message: "no batches"},
		{name: "unknown topic", topic: "nope", batches: good, code: connect.CodeNotFound, message: "unknown topic"},
		{name: "unknown partition", topic: "strict", partition: 7, batches: good, code: connect.CodeNotFound, message: "partition 7"},
	}
	stream := c.produce.Produce(testContext(t))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.produceOne(t, tt.topic, tt.partition, tt.batches)
			if connect.CodeOf(err) != tt.code || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.message)) {
				t.Fatalf("ProduceOne: %v, want code %v mentioning %q", err, tt.code, tt.message)
			}
			// The same request on a stream fails alone; the stream goes on.
			if err := stream.Send(&dataplanev1.ProduceRequest{RequestId: uint64(i), Topic: tt.topic, Partition: tt.partition, Batches: tt.batches}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Receive()
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			if connect.Code(resp.ErrorCode) != tt.code || resp.ErrorMessage == "" {
				t.Fatalf("stream ack = %+v, want code %v", resp, tt.code)
			}
		})
	}
	// The stream still works, and only the good batches were written.
	if err := stream.Send(&dataplanev1.ProduceRequest{RequestId: 99, Topic: "strict", Batches: good}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Receive()
	if err != nil || resp.ErrorCode != 0 || resp.BaseOffset != 1 {
		t.Fatalf("good batch after bad ones: %+v, %v; want offset 1", resp, err)
	}
	if got := recordValues(c.consumeRange(t, "strict", 0, nil, 2), 0); !slices.Equal(got, []string{"before", "good"}) {
		t.Fatalf("partition holds %v, want [before good]", got)
	}
}

func TestConsumeErrors(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	c := newClients(s.URL)
	c.ensure(t, "errs", 1, nil)
	if _, err := c.produceOne(t, "errs", 0, makeBatch(t, 0, "a", "b")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *dataplanev1.ConsumeRequest
		code connect.Code
	}{
		{name: "unknown topic", req: &dataplanev1.ConsumeRequest{Topic: "nope", Partitions: []*dataplanev1.PartitionConsume{{Partition: 0}}}, code: connect.CodeNotFound},
		{name: "unknown partition", req: &dataplanev1.ConsumeRequest{Topic: "errs", Partitions: []*dataplanev1.PartitionConsume{{Partition: 3}}}, code: connect.CodeNotFound},
		{name: "offset past the end", req: &dataplanev1.ConsumeRequest{Topic: "errs", Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, Start: &dataplanev1.Offset{Position: &dataplanev1.Offset_Absolute{Absolute: 5}}}}}, code: connect.CodeOutOfRange},
		{name: "no partitions", req: &dataplanev1.ConsumeRequest{Topic: "errs"}, code: connect.CodeInvalidArgument},
		{name: "partition twice", req: &dataplanev1.ConsumeRequest{Topic: "errs", Partitions: []*dataplanev1.PartitionConsume{{Partition: 0}, {Partition: 0}}}, code: connect.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := c.consume.Consume(testContext(t), connect.NewRequest(tt.req))
			if err == nil {
				for stream.Receive() {
				}
				err = stream.Err()
			}
			if connect.CodeOf(err) != tt.code {
				t.Fatalf("got %v, want code %v", err, tt.code)
			}
		})
	}
}

func TestReplicasSurviveRestartAndSettingsUpdate(t *testing.T) {
	dir := t.TempDir()
	s := sputest.Start(t, spu.Config{DataDir: dir})
	c := newClients(s.URL)
	c.ensure(t, "durable", 2, &internalv1.ReplicaConfig{RetentionMs: -1})
	if _, err := c.produceOne(t, "durable", 1, makeBatch(t, 0, "kept")); err != nil {
		t.Fatal(err)
	}
	s.Stop(t)

	s = sputest.Start(t, spu.Config{DataDir: dir})
	c = newClients(s.URL)
	if got := recordValues(c.consumeRange(t, "durable", 1, nil, 1), 0); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("after restart: %v", got)
	}
	// Ensure is idempotent and updates settings in place.
	resp, err := c.replicas.EnsureReplica(context.Background(), connect.NewRequest(&internalv1.EnsureReplicaRequest{Topic: "durable", Partition: 1, Config: &internalv1.ReplicaConfig{RetentionMs: 3600_000}}))
	if err != nil || resp.Msg.Created {
		t.Fatalf("second ensure: %+v, %v", resp, err)
	}
	list, err := c.parts.ListPartitions(context.Background(), connect.NewRequest(&dataplanev1.ListPartitionsRequest{Topic: "durable"}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.Msg.Partitions); n != 2 || list.Msg.Partitions[1].EndOffset != 1 {
		t.Fatalf("partitions = %v", list.Msg.Partitions)
	}
	if _, err := c.replicas.RemoveReplica(context.Background(), connect.NewRequest(&internalv1.RemoveReplicaRequest{Topic: "durable", Partition: 1})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.produceOne(t, "durable", 1, makeBatch(t, 0, "gone")); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("produce to a removed partition: %v, want NotFound", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "durable", "1")); !os.IsNotExist(err) {
		t.Fatalf("the removed partition's data is still there: %v", err)
	}
}

func TestEnsureReplicaRefusesBadSpecs(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	c := newClients(s.URL)
	tests := []struct {
		name string
		req  *internalv1.EnsureReplicaRequest
	}{
		{name: "bad topic name", req: &internalv1.EnsureReplicaRequest{Topic: "../etc"}},
		{name: "negative partition", req: &internalv1.EnsureReplicaRequest{Topic: "ok", Partition: -1}},
		{name: "bad retention", req: &internalv1.EnsureReplicaRequest{Topic: "ok", Config: &internalv1.ReplicaConfig{RetentionMs: -5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.replicas.EnsureReplica(context.Background(), connect.NewRequest(tt.req))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
}

func TestMetricsCountBytesAndRecordsPerPartition(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	c := newClients(s.URL)
	c.ensure(t, "metered", 1, nil)
	b := makeBatch(t, 0, "a", "b", "c")
	if _, err := c.produceOne(t, "metered", 0, b); err != nil {
		t.Fatal(err)
	}
	c.consumeRange(t, "metered", 0, nil, 3)
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`spate_spu_records_in_total{partition="0",topic="metered"} 3`,
		`spate_spu_records_out_total{partition="0",topic="metered"} 3`,
		`spate_spu_bytes_in_total{partition="0",topic="metered"}`,
		`spate_spu_request_duration_seconds_count{method="produce"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestFullDiskIsRefusedAndTheSPUKeepsServing fills a small tmpfs that holds
// one partition's data; the other partitions live on the main disk.
func TestFullDiskIsRefusedAndTheSPUKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs; skipped with -short")
	}
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.MkdirAll(filepath.Join(small), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", small).Run() })
	// The partition "small/0" of topic "small" lives at <dir>/small/0.
	s := sputest.Start(t, spu.Config{DataDir: dir})
	c := newClients(s.URL)
	c.ensure(t, "small", 1, nil)
	c.ensure(t, "roomy", 1, nil)

	chunk := makeBatch(t, 0, strings.Repeat("z", 60<<10))
	var acked int64
	var err error
	for range 100 {
		if _, err = c.produceOne(t, "small", 0, chunk); err != nil {
			break
		}
		acked++
	}
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("after %d batches: %v, want ResourceExhausted saying the disk is full", acked, err)
	}
	if acked == 0 {
		t.Fatal("nothing fitted on the small disk")
	}
	// Everything acknowledged is readable; nothing partial was written.
	if recs := c.consumeRange(t, "small", 0, nil, acked); int64(len(recs)) != acked {
		t.Fatalf("read %d records back, want %d", len(recs), acked)
	}
	// Other partitions are served as before.
	if _, err := c.produceOne(t, "roomy", 0, makeBatch(t, 0, "fine")); err != nil {
		t.Fatalf("produce to another partition: %v", err)
	}
}
