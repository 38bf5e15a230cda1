package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/spatehq/spate/auth/access"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/control-plane/internal/embedetcd"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
)

// newStores starts an embedded etcd and returns n Stores on it, each with
// its own client, as n control-plane replicas have.
func newStores(t *testing.T, n int) []*tenancy.Store {
	t.Helper()
	e, err := embedetcd.Start(context.Background(), embedetcd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	var out []*tenancy.Store
	for range n {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, tenancy.New(c))
	}
	return out
}

func newStore(t *testing.T) *tenancy.Store { return newStores(t, 1)[0] }

// mustTenant creates tenant id (named after it) with an owner u-<id> whose
// email is <id>@example.com.
func mustTenant(t *testing.T, s *tenancy.Store, id string) {
	t.Helper()
	err := s.CreateTenant(context.Background(), tenancy.Tenant{ID: id, Name: "name-" + id},
		tenancy.User{ID: "u-" + id, Email: id + "@example.com", Role: access.Owner})
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err %v, want %v", err, want)
	}
}

func TestTenantNamesAndEmailsAreUnique(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	owner := tenancy.User{ID: "u-ann", Email: " Ann@Example.COM ", Role: access.Owner}
	if err := s.CreateTenant(ctx, tenancy.Tenant{ID: "t-acme", Name: "acme"}, owner); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{name: "tenant name taken", want: tenancy.ErrExists, call: func() error {
			return s.CreateTenant(ctx, tenancy.Tenant{ID: "t-other", Name: "acme"}, tenancy.User{ID: "u-bob", Email: "bob@example.com"})
		}},
		{name: "tenant id taken", want: tenancy.ErrExists, call: func() error {
			return s.CreateTenant(ctx, tenancy.Tenant{ID: "t-acme", Name: "acme2"}, tenancy.User{ID: "u-bob", Email: "bob@example.com"})
		}},
		{name: "owner email taken, other case", want: tenancy.ErrExists, call: func() error {
			return s.CreateTenant(ctx, tenancy.Tenant{ID: "t-other", Name: "other"}, tenancy.User{ID: "u-ann2", Email: "ann@example.com"})
		}},
		{name: "member email taken in the same tenant", want: tenancy.ErrExists, call: func() error {
			return s.AddUser(ctx, tenancy.User{ID: "u-ann2", Tenant: "t-acme", Email: "ANN@example.com", Role: access.Member})
		}},
		{name: "user in a missing tenant", want: tenancy.ErrNotFound, call: func() error {
			return s.AddUser(ctx, tenancy.User{ID: "u-carl", Tenant: "t-none", Email: "carl@example.com"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.call(), tt.want) })
	}

	// The failed creates left nothing behind: "other" and bob are free.
	if err := s.CreateTenant(ctx, tenancy.Tenant{ID: "t-other", Name: "other"}, tenancy.User{ID: "u-bob", Email: "bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	// Emails are unique across tenants.
	wantErr(t, s.AddUser(ctx, tenancy.User{ID: "u-ann3", Tenant: "t-other", Email: "ann@example.com"}), tenancy.ErrExists)

	u, err := s.UserByEmail(ctx, "ANN@example.com")
	if err != nil || u.ID != "u-ann" || u.Tenant != "t-acme" || u.Email != "ann@example.com" || u.Role != access.Owner {
		t.Fatalf("UserByEmail: %+v, %v", u, err)
	}
	if tn, err := s.TenantByName(ctx, "acme"); err != nil || tn.ID != "t-acme" {
		t.Fatalf("TenantByName: %+v, %v", tn, err)
	}
	ts, err := s.ListTenants(ctx)
	if err != nil || len(ts) != 2 || ts[0].ID != "t-acme" || ts[1].ID != "t-other" {
		t.Fatalf("ListTenants: %+v, %v", ts, err)
	}

	// Removing a user frees the email.
	if err := s.RemoveUser(ctx, "t-acme", "u-ann"); err != nil {
		t.Fatal(err)
	}
	_, err = s.UserByEmail(ctx, "ann@example.com")
	wantErr(t, err, tenancy.ErrNotFound)
	if err := s.AddUser(ctx, tenancy.User{ID: "u-ann3", Tenant: "t-other", Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentCreatesOneWins(t *testing.T) {
	stores := newStores(t, 4)
	ctx := context.Background()
	mustTenant(t, stores[0], "t-a")
	tests := []struct {
		name   string
		create func(s *tenancy.Store, i int) error
	}{
		{name: "tenant name", create: func(s *tenancy.Store, i int) error {
			return s.CreateTenant(ctx, tenancy.Tenant{ID: fmt.Sprintf("t-x%d", i), Name: "same"},
				tenancy.User{ID: "u-x", Email: fmt.Sprintf("x%d@example.com", i)})
		}},
		{name: "email", create: func(s *tenancy.Store, i int) error {
			return s.AddUser(ctx, tenancy.User{ID: fmt.Sprintf("u-e%d", i), Tenant: "t-a", Email: "same@example.com"})
		}},
		{name: "service account name", create: func(s *tenancy.Store, i int) error {
			return s.CreateServiceAccount(ctx, tenancy.ServiceAccount{ID: fmt.Sprintf("sa-%d", i), Tenant: "t-a", Name: "ci"})
		}},
		{name: "cluster name", create: func(s *tenancy.Store, i int) error {
			return s.CreateCluster(ctx, tenancy.Cluster{ID: fmt.Sprintf("c-%d", i), Tenant: "t-a", Name: "prod"})
		}},
		{name: "user code", create: func(s *tenancy.Store, i int) error {
			return s.CreateDeviceCode(ctx, tenancy.DeviceCode{
				Hash: []byte{byte(i)}, UserCode: "BCDF-GHJK", ExpiresAt: time.Now().Add(time.Minute),
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = tt.create(stores[i%len(stores)], i) })
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, tenancy.ErrExists):
					t.Fatalf("err %v, want nil or ErrExists", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d creates won, want exactly 1: %v", wins, errs)
			}
		})
	}
}

func TestNamesAreUniquePerTenantOnly(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, tenant := range []string{"t-a", "t-b"} {
		mustTenant(t, s, tenant)
		if err := s.CreateCluster(ctx, tenancy.Cluster{ID: "c-" + tenant, Tenant: tenant, Name: "prod", SPUs: 3}); err != nil {
			t.Fatalf("cluster prod in %s: %v", tenant, err)
		}
		if err := s.CreateServiceAccount(ctx, tenancy.ServiceAccount{ID: "sa-" + tenant, Tenant: tenant, Name: "ci"}); err != nil {
			t.Fatalf("service account ci in %s: %v", tenant, err)
		}
	}
	for _, tenant := range []string{"t-a", "t-b"} {
		c, err := s.ClusterByName(ctx, tenant, "prod")
		if err != nil || c.ID != "c-"+tenant || c.Status != tenancy.ClusterProvisioning {
			t.Fatalf("cluster prod of %s: %+v, %v", tenant, c, err)
		}
		sa, err := s.ServiceAccountByName(ctx, tenant, "ci")
		if err != nil || sa.ID != "sa-"+tenant {
			t.Fatalf("service account ci of %s: %+v, %v", tenant, sa, err)
		}
		cs, err := s.ListClusters(ctx, tenant)
		if err != nil || len(cs) != 1 || cs[0].ID != "c-"+tenant {
			t.Fatalf("clusters of %s: %+v, %v", tenant, cs, err)
		}
	}
	all, err := s.ListAllClusters(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("all clusters: %+v, %v", all, err)
	}

	// Deleting frees the name in that tenant only.
	if err := s.DeleteCluster(ctx, "c-t-a"); err != nil {
		t.Fatal(err)
	}
	_, err = s.ClusterByName(ctx, "t-a", "prod")
	wantErr(t, err, tenancy.ErrNotFound)
	if err := s.CreateCluster(ctx, tenancy.Cluster{ID: "c-new", Tenant: "t-a", Name: "prod"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateCluster(ctx, tenancy.Cluster{ID: "c-newer", Tenant: "t-b", Name: "prod"}), tenancy.ErrExists)
	if err := s.DeleteServiceAccount(ctx, "t-a", "ci"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateServiceAccount(ctx, tenancy.ServiceAccount{ID: "sa-new", Tenant: "t-a", Name: "ci"}); err != nil {
		t.Fatal(err)
	}
}

func TestMissingThingsAreNotFound(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustTenant(t, s, "t-a")
	tests := []struct {
		name string
		call func() error
	}{
		{name: "tenant", call: func() error { _, err := s.GetTenant(ctx, "t-none"); return err }},
		{name: "user", call: func() error { _, err := s.GetUser(ctx, "t-a", "u-none"); return err }},
		{name: "user of another tenant", call: func() error { _, err := s.GetUser(ctx, "t-b", "u-t-a"); return err }},
		{name: "email", call: func() error { _, err := s.UserByEmail(ctx, "none@example.com"); return err }},
		{name: "remove user", call: func() error { return s.RemoveUser(ctx, "t-a", "u-none") }},
		{name: "service account", call: func() error { _, err := s.ServiceAccountByName(ctx, "t-a", "ci"); return err }},
		{name: "update service account", call: func() error {
			_, err := s.UpdateServiceAccount(ctx, "t-a", "ci", nil)
			return err
		}},
		{name: "delete service account", call: func() error { return s.DeleteServiceAccount(ctx, "t-a", "ci") }},
		{name: "service account in a missing tenant", call: func() error {
			return s.CreateServiceAccount(ctx, tenancy.ServiceAccount{ID: "sa-1", Tenant: "t-none", Name: "ci"})
		}},
		{name: "cluster", call: func() error { _, err := s.GetCluster(ctx, "c-none"); return err }},
		{name: "cluster by name", call: func() error { _, err := s.ClusterByName(ctx, "t-a", "prod"); return err }},
		{name: "update cluster", call: func() error {
			_, err := s.UpdateCluster(ctx, "c-none", func(*tenancy.Cluster) error { return nil })
			return err
		}},
		{name: "delete cluster", call: func() error { return s.DeleteCluster(ctx, "c-none") }},
		{name: "cluster in a missing tenant", call: func() error {
			return s.CreateCluster(ctx, tenancy.Cluster{ID: "c-1", Tenant: "t-none", Name: "prod"})
		}},
		{name: "api key", call: func() error { _, err := s.GetAPIKey(ctx, "k-none"); return err }},
		{name: "api key of a missing user", call: func() error {
			return s.CreateAPIKey(ctx, tenancy.APIKey{ID: "k-1", Tenant: "t-a", Kind: identity.User, Principal: "u-none"})
		}},
		{name: "refresh token", call: func() error { _, err := s.UseRefreshToken(ctx, "r-none", []byte("h")); return err }},
		{name: "device code", call: func() error { _, err := s.DeviceCodeByHash(ctx, []byte("h")); return err }},
		{name: "user code", call: func() error { _, err := s.DeviceCodeByUserCode(ctx, "BCDF-GHJK"); return err }},
		{name: "root ca", call: func() error { _, _, err := s.RootCA(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.call(), tenancy.ErrNotFound) })
	}
}

// refreshToken returns a token of u-t-a in t-a valid for a minute.
func refreshToken(id, family string) tenancy.RefreshToken {
	return tenancy.RefreshToken{
		ID: id, Family: family, Tenant: "t-a", Kind: identity.User, Principal: "u-t-a",
		Hash: []byte("hash-" + id), ExpiresAt: time.Now().Add(time.Minute),
	}
}

func TestRefreshTokenRotationAndReuse(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustTenant(t, s, "t-a")
	if err := s.CreateRefreshToken(ctx, refreshToken("r-1", "f-1")); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateRefreshToken(ctx, refreshToken("r-1", "f-1")), tenancy.ErrExists)

	// A wrong hash is not found, and does not count as a use.
	_, err := s.UseRefreshToken(ctx, "r-1", []byte("hash-r-2"))
	wantErr(t, err, tenancy.ErrNotFound)

	// Rotation: use r-1, then store its successor r-2 in the same family.
	rt, err := s.UseRefreshToken(ctx, "r-1", []byte("hash-r-1"))
	if err != nil || !rt.Used || rt.Family != "f-1" || rt.Principal != "u-t-a" {
		t.Fatalf("use r-1: %+v, %v", rt, err)
	}
	if err := s.CreateRefreshToken(ctx, refreshToken("r-2", "f-1")); err != nil {
		t.Fatal(err)
	}
	// Another family of the same user, which reuse in f-1 leaves alone.
	if err := s.CreateRefreshToken(ctx, refreshToken("r-9", "f-9")); err != nil {
		t.Fatal(err)
	}

	// r-1 was stolen: its second use revokes the whole family.
	_, err = s.UseRefreshToken(ctx, "r-1", []byte("hash-r-1"))
	wantErr(t, err, tenancy.ErrReused)
	_, err = s.UseRefreshToken(ctx, "r-2", []byte("hash-r-2"))
	wantErr(t, err, tenancy.ErrNotFound)
	_, err = s.UseRefreshToken(ctx, "r-1", []byte("hash-r-1"))
	wantErr(t, err, tenancy.ErrNotFound)
	// A rotation that was in flight cannot add to the revoked family.
	wantErr(t, s.CreateRefreshToken(ctx, refreshToken("r-3", "f-1")), tenancy.ErrReused)

	if _, err := s.UseRefreshToken(ctx, "r-9", []byte("hash-r-9")); err != nil {
		t.Fatalf("other family: %v", err)
	}
}

func TestRotateRefreshToken(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustTenant(t, s, "t-a")
	if err := s.CreateRefreshToken(ctx, refreshToken("r-1", "f-1")); err != nil {
		t.Fatal(err)
	}
	// The successor takes the family and principal of the used token.
	next := tenancy.RefreshToken{ID: "r-2", Hash: []byte("hash-r-2"), ExpiresAt: time.Now().Add(time.Minute)}
	if _, err := s.RotateRefreshToken(ctx, "r-1", []byte("hash-r-1"), next); err != nil {
		t.Fatal(err)
	}

	// Two clients rotate r-2 at once: one gets r-3a or r-3b, the other
	// ErrReused, and the reuse revokes the winner's successor too.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, id := range []string{"r-3a", "r-3b"} {
		wg.Go(func() {
			next := tenancy.RefreshToken{ID: id, Hash: []byte("hash-" + id), ExpiresAt: time.Now().Add(time.Minute)}
			_, errs[i] = s.RotateRefreshToken(ctx, "r-2", []byte("hash-r-2"), next)
		})
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !(errors.Is(errs[0], tenancy.ErrReused) || errors.Is(errs[1], tenancy.ErrReused)) {
		t.Fatalf("concurrent rotations: %v, want one nil and one ErrReused", errs)
	}
	for _, id := range []string{"r-3a", "r-3b"} {
		_, err := s.UseRefreshToken(ctx, id, []byte("hash-"+id))
		wantErr(t, err, tenancy.ErrNotFound)
	}
}

func TestDeviceCodesAndRefreshTokensExpire(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustTenant(t, s, "t-a")
	expires := time.Now().Add(2 * time.Second)
	rt := refreshToken("r-1", "f-1")
	rt.ExpiresAt = expires
	if err := s.CreateRefreshToken(ctx, rt); err != nil {
		t.Fatal(err)
	}
	dc := tenancy.DeviceCode{Hash: []byte("device-1"), UserCode: "BCDF-GHJK", ClientID: "spate-cli", ExpiresAt: expires, Interval: 5 * time.Second}
	if err := s.CreateDeviceCode(ctx, dc); err != nil {
		t.Fatal(err)
	}
	got, err := s.DeviceCodeByUserCode(ctx, "BCDF-GHJK")
	if err != nil || string(got.Hash) != "device-1" || got.Status != tenancy.DevicePending {
		t.Fatalf("by user code: %+v, %v", got, err)
	}
	// The user code is unique among live codes.
	other := tenancy.DeviceCode{Hash: []byte("device-2"), UserCode: "BCDF-GHJK", ExpiresAt: time.Now().Add(time.Minute)}
	wantErr(t, s.CreateDeviceCode(ctx, other), tenancy.ErrExists)

	// Approving keeps the code's identity and expiry.
	got, err = s.UpdateDeviceCode(ctx, dc.Hash, func(d *tenancy.DeviceCode) error {
		d.Status, d.Tenant, d.Principal = tenancy.DeviceApproved, "t-a", "u-a"
		d.UserCode = "ZZZZ-ZZZZ" // ignored
		return nil
	})
	if err != nil || got.Status != tenancy.DeviceApproved || got.UserCode != "BCDF-GHJK" || !got.ExpiresAt.Equal(expires) {
		t.Fatalf("update: %+v, %v", got, err)
	}

	// From ExpiresAt on the code is gone, even before etcd ends its lease.
	time.Sleep(time.Until(expires))
	_, err = s.DeviceCodeByHash(ctx, dc.Hash)
	wantErr(t, err, tenancy.ErrNotFound)
	_, err = s.DeviceCodeByUserCode(ctx, "BCDF-GHJK")
	wantErr(t, err, tenancy.ErrNotFound)
	_, err = s.UpdateDeviceCode(ctx, dc.Hash, func(*tenancy.DeviceCode) error { return nil })
	wantErr(t, err, tenancy.ErrNotFound)
	_, err = s.UseRefreshToken(ctx, rt.ID, rt.Hash)
	wantErr(t, err, tenancy.ErrNotFound)
	// Its user code is free again.
	if err := s.CreateDeviceCode(ctx, other); err != nil {
		t.Fatalf("reuse an expired user code: %v", err)
	}

	// And etcd removes the expired record with its lease.
	key := tenancy.DeviceCodesPrefix + "6465766963652d31" // hex "device-1"
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := s.Client().Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("device code still stored 10 s after it expired")
		}
		time.Sleep(200 * time.Millisecond)
	}

	if err := s.DeleteDeviceCode(ctx, other.Hash); err != nil {
		t.Fatal(err)
	}
	_, err = s.DeviceCodeByUserCode(ctx, "BCDF-GHJK")
	wantErr(t, err, tenancy.ErrNotFound)
}

func TestRemovingAPrincipalRemovesItsKeysAndTokens(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustTenant(t, s, "t-a")
	if err := s.AddUser(ctx, tenancy.User{ID: "u-bob", Tenant: "t-a", Email: "bob@example.com", Role: access.Member}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateServiceAccount(ctx, tenancy.ServiceAccount{ID: "sa-ci", Tenant: "t-a", Name: "ci"}); err != nil {
		t.Fatal(err)
	}
	keys := []tenancy.APIKey{
		{ID: "k-bob1", Tenant: "t-a", Kind: identity.User, Principal: "u-bob", Hash: []byte("1")},
		{ID: "k-bob2", Tenant: "t-a", Kind: identity.User, Principal: "u-bob", Hash: []byte("2")},
		{ID: "k-owner", Tenant: "t-a", Kind: identity.User, Principal: "u-t-a", Hash: []byte("3")},
		{ID: "k-ci", Tenant: "t-a", Kind: identity.ServiceAccount, Principal: "sa-ci", Hash: []byte("4")},
	}
	for _, k := range keys {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	tokens := []tenancy.RefreshToken{refreshToken("r-bob", "f-bob"), refreshToken("r-owner", "f-owner"), refreshToken("r-ci", "f-ci")}
	tokens[0].Principal = "u-bob"
	tokens[2].Kind, tokens[2].Principal = identity.ServiceAccount, "sa-ci"
	for _, rt := range tokens {
		if err := s.CreateRefreshToken(ctx, rt); err != nil {
			t.Fatal(err)
		}
	}

	if err := s.RemoveUser(ctx, "t-a", "u-bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteServiceAccount(ctx, "t-a", "ci"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"k-bob1", "k-bob2", "k-ci"} {
		_, err := s.GetAPIKey(ctx, id)
		wantErr(t, err, tenancy.ErrNotFound)
	}
	for _, rt := range []tenancy.RefreshToken{tokens[0], tokens[2]} {
		_, err := s.UseRefreshToken(ctx, rt.ID, rt.Hash)
		wantErr(t, err, tenancy.ErrNotFound)
	}
	// Nothing new for a removed principal.
	wantErr(t, s.CreateAPIKey(ctx, tenancy.APIKey{ID: "k-bob3", Tenant: "t-a", Kind: identity.User, Principal: "u-bob"}), tenancy.ErrNotFound)
	bob := refreshToken("r-bob2", "f-bob2")
	bob.Principal = "u-bob"
	wantErr(t, s.CreateRefreshToken(ctx, bob), tenancy.ErrNotFound)

	// The owner keeps theirs.
	if _, err := s.GetAPIKey(ctx, "k-owner"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseRefreshToken(ctx, "r-owner", tokens[1].Hash); err != nil {
		t.Fatal(err)
	}
	ks, err := s.ListAPIKeys(ctx, "t-a")
	if err != nil || len(ks) != 1 || ks[0].ID != "k-owner" {
		t.Fatalf("keys left: %+v, %v", ks, err)
	}
}

func TestAPIKeysAreReturnedAsStored(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustTenant(t, s, "t-a")
	mustTenant(t, s, "t-b")
	expires := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	k := tenancy.APIKey{ID: "k-1", Tenant: "t-a", Kind: identity.User, Principal: "u-t-a", Hash: []byte("h"), Description: "laptop", ExpiresAt: expires}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateAPIKey(ctx, k), tenancy.ErrExists)
	// The operator is no stored principal, nor "operator" a stored tenant.
	op := tenancy.APIKey{ID: "k-op", Tenant: "operator", Kind: identity.Operator, Principal: "operator", Hash: []byte("o")}
	if err := s.CreateAPIKey(ctx, op); err != nil {
		t.Fatalf("operator key: %v", err)
	}
	if got, err := s.GetAPIKey(ctx, "k-op"); err != nil || got.Kind != identity.Operator {
		t.Fatalf("operator key: %+v, %v", got, err)
	}
	// Another tenant cannot revoke it.
	wantErr(t, s.RevokeAPIKey(ctx, "t-b", "k-1"), tenancy.ErrNotFound)
	if err := s.RevokeAPIKey(ctx, "t-a", "k-1"); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAPIKey(ctx, "k-1")
	if err != nil || !got.Revoked || !got.ExpiresAt.Equal(expires) || string(got.Hash) != "h" || got.Kind != identity.User {
		t.Fatalf("revoked, expired key: %+v, %v", got, err)
	}
}

// nextTenant waits for WatchTenants to deliver id.
func nextTenant(t *testing.T, ch <-chan string, id string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got, ok := <-ch:
			if !ok {
				t.Fatal("watch closed")
			}
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("no change of %s", id)
		}
	}
}

func TestWatchTenantsFiresOnServiceAccountUpdate(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mustTenant(t, s, "t-a")
	mustTenant(t, s, "t-b")
	if err := s.CreateServiceAccount(ctx, tenancy.ServiceAccount{ID: "sa-ci", Tenant: "t-b", Name: "ci"}); err != nil {
		t.Fatal(err)
	}
	ch := s.WatchTenants(ctx)

	grants := []access.Grant{{Topic: "orders", Ops: []access.Op{access.Produce}}}
	sa, err := s.UpdateServiceAccount(ctx, "t-b", "ci", grants)
	if err != nil || !slices.EqualFunc(sa.Grants, grants, func(a, b access.Grant) bool { return a.Topic == b.Topic }) {
		t.Fatalf("update: %+v, %v", sa, err)
	}
	select {
	case got := <-ch:
		if got != "t-b" {
			t.Fatalf("change of %s, want t-b", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change delivered")
	}
	if err := s.AddUser(ctx, tenancy.User{ID: "u-bob", Tenant: "t-a", Email: "bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	nextTenant(t, ch, "t-a")

	cancel()
	for range ch {
	}
}

func TestUpdateClusterRetriesOnConflict(t *testing.T) {
	stores := newStores(t, 2)
	s, other := stores[0], stores[1]
	ctx := context.Background()
	mustTenant(t, s, "t-a")
	if err := s.CreateCluster(ctx, tenancy.Cluster{ID: "c-1", Tenant: "t-a", Name: "prod", SPUs: 3}); err != nil {
		t.Fatal(err)
	}

	// Another replica writes between the first read and write: the update
	// runs fn again on the new value, and both changes stay.
	calls := 0
	got, err := s.UpdateCluster(ctx, "c-1", func(c *tenancy.Cluster) error {
		calls++
		if calls == 1 {
			if _, err := other.UpdateCluster(ctx, "c-1", func(c *tenancy.Cluster) error {
				c.Endpoints = []string{"spu-0.example.com:9443"}
				return nil
			}); err != nil {
				t.Error(err)
			}
		}
		c.Status = tenancy.ClusterReady
		c.Name = "renamed" // ignored
		return nil
	})
	if err != nil || calls != 2 || got.Status != tenancy.ClusterReady || len(got.Endpoints) != 1 || got.Name != "prod" {
		t.Fatalf("update: calls %d, %+v, %v", calls, got, err)
	}

	// A writer that always wins makes the update give up.
	_, err = s.UpdateCluster(ctx, "c-1", func(c *tenancy.Cluster) error {
		_, err := other.UpdateCluster(ctx, "c-1", func(c *tenancy.Cluster) error { c.SPUs++; return nil })
		return err
	})
	wantErr(t, err, tenancy.ErrConflict)

	// fn's error aborts.
	stop := errors.New("stop")
	_, err = s.UpdateCluster(ctx, "c-1", func(*tenancy.Cluster) error { return stop })
	wantErr(t, err, stop)
}

func TestSigningKeys(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys, rev, err := s.SigningKeys(ctx)
	if err != nil || keys != nil || rev != 0 {
		t.Fatalf("no keys yet: %q, %d, %v", keys, rev, err)
	}
	ch := s.WatchSigningKeys(ctx)
	if got := <-ch; got != nil {
		t.Fatalf("first delivery %q, want none", got)
	}
	if err := s.PutSigningKeysIf(ctx, [][]byte{[]byte("k1")}, 0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.PutSigningKeysIf(ctx, [][]byte{[]byte("k2")}, 0), tenancy.ErrConflict)
	if got := <-ch; len(got) != 1 || string(got[0]) != "k1" {
		t.Fatalf("after put: %q", got)
	}
	if err := s.PutSigningKeys(ctx, [][]byte{[]byte("k2"), []byte("k1")}); err != nil {
		t.Fatal(err)
	}
	if got := <-ch; len(got) != 2 || string(got[0]) != "k2" {
		t.Fatalf("after rotation: %q", got)
	}
	keys, rev, err = s.SigningKeys(ctx)
	if err != nil || len(keys) != 2 || rev == 0 {
		t.Fatalf("keys: %q, %d, %v", keys, rev, err)
	}
}

func TestRootCAIsCreatedOnce(t *testing.T) {
	stores := newStores(t, 2)
	ctx := context.Background()
	if err := stores[0].CreateRootCA(ctx, []byte("cert-1"), []byte("key-1")); err != nil {
		t.Fatal(err)
	}
	wantErr(t, stores[1].CreateRootCA(ctx, []byte("cert-2"), []byte("key-2")), tenancy.ErrExists)
	cert, key, err := stores[1].RootCA(ctx)
	if err != nil || string(cert) != "cert-1" || string(key) != "key-1" {
		t.Fatalf("root ca: %q, %q, %v", cert, key, err)
	}
}
