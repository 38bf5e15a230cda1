package tenancy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/auth/secret"
)

// Key prefixes of the SmartModule registry; see the package documentation.
const (
	SmartModulesPrefix       = Prefix + "smartmodules/"
	SmartModuleRefsPrefix    = Prefix + "smartmodule-refs/"
	SmartModuleDeletesPrefix = Prefix + "smartmodule-blob-deletes/"
)

// ErrBlobBusy is returned by BeginSmartModuleUpload while the blob of the
// same digest is being deleted, and by BeginBlobDelete while it is in use
// (a version or an upload refers to it). The caller retries the upload a
// moment later; a delete that finds the blob busy leaves it.
var ErrBlobBusy = errors.New("tenancy: SmartModule blob busy")

// SmartModule is one version of a SmartModule in a tenant's registry. The
// WebAssembly bytes are not here but in the control plane's blob store,
// under a key made of the tenant and Digest. A version never changes once
// created.
type SmartModule struct {
	Tenant string `json:"tenant"`
	// Name is "group/name": two segments without '/'.
	Name string `json:"name"`
	// Version is a semantic version, without '/'.
	Version string `json:"version"`
	// Kind is the abi.Kind's name: "filter", "map" and so on.
	Kind string `json:"kind"`
	// Digest is "sha256:" and the hex SHA-256 of the bytes.
	Digest     string    `json:"digest"`
	SizeBytes  int64     `json:"size_bytes"`
	ABIVersion int       `json:"abi_version"`
	CreatedAt  time.Time `json:"created_at"`
	// CreatedBy is "user:<email>", "service-account:<name>" or empty.
	CreatedBy   string `json:"created_by,omitempty"`
	Description string `json:"description,omitempty"`
}

// Ref returns "group/name@version".
func (m SmartModule) Ref() string { return m.Name + "@" + m.Version }

// DigestHex is the hex part of Digest.
func (m SmartModule) DigestHex() string { return strings.TrimPrefix(m.Digest, "sha256:") }

func smartModulesPrefix(tenant string) string { return SmartModulesPrefix + tenant + "/" }
func smartModuleVersionsPrefix(tenant, name string) string {
	return smartModulesPrefix(tenant) + name + "/"
}
func smartModuleKey(tenant, name, version string) string {
	return smartModuleVersionsPrefix(tenant, name) + version
}
func smartModuleRefsPrefix(tenant, hex string) string {
	return SmartModuleRefsPrefix + tenant + "/" + hex + "/"
}
func smartModuleVersionRefsPrefix(tenant, hex string) string {
	return smartModuleRefsPrefix(tenant, hex) + "versions/"
}
func smartModuleVersionRefKey(m SmartModule) string {
	return smartModuleVersionRefsPrefix(m.Tenant, m.DigestHex()) + m.Name + "/" + m.Version
}
func smartModuleUploadKey(tenant, hex, id string) string {
	return smartModuleRefsPrefix(tenant, hex) + "uploads/" + id
}
func smartModuleDeleteKey(tenant, hex string) string {
	return SmartModuleDeletesPrefix + tenant + "/" + hex
}

// checkSmartModuleKey refuses the parts of a key that would break the
// layout: ids with '/', names of other than two segments, versions with
// '/'. The server validates names and versions properly.
func checkSmartModuleKey(tenant, name, version string) error {
	if err := identity.ValidID(tenant); err != nil {
		return fmt.Errorf("smartmodule: tenant: %w", err)
	}
	group, n, ok := strings.Cut(name, "/")
	if !ok || group == "" || n == "" || strings.Contains(n, "/") {
		return fmt.Errorf("smartmodule: name %q: want group/name", name)
	}
	if strings.Contains(version, "/") {
		return fmt.Errorf("smartmodule: version %q contains '/'", version)
	}
	return nil
}

// CheckDigestHex checks that hex is a SHA-256 digest as the registry keys
// blobs by: 64 lower-case hex digits.
func CheckDigestHex(hex string) error {
	if len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return fmt.Errorf("smartmodule: digest %q: want 64 lower-case hex digits", hex)
	}
	return nil
}

// Upload is an upload in progress of a SmartModule's blob, begun with
// BeginSmartModuleUpload: while it lasts, the blob of its digest is not
// deleted.
type Upload struct {
	key   string
	lease clientv3.LeaseID
}

// BeginSmartModuleUpload marks an upload of the blob with digest hex (the
// hex SHA-256) in progress, for at most ttl, so that no delete removes
// the blob between its upload and CreateSmartModule. It fails with
// ErrBlobBusy while a delete of that blob runs. The caller ends the
// upload with CreateSmartModule or EndSmartModuleUpload.
func (s *Store) BeginSmartModuleUpload(ctx context.Context, tenant, hex string, ttl time.Duration) (*Upload, error) {
	if err := identity.ValidID(tenant); err != nil {
		return nil, fmt.Errorf("smartmodule: tenant: %w", err)
	}
	if err := CheckDigestHex(hex); err != nil {
		return nil, err
	}
	lease, err := s.grant(ctx, s.now().Add(ttl))
	if err != nil {
		return nil, err
	}
	u := &Upload{key: smartModuleUploadKey(tenant, hex, secret.NewID("up")), lease: lease}
	resp, err := s.c.Txn(ctx).
		If(absent(smartModuleDeleteKey(tenant, hex))).
		Then(clientv3.OpPut(u.key, "", clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		s.revokeLease(lease)
		return nil, err
	}
	if !resp.Succeeded {
		s.revokeLease(lease)
		return nil, fmt.Errorf("blob sha256:%s: %w (being deleted)", hex, ErrBlobBusy)
	}
	return u, nil
}

// EndSmartModuleUpload ends an upload that created no version (the blob
// may then be deleted, see BeginBlobDelete). Errors are ignored: the mark
// expires with its lease anyway.
func (s *Store) EndSmartModuleUpload(u *Upload) {
	if u != nil {
		s.revokeLease(u.lease)
	}
}

// CreateSmartModule stores a new version, ending the upload u (which may
// be nil) in the same transaction. It fails with ErrExists when the
// version exists; the upload is ended anyway.
func (s *Store) CreateSmartModule(ctx context.Context, m SmartModule, u *Upload) error {
	if err := checkSmartModuleKey(m.Tenant, m.Name, m.Version); err != nil {
		return err
	}
	if m.Version == "" {
		return errors.New("smartmodule: a version is required")
	}
	if err := CheckDigestHex(m.DigestHex()); err != nil {
		return err
	}
	m.CreatedAt = s.stamp(m.CreatedAt)
	key := smartModuleKey(m.Tenant, m.Name, m.Version)
	var end []clientv3.Op
	if u != nil {
		end = append(end, clientv3.OpDelete(u.key))
	}
	then := append([]clientv3.Op{
		clientv3.OpPut(key, mustJSON(m)),
		clientv3.OpPut(smartModuleVersionRefKey(m), ""),
	}, end...)
	resp, err := s.c.Txn(ctx).If(absent(key)).Then(then...).Else(end...).Commit()
	if u != nil {
		s.revokeLease(u.lease)
	}
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("smartmodule %s: %w", m.Ref(), ErrExists)
	}
	return nil
}

// GetSmartModule returns one version of a tenant's module, or ErrNotFound.
func (s *Store) GetSmartModule(ctx context.Context, tenant, name, version string) (SmartModule, error) {
	var m SmartModule
	if err := checkSmartModuleKey(tenant, name, version); err != nil {
		return m, err
	}
	kv, err := s.get(ctx, smartModuleKey(tenant, name, version), &m)
	if err != nil {
		return m, err
	}
	if kv == nil {
		return m, fmt.Errorf("smartmodule %s@%s: %w", name, version, ErrNotFound)
	}
	return m, nil
}

// ListSmartModules returns a tenant's modules, every version, in key
// order (by name, then version as text: callers sort versions).
func (s *Store) ListSmartModules(ctx context.Context, tenant string) ([]SmartModule, error) {
	if err := identity.ValidID(tenant); err != nil {
		return nil, fmt.Errorf("smartmodule: tenant: %w", err)
	}
	return list[SmartModule](ctx, s, smartModulesPrefix(tenant))
}

// SmartModuleVersions returns every version of one module of a tenant
// (none when there is no such module).
func (s *Store) SmartModuleVersions(ctx context.Context, tenant, name string) ([]SmartModule, error) {
	if err := checkSmartModuleKey(tenant, name, ""); err != nil {
		return nil, err
	}
	return list[SmartModule](ctx, s, smartModuleVersionsPrefix(tenant, name))
}

// SmartModuleByDigest returns a version of a tenant's module whose bytes
// have the digest hex, or ErrNotFound when none of the tenant's has.
func (s *Store) SmartModuleByDigest(ctx context.Context, tenant, hex string) (SmartModule, error) {
	if err := identity.ValidID(tenant); err != nil {
		return SmartModule{}, fmt.Errorf("smartmodule: tenant: %w", err)
	}
	if err := CheckDigestHex(hex); err != nil {
		return SmartModule{}, err
	}
	prefix := smartModuleVersionRefsPrefix(tenant, hex)
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return SmartModule{}, err
	}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), prefix)
		i := strings.LastIndexByte(rest, '/')
		if i < 0 {
			continue
		}
		m, err := s.GetSmartModule(ctx, tenant, rest[:i], rest[i+1:])
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		return m, err
	}
	return SmartModule{}, fmt.Errorf("smartmodule sha256:%s: %w", hex, ErrNotFound)
}

// DeleteSmartModule deletes one version and reports whether it existed.
// Its blob stays: see BeginBlobDelete.
func (s *Store) DeleteSmartModule(ctx context.Context, m SmartModule) (bool, error) {
	if err := checkSmartModuleKey(m.Tenant, m.Name, m.Version); err != nil {
		return false, err
	}
	key := smartModuleKey(m.Tenant, m.Name, m.Version)
	resp, err := s.c.Txn(ctx).If(present(key)).Then(
		clientv3.OpDelete(key),
		clientv3.OpDelete(smartModuleVersionRefKey(m)),
	).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// BlobDelete is a delete in progress of a SmartModule blob, begun with
// BeginBlobDelete.
type BlobDelete struct {
	key   string
	lease clientv3.LeaseID
}

// BeginBlobDelete takes the right to delete the tenant's blob of digest
// hex, for at most ttl: it succeeds only when no version of the tenant's
// modules and no upload in progress refers to the blob, and then keeps
// new uploads of it waiting (ErrBlobBusy) until EndBlobDelete. It fails
// with ErrBlobBusy when the blob is in use or another delete runs.
func (s *Store) BeginBlobDelete(ctx context.Context, tenant, hex string, ttl time.Duration) (*BlobDelete, error) {
	if err := identity.ValidID(tenant); err != nil {
		return nil, fmt.Errorf("smartmodule: tenant: %w", err)
	}
	if err := CheckDigestHex(hex); err != nil {
		return nil, err
	}
	lease, err := s.grant(ctx, s.now().Add(ttl))
	if err != nil {
		return nil, err
	}
	d := &BlobDelete{key: smartModuleDeleteKey(tenant, hex), lease: lease}
	resp, err := s.c.Txn(ctx).
		If(absent(smartModuleRefsPrefix(tenant, hex)).WithPrefix(), absent(d.key)).
		Then(clientv3.OpPut(d.key, "", clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		s.revokeLease(lease)
		return nil, err
	}
	if !resp.Succeeded {
		s.revokeLease(lease)
		return nil, fmt.Errorf("blob sha256:%s: %w", hex, ErrBlobBusy)
	}
	return d, nil
}

// EndBlobDelete lets uploads of the blob go on. Errors are ignored: the
// mark expires with its lease anyway.
func (s *Store) EndBlobDelete(d *BlobDelete) {
	if d != nil {
		s.revokeLease(d.lease)
	}
}
