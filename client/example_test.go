package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/spatehq/spate/client"
)

// This example creates a topic of one partition, produces two records and
// reads them back.
func Example() {
	ctx := context.Background()
	c, err := client.New(client.WithSPU(spuURL))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Without a control plane, a topic is its partitions.
	if _, err := c.EnsurePartition(ctx, "greetings", 0, client.PartitionConfig{}); err != nil {
		log.Fatal(err)
	}

	p, err := c.NewProducer(ctx, "greetings")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	produced, err := p.ProduceSync(ctx,
		client.Record{Key: []byte("en"), Value: []byte("hello")},
		client.Record{Key: []byte("fr"), Value: []byte("bonjour")},
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range produced {
		fmt.Printf("produced %s at partition %d offset %d\n", r.Value, r.Partition, r.Offset)
	}

	cons, err := c.Consume(ctx, "greetings", client.WithStart(client.Beginning()), client.WithEndOffset(2))
	if err != nil {
		log.Fatal(err)
	}
	defer cons.Close()
	for {
		r, err := cons.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("consumed %s=%s at offset %d\n", r.Key, r.Value, r.Offset)
	}
	// Output:
	// produced hello at partition 0 offset 0
	// produced bonjour at partition 0 offset 1
	// consumed en=hello at offset 0
	// consumed fr=bonjour at offset 1
}

// This example produces asynchronously, the fast way: each record's
// callback gets its offset, and Flush waits for all of them.
func ExampleProducer_Produce() {
	ctx := context.Background()
	c, err := client.New(client.WithSPU(spuURL))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.EnsurePartition(ctx, "metrics", 0, client.PartitionConfig{}); err != nil {
		log.Fatal(err)
	}

	p, err := c.NewProducer(ctx, "metrics", client.WithLinger(10*time.Millisecond), client.WithCompression(client.CompressionZstd))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	last := make(chan int64, 1)
	for i := range 1000 {
		var done func(client.Record, error)
		if i == 999 {
			done = func(r client.Record, err error) {
				if err != nil {
					log.Print(err) // IsRetriable(err) says whether to try again
					return
				}
				last <- r.Offset
			}
		}
		p.Produce(ctx, client.Record{Value: fmt.Appendf(nil, "cpu=%d", i%100)}, done)
	}
	// Flush reports the failures of records produced without a callback.
	if err := p.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("last offset:", <-last)
	// Output:
	// last offset: 999
}

// This example reads the last three records of a partition, a response at
// a time.
func ExampleConsumer_NextBatch() {
	ctx := context.Background()
	c, err := client.New(client.WithSPU(spuURL))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.EnsurePartition(ctx, "logs", 0, client.PartitionConfig{}); err != nil {
		log.Fatal(err)
	}
	p, err := c.NewProducer(ctx, "logs")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for i := range 10 {
		p.Produce(ctx, client.Record{Value: fmt.Appendf(nil, "line %d", i)}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		log.Fatal(err)
	}

	cons, err := c.Consume(ctx, "logs", client.WithStart(client.FromEnd(3)), client.WithEndOffset(10))
	if err != nil {
		log.Fatal(err)
	}
	defer cons.Close()
	for {
		recs, err := cons.NextBatch(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range recs {
			fmt.Printf("%d: %s\n", r.Offset, r.Value)
		}
	}
	// Output:
	// 7: line 7
	// 8: line 8
	// 9: line 9
}

// This example sends records to partitions chosen by the caller.
func ExampleManualPartitioner() {
	ctx := context.Background()
	c, err := client.New(client.WithSPU(spuURL))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for part := range int32(3) {
		if _, err := c.EnsurePartition(ctx, "orders", part, client.PartitionConfig{}); err != nil {
			log.Fatal(err)
		}
	}
	p, err := c.NewProducer(ctx, "orders", client.WithPartitioner(client.ManualPartitioner()))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	recs, err := p.ProduceSync(ctx, client.Record{Partition: 2, Value: []byte("order 1")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("partition", recs[0].Partition)
	// Output:
	// partition 2
}

// This example lists the partitions of a topic and their offsets.
func ExampleClient_Offsets() {
	ctx := context.Background()
	c, err := client.New(client.WithSPU(spuURL))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for part := range int32(2) {
		if _, err := c.EnsurePartition(ctx, "audit", part, client.PartitionConfig{Retention: 30 * 24 * time.Hour}); err != nil {
			log.Fatal(err)
		}
	}
	offs, err := c.Offsets(ctx, "audit")
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range offs {
		fmt.Printf("partition %d: offsets %d to %d\n", o.Partition, o.Start, o.End)
	}
	// Output:
	// partition 0: offsets 0 to 0
	// partition 1: offsets 0 to 0
}

func ExampleOffset() {
	for _, o := range []client.Offset{
		client.Beginning(),
		client.End(),
		client.At(42),
		client.FromBeginning(5),
		client.FromEnd(5),
		client.AtTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
	} {
		fmt.Println(o)
	}
	// Output:
	// beginning
	// end
	// offset 42
	// beginning+5
	// end-5
	// time 2025-01-02T03:04:05Z
}

// This example creates a topic through the control plane of a cluster, such
// as the one `spate local up` starts, and produces to it.
func ExampleClient_CreateTopic() {
	ctx := context.Background()
	c, err := client.New(client.WithControlPlane("http://127.0.0.1:9000"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.CreateTopic(ctx, client.TopicSpec{
		Name:              "orders",
		Partitions:        6,
		ReplicationFactor: 1,
		Settings:          client.TopicSettings{Retention: 7 * 24 * time.Hour, Durability: client.DurabilityFsync},
	})
	switch {
	case client.IsAlreadyExists(err):
		// Fine: someone made it first.
	case client.IsUnavailable(err):
		log.Fatalf("no control plane: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	p, err := c.NewProducer(ctx, "orders")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	if _, err := p.ProduceSync(ctx, client.Record{Key: []byte("alice"), Value: []byte("one pizza")}); err != nil {
		log.Fatal(err)
	}
}
