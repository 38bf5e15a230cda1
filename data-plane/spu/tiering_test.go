package spu_test

import (
	"context"
	"strings"
	"testing"
	"time"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
)

// TestSPUUploadsToTheTierFolder runs an SPU with --tier-dir, tiny segments
// and a tiny local retention, produces, and waits until the heartbeat says
// that everything closed is uploaded and the local disk holds only the tail.
func TestSPUUploadsToTheTierFolder(t *testing.T) {
	reg, cp := startRegistry(t, "", nil)
	tierDir := t.TempDir()
	s := sputest.Start(t, spu.Config{
		ID: 3, ControlPlane: cp.URL, PublicAddr: "http://spu-3.example:9010",
		RetentionCheckInterval: 50 * time.Millisecond,
		Tier:                   spu.Tier{Dir: tierDir},
	})
	c := newClients(s.URL)
	reg.push(t, 3, 1, &internalv1.DesiredReplica{Topic: "tiered", Partition: 0, LeaderEpoch: 4, Leader: 3, Config: &internalv1.ReplicaConfig{
		SegmentBytes: 1024, Tiering: true, RetentionMs: -1, LocalRetentionBytes: 2048,
	}})
	waitHeld(t, c, "tiered/0")
	var last int64
	for i := range 50 {
		resp, err := c.produceOne(t, "tiered", 0, makeBatch(t, 0, values("v", i*10, 10)...))
		if err != nil {
			t.Fatal(err)
		}
		last = resp.LastOffset
	}
	var hb *internalv1.ReplicaStatus
	deadline := time.Now().Add(20 * time.Second)
	for {
		if h := reg.lastHeartbeat(); h != nil && len(h.Replicas) == 1 {
			hb = h.Replicas[0]
			if hb.EndOffset == last+1 && hb.UploadLagBytes == 0 && hb.RemoteStartOffset == 0 && hb.StartOffset > 0 && hb.TieringError == "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat never showed the uploads done: %v", hb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The folder holds the remote index: contiguous from 0 up to the local
	// active segment, and its size is what the SPU reports.
	store, err := local.New(tierDir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := store.List(context.Background(), layout.PartitionPrefix("tiered", 0), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var logs []layout.Segment
	for _, o := range objs {
		if seg, suffix, ok := layout.Parse(o.Key); ok && suffix == layout.LogSuffix {
			seg.Size = o.Size
			logs = append(logs, seg)
			if seg.Epoch != 4 {
				t.Fatalf("object %s: epoch %d, want 4", o.Key, seg.Epoch)
			}
		}
	}
	x := layout.NewIndex(logs)
	if len(x.Segments) != len(logs) || x.Start() != 0 || x.End() < hb.StartOffset || x.Size() != hb.RemoteSizeBytes {
		t.Fatalf("remote index %d to %d (%d bytes, %d of %d objects kept); heartbeat %v", x.Start(), x.End(), x.Size(), len(x.Segments), len(logs), hb)
	}
	for i := 1; i < len(x.Segments); i++ {
		if x.Segments[i].Base != x.Segments[i-1].Last+1 {
			t.Fatalf("gap in the remote index: %+v then %+v", x.Segments[i-1], x.Segments[i])
		}
	}
	// The local tail follows on from the remote tier.
	if hb.StartOffset > x.End() {
		t.Fatalf("offsets %d to %d are neither local nor remote", x.End(), hb.StartOffset-1)
	}
	// A consume from offset 0 reads the uploaded segments back (remote
	// tier), then the local tail, through one stream.
	recs := c.consumeRange(t, "tiered", 0, &dataplanev1.Offset{Position: &dataplanev1.Offset_Absolute{Absolute: 0}}, last+1)
	if len(recs) != 500 || string(recs[0].Value) != "v-0" || string(recs[499].Value) != "v-499" {
		t.Fatalf("consumed %d records from offset 0, want v-0 to v-499", len(recs))
	}
}

func TestSPUTierFlagsValidate(t *testing.T) {
	tests := []struct {
		name string
		tier spu.Tier
		tls  bool
		err  string
	}{
		{name: "none", tier: spu.Tier{}},
		{name: "folder", tier: spu.Tier{Dir: "/tmp/x"}},
		{name: "both", tier: spu.Tier{Dir: "/tmp/x", S3Bucket: "b"}, err: "not both"},
		{name: "s3 flags without a bucket", tier: spu.Tier{S3Endpoint: "http://127.0.0.1:1"}, err: "need --tier-s3-bucket"},
		{name: "s3 without a prefix and without TLS", tier: spu.Tier{S3Bucket: "bucket"}, err: "--tier-s3-prefix"},
		{name: "s3 with TLS takes the prefix from the certificate", tier: spu.Tier{S3Bucket: "bucket"}, tls: true},
		{name: "negative concurrency", tier: spu.Tier{Dir: "d", UploadConcurrency: -1}, err: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tier.Validate(tt.tls)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("Validate = %v, want %q", err, tt.err)
			}
		})
	}
}
