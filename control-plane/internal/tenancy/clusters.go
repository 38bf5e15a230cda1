package tenancy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/spatehq/spate/auth/identity"
)

// ClusterStatus is where a cluster's life stands.
type ClusterStatus string

// The cluster states.
const (
	ClusterProvisioning ClusterStatus = "provisioning"
	ClusterReady        ClusterStatus = "ready"
	ClusterFailed       ClusterStatus = "failed"
	ClusterDeleting     ClusterStatus = "deleting"
)

// Cluster is a tenant's streaming cluster. Names are unique within the
// tenant. CAKeyPEM is the cluster's intermediate CA key, stored as given
// (see the package documentation).
type Cluster struct {
	ID        string        `json:"id"`
	Tenant    string        `json:"tenant"`
	Name      string        `json:"name"`
	SPUs      int32         `json:"spus"`
	Status    ClusterStatus `json:"status"`
	Reason    string        `json:"reason,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	ReadyAt   time.Time     `json:"ready_at,omitzero"`
	CACertPEM []byte        `json:"ca_cert_pem,omitempty"`
	CAKeyPEM  []byte        `json:"ca_key_pem,omitempty"`
	Endpoints []string      `json:"endpoints,omitempty"`
}

// CreateCluster stores a new cluster: ErrNotFound if its tenant does not
// exist, ErrExists if the tenant has a cluster of that name (or the id is
// taken). An empty Status is stored as ClusterProvisioning.
func (s *Store) CreateCluster(ctx context.Context, c Cluster) error {
	c.CreatedAt = s.stamp(c.CreatedAt)
	if c.Status == "" {
		c.Status = ClusterProvisioning
	}
	if err := identity.ValidID(c.ID); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := identity.ValidID(c.Tenant); err != nil {
		return fmt.Errorf("cluster %s: tenant: %w", c.ID, err)
	}
	if c.Name == "" {
		return fmt.Errorf("cluster %s: a name is required", c.ID)
	}
	tk, k, nk := tenantKey(c.Tenant), clusterKey(c.ID), clusterNameKey(c.Tenant, c.Name)
	resp, err := s.c.Txn(ctx).
		If(present(tk), absent(nk), absent(k)).
		Then(clientv3.OpPut(k, mustJSON(c)), clientv3.OpPut(nk, c.ID)).
		Else(clientv3.OpGet(tk), clientv3.OpGet(nk)).
		Commit()
	if err != nil {
		return fmt.Errorf("create cluster %q: %w", c.Name, err)
	}
	if !resp.Succeeded {
		switch {
		case !found(resp, 0):
			return fmt.Errorf("tenant %q: %w", c.Tenant, ErrNotFound)
		case found(resp, 1):
			return fmt.Errorf("cluster %q: %w", c.Name, ErrExists)
		default:
			return fmt.Errorf("cluster %q: %w", c.ID, ErrExists)
		}
	}
	return nil
}

// GetCluster reads a cluster by id.
func (s *Store) GetCluster(ctx context.Context, id string) (Cluster, error) {
	c, _, err := s.getCluster(ctx, id)
	return c, err
}

func (s *Store) getCluster(ctx context.Context, id string) (Cluster, int64, error) {
	var c Cluster
	kv, err := s.get(ctx, clusterKey(id), &c)
	if err != nil {
		return Cluster{}, 0, fmt.Errorf("get cluster %q: %w", id, err)
	}
	if kv == nil {
		return Cluster{}, 0, fmt.Errorf("cluster %q: %w", id, ErrNotFound)
	}
	return c, kv.ModRevision, nil
}

// ClusterByName reads a tenant's cluster by name.
func (s *Store) ClusterByName(ctx context.Context, tenant, name string) (Cluster, error) {
	resp, err := s.c.Get(ctx, clusterNameKey(tenant, name))
	if err != nil {
		return Cluster{}, fmt.Errorf("get cluster %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Cluster{}, fmt.Errorf("cluster %q: %w", name, ErrNotFound)
	}
	c, err := s.GetCluster(ctx, string(resp.Kvs[0].Value))
	if errors.Is(err, ErrNotFound) {
		return Cluster{}, fmt.Errorf("cluster %q: %w", name, ErrNotFound)
	}
	return c, err
}

// ListClusters returns a tenant's clusters, ordered by name.
func (s *Store) ListClusters(ctx context.Context, tenant string) ([]Cluster, error) {
	resp, err := s.c.Get(ctx, clusterNamesPrefix(tenant), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	// Read the clusters at the revision of the names, in transactions of
	// gets.
	rev := resp.Header.Revision
	out := make([]Cluster, 0, len(resp.Kvs))
	for kvs := resp.Kvs; len(kvs) > 0; {
		n := min(len(kvs), maxTxnOps)
		ops := make([]clientv3.Op, n)
		for i, kv := range kvs[:n] {
			ops[i] = clientv3.OpGet(clusterKey(string(kv.Value)), clientv3.WithRev(rev))
		}
		tresp, err := s.c.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("list clusters: %w", err)
		}
		for _, r := range tresp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				var c Cluster
				if err := json.Unmarshal(kv.Value, &c); err != nil {
					return nil, fmt.Errorf("list clusters: decode %s: %w", kv.Key, err)
				}
				out = append(out, c)
			}
		}
		kvs = kvs[n:]
	}
	return out, nil
}

// ListAllClusters returns every cluster of every tenant, ordered by id.
func (s *Store) ListAllClusters(ctx context.Context) ([]Cluster, error) {
	cs, err := list[Cluster](ctx, s, ClustersPrefix)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return cs, nil
}

// UpdateCluster applies fn to a stored cluster and writes it back if it
// did not change in between, retrying on conflicts (ErrConflict after a
// few). ID, Tenant and Name cannot change. fn may return an error to
// abort; it is returned as is. fn may run more than once.
func (s *Store) UpdateCluster(ctx context.Context, id string, fn func(*Cluster) error) (Cluster, error) {
	key := clusterKey(id)
	for range maxRetries {
		c, rev, err := s.getCluster(ctx, id)
		if err != nil {
			return Cluster{}, err
		}
		tenant, name := c.Tenant, c.Name
		if err := fn(&c); err != nil {
			return Cluster{}, err
		}
		c.ID, c.Tenant, c.Name = id, tenant, name
		resp, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, mustJSON(c))).
			Commit()
		if err != nil {
			return Cluster{}, fmt.Errorf("update cluster %q: %w", id, err)
		}
		if resp.Succeeded {
			return c, nil
		}
	}
	return Cluster{}, fmt.Errorf("update cluster %q: %w", id, ErrConflict)
}

// DeleteCluster deletes a cluster and its name.
func (s *Store) DeleteCluster(ctx context.Context, id string) error {
	key := clusterKey(id)
	for range maxRetries {
		c, rev, err := s.getCluster(ctx, id)
		if err != nil {
			return err
		}
		nk := clusterNameKey(c.Tenant, c.Name)
		resp, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpDelete(key), clientv3.OpDelete(nk)).
			Commit()
		if err != nil {
			return fmt.Errorf("delete cluster %q: %w", id, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("delete cluster %q: %w", id, ErrConflict)
}

// rootCA is the value of RootCAKey.
type rootCA struct {
	CertPEM []byte `json:"cert_pem"`
	KeyPEM  []byte `json:"key_pem"`
}

// RootCA reads the service's root CA; ErrNotFound before CreateRootCA.
func (s *Store) RootCA(ctx context.Context) (certPEM, keyPEM []byte, err error) {
	var r rootCA
	kv, err := s.get(ctx, RootCAKey, &r)
	if err != nil {
		return nil, nil, fmt.Errorf("get root ca: %w", err)
	}
	if kv == nil {
		return nil, nil, fmt.Errorf("root ca: %w", ErrNotFound)
	}
	return r.CertPEM, r.KeyPEM, nil
}

// CreateRootCA stores the root CA if there is none: ErrExists otherwise
// (another replica won; read it with RootCA).
func (s *Store) CreateRootCA(ctx context.Context, certPEM, keyPEM []byte) error {
	resp, err := s.c.Txn(ctx).
		If(absent(RootCAKey)).
		Then(clientv3.OpPut(RootCAKey, mustJSON(rootCA{CertPEM: certPEM, KeyPEM: keyPEM}))).
		Commit()
	if err != nil {
		return fmt.Errorf("create root ca: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("root ca: %w", ErrExists)
	}
	return nil
}
