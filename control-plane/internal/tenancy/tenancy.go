package tenancy

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/spatehq/spate/auth/identity"
)

// Key prefixes; see the package documentation.
const (
	Prefix                    = "/spate/v1/cloud/"
	TenantsPrefix             = Prefix + "tenants/"
	TenantNamesPrefix         = Prefix + "tenant-names/"
	PrincipalsPrefix          = Prefix + "principals/"
	EmailsPrefix              = Prefix + "emails/"
	ServiceAccountNamesPrefix = Prefix + "service-account-names/"
	APIKeysPrefix             = Prefix + "api-keys/"
	APIKeyIDsPrefix           = Prefix + "api-key-ids/"
	RefreshPrefix             = Prefix + "refresh/"
	RefreshFamiliesPrefix     = Prefix + "refresh-families/"
	RefreshPrincipalsPrefix   = Prefix + "refresh-principals/"
	RefreshRevokedPrefix      = Prefix + "refresh-revoked/"
	DeviceCodesPrefix         = Prefix + "device-codes/"
	UserCodesPrefix           = Prefix + "user-codes/"
	ClustersPrefix            = Prefix + "clusters/"
	ClusterNamesPrefix        = Prefix + "cluster-names/"
	SigningKeysKey            = Prefix + "signing-keys"
	RootCAKey                 = Prefix + "root-ca"
)

var (
	// ErrNotFound is returned for something that does not exist, or no
	// longer: an expired refresh token or device code counts as absent.
	// It is wrapped with what was not found.
	ErrNotFound = errors.New("tenancy: not found")
	// ErrExists is returned when a create would take a unique name, email,
	// id or user code that is taken.
	ErrExists = errors.New("tenancy: already exists")
	// ErrConflict is returned when a read-modify-write kept losing races
	// with other writers and gave up.
	ErrConflict = errors.New("tenancy: concurrent change")
	// ErrReused is returned by UseRefreshToken for a refresh token that was
	// already used; its whole family has been revoked. CreateRefreshToken
	// returns it for a family revoked shortly before.
	ErrReused = errors.New("tenancy: refresh token reused")
)

// maxRetries bounds the read-modify-write loops before ErrConflict.
const maxRetries = 16

// maxTxnOps stays below etcd's default limit of 128 operations per
// transaction.
const maxTxnOps = 100

// refreshRevokedTTL is how long a revoked refresh family stays marked so
// that a rotation racing with the revocation cannot create a new token
// in it.
const refreshRevokedTTL = time.Hour

// Store reads and writes the tenancy metadata in etcd. It is safe for
// concurrent use; every method may be called from any control-plane
// replica.
type Store struct {
	c *clientv3.Client
	// now is the clock, replaced in tests.
	now func() time.Time
}

// New returns a Store on an etcd client, which the caller closes.
func New(c *clientv3.Client) *Store {
	return &Store{c: c, now: time.Now}
}

// Client returns the etcd client.
func (s *Store) Client() *clientv3.Client { return s.c }

// Key constructors; see the package documentation.

func tenantKey(id string) string       { return TenantsPrefix + id }
func tenantNameKey(name string) string { return TenantNamesPrefix + name }
func usersPrefix(tenant string) string { return PrincipalsPrefix + tenant + "/users/" }
func userKey(tenant, id string) string { return usersPrefix(tenant) + id }
func emailKey(email string) string     { return EmailsPrefix + email }
func serviceAccountsPrefix(tenant string) string {
	return PrincipalsPrefix + tenant + "/service-accounts/"
}
func serviceAccountKey(tenant, id string) string { return serviceAccountsPrefix(tenant) + id }
func serviceAccountNameKey(tenant, name string) string {
	return ServiceAccountNamesPrefix + tenant + "/" + name
}
func apiKeysPrefix(tenant string) string { return APIKeysPrefix + tenant + "/" }
func principalAPIKeysPrefix(tenant, principal string) string {
	return apiKeysPrefix(tenant) + principal + "/"
}
func apiKeyKey(tenant, principal, id string) string {
	return principalAPIKeysPrefix(tenant, principal) + id
}
func apiKeyIDKey(id string) string             { return APIKeyIDsPrefix + id }
func refreshKey(id string) string              { return RefreshPrefix + id }
func refreshFamilyPrefix(family string) string { return RefreshFamiliesPrefix + family + "/" }
func refreshPrincipalPrefix(tenant, principal string) string {
	return RefreshPrincipalsPrefix + tenant + "/" + principal + "/"
}
func refreshRevokedKey(family string) string  { return RefreshRevokedPrefix + family }
func deviceKey(hash []byte) string            { return DeviceCodesPrefix + hex.EncodeToString(hash) }
func userCodeKey(code string) string          { return UserCodesPrefix + code }
func clusterKey(id string) string             { return ClustersPrefix + id }
func clusterNamesPrefix(tenant string) string { return ClusterNamesPrefix + tenant + "/" }
func clusterNameKey(tenant, name string) string {
	return clusterNamesPrefix(tenant) + name
}

// principalKey is the key of a tenant's user or service account, or ""
// for kinds that are not stored here.
func principalKey(tenant string, kind identity.Kind, principal string) string {
	switch kind {
	case identity.User:
		return userKey(tenant, principal)
	case identity.ServiceAccount:
		return serviceAccountKey(tenant, principal)
	}
	return ""
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	return string(b)
}

// get reads key into v; it returns the key-value (for its revisions and
// lease) or nil when the key is absent.
func (s *Store) get(ctx context.Context, key string, v any) (*mvccpb.KeyValue, error) {
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return resp.Kvs[0], nil
}

// list decodes every value under prefix, in key order.
func list[T any](ctx context.Context, s *Store, prefix string) ([]T, error) {
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// commitChunked commits ops in transactions of at most maxTxnOps.
func (s *Store) commitChunked(ctx context.Context, ops []clientv3.Op) error {
	for len(ops) > 0 {
		n := min(len(ops), maxTxnOps)
		if _, err := s.c.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// absent compares key's create revision with 0: the key does not exist.
func absent(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
}

// present compares key's create revision with 0: the key exists.
func present(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
}

// found reports whether the i-th response of a failed transaction's Else
// branch (a Get) found its key.
func found(resp *clientv3.TxnResponse, i int) bool {
	return len(resp.Responses[i].GetResponseRange().Kvs) > 0
}

// grant returns a lease that ends at expires, its TTL rounded up to whole
// seconds.
func (s *Store) grant(ctx context.Context, expires time.Time) (clientv3.LeaseID, error) {
	ttl := expires.Sub(s.now())
	if ttl <= 0 {
		return 0, errors.New("already expired")
	}
	g, err := s.c.Grant(ctx, max(int64(math.Ceil(ttl.Seconds())), 1))
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	return g.ID, nil
}

// revokeLease gives back a lease whose keys were not written; errors are
// ignored, the lease expires anyway.
func (s *Store) revokeLease(lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.c.Revoke(ctx, lease)
}

// expired reports whether t is set and past.
func (s *Store) expired(t time.Time) bool {
	return !t.IsZero() && !s.now().Before(t)
}

// stamp returns t, or now when t is zero.
func (s *Store) stamp(t time.Time) time.Time {
	if t.IsZero() {
		return s.now().UTC()
	}
	return t
}
