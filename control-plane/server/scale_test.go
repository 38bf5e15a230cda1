package server_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/control-plane/server"
)

// TestScale measures the figures of the issue: the time to create a
// 100-partition topic until it is READY on 3 SPUs, and the memory of a
// control plane holding 1,000 partitions. The process also holds the
// embedded etcd and the fake SPUs, so the resident size is an upper bound.
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: measures creation time and memory; run without -short")
	}
	c := startCP(t, server.Config{DataDir: t.TempDir()})
	for id := range int32(3) {
		startSPU(t, c.url, id)
	}
	eventually(t, 5*time.Second, func() error {
		resp, err := c.meta.ListSPUs(context.Background(), connect.NewRequest(&controlplanev1.ListSPUsRequest{}))
		if err != nil || len(resp.Msg.Spus) != 3 {
			return fmt.Errorf("spus %v, err %v", resp, err)
		}
		return nil
	})

	start := time.Now()
	createTopic(t, c, "hundred", 100, 3)
	waitStateFast(t, c, "hundred", 30*time.Second)
	t.Logf("create a 100-partition topic (replication 3, 3 SPUs) until READY: %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	for i := range 9 {
		createTopic(t, c, fmt.Sprintf("bulk-%d", i), 100, 3)
	}
	for i := range 9 {
		waitStateFast(t, c, fmt.Sprintf("bulk-%d", i), 60*time.Second)
	}
	t.Logf("9 more 100-partition topics until READY: %v", time.Since(start).Round(time.Millisecond))

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("with 1,000 partitions (3,000 replicas): heap in use %.1f MiB, resident %s (control plane + embedded etcd + 3 fake SPUs + test clients)",
		float64(ms.HeapInuse)/(1<<20), rss())
}

// waitStateFast polls DescribeTopic every 5 ms until the topic is READY.
func waitStateFast(t *testing.T, c *cp, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		topic, err := describe(context.Background(), c, name)
		if err == nil && topic.State == controlplanev1.TopicState_TOPIC_STATE_READY {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not ready after %v: %v %v", name, timeout, topic, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
