package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spatehq/spate/tiered-storage/objstore/local"
)

// TestTieredTopicThroughLocalUp is tiered storage as a person meets it:
// `spate local up` (tiering on by default, objects in a folder of the data
// directory), a topic with small segments, records that leave the SPU's
// disk for the object store, a consume from the beginning served from
// there, describe showing both tiers, and a delete that removes the
// topic's objects.
func TestTieredTopicThroughLocalUp(t *testing.T) {
	bin, env, dir := localUp(t)

	// 300 records of 40 bytes in batches of at most 512 bytes, into
	// segments of 1 KiB: about 20 segments.
	run(t, env, bin, "topic", "create", "history", "--tiering", "--segment-bytes", "1024")
	var in strings.Builder
	for i := range 300 {
		fmt.Fprintf(&in, "record %04d %s\n", i, strings.Repeat("x", 28))
	}
	runIn(t, env, in.String(), bin, "produce", "history", "--batch-size", "512")

	// Every closed segment goes up; then a local retention of 1 KiB
	// leaves only the newest on the SPU's disk (the update applies it at
	// once).
	describe := func() partitionView {
		t.Helper()
		var topic struct {
			Partitions []partitionView `json:"partitions"`
		}
		out := run(t, env, bin, "topic", "describe", "history", "-o", "json")
		if err := json.Unmarshal([]byte(out), &topic); err != nil || len(topic.Partitions) != 1 {
			t.Fatalf("topic describe -o json: %v\n%s", err, out)
		}
		return topic.Partitions[0]
	}
	var p partitionView
	waitFor(t, 60*time.Second, "closed segments uploaded", func() bool {
		p = describe()
		return p.EndOffset == 300 && p.RemoteSize > 0 && p.UploadLag == 0 && p.RemoteStart == 0
	}, func() string { return fmt.Sprintf("%+v", p) })
	run(t, env, bin, "topic", "update", "history", "--local-retention-bytes", "1024")
	waitFor(t, 60*time.Second, "local segments deleted", func() bool {
		p = describe()
		return p.StartOffset > 0 && p.RemoteStart == 0
	}, func() string { return fmt.Sprintf("%+v", p) })
	t.Logf("after local retention: local start %d, end %d, local %d B, remote %d B", p.StartOffset, p.EndOffset, p.SizeBytes, p.RemoteSize)

	// describe's table shows the remote tier.
	table := run(t, env, bin, "topic", "describe", "history")
	for _, col := range []string{"LOCAL START", "REMOTE START", "REMOTE SIZE", "UPLOAD LAG"} {
		if !strings.Contains(table, col) {
			t.Fatalf("topic describe lacks %s:\n%s", col, table)
		}
	}

	// A consume from the beginning reads the object store, then the
	// SPU's disk, through one stream, in order.
	got := run(t, env, bin, "consume", "history", "-B", "-d")
	if got != in.String() {
		gl, wl := strings.Split(got, "\n"), strings.Split(in.String(), "\n")
		t.Fatalf("consume -B returned %d lines, want %d; first %q", len(gl)-1, len(wl)-1, gl[0])
	}

	// The topic's objects are in the cluster's folder of the data
	// directory...
	clusters, _ := filepath.Glob(filepath.Join(dir, "tier", "c-*"))
	if len(clusters) != 1 {
		t.Fatalf("tier folders: %v", clusters)
	}
	tierStore, err := local.New(clusters[0])
	if err != nil {
		t.Fatal(err)
	}
	objects := func() int {
		objs, err := tierStore.List(context.Background(), "history/", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(objs)
	}
	if n := objects(); n == 0 {
		t.Fatalf("no objects of the topic in %s", clusters[0])
	}

	// ...until the topic is deleted: its name is free again only once
	// they are gone.
	run(t, env, bin, "topic", "delete", "history")
	waitFor(t, 60*time.Second, "topic gone", func() bool {
		return !strings.Contains(run(t, env, bin, "topic", "list"), "history")
	}, func() string { return run(t, env, bin, "topic", "list") })
	if n := objects(); n != 0 {
		t.Fatalf("%d objects of the deleted topic are left in %s", n, clusters[0])
	}
	run(t, env, bin, "topic", "create", "history", "--tiering", "--segment-bytes", "1024")
	if got := run(t, env, bin, "consume", "history", "-B", "-d"); got != "" {
		t.Fatalf("the new topic of the same name holds %q", got)
	}
}

// partitionView is a partition in `spate topic describe -o json`.
type partitionView struct {
	StartOffset int64 `json:"start_offset"`
	EndOffset   int64 `json:"end_offset"`
	SizeBytes   int64 `json:"size_bytes"`
	RemoteStart int64 `json:"remote_start_offset"`
	RemoteSize  int64 `json:"remote_size_bytes"`
	UploadLag   int64 `json:"upload_lag_bytes"`
}

// waitFor polls cond until it holds, or fails t after d showing state.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %s", what, d, state())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// freeTCPPort returns a port of 127.0.0.1 free now.
func freeTCPPort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, _ := strings.Cut(l.Addr().String(), ":")
	return port, nil
}
