package placement_test

import (
	"slices"
	"testing"

	"github.com/spatehq/spate/control-plane/internal/placement"
)

// counts returns leaders and replicas per SPU over results.
func counts(results map[string]placement.Result) (leaders, replicas map[int32]int) {
	leaders, replicas = map[int32]int{}, map[int32]int{}
	for _, r := range results {
		for _, p := range r.Partitions {
			if !p.Placed() {
				continue
			}
			leaders[p.Leader]++
			for _, id := range p.Replicas {
				replicas[id]++
			}
		}
	}
	return leaders, replicas
}

func spread(m map[int32]int, ids []int32) int {
	lo, hi := -1, 0
	for _, id := range ids {
		n := m[id]
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return hi - lo
}

func TestPlanEven(t *testing.T) {
	tests := []struct {
		name       string
		topics     []placement.Topic
		online     []int32
		maxSpread  int
		wantLeader int // expected leaders on each SPU when even, 0 to skip
	}{
		{name: "6 partitions rf 1 on 3", topics: []placement.Topic{{Name: "a", Partitions: 6, ReplicationFactor: 1}}, online: []int32{0, 1, 2}, maxSpread: 0, wantLeader: 2},
		{name: "100 partitions rf 3 on 3", topics: []placement.Topic{{Name: "a", Partitions: 100, ReplicationFactor: 3}}, online: []int32{0, 1, 2}, maxSpread: 1},
		{name: "10 partitions rf 2 on 5", topics: []placement.Topic{{Name: "a", Partitions: 10, ReplicationFactor: 2}}, online: []int32{0, 1, 2, 3, 4}, maxSpread: 0, wantLeader: 2},
		{name: "many topics", topics: []placement.Topic{
			{Name: "a", Partitions: 1, ReplicationFactor: 1},
			{Name: "b", Partitions: 1, ReplicationFactor: 1},
			{Name: "c", Partitions: 1, ReplicationFactor: 1},
			{Name: "d", Partitions: 3, ReplicationFactor: 2},
		}, online: []int32{3, 7, 9}, maxSpread: 0, wantLeader: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := placement.Plan(tt.topics, tt.online)
			for name, r := range res {
				if r.Pending != "" || !r.Changed {
					t.Fatalf("%s: pending %q changed %v", name, r.Pending, r.Changed)
				}
				for i, p := range r.Partitions {
					if !p.Placed() || p.Replicas[0] != p.Leader {
						t.Fatalf("%s/%d: %+v: want placed with the leader first", name, i, p)
					}
					s := slices.Clone(p.Replicas)
					slices.Sort(s)
					if len(slices.Compact(s)) != len(p.Replicas) {
						t.Fatalf("%s/%d: two replicas on one SPU: %v", name, i, p.Replicas)
					}
				}
			}
			leaders, replicas := counts(res)
			if d := spread(leaders, tt.online); d > tt.maxSpread {
				t.Errorf("leaders %v: spread %d > %d", leaders, d, tt.maxSpread)
			}
			if d := spread(replicas, tt.online); d > tt.maxSpread {
				t.Errorf("replicas %v: spread %d > %d", replicas, d, tt.maxSpread)
			}
			if tt.wantLeader > 0 {
				for _, id := range tt.online {
					if leaders[id] != tt.wantLeader {
						t.Errorf("SPU %d leads %d, want %d", id, leaders[id], tt.wantLeader)
					}
				}
			}
		})
	}
}

func TestPending(t *testing.T) {
	tests := []struct {
		name   string
		rf     int
		online []int32
		want   string
	}{
		{name: "one online", rf: 3, online: []int32{0}, want: "needs 3 SPUs for replication factor 3; 1 is online"},
		{name: "none online", rf: 1, online: nil, want: "needs 1 SPUs for replication factor 1; 0 are online"},
		{name: "two online", rf: 3, online: []int32{0, 1}, want: "needs 3 SPUs for replication factor 3; 2 are online"},
		{name: "enough", rf: 2, online: []int32{0, 1}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := placement.Plan([]placement.Topic{{Name: "a", Partitions: 2, ReplicationFactor: tt.rf}}, tt.online)["a"]
			if res.Pending != tt.want {
				t.Fatalf("pending %q, want %q", res.Pending, tt.want)
			}
			for _, p := range res.Partitions {
				if p.Placed() == (tt.want != "") {
					t.Fatalf("partition %+v placed with pending %q", p, res.Pending)
				}
			}
		})
	}
}

func TestSticky(t *testing.T) {
	first := placement.Plan([]placement.Topic{{Name: "a", Partitions: 4, ReplicationFactor: 2}}, []int32{0, 1})["a"]
	tests := []struct {
		name   string
		online []int32
	}{
		{name: "spus added", online: []int32{0, 1, 2, 3}},
		{name: "same spus", online: []int32{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := placement.Plan([]placement.Topic{{Name: "a", Partitions: 4, ReplicationFactor: 2, Current: first.Partitions}}, tt.online)["a"]
			if res.Changed {
				t.Fatalf("placement moved: %v -> %v", first.Partitions, res.Partitions)
			}
		})
	}
	// New partitions go to the new, empty SPUs.
	res := placement.Plan([]placement.Topic{{Name: "a", Partitions: 6, ReplicationFactor: 2, Current: first.Partitions}}, []int32{0, 1, 2, 3})["a"]
	if !res.Changed || !slices.EqualFunc(res.Partitions[:4], first.Partitions, func(a, b placement.Partition) bool {
		return a.Leader == b.Leader && slices.Equal(a.Replicas, b.Replicas) && a.Epoch == b.Epoch
	}) {
		t.Fatalf("adding partitions moved old ones: %v", res.Partitions)
	}
	for _, p := range res.Partitions[4:] {
		if !slices.Equal(sorted(p.Replicas), []int32{2, 3}) {
			t.Errorf("new partition on %v, want the empty SPUs 2 and 3", p.Replicas)
		}
	}
}

func sorted(s []int32) []int32 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestFailover(t *testing.T) {
	current := []placement.Partition{
		{Leader: 0, Replicas: []int32{0, 1, 2}, Epoch: 4},
		{Leader: 1, Replicas: []int32{1, 2, 0}, Epoch: 0},
		{Leader: 2, Replicas: []int32{2}, Epoch: 1},
	}
	tests := []struct {
		name   string
		online []int32
		want   []placement.Partition
	}{
		{name: "leader 0 lost", online: []int32{1, 2}, want: []placement.Partition{
			{Leader: 1, Replicas: []int32{0, 1, 2}, Epoch: 5}, current[1], current[2]}},
		{name: "0 and 1 lost", online: []int32{2}, want: []placement.Partition{
			{Leader: 2, Replicas: []int32{0, 1, 2}, Epoch: 5}, {Leader: 2, Replicas: []int32{1, 2, 0}, Epoch: 1}, current[2]}},
		{name: "only replica lost stays", online: []int32{0, 1}, want: current},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := placement.Plan([]placement.Topic{{Name: "a", Partitions: 3, ReplicationFactor: 1, Current: current}}, tt.online)["a"]
			for i, p := range res.Partitions {
				w := tt.want[i]
				if p.Leader != w.Leader || p.Epoch != w.Epoch || !slices.Equal(p.Replicas, w.Replicas) {
					t.Errorf("partition %d: %+v, want %+v", i, p, w)
				}
			}
			if current[0].Leader != 0 || current[0].Epoch != 4 {
				t.Fatal("Plan modified its input")
			}
		})
	}
}
