// Package tier gives each cluster its object store of tiered storage and
// cleans it up: the store the cluster's SPUs upload to, and the one the
// control plane opens to delete a topic's or a cluster's objects.
//
// A cluster's objects live in one of:
//
//   - a folder, Dir/<cluster-id> (the default; `spate local up`);
//   - an S3 bucket shared by every cluster, under the key prefix
//     <prefix>/<tenant-id>/<cluster-id>/ (<prefix>/<cluster-id>/ for the
//     one cluster of an insecure control plane), with the control plane's
//     own credentials passed to the SPUs, or the SPUs' own default chain:
//     clusters are kept apart by prefixes only, so SPUs that hold these
//     credentials could reach other clusters' objects;
//   - with ClusterBuckets, a bucket per cluster, <bucket>-<cluster-id>,
//     owned by an IAM user of its own that the control plane creates
//     through the Versity S3 Gateway's admin API; the SPUs get only that
//     user's keys, so an SPU of one cluster can reach no other cluster's
//     objects. Deleting the cluster empties the bucket, then deletes it
//     and the user.
package tier

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spatehq/spate/control-plane/internal/provision"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
	"github.com/spatehq/spate/tiered-storage/objstore/s3"
	"github.com/spatehq/spate/tiered-storage/upload"
)

// Config says where clusters keep tiered storage. S3Bucket empty selects
// folders under Dir.
type Config struct {
	// Dir holds a folder per cluster when S3Bucket is empty.
	Dir string

	// S3Endpoint is the URL of an S3-compatible server; empty for AWS S3.
	S3Endpoint string
	// S3Region is the region requests are signed for. Default us-east-1.
	S3Region string
	// S3Bucket is the bucket every cluster shares, or with ClusterBuckets
	// the first part of each cluster's bucket name.
	S3Bucket string
	// S3Prefix goes before <tenant-id>/<cluster-id> in every key.
	S3Prefix string
	// S3PathStyle addresses the bucket in the URL path.
	S3PathStyle bool
	// S3AccessKey and S3SecretKey are the control plane's credentials;
	// empty, the AWS default chain. Without ClusterBuckets the SPUs get
	// them too (or, when empty, use their own default chain).
	S3AccessKey string
	S3SecretKey string
	// ClusterBuckets creates a bucket and an IAM user per cluster through
	// the Versity S3 Gateway admin API; S3AccessKey must then be an admin
	// (root) key of the gateway.
	ClusterBuckets bool
}

// S3 reports whether clusters keep their objects in S3.
func (c Config) S3() bool { return c.S3Bucket != "" }

// Validate reports what is wrong with c, naming the flags of `spate
// control-plane serve`.
func (c Config) Validate() error {
	s3Set := c.S3Endpoint != "" || c.S3Region != "" || c.S3Prefix != "" || c.S3PathStyle || c.S3AccessKey != "" || c.ClusterBuckets
	switch {
	case !c.S3() && s3Set:
		return errors.New("the --tier-s3-* flags need --tier-s3-bucket")
	case (c.S3AccessKey == "") != (c.S3SecretKey == ""):
		return errors.New("tier S3 credentials: give both the access key and the secret key, or neither for the AWS default chain")
	case c.ClusterBuckets && c.S3AccessKey == "":
		return errors.New("--tier-s3-cluster-buckets needs the gateway's admin keys (--tier-s3-access-key-file)")
	case c.ClusterBuckets && (len(c.S3Bucket) > 63-len("-c-0123456789") || strings.ToLower(c.S3Bucket) != c.S3Bucket):
		return fmt.Errorf("--tier-s3-bucket %q: with --tier-s3-cluster-buckets it starts each cluster's bucket name <bucket>-<cluster-id>: use lowercase and at most %d characters", c.S3Bucket, 63-len("-c-0123456789"))
	}
	if c.S3Prefix != "" {
		if err := objstore.ValidateKey(strings.Trim(c.S3Prefix, "/")); err != nil {
			return fmt.Errorf("--tier-s3-prefix: %w", err)
		}
	}
	if c.S3() && !c.ClusterBuckets {
		if err := (s3.Config{Endpoint: c.S3Endpoint, Bucket: c.S3Bucket}).Validate(); err != nil {
			return fmt.Errorf("tier S3 store: %w", err)
		}
	}
	return nil
}

// Cluster names a cluster: Tenant is empty for the one cluster of an
// insecure control plane.
type Cluster struct {
	Tenant, ID string
}

// Manager prepares and cleans up clusters' stores. It is safe for
// concurrent use.
type Manager struct {
	cfg    Config
	admin  *gatewayAdmin // with ClusterBuckets
	logger *slog.Logger
}

// New returns a Manager for cfg.
func New(cfg Config, logger *slog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, logger: logger}
	if cfg.ClusterBuckets {
		m.admin = newGatewayAdmin(cfg.S3Endpoint, cfg.region(), cfg.S3AccessKey, cfg.S3SecretKey)
	}
	return m, nil
}

func (c Config) region() string {
	if c.S3Region == "" {
		return s3.DefaultRegion
	}
	return c.S3Region
}

// Prefix is the key prefix of a cluster's objects in S3, without the
// trailing '/'.
func (m *Manager) Prefix(c Cluster) string {
	parts := []string{}
	if p := strings.Trim(m.cfg.S3Prefix, "/"); p != "" {
		parts = append(parts, p)
	}
	if c.Tenant != "" {
		parts = append(parts, c.Tenant)
	}
	return strings.Join(append(parts, c.ID), "/")
}

// Bucket is the bucket of a cluster's objects.
func (m *Manager) Bucket(c Cluster) string {
	if m.cfg.ClusterBuckets {
		return m.cfg.S3Bucket + "-" + c.ID
	}
	return m.cfg.S3Bucket
}

// userKeys are the access key and secret of a cluster's IAM user. The
// secret is derived from the admin secret, so the control plane stores
// nothing and recreates the same keys after a restart; rotating the admin
// secret rotates every cluster's (Prepare updates the users).
func (m *Manager) userKeys(c Cluster) (access, secret string) {
	mac := hmac.New(sha256.New, []byte(m.cfg.S3SecretKey))
	mac.Write([]byte("spate tier user\x00" + c.ID))
	return "spate-" + c.ID, base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Prepare makes sure the cluster's store exists (with ClusterBuckets: its
// user and bucket) and returns what the cluster's SPUs get. It is
// idempotent.
func (m *Manager) Prepare(ctx context.Context, c Cluster) (provision.Tier, error) {
	if !m.cfg.S3() {
		if m.cfg.Dir == "" {
			return provision.Tier{}, nil
		}
		return provision.Tier{Dir: filepath.Join(m.cfg.Dir, c.ID)}, nil
	}
	t := provision.Tier{
		S3Endpoint:  m.cfg.S3Endpoint,
		S3Region:    m.cfg.S3Region,
		S3Bucket:    m.Bucket(c),
		S3Prefix:    m.Prefix(c),
		S3PathStyle: m.cfg.S3PathStyle,
		S3AccessKey: m.cfg.S3AccessKey,
		S3SecretKey: m.cfg.S3SecretKey,
	}
	if !m.cfg.ClusterBuckets {
		return t, nil
	}
	access, secret := m.userKeys(c)
	if err := m.admin.ensureUser(ctx, access, secret); err != nil {
		return provision.Tier{}, fmt.Errorf("tier: cluster %s: %w", c.ID, err)
	}
	if err := m.admin.ensureBucket(ctx, t.S3Bucket, access); err != nil {
		return provision.Tier{}, fmt.Errorf("tier: cluster %s: %w", c.ID, err)
	}
	t.S3AccessKey, t.S3SecretKey = access, secret
	return t, nil
}

// Open returns the cluster's store as its SPUs see it, with the control
// plane's credentials; nil, nil when there is none (no folder configured).
func (m *Manager) Open(ctx context.Context, c Cluster) (objstore.Store, error) {
	if !m.cfg.S3() {
		if m.cfg.Dir == "" {
			return nil, nil
		}
		st, err := local.New(filepath.Join(m.cfg.Dir, c.ID))
		if err != nil {
			return nil, fmt.Errorf("tier: cluster %s: %w", c.ID, err)
		}
		return st, nil
	}
	st, err := s3.New(ctx, m.s3Config(c))
	if err != nil {
		return nil, fmt.Errorf("tier: cluster %s: %w", c.ID, err)
	}
	return st, nil
}

func (m *Manager) s3Config(c Cluster) s3.Config {
	return s3.Config{
		Endpoint:  m.cfg.S3Endpoint,
		Region:    m.cfg.S3Region,
		Bucket:    m.Bucket(c),
		Prefix:    m.Prefix(c),
		PathStyle: m.cfg.S3PathStyle,
		AccessKey: m.cfg.S3AccessKey,
		SecretKey: m.cfg.S3SecretKey,
	}
}

// Remove deletes every object of the cluster, then, with ClusterBuckets,
// its bucket and user; with folders, the cluster's folder. Call it once
// the cluster's SPUs are stopped. It is idempotent.
func (m *Manager) Remove(ctx context.Context, c Cluster) error {
	if !m.cfg.S3() {
		if m.cfg.Dir == "" {
			return nil
		}
		if err := os.RemoveAll(filepath.Join(m.cfg.Dir, c.ID)); err != nil {
			return fmt.Errorf("tier: cluster %s: %w", c.ID, err)
		}
		return nil
	}
	if m.cfg.ClusterBuckets {
		exists, err := m.admin.bucketExists(ctx, m.Bucket(c))
		if err != nil {
			return fmt.Errorf("tier: cluster %s: %w", c.ID, err)
		}
		if !exists {
			return m.removeUser(ctx, c)
		}
	}
	st, err := s3.New(ctx, m.s3Config(c))
	if err != nil {
		return fmt.Errorf("tier: cluster %s: %w", c.ID, err)
	}
	n, err := upload.PurgeAll(ctx, st)
	if err != nil {
		return fmt.Errorf("tier: cluster %s: delete objects (%d deleted): %w", c.ID, n, err)
	}
	m.logger.Info("tier objects deleted", "cluster", c.ID, "objects", n)
	if !m.cfg.ClusterBuckets {
		return nil
	}
	if err := m.admin.deleteBucket(ctx, st.Client(), m.Bucket(c)); err != nil {
		return fmt.Errorf("tier: cluster %s: %w", c.ID, err)
	}
	return m.removeUser(ctx, c)
}

func (m *Manager) removeUser(ctx context.Context, c Cluster) error {
	access, _ := m.userKeys(c)
	if err := m.admin.deleteUser(ctx, access); err != nil {
		return fmt.Errorf("tier: cluster %s: %w", c.ID, err)
	}
	return nil
}
