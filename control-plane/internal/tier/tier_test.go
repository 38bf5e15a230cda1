package tier_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/spatehq/spate/control-plane/internal/provision"
	"github.com/spatehq/spate/control-plane/internal/tier"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/s3"
	"github.com/spatehq/spate/tiered-storage/objstore/s3/s3test"
)

// spuStore opens a store exactly as a cluster's SPU would: with the
// bucket, prefix and keys Prepare gave it, and nothing else.
func spuStore(t *testing.T, ts provision.Tier) *s3.Store {
	t.Helper()
	st, err := s3.New(context.Background(), s3.Config{
		Endpoint: ts.S3Endpoint, Region: ts.S3Region, Bucket: ts.S3Bucket, Prefix: ts.S3Prefix, PathStyle: ts.S3PathStyle,
		AccessKey: ts.S3AccessKey, SecretKey: ts.S3SecretKey, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func put(ctx context.Context, st objstore.Store, key, value string) error {
	return st.Put(ctx, key, strings.NewReader(value), int64(len(value)))
}

// TestClusterBucketsIsolateClusters is the contract of ClusterBuckets
// against a real Versity S3 Gateway with IAM on: each cluster gets a bucket
// owned by a user of its own, and that user's keys, the only ones its SPUs
// hold, reach no other cluster's bucket; Remove empties and deletes the
// bucket and the user, and is idempotent.
func TestClusterBucketsIsolateClusters(t *testing.T) {
	srv := s3test.StartIAM(t)
	ctx := context.Background()
	m, err := tier.New(tier.Config{
		S3Endpoint: srv.Endpoint, S3Region: s3test.Region, S3Bucket: "spate", S3Prefix: "tier", S3PathStyle: true,
		S3AccessKey: s3test.AccessKey, S3SecretKey: s3test.SecretKey, ClusterBuckets: true,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a, b := tier.Cluster{Tenant: "t-acme", ID: "c-aaaa"}, tier.Cluster{Tenant: "t-other", ID: "c-bbbb"}
	ta, err := m.Prepare(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := m.Prepare(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if ta.S3Bucket != "spate-c-aaaa" || ta.S3Prefix != "tier/t-acme/c-aaaa" || ta.S3AccessKey == s3test.AccessKey || ta.S3AccessKey == tb.S3AccessKey {
		t.Fatalf("cluster a gets bucket %q, prefix %q, access key %q; want its own bucket and user", ta.S3Bucket, ta.S3Prefix, ta.S3AccessKey)
	}
	// Preparing again (a control plane restart) changes nothing.
	if again, err := m.Prepare(ctx, a); err != nil || again != ta {
		t.Fatalf("Prepare again = %+v, %v; want %+v", again, err, ta)
	}

	sa, sb := spuStore(t, ta), spuStore(t, tb)
	if err := put(ctx, sa, "orders/0/a.log", "of a"); err != nil {
		t.Fatalf("cluster a's SPU cannot write its own bucket: %v", err)
	}
	if err := put(ctx, sb, "orders/0/b.log", "of b"); err != nil {
		t.Fatalf("cluster b's SPU cannot write its own bucket: %v", err)
	}
	// a's keys on b's bucket and prefix: every operation is refused.
	intruder := tb
	intruder.S3AccessKey, intruder.S3SecretKey = ta.S3AccessKey, ta.S3SecretKey
	si := spuStore(t, intruder)
	if _, err := si.Get(ctx, "orders/0/b.log", 0, -1); !errors.Is(err, objstore.ErrPermission) {
		t.Errorf("cluster a's keys read cluster b's object: err = %v, want ErrPermission", err)
	}
	if _, err := si.List(ctx, "", "", 0); !errors.Is(err, objstore.ErrPermission) {
		t.Errorf("cluster a's keys list cluster b's bucket: err = %v, want ErrPermission", err)
	}
	if err := put(ctx, si, "orders/0/evil.log", "x"); !errors.Is(err, objstore.ErrPermission) {
		t.Errorf("cluster a's keys write into cluster b's bucket: err = %v, want ErrPermission", err)
	}
	if err := si.Delete(ctx, "orders/0/b.log"); !errors.Is(err, objstore.ErrPermission) {
		t.Errorf("cluster a's keys delete in cluster b's bucket: err = %v, want ErrPermission", err)
	}
	if _, err := sb.Head(ctx, "orders/0/b.log"); err != nil {
		t.Errorf("cluster b lost its object to cluster a's keys: %v", err)
	}

	// The control plane's own view of a cluster is what its SPUs see.
	ca, err := m.Open(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ca.Get(ctx, "orders/0/a.log", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, []byte("of a")) {
		t.Fatalf("control plane reads %q, want %q", got, "of a")
	}

	if err := m.Remove(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, a); err != nil {
		t.Fatalf("Remove is not idempotent: %v", err)
	}
	if _, err := sa.List(ctx, "", "", 0); err == nil {
		t.Error("cluster a's keys still list after Remove")
	}
	if _, err := srv.Client().HeadBucket(ctx, &s3api.HeadBucketInput{Bucket: &ta.S3Bucket}); err == nil {
		t.Errorf("bucket %s still exists after Remove", ta.S3Bucket)
	}
	// Cluster b is untouched.
	if _, err := sb.Head(ctx, "orders/0/b.log"); err != nil {
		t.Fatalf("cluster b lost its object when a was removed: %v", err)
	}
}

// TestSharedBucketPrefixes is the layout without ClusterBuckets: one
// bucket, a prefix per tenant and cluster, the control plane's keys.
func TestSharedBucketPrefixes(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	m, err := tier.New(tier.Config{
		S3Endpoint: srv.Endpoint, S3Region: s3test.Region, S3Bucket: s3test.Bucket, S3Prefix: "/spate/", S3PathStyle: true,
		S3AccessKey: s3test.AccessKey, S3SecretKey: s3test.SecretKey,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a, b := tier.Cluster{Tenant: "t-acme", ID: "c-aaaa"}, tier.Cluster{ID: "local"}
	ta, err := m.Prepare(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if ta.S3Bucket != s3test.Bucket || ta.S3Prefix != "spate/t-acme/c-aaaa" || ta.S3AccessKey != s3test.AccessKey {
		t.Fatalf("Prepare = %+v", ta)
	}
	if p := m.Prefix(b); p != "spate/local" {
		t.Fatalf("prefix of an insecure control plane's cluster = %q, want spate/local", p)
	}
	sa := spuStore(t, ta)
	for _, k := range []string{"orders/0/1.log", "orders/1/1.log", "audit/0/1.log"} {
		if err := put(ctx, sa, k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	tb, _ := m.Prepare(ctx, b)
	if err := put(ctx, spuStore(t, tb), "orders/0/1.log", "x"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, a); err != nil {
		t.Fatal(err)
	}
	if objs, err := sa.List(ctx, "", "", 0); err != nil || len(objs) != 0 {
		t.Fatalf("after Remove, cluster a lists %v, %v; want nothing", objs, err)
	}
	if objs, err := spuStore(t, tb).List(ctx, "", "", 0); err != nil || len(objs) != 1 {
		t.Fatalf("after removing a, the other cluster lists %v, %v; want its one object", objs, err)
	}
}

// TestFolders: without S3, each cluster has a folder of its own.
func TestFolders(t *testing.T) {
	dir := t.TempDir()
	m, err := tier.New(tier.Config{Dir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := tier.Cluster{Tenant: "t-acme", ID: "c-aaaa"}
	ts, err := m.Prepare(ctx, c)
	if err != nil || ts.Dir != filepath.Join(dir, "c-aaaa") || ts.S3Bucket != "" {
		t.Fatalf("Prepare = %+v, %v", ts, err)
	}
	st, err := m.Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := put(ctx, st, "orders/0/1.log", "x"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, c); err != nil {
		t.Fatal(err)
	}
	if objs, err := st.List(ctx, "", "", 0); err == nil && len(objs) != 0 {
		t.Fatalf("after Remove the folder lists %v", objs)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  tier.Config
		err  string
	}{
		{name: "folders", cfg: tier.Config{Dir: "/x"}},
		{name: "shared bucket, default chain", cfg: tier.Config{S3Bucket: "spate", S3Prefix: "p"}},
		{name: "s3 flags without a bucket", cfg: tier.Config{S3Endpoint: "http://127.0.0.1:1"}, err: "need --tier-s3-bucket"},
		{name: "access key without secret", cfg: tier.Config{S3Bucket: "spate", S3AccessKey: "a"}, err: "both"},
		{name: "cluster buckets without admin keys", cfg: tier.Config{S3Bucket: "spate", ClusterBuckets: true}, err: "admin keys"},
		{name: "cluster buckets with a long name", cfg: tier.Config{S3Bucket: strings.Repeat("s", 51), ClusterBuckets: true, S3AccessKey: "a", S3SecretKey: "b"}, err: "at most 50"},
		{name: "bad prefix", cfg: tier.Config{S3Bucket: "spate", S3Prefix: "a//b"}, err: "--tier-s3-prefix"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.err)
			}
		})
	}
}
