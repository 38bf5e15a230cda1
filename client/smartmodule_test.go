package client_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// TestSmartModuleRegistry runs the registry calls against a real control
// plane with a real module (the JSON filter example, built by smtest).
func TestSmartModuleRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane with etcd and builds a module; skipped with -short")
	}
	ctx := testContext(t)
	wasm := smtest.Example(t, "jsonfilter")
	cp := startRealControlPlane(t)
	c := newCPClient(t, cp.URL)

	m, err := c.CreateSmartModule(ctx, client.SmartModuleSpec{Name: "acme/json-filter", Version: "1.0.0", Wasm: wasm, Description: "keeps records whose JSON field equals a value"})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	if m.Ref() != "acme/json-filter@1.0.0" || m.Kind != "filter" || m.Digest != "sha256:"+hex.EncodeToString(sum[:]) ||
		m.SizeBytes != int64(len(wasm)) || m.ABIVersion != 1 || m.CreatedAt.IsZero() {
		t.Fatalf("created %+v", m)
	}
	if _, err := c.CreateSmartModule(ctx, client.SmartModuleSpec{Name: "acme/json-filter@1.0.0", Wasm: wasm}); !client.IsAlreadyExists(err) {
		t.Fatalf("create again: %v, want already exists", err)
	}
	if _, err := c.CreateSmartModule(ctx, client.SmartModuleSpec{Name: "acme/broken", Wasm: []byte("not wasm")}); !client.IsInvalidArgument(err) {
		t.Fatalf("create garbage: %v, want invalid argument", err)
	}
	if _, err := c.CreateSmartModule(ctx, client.SmartModuleSpec{Name: "acme/json-filter", Version: "1.1.0", Wasm: wasm}); err != nil {
		t.Fatal(err)
	}

	all, err := c.ListSmartModules(ctx)
	if err != nil || len(all) != 2 || all[0].Version != "1.0.0" || all[1].Version != "1.1.0" {
		t.Fatalf("list = %+v, %v", all, err)
	}
	latest, err := c.DescribeSmartModule(ctx, "acme/json-filter")
	if err != nil || latest.Version != "1.1.0" {
		t.Fatalf("describe acme/json-filter = %+v, %v; want 1.1.0", latest, err)
	}
	for _, ref := range []string{"acme/json-filter@1.0.0", m.Digest} {
		got, b, err := c.DownloadSmartModule(ctx, ref)
		if err != nil || !bytes.Equal(b, wasm) || got.Digest != m.Digest {
			t.Fatalf("download %s: %d bytes, %v", ref, len(b), err)
		}
	}

	deleted, err := c.DeleteSmartModule(ctx, "acme/json-filter")
	if err != nil || len(deleted) != 2 {
		t.Fatalf("delete = %+v, %v", deleted, err)
	}
	if _, err := c.DescribeSmartModule(ctx, "acme/json-filter"); !client.IsNotFound(err) {
		t.Fatalf("describe after delete: %v, want not found", err)
	}

	spuOnly, err := client.New(client.WithSPU("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer spuOnly.Close()
	if _, err := spuOnly.ListSmartModules(ctx); !errors.Is(err, client.ErrNoControlPlane) {
		t.Fatalf("list without a control plane: %v", err)
	}
}
