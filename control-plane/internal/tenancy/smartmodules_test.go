package tenancy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spatehq/spate/control-plane/internal/tenancy"
)

func smartModule(tenant, name, version, hex string) tenancy.SmartModule {
	return tenancy.SmartModule{Tenant: tenant, Name: name, Version: version, Kind: "filter", Digest: "sha256:" + hex, SizeBytes: 10, ABIVersion: 1}
}

// TestSmartModuleVersions: versions are immutable, listed per tenant and
// per name, found by digest only within their tenant.
func TestSmartModuleVersions(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	d1, d2 := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, m := range []tenancy.SmartModule{
		smartModule("t-a", "acme/keep", "1.0.0", d1),
		smartModule("t-a", "acme/keep", "1.1.0", d2),
		smartModule("t-a", "acme/keeper", "1.0.0", d1),
		smartModule("t-b", "acme/keep", "1.0.0", d2),
	} {
		if err := s.CreateSmartModule(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, s.CreateSmartModule(ctx, smartModule("t-a", "acme/keep", "1.0.0", d2), nil), tenancy.ErrExists)

	all, err := s.ListSmartModules(ctx, "t-a")
	if err != nil || len(all) != 3 {
		t.Fatalf("tenant a lists %v, %v; want 3 versions", all, err)
	}
	vs, err := s.SmartModuleVersions(ctx, "t-a", "acme/keep")
	if err != nil || len(vs) != 2 {
		t.Fatalf("versions of acme/keep: %v, %v; want 2 (not acme/keeper's)", vs, err)
	}
	m, err := s.GetSmartModule(ctx, "t-a", "acme/keep", "1.0.0")
	if err != nil || m.Digest != "sha256:"+d1 || m.CreatedAt.IsZero() {
		t.Fatalf("get = %+v, %v", m, err)
	}
	_, err = s.GetSmartModule(ctx, "t-b", "acme/keep", "1.1.0")
	wantErr(t, err, tenancy.ErrNotFound)

	if m, err := s.SmartModuleByDigest(ctx, "t-b", d2); err != nil || m.Tenant != "t-b" {
		t.Fatalf("t-b by digest b = %+v, %v", m, err)
	}
	_, err = s.SmartModuleByDigest(ctx, "t-b", d1)
	wantErr(t, err, tenancy.ErrNotFound)

	ok, err := s.DeleteSmartModule(ctx, smartModule("t-a", "acme/keep", "1.0.0", d1))
	if err != nil || !ok {
		t.Fatalf("delete = %v, %v", ok, err)
	}
	if ok, _ := s.DeleteSmartModule(ctx, smartModule("t-a", "acme/keep", "1.0.0", d1)); ok {
		t.Fatal("a second delete found the version")
	}
	if m, err := s.SmartModuleByDigest(ctx, "t-a", d1); err != nil || m.Name != "acme/keeper" {
		t.Fatalf("by digest after delete = %+v, %v; want acme/keeper", m, err)
	}
}

// TestSmartModuleBlobLocks: a blob is deleted only when no version and no
// upload refers to it, and uploads wait while it is deleted.
func TestSmartModuleBlobLocks(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	d := strings.Repeat("c", 64)

	up, err := s.BeginSmartModuleUpload(ctx, "t-a", d, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.BeginBlobDelete(ctx, "t-a", d, time.Minute)
	wantErr(t, err, tenancy.ErrBlobBusy)
	// Another tenant's blob of the same digest is another blob.
	other, err := s.BeginBlobDelete(ctx, "t-b", d, time.Minute)
	if err != nil {
		t.Fatalf("t-b's blob: %v", err)
	}
	s.EndBlobDelete(other)

	m := smartModule("t-a", "acme/x", "1.0.0", d)
	if err := s.CreateSmartModule(ctx, m, up); err != nil {
		t.Fatal(err)
	}
	_, err = s.BeginBlobDelete(ctx, "t-a", d, time.Minute)
	wantErr(t, err, tenancy.ErrBlobBusy) // the version refers to it

	if _, err := s.DeleteSmartModule(ctx, m); err != nil {
		t.Fatal(err)
	}
	del, err := s.BeginBlobDelete(ctx, "t-a", d, time.Minute)
	if err != nil {
		t.Fatalf("delete of an unused blob: %v", err)
	}
	_, err = s.BeginSmartModuleUpload(ctx, "t-a", d, time.Minute)
	wantErr(t, err, tenancy.ErrBlobBusy)
	_, err = s.BeginBlobDelete(ctx, "t-a", d, time.Minute)
	wantErr(t, err, tenancy.ErrBlobBusy) // one delete at a time
	s.EndBlobDelete(del)

	up, err = s.BeginSmartModuleUpload(ctx, "t-a", d, time.Minute)
	if err != nil {
		t.Fatalf("upload after the delete: %v", err)
	}
	s.EndSmartModuleUpload(up)
	del, err = s.BeginBlobDelete(ctx, "t-a", d, time.Minute)
	if err != nil {
		t.Fatalf("delete after an abandoned upload: %v", err)
	}
	s.EndBlobDelete(del)

	// A create that loses to an existing version ends its upload too.
	if err := s.CreateSmartModule(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	e := strings.Repeat("e", 64)
	up, err = s.BeginSmartModuleUpload(ctx, "t-a", e, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.CreateSmartModule(ctx, smartModule("t-a", "acme/x", "1.0.0", e), up), tenancy.ErrExists)
	del, err = s.BeginBlobDelete(ctx, "t-a", e, time.Minute)
	if err != nil {
		t.Fatalf("the loser's blob is still marked in use: %v", err)
	}
	s.EndBlobDelete(del)
}
