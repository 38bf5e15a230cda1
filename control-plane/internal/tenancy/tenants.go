package tenancy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/spatehq/spate/auth/access"
	"github.com/spatehq/spate/auth/identity"
)

// Tenant is a customer of the service: the owner of users, service
// accounts and clusters. Names are unique across the service.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// User is a person, a member of one tenant. Emails are unique across the
// service (people sign in by email) and stored lowercased.
type User struct {
	ID           string      `json:"id"`
	Tenant       string      `json:"tenant"`
	Email        string      `json:"email"`
	Role         access.Role `json:"role"`
	PasswordHash string      `json:"password_hash,omitempty"`
	CreatedAt    time.Time   `json:"created_at"`
}

// ServiceAccount is a non-person principal of a tenant. Names are unique
// within the tenant.
type ServiceAccount struct {
	ID        string         `json:"id"`
	Tenant    string         `json:"tenant"`
	Name      string         `json:"name"`
	Grants    []access.Grant `json:"grants,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
}

// emailRef is the value of an email's index key.
type emailRef struct {
	Tenant string `json:"tenant"`
	User   string `json:"user"`
}

// NormalizeEmail returns email as stored and looked up: trimmed and
// lowercased.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func validTenant(t Tenant) error {
	if err := identity.ValidID(t.ID); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	if t.Name == "" {
		return errors.New("tenant: a name is required")
	}
	return nil
}

func validUser(u User) error {
	if err := identity.ValidID(u.ID); err != nil {
		return fmt.Errorf("user: %w", err)
	}
	if err := identity.ValidID(u.Tenant); err != nil {
		return fmt.Errorf("user %s: tenant: %w", u.ID, err)
	}
	if u.Email == "" {
		return fmt.Errorf("user %s: an email is required", u.ID)
	}
	return nil
}

// CreateTenant creates a tenant and its first user (owner.Tenant is set
// to t.ID) in one transaction: ErrExists if the tenant's name or id or the
// owner's email is taken.
func (s *Store) CreateTenant(ctx context.Context, t Tenant, owner User) error {
	owner.Tenant = t.ID
	owner.Email = NormalizeEmail(owner.Email)
	t.CreatedAt = s.stamp(t.CreatedAt)
	owner.CreatedAt = s.stamp(owner.CreatedAt)
	if err := validTenant(t); err != nil {
		return err
	}
	if err := validUser(owner); err != nil {
		return err
	}
	tk, nk, uk, ek := tenantKey(t.ID), tenantNameKey(t.Name), userKey(t.ID, owner.ID), emailKey(owner.Email)
	resp, err := s.c.Txn(ctx).
		If(absent(tk), absent(nk), absent(ek), absent(uk)).
		Then(
			clientv3.OpPut(tk, mustJSON(t)),
			clientv3.OpPut(nk, t.ID),
			clientv3.OpPut(uk, mustJSON(owner)),
			clientv3.OpPut(ek, mustJSON(emailRef{Tenant: t.ID, User: owner.ID})),
		).
		Else(clientv3.OpGet(nk), clientv3.OpGet(ek), clientv3.OpGet(tk)).
		Commit()
	if err != nil {
		return fmt.Errorf("create tenant %q: %w", t.Name, err)
	}
	if !resp.Succeeded {
		switch {
		case found(resp, 0):
			return fmt.Errorf("tenant name %q: %w", t.Name, ErrExists)
		case found(resp, 1):
			return fmt.Errorf("email %q: %w", owner.Email, ErrExists)
		case found(resp, 2):
			return fmt.Errorf("tenant %q: %w", t.ID, ErrExists)
		default:
			return fmt.Errorf("user %q: %w", owner.ID, ErrExists)
		}
	}
	return nil
}

// GetTenant reads a tenant by id.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	kv, err := s.get(ctx, tenantKey(id), &t)
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant %q: %w", id, err)
	}
	if kv == nil {
		return Tenant{}, fmt.Errorf("tenant %q: %w", id, ErrNotFound)
	}
	return t, nil
}

// TenantByName reads a tenant by name.
func (s *Store) TenantByName(ctx context.Context, name string) (Tenant, error) {
	resp, err := s.c.Get(ctx, tenantNameKey(name))
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Tenant{}, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	return s.GetTenant(ctx, string(resp.Kvs[0].Value))
}

// ListTenants returns every tenant, ordered by id.
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) {
	ts, err := list[Tenant](ctx, s, TenantsPrefix)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ts, nil
}

// AddUser adds a user to an existing tenant: ErrNotFound if the tenant
// does not exist, ErrExists if the email (anywhere in the service) or the
// user id is taken.
func (s *Store) AddUser(ctx context.Context, u User) error {
	u.Email = NormalizeEmail(u.Email)
	u.CreatedAt = s.stamp(u.CreatedAt)
	if err := validUser(u); err != nil {
		return err
	}
	tk, uk, ek := tenantKey(u.Tenant), userKey(u.Tenant, u.ID), emailKey(u.Email)
	resp, err := s.c.Txn(ctx).
		If(present(tk), absent(ek), absent(uk)).
		Then(
			clientv3.OpPut(uk, mustJSON(u)),
			clientv3.OpPut(ek, mustJSON(emailRef{Tenant: u.Tenant, User: u.ID})),
		).
		Else(clientv3.OpGet(tk), clientv3.OpGet(ek)).
		Commit()
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Email, err)
	}
	if !resp.Succeeded {
		switch {
		case !found(resp, 0):
			return fmt.Errorf("tenant %q: %w", u.Tenant, ErrNotFound)
		case found(resp, 1):
			return fmt.Errorf("email %q: %w", u.Email, ErrExists)
		default:
			return fmt.Errorf("user %q: %w", u.ID, ErrExists)
		}
	}
	return nil
}

// UserByEmail finds a user by email, in whatever tenant; the email is
// compared case-insensitively.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	email = NormalizeEmail(email)
	var ref emailRef
	kv, err := s.get(ctx, emailKey(email), &ref)
	if err != nil {
		return User{}, fmt.Errorf("user by email %q: %w", email, err)
	}
	if kv == nil {
		return User{}, fmt.Errorf("user %q: %w", email, ErrNotFound)
	}
	return s.GetUser(ctx, ref.Tenant, ref.User)
}

// GetUser reads a user of a tenant.
func (s *Store) GetUser(ctx context.Context, tenant, id string) (User, error) {
	var u User
	kv, err := s.get(ctx, userKey(tenant, id), &u)
	if err != nil {
		return User{}, fmt.Errorf("get user %q: %w", id, err)
	}
	if kv == nil {
		return User{}, fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	return u, nil
}

// ListUsers returns a tenant's users, ordered by id.
func (s *Store) ListUsers(ctx context.Context, tenant string) ([]User, error) {
	us, err := list[User](ctx, s, usersPrefix(tenant))
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// UpdateUser applies fn to a stored user and writes it back if it did not
// change in between, retrying on conflicts (ErrConflict after a few).
// The id, tenant and email cannot change. fn may return an error to abort.
func (s *Store) UpdateUser(ctx context.Context, tenant, id string, fn func(*User) error) (User, error) {
	key := userKey(tenant, id)
	for range maxRetries {
		var u User
		kv, err := s.get(ctx, key, &u)
		if err != nil {
			return User{}, fmt.Errorf("update user %q: %w", id, err)
		}
		if kv == nil {
			return User{}, fmt.Errorf("user %q: %w", id, ErrNotFound)
		}
		email := u.Email
		if err := fn(&u); err != nil {
			return User{}, err
		}
		u.ID, u.Tenant, u.Email = id, tenant, email
		resp, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key, mustJSON(u))).
			Commit()
		if err != nil {
			return User{}, fmt.Errorf("update user %q: %w", id, err)
		}
		if resp.Succeeded {
			return u, nil
		}
	}
	return User{}, fmt.Errorf("update user %q: %w", id, ErrConflict)
}

// RemoveUser deletes a user, its email index and its API keys in one
// transaction, then its refresh tokens (RevokePrincipalTokens); no new key
// or token can be created for the user once it is gone.
func (s *Store) RemoveUser(ctx context.Context, tenant, id string) error {
	key := userKey(tenant, id)
	for range maxRetries {
		var u User
		kv, err := s.get(ctx, key, &u)
		if err != nil {
			return fmt.Errorf("remove user %q: %w", id, err)
		}
		if kv == nil {
			return fmt.Errorf("user %q: %w", id, ErrNotFound)
		}
		ops, err := s.apiKeyDeletes(ctx, tenant, id)
		if err != nil {
			return fmt.Errorf("remove user %q: %w", id, err)
		}
		ops = append(ops, clientv3.OpDelete(key), clientv3.OpDelete(emailKey(u.Email)))
		resp, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(ops...).
			Commit()
		if err != nil {
			return fmt.Errorf("remove user %q: %w", id, err)
		}
		if resp.Succeeded {
			return s.RevokePrincipalTokens(ctx, tenant, id)
		}
	}
	return fmt.Errorf("remove user %q: %w", id, ErrConflict)
}

// apiKeyDeletes returns the operations that delete a principal's API keys:
// every record under its prefix (also one created after this read) and the
// id index keys of those read.
func (s *Store) apiKeyDeletes(ctx context.Context, tenant, principal string) ([]clientv3.Op, error) {
	prefix := principalAPIKeysPrefix(tenant, principal)
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	ops := []clientv3.Op{clientv3.OpDelete(prefix, clientv3.WithPrefix())}
	for _, kv := range resp.Kvs {
		ops = append(ops, clientv3.OpDelete(apiKeyIDKey(strings.TrimPrefix(string(kv.Key), prefix))))
	}
	return ops, nil
}

func validServiceAccount(sa ServiceAccount) error {
	if err := identity.ValidID(sa.ID); err != nil {
		return fmt.Errorf("service account: %w", err)
	}
	if err := identity.ValidID(sa.Tenant); err != nil {
		return fmt.Errorf("service account %s: tenant: %w", sa.ID, err)
	}
	if sa.Name == "" {
		return fmt.Errorf("service account %s: a name is required", sa.ID)
	}
	return nil
}

// CreateServiceAccount creates a service account: ErrNotFound if its
// tenant does not exist, ErrExists if the tenant has one of that name (or
// id).
func (s *Store) CreateServiceAccount(ctx context.Context, sa ServiceAccount) error {
	sa.CreatedAt = s.stamp(sa.CreatedAt)
	if err := validServiceAccount(sa); err != nil {
		return err
	}
	tk, k, nk := tenantKey(sa.Tenant), serviceAccountKey(sa.Tenant, sa.ID), serviceAccountNameKey(sa.Tenant, sa.Name)
	resp, err := s.c.Txn(ctx).
		If(present(tk), absent(nk), absent(k)).
		Then(clientv3.OpPut(k, mustJSON(sa)), clientv3.OpPut(nk, sa.ID)).
		Else(clientv3.OpGet(tk), clientv3.OpGet(nk)).
		Commit()
	if err != nil {
		return fmt.Errorf("create service account %q: %w", sa.Name, err)
	}
	if !resp.Succeeded {
		switch {
		case !found(resp, 0):
			return fmt.Errorf("tenant %q: %w", sa.Tenant, ErrNotFound)
		case found(resp, 1):
			return fmt.Errorf("service account %q: %w", sa.Name, ErrExists)
		default:
			return fmt.Errorf("service account %q: %w", sa.ID, ErrExists)
		}
	}
	return nil
}

// serviceAccountID resolves a service account's name.
func (s *Store) serviceAccountID(ctx context.Context, tenant, name string) (string, error) {
	resp, err := s.c.Get(ctx, serviceAccountNameKey(tenant, name))
	if err != nil {
		return "", fmt.Errorf("service account %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("service account %q: %w", name, ErrNotFound)
	}
	return string(resp.Kvs[0].Value), nil
}

// ServiceAccountByName reads a tenant's service account by name.
func (s *Store) ServiceAccountByName(ctx context.Context, tenant, name string) (ServiceAccount, error) {
	id, err := s.serviceAccountID(ctx, tenant, name)
	if err != nil {
		return ServiceAccount{}, err
	}
	return s.GetServiceAccount(ctx, tenant, id)
}

// GetServiceAccount reads a tenant's service account by id.
func (s *Store) GetServiceAccount(ctx context.Context, tenant, id string) (ServiceAccount, error) {
	var sa ServiceAccount
	kv, err := s.get(ctx, serviceAccountKey(tenant, id), &sa)
	if err != nil {
		return ServiceAccount{}, fmt.Errorf("get service account %q: %w", id, err)
	}
	if kv == nil {
		return ServiceAccount{}, fmt.Errorf("service account %q: %w", id, ErrNotFound)
	}
	return sa, nil
}

// ListServiceAccounts returns a tenant's service accounts, ordered by id.
func (s *Store) ListServiceAccounts(ctx context.Context, tenant string) ([]ServiceAccount, error) {
	sas, err := list[ServiceAccount](ctx, s, serviceAccountsPrefix(tenant))
	if err != nil {
		return nil, fmt.Errorf("list service accounts: %w", err)
	}
	return sas, nil
}

// UpdateServiceAccount replaces a service account's grants.
func (s *Store) UpdateServiceAccount(ctx context.Context, tenant, name string, grants []access.Grant) (ServiceAccount, error) {
	id, err := s.serviceAccountID(ctx, tenant, name)
	if err != nil {
		return ServiceAccount{}, err
	}
	key := serviceAccountKey(tenant, id)
	for range maxRetries {
		var sa ServiceAccount
		kv, err := s.get(ctx, key, &sa)
		if err != nil {
			return ServiceAccount{}, fmt.Errorf("update service account %q: %w", name, err)
		}
		if kv == nil {
			return ServiceAccount{}, fmt.Errorf("service account %q: %w", name, ErrNotFound)
		}
		sa.Grants = grants
		resp, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key, mustJSON(sa))).
			Commit()
		if err != nil {
			return ServiceAccount{}, fmt.Errorf("update service account %q: %w", name, err)
		}
		if resp.Succeeded {
			return sa, nil
		}
	}
	return ServiceAccount{}, fmt.Errorf("update service account %q: %w", name, ErrConflict)
}

// DeleteServiceAccount deletes a service account, its name and its API
// keys in one transaction, then its refresh tokens.
func (s *Store) DeleteServiceAccount(ctx context.Context, tenant, name string) error {
	nk := serviceAccountNameKey(tenant, name)
	for range maxRetries {
		resp, err := s.c.Get(ctx, nk)
		if err != nil {
			return fmt.Errorf("delete service account %q: %w", name, err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("service account %q: %w", name, ErrNotFound)
		}
		id := string(resp.Kvs[0].Value)
		ops, err := s.apiKeyDeletes(ctx, tenant, id)
		if err != nil {
			return fmt.Errorf("delete service account %q: %w", name, err)
		}
		ops = append(ops, clientv3.OpDelete(serviceAccountKey(tenant, id)), clientv3.OpDelete(nk))
		tresp, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(nk), "=", resp.Kvs[0].ModRevision)).
			Then(ops...).
			Commit()
		if err != nil {
			return fmt.Errorf("delete service account %q: %w", name, err)
		}
		if tresp.Succeeded {
			return s.RevokePrincipalTokens(ctx, tenant, id)
		}
	}
	return fmt.Errorf("delete service account %q: %w", name, ErrConflict)
}
