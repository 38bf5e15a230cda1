package spu_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/data-plane/spu/sputest"
	"github.com/spatehq/spate/internal/batch"
)

// clients are the generated Connect clients of one SPU.
type clients struct {
	produce  dataplanev1connect.ProduceServiceClient
	consume  dataplanev1connect.ConsumeServiceClient
	parts    dataplanev1connect.PartitionServiceClient
	replicas internalv1connect.ReplicaServiceClient
}

func newClients(url string) clients {
	hc := sputest.HTTPClient()
	return clients{
		produce:  dataplanev1connect.NewProduceServiceClient(hc, url),
		consume:  dataplanev1connect.NewConsumeServiceClient(hc, url),
		parts:    dataplanev1connect.NewPartitionServiceClient(hc, url),
		replicas: internalv1connect.NewReplicaServiceClient(hc, url),
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (c clients) ensure(t *testing.T, topic string, partitions int32, cfg *internalv1.ReplicaConfig) {
	t.Helper()
	for p := range partitions {
		_, err := c.replicas.EnsureReplica(context.Background(), connect.NewRequest(&internalv1.EnsureReplicaRequest{Topic: topic, Partition: p, Config: cfg}))
		if err != nil {
			t.Fatalf("ensure %s/%d: %v", topic, p, err)
		}
	}
}

// makeBatch builds an uncompressed batch of the values, with timestamp ts
// (Unix ms; 0 for now).
func makeBatch(t testing.TB, ts int64, values ...string) []byte {
	t.Helper()
	b := batch.NewBuilder(batch.None)
	for _, v := range values {
		b.Append(batch.Record{Value: []byte(v), Timestamp: ts})
	}
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// values returns n values named prefix-i.
func values(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, from+i)
	}
	return out
}

func (c clients) produceOne(t *testing.T, topic string, partition int32, b []byte) (*dataplanev1.ProduceOneResponse, error) {
	t.Helper()
	resp, err := c.produce.ProduceOne(context.Background(), connect.NewRequest(&dataplanev1.ProduceOneRequest{Topic: topic, Partition: partition, Batches: b}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// consumeAll reads partition from start until end (exclusive) and returns the
// decoded records at or after the start offset.
func (c clients) consumeRange(t *testing.T, topic string, partition int32, start *dataplanev1.Offset, end int64) []batch.Record {
	t.Helper()
	stream, err := c.consume.Consume(testContext(t), connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic:      topic,
		Partitions: []*dataplanev1.PartitionConsume{{Partition: partition, Start: start, EndOffset: &end}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var recs []batch.Record
	for stream.Receive() {
		recs, err = batch.DecodeAll(stream.Msg().Batches, recs)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if stream.Msg().EndReached {
			break
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("consume: %v", err)
	}
	return recs
}

func recordValues(recs []batch.Record, from int64) []string {
	var out []string
	for _, r := range recs {
		if r.Offset >= from {
			out = append(out, string(r.Value))
		}
	}
	return out
}
