package tenancy

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/spatehq/spate/auth/identity"
)

// APIKey is a long-lived secret of a principal, exchanged for access
// tokens. Only a hash of the secret is stored. The store keeps revoked and
// expired keys: callers check Revoked and ExpiresAt (zero: never expires).
type APIKey struct {
	ID          string        `json:"id"`
	Tenant      string        `json:"tenant"`
	Kind        identity.Kind `json:"kind"`
	Principal   string        `json:"principal"`
	Hash        []byte        `json:"hash"`
	Description string        `json:"description,omitempty"`
	CreatedAt   time.Time     `json:"created_at"`
	ExpiresAt   time.Time     `json:"expires_at,omitzero"`
	Revoked     bool          `json:"revoked,omitempty"`
}

// RefreshToken is a single-use token of a principal; using it yields a new
// one of the same Family. It is stored under an etcd lease that ends at
// ExpiresAt, and treated as absent from ExpiresAt on.
type RefreshToken struct {
	ID        string        `json:"id"`
	Family    string        `json:"family"`
	Tenant    string        `json:"tenant"`
	Kind      identity.Kind `json:"kind"`
	Principal string        `json:"principal"`
	Hash      []byte        `json:"hash"`
	CreatedAt time.Time     `json:"created_at"`
	ExpiresAt time.Time     `json:"expires_at"`
	Used      bool          `json:"used,omitempty"`
}

// DeviceStatus is where a device authorization stands.
type DeviceStatus string

// The device authorization states.
const (
	DevicePending  DeviceStatus = "pending"
	DeviceApproved DeviceStatus = "approved"
	DeviceDenied   DeviceStatus = "denied"
)

// DeviceCode is an OAuth device authorization (RFC 8628), keyed by the
// hash of its device code. It is stored under an etcd lease that ends at
// ExpiresAt, and treated as absent from ExpiresAt on. Its user code is
// unique among live device codes.
type DeviceCode struct {
	Hash      []byte        `json:"hash"`
	UserCode  string        `json:"user_code"`
	ClientID  string        `json:"client_id"`
	CreatedAt time.Time     `json:"created_at"`
	ExpiresAt time.Time     `json:"expires_at"`
	Interval  time.Duration `json:"interval"`
	LastPoll  time.Time     `json:"last_poll,omitzero"`
	Status    DeviceStatus  `json:"status"`
	// Tenant and Principal are the user who approved (or denied).
	Tenant         string `json:"tenant,omitempty"`
	Principal      string `json:"principal,omitempty"`
	FailedAttempts int    `json:"failed_attempts,omitempty"`
}

// apiKeyRef is the value of an API key's id index key.
type apiKeyRef struct {
	Tenant    string `json:"tenant"`
	Principal string `json:"principal"`
}

// refreshRef is the value of a refresh token's family and principal index
// keys.
type refreshRef struct {
	Tenant    string `json:"tenant"`
	Principal string `json:"principal"`
	Family    string `json:"family"`
}

// userCodeRef is the value of a user code's index key.
type userCodeRef struct {
	Hash      string    `json:"hash"` // hex
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateAPIKey stores an API key: ErrExists if its id is taken,
// ErrNotFound if its principal is a user or service account that does not
// exist (other kinds, such as the operator, are not checked). A key
// created concurrently with the removal of its principal is removed with
// it.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) error {
	k.CreatedAt = s.stamp(k.CreatedAt)
	if err := identity.ValidID(k.ID); err != nil {
		return fmt.Errorf("api key: %w", err)
	}
	if err := identity.ValidID(k.Tenant); err != nil {
		return fmt.Errorf("api key %s: tenant: %w", k.ID, err)
	}
	if err := identity.ValidID(k.Principal); err != nil {
		return fmt.Errorf("api key %s: principal: %w", k.ID, err)
	}
	key, ik := apiKeyKey(k.Tenant, k.Principal, k.ID), apiKeyIDKey(k.ID)
	cmps := []clientv3.Cmp{absent(ik)}
	if pk := principalKey(k.Tenant, k.Kind, k.Principal); pk != "" {
		cmps = append(cmps, present(pk))
	}
	resp, err := s.c.Txn(ctx).If(cmps...).
		Then(
			clientv3.OpPut(key, mustJSON(k)),
			clientv3.OpPut(ik, mustJSON(apiKeyRef{Tenant: k.Tenant, Principal: k.Principal})),
		).
		Else(clientv3.OpGet(ik)).
		Commit()
	if err != nil {
		return fmt.Errorf("create api key %q: %w", k.ID, err)
	}
	if !resp.Succeeded {
		if found(resp, 0) {
			return fmt.Errorf("api key %q: %w", k.ID, ErrExists)
		}
		return fmt.Errorf("%s %q: %w", k.Kind, k.Principal, ErrNotFound)
	}
	return nil
}

// GetAPIKey reads an API key by id, revoked or expired ones included.
func (s *Store) GetAPIKey(ctx context.Context, id string) (APIKey, error) {
	k, _, err := s.getAPIKey(ctx, id)
	return k, err
}

func (s *Store) getAPIKey(ctx context.Context, id string) (APIKey, int64, error) {
	var ref apiKeyRef
	kv, err := s.get(ctx, apiKeyIDKey(id), &ref)
	if err != nil {
		return APIKey{}, 0, fmt.Errorf("get api key %q: %w", id, err)
	}
	if kv == nil {
		return APIKey{}, 0, fmt.Errorf("api key %q: %w", id, ErrNotFound)
	}
	var k APIKey
	kv, err = s.get(ctx, apiKeyKey(ref.Tenant, ref.Principal, id), &k)
	if err != nil {
		return APIKey{}, 0, fmt.Errorf("get api key %q: %w", id, err)
	}
	if kv == nil {
		// The principal was removed while the key was being created.
		return APIKey{}, 0, fmt.Errorf("api key %q: %w", id, ErrNotFound)
	}
	return k, kv.ModRevision, nil
}

// ListAPIKeys returns a tenant's API keys, revoked ones included, ordered
// by principal and id.
func (s *Store) ListAPIKeys(ctx context.Context, tenant string) ([]APIKey, error) {
	ks, err := list[APIKey](ctx, s, apiKeysPrefix(tenant))
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return ks, nil
}

// RevokeAPIKey marks a tenant's API key revoked; ErrNotFound if the tenant
// has no such key. Revoking a revoked key succeeds.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant, id string) error {
	for range maxRetries {
		k, rev, err := s.getAPIKey(ctx, id)
		if err != nil {
			return err
		}
		if k.Tenant != tenant {
			return fmt.Errorf("api key %q: %w", id, ErrNotFound)
		}
		if k.Revoked {
			return nil
		}
		k.Revoked = true
		key := apiKeyKey(k.Tenant, k.Principal, k.ID)
		resp, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, mustJSON(k))).
			Commit()
		if err != nil {
			return fmt.Errorf("revoke api key %q: %w", id, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("revoke api key %q: %w", id, ErrConflict)
}

// refreshCreate returns the comparisons and operations that create rt
// under lease: the token must be new, its family not revoked and its
// principal (a user or service account) must exist.
func (s *Store) refreshCreate(rt RefreshToken, lease clientv3.LeaseID) ([]clientv3.Cmp, []clientv3.Op, error) {
	if err := identity.ValidID(rt.ID); err != nil {
		return nil, nil, fmt.Errorf("refresh token: %w", err)
	}
	if err := identity.ValidID(rt.Family); err != nil {
		return nil, nil, fmt.Errorf("refresh token %s: family: %w", rt.ID, err)
	}
	if err := identity.ValidID(rt.Tenant); err != nil {
		return nil, nil, fmt.Errorf("refresh token %s: tenant: %w", rt.ID, err)
	}
	if err := identity.ValidID(rt.Principal); err != nil {
		return nil, nil, fmt.Errorf("refresh token %s: principal: %w", rt.ID, err)
	}
	key := refreshKey(rt.ID)
	ref := mustJSON(refreshRef{Tenant: rt.Tenant, Principal: rt.Principal, Family: rt.Family})
	cmps := []clientv3.Cmp{absent(key), absent(refreshRevokedKey(rt.Family))}
	if pk := principalKey(rt.Tenant, rt.Kind, rt.Principal); pk != "" {
		cmps = append(cmps, present(pk))
	}
	ops := []clientv3.Op{
		clientv3.OpPut(key, mustJSON(rt), clientv3.WithLease(lease)),
		clientv3.OpPut(refreshFamilyPrefix(rt.Family)+rt.ID, ref, clientv3.WithLease(lease)),
		clientv3.OpPut(refreshPrincipalPrefix(rt.Tenant, rt.Principal)+rt.ID, ref, clientv3.WithLease(lease)),
	}
	return cmps, ops, nil
}

// refreshCreateFailure explains a failed refreshCreate transaction whose
// Else branch read the token's key and the family's revocation key from
// index i on.
func refreshCreateFailure(rt RefreshToken, resp *clientv3.TxnResponse, i int) error {
	switch {
	case found(resp, i):
		return fmt.Errorf("refresh token %q: %w", rt.ID, ErrExists)
	case found(resp, i+1):
		return fmt.Errorf("refresh token family %q revoked: %w", rt.Family, ErrReused)
	default:
		return fmt.Errorf("%s %q: %w", rt.Kind, rt.Principal, ErrNotFound)
	}
}

// CreateRefreshToken stores a refresh token under an etcd lease that ends
// at ExpiresAt: ErrExists if its id is taken, ErrNotFound if its principal
// (a user or service account) does not exist, ErrReused if its family was
// revoked within the last hour (a rotation that raced with a reuse).
func (s *Store) CreateRefreshToken(ctx context.Context, rt RefreshToken) error {
	rt.CreatedAt = s.stamp(rt.CreatedAt)
	lease, err := s.grant(ctx, rt.ExpiresAt)
	if err != nil {
		return fmt.Errorf("create refresh token %q: %w", rt.ID, err)
	}
	cmps, ops, err := s.refreshCreate(rt, lease)
	if err != nil {
		s.revokeLease(lease)
		return err
	}
	resp, err := s.c.Txn(ctx).If(cmps...).Then(ops...).
		Else(clientv3.OpGet(refreshKey(rt.ID)), clientv3.OpGet(refreshRevokedKey(rt.Family))).
		Commit()
	if err != nil {
		s.revokeLease(lease)
		return fmt.Errorf("create refresh token %q: %w", rt.ID, err)
	}
	if !resp.Succeeded {
		s.revokeLease(lease)
		return refreshCreateFailure(rt, resp, 0)
	}
	return nil
}

// UseRefreshToken marks a refresh token used and returns it (Used set).
// ErrNotFound if it is unknown, expired or hash does not match (compared
// in constant time); ErrReused if it was used before, after revoking its
// whole family. Of two concurrent uses, one succeeds and the other revokes
// the family.
func (s *Store) UseRefreshToken(ctx context.Context, id string, hash []byte) (RefreshToken, error) {
	return s.useRefreshToken(ctx, id, hash, nil)
}

// RotateRefreshToken is UseRefreshToken and CreateRefreshToken(next) in one
// transaction: the used token's successor exists exactly when the use
// succeeded. next takes the used token's family, tenant, kind and
// principal. It returns the used token.
func (s *Store) RotateRefreshToken(ctx context.Context, id string, hash []byte, next RefreshToken) (RefreshToken, error) {
	return s.useRefreshToken(ctx, id, hash, &next)
}

func (s *Store) useRefreshToken(ctx context.Context, id string, hash []byte, next *RefreshToken) (RefreshToken, error) {
	key := refreshKey(id)
	var lease clientv3.LeaseID
	defer func() {
		if lease != 0 {
			s.revokeLease(lease)
		}
	}()
	for range maxRetries {
		var rt RefreshToken
		kv, err := s.get(ctx, key, &rt)
		if err != nil {
			return RefreshToken{}, fmt.Errorf("use refresh token %q: %w", id, err)
		}
		if kv == nil || s.expired(rt.ExpiresAt) || subtle.ConstantTimeCompare(rt.Hash, hash) != 1 {
			return RefreshToken{}, fmt.Errorf("refresh token %q: %w", id, ErrNotFound)
		}
		if rt.Used {
			if err := s.RevokeRefreshFamily(ctx, rt.Family); err != nil {
				return RefreshToken{}, fmt.Errorf("use refresh token %q: %w", id, err)
			}
			return RefreshToken{}, fmt.Errorf("refresh token %q: %w", id, ErrReused)
		}
		rt.Used = true
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)}
		ops := []clientv3.Op{clientv3.OpPut(key, mustJSON(rt), clientv3.WithIgnoreLease())}
		var elses []clientv3.Op
		if next != nil {
			n := *next
			n.Family, n.Tenant, n.Kind, n.Principal = rt.Family, rt.Tenant, rt.Kind, rt.Principal
			n.CreatedAt = s.stamp(n.CreatedAt)
			if lease == 0 {
				if lease, err = s.grant(ctx, n.ExpiresAt); err != nil {
					return RefreshToken{}, fmt.Errorf("rotate refresh token %q: %w", id, err)
				}
			}
			c, o, err := s.refreshCreate(n, lease)
			if err != nil {
				return RefreshToken{}, err
			}
			cmps, ops = append(cmps, c...), append(ops, o...)
			elses = []clientv3.Op{clientv3.OpGet(key), clientv3.OpGet(refreshKey(n.ID)), clientv3.OpGet(refreshRevokedKey(n.Family))}
		}
		resp, err := s.c.Txn(ctx).If(cmps...).Then(ops...).Else(elses...).Commit()
		if err != nil {
			return RefreshToken{}, fmt.Errorf("use refresh token %q: %w", id, err)
		}
		if resp.Succeeded {
			lease = 0 // in use
			return rt, nil
		}
		if next != nil && len(resp.Responses[0].GetResponseRange().Kvs) > 0 &&
			resp.Responses[0].GetResponseRange().Kvs[0].ModRevision == kv.ModRevision {
			// The used token did not change: the successor could not be
			// created.
			return RefreshToken{}, refreshCreateFailure(*next, resp, 1)
		}
		// Someone else changed it (used it, most likely): look again.
	}
	return RefreshToken{}, fmt.Errorf("use refresh token %q: %w", id, ErrConflict)
}

// RevokeRefreshFamily deletes every refresh token of a family and keeps
// the family marked revoked for an hour, so that a rotation in flight
// cannot add a token to it. Revoking an unknown family succeeds.
func (s *Store) RevokeRefreshFamily(ctx context.Context, family string) error {
	lease, err := s.grant(ctx, s.now().Add(refreshRevokedTTL))
	if err != nil {
		return fmt.Errorf("revoke refresh family %q: %w", family, err)
	}
	if _, err := s.c.Put(ctx, refreshRevokedKey(family), "", clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("revoke refresh family %q: %w", family, err)
	}
	if err := s.deleteRefreshTokens(ctx, refreshFamilyPrefix(family)); err != nil {
		return fmt.Errorf("revoke refresh family %q: %w", family, err)
	}
	return nil
}

// RevokePrincipalTokens deletes every refresh token of a principal. It
// does not touch API keys (see RevokeAPIKey, RemoveUser).
func (s *Store) RevokePrincipalTokens(ctx context.Context, tenant, principal string) error {
	if err := s.deleteRefreshTokens(ctx, refreshPrincipalPrefix(tenant, principal)); err != nil {
		return fmt.Errorf("revoke tokens of %q: %w", principal, err)
	}
	return nil
}

// deleteRefreshTokens deletes the tokens named by the index keys under
// prefix (of a family or a principal), with all their index keys, until
// none is left (a few rounds at most: tokens created meanwhile).
func (s *Store) deleteRefreshTokens(ctx context.Context, prefix string) error {
	for range maxRetries {
		resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		var ops []clientv3.Op
		for _, kv := range resp.Kvs {
			id := strings.TrimPrefix(string(kv.Key), prefix)
			var ref refreshRef
			if err := json.Unmarshal(kv.Value, &ref); err != nil {
				ops = append(ops, clientv3.OpDelete(string(kv.Key)))
				continue
			}
			ops = append(ops,
				clientv3.OpDelete(refreshKey(id)),
				clientv3.OpDelete(refreshFamilyPrefix(ref.Family)+id),
				clientv3.OpDelete(refreshPrincipalPrefix(ref.Tenant, ref.Principal)+id))
		}
		if err := s.commitChunked(ctx, ops); err != nil {
			return err
		}
	}
	return ErrConflict
}

// CreateDeviceCode stores a device authorization under an etcd lease that
// ends at ExpiresAt: ErrExists if its hash or its user code is taken by a
// live device code (the caller draws a new user code and retries). An
// empty Status is stored as DevicePending.
func (s *Store) CreateDeviceCode(ctx context.Context, dc DeviceCode) error {
	dc.CreatedAt = s.stamp(dc.CreatedAt)
	if dc.Status == "" {
		dc.Status = DevicePending
	}
	if len(dc.Hash) == 0 || dc.UserCode == "" {
		return errors.New("device code: a hash and a user code are required")
	}
	lease, err := s.grant(ctx, dc.ExpiresAt)
	if err != nil {
		return fmt.Errorf("create device code: %w", err)
	}
	dk, uk := deviceKey(dc.Hash), userCodeKey(dc.UserCode)
	ref := mustJSON(userCodeRef{Hash: hex.EncodeToString(dc.Hash), ExpiresAt: dc.ExpiresAt})
	userCodeFree := absent(uk)
	for range 2 {
		resp, err := s.c.Txn(ctx).
			If(absent(dk), userCodeFree).
			Then(
				clientv3.OpPut(dk, mustJSON(dc), clientv3.WithLease(lease)),
				clientv3.OpPut(uk, ref, clientv3.WithLease(lease)),
			).
			Else(clientv3.OpGet(dk), clientv3.OpGet(uk)).
			Commit()
		if err != nil {
			s.revokeLease(lease)
			return fmt.Errorf("create device code: %w", err)
		}
		if resp.Succeeded {
			return nil
		}
		if found(resp, 0) {
			break
		}
		// The user code is taken; by a code that expired but whose lease
		// etcd has not ended yet, it is free.
		kvs := resp.Responses[1].GetResponseRange().Kvs
		var old userCodeRef
		if len(kvs) == 0 || json.Unmarshal(kvs[0].Value, &old) != nil || !s.expired(old.ExpiresAt) {
			break
		}
		userCodeFree = clientv3.Compare(clientv3.ModRevision(uk), "=", kvs[0].ModRevision)
	}
	s.revokeLease(lease)
	return fmt.Errorf("device code %q: %w", dc.UserCode, ErrExists)
}

// DeviceCodeByUserCode reads a live device code by its user code (in
// canonical form, see secret.NormalizeUserCode).
func (s *Store) DeviceCodeByUserCode(ctx context.Context, userCode string) (DeviceCode, error) {
	var ref userCodeRef
	kv, err := s.get(ctx, userCodeKey(userCode), &ref)
	if err != nil {
		return DeviceCode{}, fmt.Errorf("device code %q: %w", userCode, err)
	}
	hash, herr := hex.DecodeString(ref.Hash)
	if kv == nil || herr != nil || s.expired(ref.ExpiresAt) {
		return DeviceCode{}, fmt.Errorf("device code %q: %w", userCode, ErrNotFound)
	}
	dc, err := s.DeviceCodeByHash(ctx, hash)
	if err != nil || dc.UserCode != userCode {
		return DeviceCode{}, fmt.Errorf("device code %q: %w", userCode, ErrNotFound)
	}
	return dc, nil
}

// DeviceCodeByHash reads a live device code by the hash of its device
// code.
func (s *Store) DeviceCodeByHash(ctx context.Context, hash []byte) (DeviceCode, error) {
	dc, _, err := s.deviceCode(ctx, hash)
	return dc, err
}

func (s *Store) deviceCode(ctx context.Context, hash []byte) (DeviceCode, int64, error) {
	var dc DeviceCode
	kv, err := s.get(ctx, deviceKey(hash), &dc)
	if err != nil {
		return DeviceCode{}, 0, fmt.Errorf("get device code: %w", err)
	}
	if kv == nil || s.expired(dc.ExpiresAt) {
		return DeviceCode{}, 0, fmt.Errorf("device code: %w", ErrNotFound)
	}
	return dc, kv.ModRevision, nil
}

// UpdateDeviceCode applies fn to a live device code and writes it back if
// it did not change in between, retrying on conflicts (ErrConflict after
// a few). Hash, UserCode and ExpiresAt cannot change. fn may return an
// error to abort; it is returned as is.
func (s *Store) UpdateDeviceCode(ctx context.Context, hash []byte, fn func(*DeviceCode) error) (DeviceCode, error) {
	key := deviceKey(hash)
	for range maxRetries {
		dc, rev, err := s.deviceCode(ctx, hash)
		if err != nil {
			return DeviceCode{}, err
		}
		h, uc, exp := dc.Hash, dc.UserCode, dc.ExpiresAt
		if err := fn(&dc); err != nil {
			return DeviceCode{}, err
		}
		dc.Hash, dc.UserCode, dc.ExpiresAt = h, uc, exp
		resp, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, mustJSON(dc), clientv3.WithIgnoreLease())).
			Commit()
		if err != nil {
			return DeviceCode{}, fmt.Errorf("update device code: %w", err)
		}
		if resp.Succeeded {
			return dc, nil
		}
	}
	return DeviceCode{}, fmt.Errorf("update device code: %w", ErrConflict)
}

// DeleteDeviceCode deletes a device code and its user code. Deleting an
// absent one succeeds.
func (s *Store) DeleteDeviceCode(ctx context.Context, hash []byte) error {
	key := deviceKey(hash)
	var dc DeviceCode
	kv, err := s.get(ctx, key, &dc)
	if err != nil {
		return fmt.Errorf("delete device code: %w", err)
	}
	if kv == nil {
		return nil
	}
	uk := userCodeKey(dc.UserCode)
	ref := mustJSON(userCodeRef{Hash: hex.EncodeToString(dc.Hash), ExpiresAt: dc.ExpiresAt})
	// The user code goes only if it still names this device code.
	if _, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(uk), "=", ref)).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(uk)).
		Else(clientv3.OpDelete(key)).
		Commit(); err != nil {
		return fmt.Errorf("delete device code: %w", err)
	}
	return nil
}
