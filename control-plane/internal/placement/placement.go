// Package placement decides which SPUs hold the replicas of each partition
// and which of them leads. It is pure computation: the reconciler feeds it
// the current placements and the online SPUs and writes back the result.
//
// The rules:
//   - the replicas of one partition are on distinct SPUs;
//   - new partitions go to the online SPUs that hold the fewest leaders and
//     replicas, so leaders and replicas spread evenly over the cluster;
//   - placement is sticky: a placed partition never moves when SPUs come and
//     go, it only changes leader (with a bumped leader epoch) when its leader
//     is offline and another of its replicas is online;
//   - a partition that needs more SPUs than are online stays unplaced, and
//     the topic is pending with the reason from PendingReason.
package placement

import (
	"fmt"
	"slices"
	"sort"
)

// Unplaced is the leader of a partition that has no replicas yet.
const Unplaced int32 = -1

// Partition is where one partition lives.
type Partition struct {
	// Leader is the SPU that leads the partition, or Unplaced.
	Leader int32 `json:"leader"`
	// Replicas are the SPUs holding the partition, leader first when placed.
	Replicas []int32 `json:"replicas,omitempty"`
	// Epoch is the leader epoch; it increases with every leader change.
	Epoch int32 `json:"epoch"`
}

// Placed reports whether the partition has replicas.
func (p Partition) Placed() bool { return p.Leader != Unplaced && len(p.Replicas) > 0 }

// Topic is the input for one topic.
type Topic struct {
	Name              string
	Partitions        int
	ReplicationFactor int
	// Current is the placement so far; it may be shorter than Partitions
	// (new partitions) and may hold unplaced entries.
	Current []Partition
}

// Result is the new placement of one topic.
type Result struct {
	// Partitions has one entry per partition of the topic.
	Partitions []Partition
	// Changed reports whether Partitions differs from the topic's Current.
	Changed bool
	// Pending is empty when every partition is placed, else why not.
	Pending string
}

// PendingReason says why a topic with replication factor rf cannot be placed
// on online SPUs, or "" when it can.
func PendingReason(rf, online int) string {
	if rf <= online {
		return ""
	}
	verb := "are"
	if online == 1 {
		verb = "is"
	}
	return fmt.Sprintf("needs %d SPUs for replication factor %d; %d %s online", rf, rf, online, verb)
}

// load counts what each online SPU holds.
type load struct {
	leaders, replicas int
}

// Plan computes the placement of topics over the online SPUs. Topics are
// handled in the order given; each placement counts toward the load the
// next topics see, so calling Plan with every topic of the cluster spreads
// them all evenly. Plan does not modify its input.
func Plan(topics []Topic, online []int32) map[string]Result {
	isOnline := make(map[int32]bool, len(online))
	loads := make(map[int32]*load, len(online))
	for _, id := range online {
		isOnline[id] = true
		loads[id] = &load{}
	}
	// Count the existing placements first, so that new partitions go where
	// there is the least already.
	for _, t := range topics {
		for _, p := range t.Current {
			if !p.Placed() {
				continue
			}
			for _, r := range p.Replicas {
				if l, ok := loads[r]; ok {
					l.replicas++
				}
			}
		}
	}
	results := make(map[string]Result, len(topics))
	// First move leadership off offline SPUs, so the leader counts are right
	// before new partitions are placed.
	next := make([][]Partition, len(topics))
	changed := make([]bool, len(topics))
	for i, t := range topics {
		parts := make([]Partition, t.Partitions)
		for p := range parts {
			parts[p] = Partition{Leader: Unplaced}
			if p < len(t.Current) {
				parts[p] = clonePartition(t.Current[p])
			}
		}
		if len(t.Current) != t.Partitions {
			changed[i] = true
		}
		for p := range parts {
			part := &parts[p]
			if !part.Placed() {
				continue
			}
			if !isOnline[part.Leader] {
				for _, r := range part.Replicas {
					if r != part.Leader && isOnline[r] {
						part.Leader = r
						part.Epoch++
						changed[i] = true
						break
					}
				}
			}
			if l, ok := loads[part.Leader]; ok {
				l.leaders++
			}
		}
		next[i] = parts
	}
	for i, t := range topics {
		parts := next[i]
		pending := ""
		for p := range parts {
			if parts[p].Placed() {
				continue
			}
			if t.ReplicationFactor > len(online) || t.ReplicationFactor < 1 {
				pending = PendingReason(t.ReplicationFactor, len(online))
				continue
			}
			parts[p] = place(t.ReplicationFactor, online, loads)
			changed[i] = true
		}
		results[t.Name] = Result{Partitions: parts, Changed: changed[i], Pending: pending}
	}
	return results
}

// place picks rf distinct SPUs for a new partition: the leader is the SPU
// with the fewest leaders, the followers those with the fewest replicas;
// ties go to the lower id.
func place(rf int, online []int32, loads map[int32]*load) Partition {
	ids := slices.Clone(online)
	sort.Slice(ids, func(a, b int) bool {
		la, lb := loads[ids[a]], loads[ids[b]]
		if la.leaders != lb.leaders {
			return la.leaders < lb.leaders
		}
		if la.replicas != lb.replicas {
			return la.replicas < lb.replicas
		}
		return ids[a] < ids[b]
	})
	leader := ids[0]
	rest := ids[1:]
	sort.SliceStable(rest, func(a, b int) bool {
		la, lb := loads[rest[a]], loads[rest[b]]
		if la.replicas != lb.replicas {
			return la.replicas < lb.replicas
		}
		return rest[a] < rest[b]
	})
	replicas := append([]int32{leader}, rest[:rf-1]...)
	loads[leader].leaders++
	for _, r := range replicas {
		loads[r].replicas++
	}
	return Partition{Leader: leader, Replicas: replicas}
}

func clonePartition(p Partition) Partition {
	p.Replicas = slices.Clone(p.Replicas)
	if len(p.Replicas) == 0 {
		p.Leader = Unplaced
	}
	return p
}
