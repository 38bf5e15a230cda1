package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/data-plane/spu/sputest"
	"github.com/spatehq/spate/tiered-storage/objstore/s3"
	"github.com/spatehq/spate/tiered-storage/objstore/s3/s3test"
)

// TestDeleteTopicPurgesRemoteObjects: deleting a topic deletes its objects
// from the cluster's S3 prefix once its replicas are gone, and its name
// stays taken until they are (here while the S3 server is down), so that
// a new topic of the same name never sees the old one's objects. Other
// topics' objects, even of a name that starts the same, stay.
func TestDeleteTopicPurgesRemoteObjects(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	c := startCP(t, server.Config{DataDir: t.TempDir(), Tier: server.TierConfig{
		S3Endpoint: srv.Endpoint, S3Region: s3test.Region, S3Bucket: s3test.Bucket, S3Prefix: "spate", S3PathStyle: true,
		S3AccessKey: s3test.AccessKey, S3SecretKey: s3test.SecretKey,
	}})
	spu := startSPU(t, c.url, 0)
	waitSPUs(t, c, 1)
	createTopic(t, c, "orders", 2, 1)
	createTopic(t, c, "orders-eu", 1, 1)

	// What the SPUs of the insecure control plane's cluster upload: the
	// prefix <prefix>/local.
	cfg := srv.Config()
	cfg.Prefix = "spate/local"
	st, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"orders/0/a.log", "orders/0/a.index", "orders/1/b.log", "orders-eu/0/c.log"}
	for _, k := range keys {
		if err := st.Put(ctx, k, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}

	// With the store down the purge cannot finish: the topic stays
	// deleting and its name taken.
	srv.Stop()
	if _, err := c.topics.DeleteTopic(ctx, connect.NewRequest(&controlplanev1.DeleteTopicRequest{Name: "orders"})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		for _, r := range spu.replicas() {
			if r.Topic == "orders" {
				return errors.New("the SPU still holds a replica of orders")
			}
		}
		return nil
	})
	time.Sleep(time.Second) // heartbeats without it reach the reconciler
	_, err = c.topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{
		Spec: &controlplanev1.TopicSpec{Name: "orders", Partitions: 1, ReplicationFactor: 1},
	}))
	if codeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "still being deleted") {
		t.Fatalf("create while the old topic's objects are purged: %v, want FailedPrecondition saying it is still being deleted", err)
	}

	// Once the store is back the purge finishes and the name is free.
	srv.Restart(t)
	eventually(t, 60*time.Second, func() error {
		_, err := c.topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{
			Spec: &controlplanev1.TopicSpec{Name: "orders", Partitions: 1, ReplicationFactor: 1},
		}))
		return err
	})
	left, err := st.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Key != "orders-eu/0/c.log" {
		t.Fatalf("objects left after deleting orders: %v, want only orders-eu's", left)
	}
}

// TestClusterBucketsThroughTheLifecycle: on a Versity S3 Gateway with
// ClusterBuckets, a new cluster's SPU processes get a bucket and keys of
// their own, in their environment, not the admin's; deleting the cluster
// deletes the bucket.
func TestClusterBucketsThroughTheLifecycle(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the SPUs' environment from /proc")
	}
	s3srv := s3test.StartIAM(t)
	c := startSecureCP(t, sputest.Binary(t), func(cfg *server.Config) {
		cfg.Tier = server.TierConfig{
			S3Endpoint: s3srv.Endpoint, S3Region: s3test.Region, S3Bucket: "spate", S3PathStyle: true,
			S3AccessKey: s3test.AccessKey, S3SecretKey: s3test.SecretKey, ClusterBuckets: true,
		}
	})
	ctx := context.Background()
	if _, err := c.session.Clusters().CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: "prod", Spus: 1})); err != nil {
		t.Fatal(err)
	}
	ready := c.waitStatus(t, "prod", controlplanev1.ClusterStatus_CLUSTER_STATUS_READY)
	bucket := "spate-" + ready.Id
	if _, err := s3srv.Client().HeadBucket(ctx, &s3api.HeadBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("bucket %s of the new cluster: %v", bucket, err)
	}
	// The SPU holds the cluster's user's keys and no others.
	env := spuEnviron(t, filepath.Join(c.dir, "clusters", ready.Id, "spu-0"))
	if !slices.Contains(env, "AWS_ACCESS_KEY_ID=spate-"+ready.Id) || slices.Contains(env, "AWS_ACCESS_KEY_ID="+s3test.AccessKey) ||
		slices.ContainsFunc(env, func(kv string) bool { return strings.Contains(kv, s3test.SecretKey) }) {
		t.Fatalf("the SPU's AWS environment is %q; want the cluster user's keys only", awsVars(env))
	}

	if _, err := c.session.Clusters().DeleteCluster(ctx, connect.NewRequest(&controlplanev1.DeleteClusterRequest{Name: "prod"})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		if _, err := s3srv.Client().HeadBucket(ctx, &s3api.HeadBucketInput{Bucket: &bucket}); err == nil {
			return fmt.Errorf("bucket %s still exists", bucket)
		}
		return nil
	})
}

// spuEnviron returns the environment of the one process whose command line
// names dir.
func spuEnviron(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), dir) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(string(b), "\x00")
	}
	t.Fatalf("no process runs with %s", dir)
	return nil
}

func awsVars(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "AWS_") {
			out = append(out, kv)
		}
	}
	return out
}
