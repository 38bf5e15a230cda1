package server

import (
	"context"
	"fmt"

	"github.com/spatehq/spate/control-plane/internal/provision"
	"github.com/spatehq/spate/control-plane/internal/tier"
	"github.com/spatehq/spate/tiered-storage/upload"
)

// TierConfig says where clusters keep tiered storage: a folder per cluster
// (Dir, default DataDir/tier), or an S3 bucket, shared under the prefix
// <S3Prefix>/<tenant-id>/<cluster-id>/ or, with ClusterBuckets on a Versity
// S3 Gateway, one bucket and IAM user per cluster. See package tier.
type TierConfig = tier.Config

// Tier is the object store a Provisioner gives a cluster's SPUs.
type Tier = provision.Tier

// purger returns the Purge function of cluster id's reconciler: it deletes
// a deleted topic's objects from the cluster's store.
func (s *Server) purger(id string) func(ctx context.Context, topic string) error {
	return func(ctx context.Context, topic string) error {
		c := tier.Cluster{ID: id}
		if !s.cfg.Insecure {
			cl, err := s.tenancy.GetCluster(ctx, id)
			if err != nil {
				return fmt.Errorf("read cluster %s: %w", id, err)
			}
			c.Tenant = cl.Tenant
		}
		st, err := s.tier.Open(ctx, c)
		if err != nil || st == nil {
			return err
		}
		n, err := upload.PurgeTopic(ctx, st, topic)
		if err != nil {
			return fmt.Errorf("purge topic %s (%d objects deleted): %w", topic, n, err)
		}
		if n > 0 {
			s.logger.Info("topic objects deleted from the remote tier", "cluster", id, "topic", topic, "objects", n)
		}
		return nil
	}
}
