package replica_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/replica"
)

func open(t *testing.T, dir string) *replica.Manager {
	t.Helper()
	m, err := replica.Open(dir, commitlog.DefaultConfig(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestManagerReloadsReplicasAndSkipsDamagedOnes(t *testing.T) {
	dir := t.TempDir()
	m := open(t, dir)
	for _, s := range []replica.Spec{{Topic: "a", Partition: 0}, {Topic: "a", Partition: 1}, {Topic: "b", Partition: 0, LeaderEpoch: 3}} {
		if created, err := m.Ensure(s); err != nil || !created {
			t.Fatalf("Ensure(%+v) = %v, %v", s, created, err)
		}
	}
	if created, err := m.Ensure(replica.Spec{Topic: "a", Partition: 0}); err != nil || created {
		t.Fatalf("second Ensure = %v, %v; want not created", created, err)
	}
	m.Close()
	if err := os.WriteFile(filepath.Join(dir, "a", "1", "replica.json"), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}

	m = open(t, dir)
	if got := len(m.List("")); got != 2 {
		t.Fatalf("reloaded %d replicas, want 2 (a/1 is damaged)", got)
	}
	r, err := m.Get("b", 0)
	if err != nil || r.Spec().LeaderEpoch != 3 {
		t.Fatalf("Get(b, 0) = %+v, %v", r, err)
	}
	if _, err := m.Get("a", 1); !errors.Is(err, replica.ErrUnknownPartition) {
		t.Fatalf("Get(a, 1) = %v, want ErrUnknownPartition", err)
	}
	if _, err := m.Get("c", 0); !errors.Is(err, replica.ErrUnknownTopic) {
		t.Fatalf("Get(c, 0) = %v, want ErrUnknownTopic", err)
	}
}

func TestManagerRemoveDeletesTheData(t *testing.T) {
	dir := t.TempDir()
	m := open(t, dir)
	if _, err := m.Ensure(replica.Spec{Topic: "gone", Partition: 0}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if _, err := m.Remove(replica.Key{Topic: "gone", Partition: 0}); err != nil {
			t.Fatal(err)
		}
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Fatalf("data dir still holds %v", left)
	}
}

func TestFollowerRoleSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	m := open(t, dir)
	leader := int32(2)
	if _, err := m.Ensure(replica.Spec{Topic: "f", Partition: 0, FollowsLeader: &leader}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Ensure(replica.Spec{Topic: "f", Partition: 1}); err != nil {
		t.Fatal(err)
	}
	m.Close()

	m = open(t, dir)
	follower, err := m.Get("f", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := follower.CheckLeader(); !errors.Is(err, replica.ErrNotLeader) || !strings.Contains(err.Error(), "SPU 2") {
		t.Fatalf("a reloaded follower accepts produce: %v", err)
	}
	lead, _ := m.Get("f", 1)
	if err := lead.CheckLeader(); err != nil {
		t.Fatalf("a reloaded leader refuses produce: %v", err)
	}
}
