package server

import (
	"fmt"
	"slices"
	"sort"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/control-plane/internal/placement"
	"github.com/spatehq/spate/control-plane/internal/store"
)

// Partition statuses, as PartitionStatus.status says.
const (
	partitionPending      = "pending"
	partitionProvisioning = "provisioning"
	partitionOnline       = "online"
	partitionOffline      = "offline"
)

type replicaKey struct {
	spu       int32
	topic     string
	partition int32
}

// statusIndex finds what an SPU reported about a replica.
type statusIndex map[replicaKey]store.ReplicaStatus

func indexStatuses(st *store.State) statusIndex {
	idx := make(statusIndex)
	for id, s := range st.Statuses {
		if _, online := st.SPUs[id]; !online {
			continue
		}
		for _, r := range s.Replicas {
			idx[replicaKey{id, r.Topic, r.Partition}] = r
		}
	}
	return idx
}

// topicView derives a topic's status from the metadata; with detail it
// fills the partitions.
func topicView(st *store.State, idx statusIndex, t *store.Topic, detail bool) *controlplanev1.Topic {
	out := &controlplanev1.Topic{
		Spec: &controlplanev1.TopicSpec{
			Name:              t.Name,
			Partitions:        t.Partitions,
			ReplicationFactor: t.ReplicationFactor,
			Settings:          settingsToProto(t.Settings),
		},
		CreatedAtMs: t.CreatedAtMs,
	}
	if t.Deleting {
		out.State = controlplanev1.TopicState_TOPIC_STATE_DELETING
		out.Reason = "removing the replicas from the SPUs"
		return out
	}
	var parts []placement.Partition
	if p, ok := st.Placements[t.Name]; ok {
		parts = p.Partitions
	}
	var unplaced, offline, provisioning int
	firstOffline := ""
	for i := range int(t.Partitions) {
		ps := &controlplanev1.PartitionStatus{Partition: int32(i), Leader: placement.Unplaced, Status: partitionPending, RemoteStartOffset: -1}
		if i < len(parts) && parts[i].Placed() {
			p := parts[i]
			ps.Leader, ps.Replicas, ps.LeaderEpoch = p.Leader, slices.Clone(p.Replicas), p.Epoch
			r, reported := idx[replicaKey{p.Leader, t.Name, int32(i)}]
			_, online := st.SPUs[p.Leader]
			switch {
			case !online:
				ps.Status = partitionOffline
				offline++
				if firstOffline == "" {
					firstOffline = fmt.Sprintf("partition %d: leader SPU %d is offline", i, p.Leader)
				}
			case reported:
				ps.Status = partitionOnline
				ps.StartOffset, ps.EndOffset, ps.SizeBytes = r.StartOffset, r.EndOffset, r.SizeBytes
				// The remote tier as the leader reports it; an SPU that
				// holds nothing remote may leave the start at 0.
				if r.RemoteSizeBytes > 0 {
					ps.RemoteStartOffset, ps.RemoteSizeBytes = r.RemoteStartOffset, r.RemoteSizeBytes
				}
				ps.UploadLagBytes, ps.TieringError = r.UploadLagBytes, r.TieringError
			default:
				ps.Status = partitionProvisioning
				provisioning++
			}
		} else {
			unplaced++
		}
		if detail {
			out.Partitions = append(out.Partitions, ps)
		}
	}
	switch {
	case unplaced > 0:
		out.State = controlplanev1.TopicState_TOPIC_STATE_PENDING
		out.Reason = placement.PendingReason(int(t.ReplicationFactor), len(st.SPUs))
		if out.Reason == "" {
			out.Reason = fmt.Sprintf("%d of %d partitions wait to be placed", unplaced, t.Partitions)
		}
	case offline > 0:
		out.State = controlplanev1.TopicState_TOPIC_STATE_PROVISIONING
		out.Reason = firstOffline
		if offline > 1 {
			out.Reason += fmt.Sprintf(" (and %d more partitions)", offline-1)
		}
	case provisioning > 0:
		out.State = controlplanev1.TopicState_TOPIC_STATE_PROVISIONING
		out.Reason = fmt.Sprintf("%d of %d partition leaders are not serving yet", provisioning, t.Partitions)
	default:
		out.State = controlplanev1.TopicState_TOPIC_STATE_READY
	}
	return out
}

// placementView is where a live topic's partitions are, for clients.
func placementView(st *store.State, t *store.Topic) *controlplanev1.TopicPlacement {
	out := &controlplanev1.TopicPlacement{Name: t.Name}
	var parts []placement.Partition
	if p, ok := st.Placements[t.Name]; ok {
		parts = p.Partitions
	}
	for i := range int(t.Partitions) {
		pp := &controlplanev1.PartitionPlacement{Partition: int32(i), Leader: placement.Unplaced}
		if i < len(parts) && parts[i].Placed() {
			pp.Leader, pp.Replicas, pp.LeaderEpoch = parts[i].Leader, slices.Clone(parts[i].Replicas), parts[i].Epoch
		}
		out.Partitions = append(out.Partitions, pp)
	}
	return out
}

// spuViews lists the online SPUs and the offline ones that placements
// still name, ordered by id.
func spuViews(st *store.State) []*controlplanev1.SPU {
	counts := make(map[int32]int32)
	for name, p := range st.Placements {
		if t, ok := st.Topics[name]; !ok || t.Deleting {
			continue
		}
		for _, part := range p.Partitions {
			if !part.Placed() {
				continue
			}
			for _, r := range part.Replicas {
				counts[r]++
			}
		}
	}
	var out []*controlplanev1.SPU
	for id, s := range st.SPUs {
		v := &controlplanev1.SPU{Id: id, Address: s.Address, Online: true, Replicas: counts[id]}
		if status, ok := st.Statuses[id]; ok {
			v.LastHeartbeatMs = status.HeartbeatMs
		}
		out = append(out, v)
	}
	for id, n := range counts {
		if _, ok := st.SPUs[id]; !ok {
			out = append(out, &controlplanev1.SPU{Id: id, Replicas: n})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Id < out[b].Id })
	return out
}

// desiredReplicas is the complete set of replicas SPU id must hold.
func desiredReplicas(st *store.State, id int32) []*internalv1.DesiredReplica {
	names := make([]string, 0, len(st.Placements))
	for name := range st.Placements {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []*internalv1.DesiredReplica
	for _, name := range names {
		t, ok := st.Topics[name]
		if !ok || t.Deleting {
			continue
		}
		var cfg *internalv1.ReplicaConfig
		for i, p := range st.Placements[name].Partitions {
			if i >= int(t.Partitions) || !p.Placed() || !slices.Contains(p.Replicas, id) {
				continue
			}
			if cfg == nil {
				cfg = replicaConfig(t.Settings)
			}
			var leaderAddr string
			if s, ok := st.SPUs[p.Leader]; ok && s != nil {
				leaderAddr = s.Address
			}
			out = append(out, &internalv1.DesiredReplica{
				Topic:         name,
				Partition:     int32(i),
				LeaderEpoch:   p.Epoch,
				Leader:        p.Leader,
				LeaderAddress: leaderAddr,
				Config:        cfg,
			})
		}
	}
	return out
}

func replicaConfig(s store.Settings) *internalv1.ReplicaConfig {
	c := &internalv1.ReplicaConfig{}
	if s.SegmentBytes != nil {
		c.SegmentBytes = *s.SegmentBytes
	}
	if s.SegmentAgeMs != nil {
		c.SegmentAgeMs = *s.SegmentAgeMs
	}
	if s.RetentionMs != nil {
		c.RetentionMs = *s.RetentionMs
	}
	if s.RetentionBytes != nil {
		c.RetentionBytes = *s.RetentionBytes
	}
	if s.MaxBatchBytes != nil {
		c.MaxBatchBytes = *s.MaxBatchBytes
	}
	switch s.Durability {
	case durabilityWrite:
		c.Durability = internalv1.Durability_DURABILITY_WRITE
	case durabilityFsync:
		c.Durability = internalv1.Durability_DURABILITY_FSYNC
	}
	// The local settings go only with tiering: without it they are kept,
	// unused, in the topic (see checkTiering).
	if s.Tiered() {
		c.Tiering = true
		if s.LocalRetentionMs != nil {
			c.LocalRetentionMs = *s.LocalRetentionMs
		}
		if s.LocalRetentionBytes != nil {
			c.LocalRetentionBytes = *s.LocalRetentionBytes
		}
	}
	return c
}
