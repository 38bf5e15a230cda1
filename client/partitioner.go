package client

import (
	"encoding/binary"
	"sync/atomic"
)

// A Partitioner chooses the partition of each record a Producer produces.
// A Partitioner may be shared by producers and must be safe for concurrent
// use. Partition is called once per record, on the hot path: it must be
// fast and must not block.
type Partitioner interface {
	// Partition returns the partition of r, one of partitions, which
	// lists the topic's partition numbers in increasing order and is never
	// empty. Partition must not modify partitions or keep it. Returning a
	// number not in partitions fails the record with ErrUnknownPartition.
	Partition(r Record, partitions []int32) int32
}

// batchSealer is implemented by the partitioners that want to know when a
// batch of a partition is sealed, to stick to a partition for a batch.
type batchSealer interface {
	batchSealed(partition int32, partitions []int32)
}

// HashPartitioner returns the default partitioner. A record with a key
// goes to partition number
//
//	partitions[(murmur2(key) & 0x7fffffff) % len(partitions)]
//
// with murmur2 as in Apache Kafka's default partitioner (seed 0x9747b28c),
// so that a key always lands in the same partition, as long as the number
// of partitions does not change, and in the same one a Kafka client would
// pick. An empty key is a key. A record with a nil key goes to the
// partition that receives the current batch of keyless records: the
// producer sticks to one partition until its batch is sealed, then moves to
// the next one, which spreads keyless records evenly while keeping batches
// large.
func HashPartitioner() Partitioner { return new(hashPartitioner) }

type hashPartitioner struct {
	sticky atomic.Uint32 // the index of the partition keyless records go to
}

func (h *hashPartitioner) Partition(r Record, partitions []int32) int32 {
	n := uint32(len(partitions))
	if r.Key == nil {
		return partitions[h.sticky.Load()%n]
	}
	return partitions[(murmur2(r.Key)&0x7fffffff)%n]
}

func (h *hashPartitioner) batchSealed(partition int32, partitions []int32) {
	cur := h.sticky.Load()
	if partitions[cur%uint32(len(partitions))] == partition {
		h.sticky.CompareAndSwap(cur, cur+1)
	}
}

// RoundRobinPartitioner returns a partitioner that ignores keys and sends
// consecutive records to consecutive partitions. Its batches are smaller
// than HashPartitioner's for keyless records; prefer that one unless each
// partition must see every n-th record.
func RoundRobinPartitioner() Partitioner { return new(roundRobinPartitioner) }

type roundRobinPartitioner struct {
	next atomic.Uint32
}

func (p *roundRobinPartitioner) Partition(_ Record, partitions []int32) int32 {
	return partitions[(p.next.Add(1)-1)%uint32(len(partitions))]
}

// ManualPartitioner returns a partitioner that sends each record to the
// partition in its Partition field.
func ManualPartitioner() Partitioner { return manualPartitioner{} }

type manualPartitioner struct{}

func (manualPartitioner) Partition(r Record, _ []int32) int32 { return r.Partition }

// PartitionerFunc adapts a function to a Partitioner.
type PartitionerFunc func(r Record, partitions []int32) int32

// Partition returns f(r, partitions).
func (f PartitionerFunc) Partition(r Record, partitions []int32) int32 { return f(r, partitions) }

// murmur2 is the 32-bit MurmurHash2 of b with Kafka's seed, as
// org.apache.kafka.common.utils.Utils.murmur2 computes it.
func murmur2(b []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(b))
	for len(b) >= 4 {
		k := binary.LittleEndian.Uint32(b)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		b = b[4:]
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
