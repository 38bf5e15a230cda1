package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/spatehq/spate/client"
)

func partitionList(n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	return p
}

// TestHashPartitionerKafkaCompatible checks murmur2 against the values of
// Apache Kafka's Utils.murmur2 tests, through the partition it picks.
func TestHashPartitionerKafkaCompatible(t *testing.T) {
	tests := []struct {
		name string
		key  string
		hash int32 // Kafka's murmur2, as a Java int
	}{
		{"two bytes", "21", -973932308},
		{"six bytes", "foobar", -790332482},
		{"24 bytes", "a-little-bit-long-string", -985981536},
		{"26 bytes", "a-little-bit-longer-string", -1486304829},
		{"48 bytes", "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"three bytes", "abc", 479470107},
	}
	parts := partitionList(100003) // a prime, so every bit counts
	hp := client.HashPartitioner()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := int32((uint32(tt.hash) & 0x7fffffff) % uint32(len(parts)))
			if got := hp.Partition(client.Record{Key: []byte(tt.key)}, parts); got != want {
				t.Errorf("partition %d, want %d", got, want)
			}
		})
	}
}

func TestHashPartitionerStable(t *testing.T) {
	parts := partitionList(12)
	a, b := client.HashPartitioner(), client.HashPartitioner()
	counts := make([]int, len(parts))
	for i := range 12000 {
		key := fmt.Appendf(nil, "user-%d", i)
		pa := a.Partition(client.Record{Key: key}, parts)
		if pb := b.Partition(client.Record{Key: key, Value: []byte("other")}, parts); pa != pb {
			t.Fatalf("key %q: partitions %d and %d", key, pa, pb)
		}
		if again := a.Partition(client.Record{Key: key}, parts); again != pa {
			t.Fatalf("key %q: partition %d, then %d", key, pa, again)
		}
		counts[pa]++
	}
	for p, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("partition %d got %d of 12000 keys: uneven", p, n)
		}
	}
	// An empty key is a key, not a null one.
	if got, want := a.Partition(client.Record{Key: []byte{}}, parts), a.Partition(client.Record{Key: []byte{}}, parts); got != want {
		t.Errorf("empty key: partitions %d and %d", got, want)
	}
}

// TestHashPartitionerSticky checks that keyless records stick to one
// partition per batch and move on when the batch is sealed.
func TestHashPartitionerSticky(t *testing.T) {
	ctx := testContext(t)
	spu := newFakeSPU(t, "t", 3)
	p := newProducer(t, newClient(t, spu.URL()), "t", client.WithBatchBytes(1024), client.WithLinger(time.Hour))
	for range 300 {
		p.Produce(ctx, client.Record{Value: make([]byte, 50)}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := spu.produceRequests()
	perPartition := map[int32]int{}
	for i, r := range reqs {
		perPartition[r.Partition] += r.Records
		if i > 0 && i < len(reqs)-3 && r.Partition == reqs[i-1].Partition {
			t.Errorf("batches %d and %d both went to partition %d", i-1, i, r.Partition)
		}
	}
	for part, n := range perPartition {
		if n < 60 {
			t.Errorf("partition %d got %d of 300 keyless records", part, n)
		}
	}
}

func TestPartitioners(t *testing.T) {
	parts := []int32{0, 1, 2}
	tests := []struct {
		name    string
		p       client.Partitioner
		records []client.Record
		want    []int32
	}{
		{
			name:    "round robin ignores keys",
			p:       client.RoundRobinPartitioner(),
			records: []client.Record{{Key: []byte("a")}, {Key: []byte("a")}, {}, {}},
			want:    []int32{0, 1, 2, 0},
		},
		{
			name:    "manual uses the Partition field",
			p:       client.ManualPartitioner(),
			records: []client.Record{{Partition: 2}, {Partition: 0}, {Partition: 7}},
			want:    []int32{2, 0, 7},
		},
		{
			name: "func",
			p: client.PartitionerFunc(func(r client.Record, partitions []int32) int32 {
				return partitions[len(r.Value)%len(partitions)]
			}),
			records: []client.Record{{Value: []byte("ab")}, {Value: []byte("abcd")}},
			want:    []int32{2, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, r := range tt.records {
				if got := tt.p.Partition(r, parts); got != tt.want[i] {
					t.Errorf("record %d: partition %d, want %d", i, got, tt.want[i])
				}
			}
		})
	}
}

// TestKeyedRecordsStayInPartition produces keyed records through a real
// stream and checks that each key landed in one partition, in order.
func TestKeyedRecordsStayInPartition(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		ctx := testContext(t)
		url := newSPU(t, "t", 4)
		p := newProducer(t, newClient(t, url), "t")
		var recs []client.Record
		for i := range 200 {
			recs = append(recs, client.Record{Key: fmt.Appendf(nil, "k%d", i%10), Value: fmt.Append(nil, i)})
		}
		got, err := p.ProduceSync(ctx, recs...)
		if err != nil {
			t.Fatal(err)
		}
		where := map[string]int32{}
		for _, r := range got {
			if prev, ok := where[string(r.Key)]; ok && prev != r.Partition {
				t.Fatalf("key %s in partitions %d and %d", r.Key, prev, r.Partition)
			}
			where[string(r.Key)] = r.Partition
		}
		// Within a partition, the records of a key keep their order.
		last := map[string]int64{}
		for _, r := range got {
			if prev, ok := last[string(r.Key)]; ok && r.Offset <= prev {
				t.Fatalf("key %s: offset %d after %d", r.Key, r.Offset, prev)
			}
			last[string(r.Key)] = r.Offset
		}
	})
}
