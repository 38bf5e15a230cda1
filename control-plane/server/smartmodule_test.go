package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/smartmodule/smtest"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
)

// wasmExports builds a WebAssembly module whose export section names the
// given exports ("memory" as a memory, every other name as function 0)
// after a custom section holding label, which makes modules with equal
// exports differ. The registry reads only the export section (abi.Inspect);
// engines would refuse to run these modules.
func wasmExports(label string, names ...string) []byte {
	var sec []byte
	sec = append(sec, byte(len(names)))
	for _, n := range names {
		sec = append(sec, byte(len(n)))
		sec = append(sec, n...)
		if n == "memory" {
			sec = append(sec, 2, 0)
		} else {
			sec = append(sec, 0, 0)
		}
	}
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	custom := append([]byte{byte(len("label"))}, "label"...)
	custom = append(custom, label...)
	out = append(out, 0, byte(len(custom)))
	out = append(out, custom...)
	out = append(out, 7, byte(len(sec)))
	return append(out, sec...)
}

// smartModule returns a module of kind ("filter", "map", "filter-map",
// "array-map", "aggregate") with every export ABI version 1 asks for.
func smartModule(kind, label string) []byte {
	return wasmExports(label, "memory", "spate_v1_alloc", "spate_v1_init", "spate_v1_"+strings.ReplaceAll(kind, "-", "_"))
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func createSM(ctx context.Context, c controlplanev1connect.SmartModuleServiceClient, name, version string, wasm []byte) (*controlplanev1.SmartModule, error) {
	resp, err := c.CreateSmartModule(ctx, connect.NewRequest(&controlplanev1.CreateSmartModuleRequest{Name: name, Version: version, Wasm: wasm, Description: "test module"}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Smartmodule, nil
}

func mustCreateSM(t testing.TB, c controlplanev1connect.SmartModuleServiceClient, name, version string, wasm []byte) *controlplanev1.SmartModule {
	t.Helper()
	m, err := createSM(context.Background(), c, name, version, wasm)
	if err != nil {
		t.Fatalf("create %s@%s: %v", name, version, err)
	}
	return m
}

func getSM(ctx context.Context, c controlplanev1connect.SmartModuleServiceClient, ref string) (proto.Message, error) {
	return msgOf(c.GetSmartModule(ctx, connect.NewRequest(&controlplanev1.GetSmartModuleRequest{Name: ref})))
}

func downloadSM(ctx context.Context, c controlplanev1connect.SmartModuleServiceClient, name, digest string) (*controlplanev1.DownloadSmartModuleResponse, error) {
	req := &controlplanev1.DownloadSmartModuleRequest{}
	if digest != "" {
		req.Ref = &controlplanev1.DownloadSmartModuleRequest_Digest{Digest: digest}
	} else {
		req.Ref = &controlplanev1.DownloadSmartModuleRequest_Name{Name: name}
	}
	resp, err := c.DownloadSmartModule(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func deleteSM(ctx context.Context, c controlplanev1connect.SmartModuleServiceClient, ref string) (*controlplanev1.DeleteSmartModuleResponse, error) {
	resp, err := c.DeleteSmartModule(ctx, connect.NewRequest(&controlplanev1.DeleteSmartModuleRequest{Name: ref}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func listSM(t testing.TB, c controlplanev1connect.SmartModuleServiceClient) []string {
	t.Helper()
	resp, err := c.ListSmartModules(context.Background(), connect.NewRequest(&controlplanev1.ListSmartModulesRequest{}))
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var out []string
	for _, m := range resp.Msg.Smartmodules {
		out = append(out, m.Name+"@"+m.Version)
	}
	return out
}

// blobExists reports whether the control plane's blob store under
// dataDir holds the blob of digest for tenant.
func blobExists(t testing.TB, dataDir, tenant, digest string) bool {
	t.Helper()
	st, err := local.New(filepath.Join(dataDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Head(context.Background(), "smartmodules/"+tenant+"/"+strings.TrimPrefix(digest, "sha256:")+".wasm")
	if err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, objstore.ErrNotFound) }

// TestSmartModuleRegistry is the specification of the registry on an
// insecure control plane (one shared registry): create validates and
// stores, versions never change, a name without a version is its highest
// version, downloads return the bytes by name or digest, and delete
// removes metadata, then the blob once no version shares it.
func TestSmartModuleRegistry(t *testing.T) {
	dir := t.TempDir()
	c := startCP(t, server.Config{DataDir: dir})
	sm := controlplanev1connect.NewSmartModuleServiceClient(h2cClient(), c.url)
	ctx := context.Background()

	filter := smartModule("filter", "keep v1")
	m := mustCreateSM(t, sm, "acme/keep", "1.0.0", filter)
	want := &controlplanev1.SmartModule{Name: "acme/keep", Version: "1.0.0", Kind: "filter", Digest: digestOf(filter), SizeBytes: int64(len(filter)), AbiVersion: 1, Description: "test module", CreatedAt: m.CreatedAt}
	if !proto.Equal(m, want) || m.CreatedAt == nil {
		t.Fatalf("created %v\nwant %v", m, want)
	}
	if !blobExists(t, dir, server.LocalTenant, m.Digest) {
		t.Fatal("no blob in DATA-DIR/blobs after create")
	}

	t.Run("versions never change", func(t *testing.T) {
		for _, wasm := range [][]byte{filter, smartModule("filter", "other bytes")} {
			_, err := createSM(ctx, sm, "acme/keep", "1.0.0", wasm)
			wantConnectCode(t, err, connect.CodeAlreadyExists)
			if !strings.Contains(err.Error(), "acme/keep@1.0.0 exists already") {
				t.Errorf("refusal %q does not name the version", err)
			}
		}
		dl, err := downloadSM(ctx, sm, "acme/keep@1.0.0", "")
		if err != nil || string(dl.Wasm) != string(filter) {
			t.Fatalf("download after refused creates: %v", err)
		}
	})

	t.Run("kinds", func(t *testing.T) {
		for _, kind := range []string{"map", "filter-map", "array-map", "aggregate"} {
			got := mustCreateSM(t, sm, "kinds/"+kind, "", smartModule(kind, kind))
			if got.Kind != kind || got.Version != server.DefaultSmartModuleVersion {
				t.Errorf("kind %s created as %s@%s of kind %s", kind, got.Name, got.Version, got.Kind)
			}
		}
		// The version may come with the name.
		if got := mustCreateSM(t, sm, "kinds/map@2.0.0", "", smartModule("map", "map 2")); got.Version != "2.0.0" {
			t.Errorf("kinds/map@2.0.0 created as version %s", got.Version)
		}
	})

	t.Run("refused at upload", func(t *testing.T) {
		for _, tc := range []struct {
			name, ref, version string
			wasm               []byte
			reason             string
		}{
			{name: "not wasm", ref: "acme/bad", wasm: []byte("(module)"), reason: "not a WebAssembly module"},
			{name: "truncated", ref: "acme/bad", wasm: filter[:len(filter)-3], reason: "not a WebAssembly module"},
			{name: "no known export", ref: "acme/bad", wasm: wasmExports("x", "memory", "spate_v1_alloc", "spate_v1_init", "run"), reason: "exports none of"},
			{name: "two kinds", ref: "acme/bad", wasm: wasmExports("x", "memory", "spate_v1_alloc", "spate_v1_init", "spate_v1_filter", "spate_v1_map"), reason: "several kinds (filter, map)"},
			{name: "no init", ref: "acme/bad", wasm: wasmExports("x", "memory", "spate_v1_alloc", "spate_v1_filter"), reason: "spate_v1_init"},
			{name: "ABI version 2", ref: "acme/bad", wasm: wasmExports("x", "memory", "spate_v2_alloc", "spate_v2_filter"), reason: "ABI version 2"},
			{name: "empty", ref: "acme/bad", wasm: nil, reason: "empty"},
			{name: "over 32 MiB", ref: "acme/bad", wasm: make([]byte, server.MaxSmartModuleBytes+1), reason: "at most 33554432 (32 MiB)"},
			{name: "no group", ref: "keep", wasm: filter, reason: "use group/name"},
			{name: "upper case", ref: "Acme/keep", wasm: filter, reason: "lower-case"},
			{name: "three segments", ref: "acme/keep/x", wasm: filter, reason: "with one '/'"},
			{name: "not semver", ref: "acme/keep", version: "1.0", wasm: filter, reason: "semantic version"},
			{name: "build metadata", ref: "acme/keep", version: "1.0.0+1", wasm: filter, reason: "build metadata"},
			{name: "two versions", ref: "acme/keep@1.0.0", version: "1.0.1", wasm: filter, reason: "disagree"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := createSM(ctx, sm, tc.ref, tc.version, tc.wasm)
				wantConnectCode(t, err, connect.CodeInvalidArgument)
				if !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("refusal %q does not say %q", err, tc.reason)
				}
				t.Log(err)
			})
		}
		if got := listSM(t, sm); slices.Contains(got, "acme/bad@0.1.0") {
			t.Errorf("a refused module is listed: %v", got)
		}
	})

	t.Run("highest version", func(t *testing.T) {
		for _, v := range []string{"1.2.0", "1.10.0", "1.10.0-rc.1"} {
			mustCreateSM(t, sm, "acme/keep", v, smartModule("filter", "keep "+v))
		}
		resp, err := sm.GetSmartModule(ctx, connect.NewRequest(&controlplanev1.GetSmartModuleRequest{Name: "acme/keep"}))
		if err != nil || resp.Msg.Smartmodule.Version != "1.10.0" {
			t.Fatalf("acme/keep is %v, %v; want version 1.10.0 (semantic, not text, order)", resp, err)
		}
		dl, err := downloadSM(ctx, sm, "acme/keep", "")
		if err != nil || string(dl.Wasm) != string(smartModule("filter", "keep 1.10.0")) || dl.Smartmodule.Version != "1.10.0" {
			t.Fatalf("download acme/keep: %v", err)
		}
		wantList := []string{"acme/keep@1.0.0", "acme/keep@1.2.0", "acme/keep@1.10.0-rc.1", "acme/keep@1.10.0", "kinds/aggregate@0.1.0", "kinds/array-map@0.1.0", "kinds/filter-map@0.1.0", "kinds/map@0.1.0", "kinds/map@2.0.0"}
		if got := listSM(t, sm); !slices.Equal(got, wantList) {
			t.Fatalf("list %v\nwant %v", got, wantList)
		}
	})

	t.Run("download by digest", func(t *testing.T) {
		dl, err := downloadSM(ctx, sm, "", m.Digest)
		if err != nil || string(dl.Wasm) != string(filter) || dl.Smartmodule.Digest != m.Digest {
			t.Fatalf("download %s: %v", m.Digest, err)
		}
		_, err = downloadSM(ctx, sm, "", digestOf([]byte("nothing")))
		wantConnectCode(t, err, connect.CodeNotFound)
		_, err = downloadSM(ctx, sm, "", "md5:abc")
		wantConnectCode(t, err, connect.CodeInvalidArgument)
	})

	t.Run("missing", func(t *testing.T) {
		for _, ref := range []string{"acme/nothing", "acme/keep@9.9.9"} {
			_, err := getSM(ctx, sm, ref)
			wantConnectCode(t, err, connect.CodeNotFound)
			_, err = downloadSM(ctx, sm, ref, "")
			wantConnectCode(t, err, connect.CodeNotFound)
			_, err = deleteSM(ctx, sm, ref)
			wantConnectCode(t, err, connect.CodeNotFound)
		}
	})

	t.Run("delete keeps shared blobs", func(t *testing.T) {
		// Equal bytes under two names share one blob.
		copyOf := mustCreateSM(t, sm, "acme/keep-copy", "1.0.0", filter)
		if copyOf.Digest != m.Digest {
			t.Fatalf("equal bytes have digests %s and %s", copyOf.Digest, m.Digest)
		}
		del, err := deleteSM(ctx, sm, "acme/keep@1.0.0")
		if err != nil || len(del.Deleted) != 1 || del.Deleted[0].Version != "1.0.0" {
			t.Fatalf("delete acme/keep@1.0.0 = %v, %v", del, err)
		}
		if !blobExists(t, dir, server.LocalTenant, m.Digest) {
			t.Fatal("the blob went with acme/keep@1.0.0 though acme/keep-copy@1.0.0 uses it")
		}
		if _, err := downloadSM(ctx, sm, "acme/keep-copy@1.0.0", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := deleteSM(ctx, sm, "acme/keep-copy@1.0.0"); err != nil {
			t.Fatal(err)
		}
		if blobExists(t, dir, server.LocalTenant, m.Digest) {
			t.Fatal("the blob outlived every version using it")
		}
		// Deleted versions may be created again.
		mustCreateSM(t, sm, "acme/keep", "1.0.0", filter)
		if !blobExists(t, dir, server.LocalTenant, m.Digest) {
			t.Fatal("no blob after creating the version again")
		}
	})

	t.Run("delete every version", func(t *testing.T) {
		del, err := deleteSM(ctx, sm, "acme/keep")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range del.Deleted {
			got = append(got, d.Version)
		}
		if want := []string{"1.0.0", "1.2.0", "1.10.0-rc.1", "1.10.0"}; !slices.Equal(got, want) {
			t.Fatalf("deleted versions %v, want %v", got, want)
		}
		_, err = getSM(ctx, sm, "acme/keep")
		wantConnectCode(t, err, connect.CodeNotFound)
		for _, v := range []string{"1.2.0", "1.10.0"} {
			if blobExists(t, dir, server.LocalTenant, digestOf(smartModule("filter", "keep "+v))) {
				t.Errorf("the blob of %s outlived its version", v)
			}
		}
	})
}

// noSPUs is a provisioner that runs nothing: its clusters are records
// with their CA that stay provisioning. Enough for the APIs that do not
// need running SPUs, such as the SmartModule registry.
type noSPUs struct{}

func (noSPUs) Ensure(context.Context, server.ClusterSpec) error { return nil }
func (noSPUs) State(string) []server.SPUState                   { return nil }
func (noSPUs) Delete(context.Context, string, bool) error       { return nil }
func (noSPUs) Close() error                                     { return nil }

// startBareCloudCP starts a secure control plane whose clusters run no
// SPUs (noSPUs).
func startBareCloudCP(t testing.TB) *cloudCP {
	t.Helper()
	logs := &syncLog{}
	var w io.Writer = logs
	if os.Getenv("SPATE_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dir := t.TempDir()
	srv, err := server.New(server.Config{DataDir: dir, Provisioner: noSPUs{}, LivenessTimeout: livenessTimeout, ElectionTTL: 2 * time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("control plane stopped at start: %v", err)
	case <-time.After(setupTimeout):
		t.Fatal("control plane not ready")
	}
	hc, err := cloud.NewHTTPClient(srv.RootCA())
	if err != nil {
		t.Fatal(err)
	}
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.EtcdEndpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ec.Close() })
	return &cloudCP{dir: dir, srv: srv, url: "https://" + l.Addr().String(), hc: hc, rootPEM: srv.RootCA(), logs: logs, store: tenancy.New(ec)}
}

func (l *cpLogin) smartModules() controlplanev1connect.SmartModuleServiceClient {
	return controlplanev1connect.NewSmartModuleServiceClient(l.cp.hc, l.cp.url, l.opts("")...)
}

func (cl *certLogin) smartModules() controlplanev1connect.SmartModuleServiceClient {
	return controlplanev1connect.NewSmartModuleServiceClient(cl.cpClient(), cl.cp.url)
}

// spuLogin returns a login with the certificate SPU 0 of a cluster would
// have, issued by the cluster's CA.
func (c *cloudCP) spuLogin(t testing.TB, tenant, clusterID string) *certLogin {
	t.Helper()
	caCert, caKey := c.clusterCA(t, clusterID)
	now := time.Now()
	chain, key := forgeLeafCert(t, identity.Identity{Tenant: tenant, Cluster: clusterID, Kind: identity.SPU, Principal: "spu-0"}, caCert, caKey, now.Add(-time.Minute), now.Add(time.Hour))
	return c.withCert(t, "spu-0 of "+clusterID, chain, key)
}

func clusterID(t testing.TB, l *cpLogin, name string) string {
	t.Helper()
	resp, err := l.clusters().GetCluster(context.Background(), connect.NewRequest(&controlplanev1.GetClusterRequest{Name: name}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Cluster.Id
}

// TestSmartModuleTenantIsolation is the specification of who may use a
// tenant's SmartModules. Tenant B, with its token, its client certificate
// and its SPU's certificate, cannot list, describe, download (by name or
// by digest) or delete tenant A's modules: every answer is the one for a
// module that exists nowhere, and none names anything of A's. B may
// create a module of the same name, its own. Within A, members create
// and delete, service accounts only read, A's SPUs only describe and
// download; the operator has no modules.
func TestSmartModuleTenantIsolation(t *testing.T) {
	cp := startBareCloudCP(t)
	ctx := context.Background()
	a := cp.newTenant(t, aTenantName, aOwnerEmail)
	b := cp.newTenant(t, bTenantName, bOwnerEmail)
	a.owner.createCluster(t, prodCluster)
	b.owner.createCluster(t, prodCluster)
	aSM, bSM := a.owner.smartModules(), b.owner.smartModules()

	aWasm := smartModule("filter", "alpha's secret filter")
	aMod := mustCreateSM(t, aSM, "alpha/secret-filter", "1.0.0", aWasm)
	mustCreateSM(t, aSM, "alpha/secret-filter", "1.1.0", smartModule("filter", "alpha 1.1"))
	if aMod.CreatedBy != "user:"+aOwnerEmail {
		t.Errorf("created by %q, want user:%s", aMod.CreatedBy, aOwnerEmail)
	}
	secrets := tenantSecrets{a.id, aTenantName, aOwnerEmail, a.ownerID, "alpha/secret-filter", "secret-filter", aMod.Digest, strings.TrimPrefix(aMod.Digest, "sha256:"), "1.1.0"}
	missingDigest := digestOf([]byte("no such module"))

	bSPU := cp.spuLogin(t, b.id, clusterID(t, b.owner, prodCluster))
	bVia := []struct {
		via string
		sm  controlplanev1connect.SmartModuleServiceClient
		spu bool
	}{
		{via: "token", sm: bSM},
		{via: "certificate", sm: b.owner.useCluster(t, prodCluster).smartModules()},
		{via: "SPU certificate", sm: bSPU.smartModules(), spu: true},
	}
	for _, via := range bVia {
		t.Run("B/"+via.via, func(t *testing.T) {
			sm := via.sm
			type crossTenant struct {
				name       string
				a, missing string
				call       func(string) (proto.Message, error)
			}
			calls := []crossTenant{
				{name: "Get", a: "alpha/secret-filter", missing: "alpha/no-such-module", call: func(n string) (proto.Message, error) { return getSM(ctx, sm, n) }},
				{name: "Get/version", a: "alpha/secret-filter@1.0.0", missing: "alpha/no-such-module@1.0.0", call: func(n string) (proto.Message, error) { return getSM(ctx, sm, n) }},
				{name: "Download", a: "alpha/secret-filter@1.0.0", missing: "alpha/no-such-module@1.0.0", call: func(n string) (proto.Message, error) {
					return msgOf(sm.DownloadSmartModule(ctx, connect.NewRequest(&controlplanev1.DownloadSmartModuleRequest{Ref: &controlplanev1.DownloadSmartModuleRequest_Name{Name: n}})))
				}},
				{name: "Download/digest", a: aMod.Digest, missing: missingDigest, call: func(d string) (proto.Message, error) {
					return msgOf(sm.DownloadSmartModule(ctx, connect.NewRequest(&controlplanev1.DownloadSmartModuleRequest{Ref: &controlplanev1.DownloadSmartModuleRequest_Digest{Digest: d}})))
				}},
			}
			if !via.spu {
				calls = append(calls,
					crossTenant{name: "Delete", a: "alpha/secret-filter", missing: "alpha/no-such-module", call: func(n string) (proto.Message, error) {
						return msgOf(sm.DeleteSmartModule(ctx, connect.NewRequest(&controlplanev1.DeleteSmartModuleRequest{Name: n})))
					}},
					crossTenant{name: "Delete/version", a: "alpha/secret-filter@1.0.0", missing: "alpha/no-such-module@1.0.0", call: func(n string) (proto.Message, error) {
						return msgOf(sm.DeleteSmartModule(ctx, connect.NewRequest(&controlplanev1.DeleteSmartModuleRequest{Name: n})))
					}},
				)
			}
			for _, tc := range calls {
				t.Run(tc.name, func(t *testing.T) {
					msgA, errA := tc.call(tc.a)
					_, errMissing := tc.call(tc.missing)
					if errA == nil {
						t.Fatalf("B's call naming A's %q succeeded: %v", tc.a, answerText(msgA, nil))
					}
					wantConnectCode(t, errA, connect.CodeNotFound)
					sameRefusal(t, errA, errMissing, tc.a, tc.missing)
					if leaks := secrets.leaks(answerText(msgA, errA), tc.a, strings.TrimPrefix(tc.a, "sha256:"), "alpha/secret-filter", "secret-filter"); len(leaks) > 0 {
						t.Errorf("the answer %q reveals %q of tenant A", answerText(msgA, errA), leaks)
					}
				})
			}
			if !via.spu {
				if got := listSM(t, sm); len(got) != 0 {
					t.Errorf("B lists %v, want none", got)
				}
			}
		})
	}

	t.Run("B has its own namespace", func(t *testing.T) {
		bMod := mustCreateSM(t, bSM, "alpha/secret-filter", "1.0.0", aWasm)
		if bMod.Digest != aMod.Digest || bMod.CreatedBy != "user:"+bOwnerEmail {
			t.Errorf("B's module: %v", bMod)
		}
		if got := listSM(t, bSM); !slices.Equal(got, []string{"alpha/secret-filter@1.0.0"}) {
			t.Errorf("B lists %v, want only its own version", got)
		}
		if _, err := deleteSM(ctx, bSM, "alpha/secret-filter"); err != nil {
			t.Fatal(err)
		}
		// B's delete removed B's blob, not A's.
		if !blobExists(t, cp.dir, a.id, aMod.Digest) || blobExists(t, cp.dir, b.id, aMod.Digest) {
			t.Error("B's delete touched the wrong blob")
		}
	})

	t.Run("A unchanged", func(t *testing.T) {
		if got := listSM(t, aSM); !slices.Equal(got, []string{"alpha/secret-filter@1.0.0", "alpha/secret-filter@1.1.0"}) {
			t.Fatalf("A lists %v", got)
		}
		dl, err := downloadSM(ctx, aSM, "", aMod.Digest)
		if err != nil || string(dl.Wasm) != string(aWasm) {
			t.Fatalf("A downloads its module: %v", err)
		}
	})

	t.Run("within A", func(t *testing.T) {
		// A member creates and deletes.
		mresp, err := a.owner.tenants().AddMember(ctx, connect.NewRequest(&controlplanev1.AddMemberRequest{Email: aMemberEmail, Role: controlplanev1.Role_ROLE_MEMBER}))
		if err != nil {
			t.Fatal(err)
		}
		tok := cp.tokenForger(t)
		member := cp.bearer("member", tok.sign(t, tok.claims(a.id, identity.User, mresp.Msg.Member.Id)))
		mm := mustCreateSM(t, member.smartModules(), "alpha/member-map", "", smartModule("map", "member's"))
		if mm.CreatedBy != "user:"+aMemberEmail {
			t.Errorf("created by %q", mm.CreatedBy)
		}
		if _, err := deleteSM(ctx, member.smartModules(), "alpha/member-map"); err != nil {
			t.Fatalf("member deletes: %v", err)
		}

		// A service account reads, and only reads.
		if _, err := a.owner.tenants().CreateServiceAccount(ctx, connect.NewRequest(&controlplanev1.CreateServiceAccountRequest{
			Name: aSAName, Grants: []*controlplanev1.Grant{{Topic: "*", Ops: []controlplanev1.TopicOp{controlplanev1.TopicOp_TOPIC_OP_ADMIN}}},
		})); err != nil {
			t.Fatal(err)
		}
		sa := cp.apiKeyLogin(t, aSAName, a.owner.createAPIKey(t, aSAName, 0).Secret).smartModules()
		if got := listSM(t, sa); len(got) != 2 {
			t.Errorf("service account lists %v", got)
		}
		if _, err := downloadSM(ctx, sa, "alpha/secret-filter", ""); err != nil {
			t.Errorf("service account downloads: %v", err)
		}
		_, err = createSM(ctx, sa, "alpha/sa-module", "", smartModule("filter", "sa"))
		wantConnectCode(t, err, connect.CodePermissionDenied)
		_, err = deleteSM(ctx, sa, "alpha/secret-filter")
		wantConnectCode(t, err, connect.CodePermissionDenied)

		// A's SPUs describe and download, by digest as they cache.
		spu := cp.spuLogin(t, a.id, clusterID(t, a.owner, prodCluster)).smartModules()
		dl, err := downloadSM(ctx, spu, "", aMod.Digest)
		if err != nil || string(dl.Wasm) != string(aWasm) {
			t.Fatalf("A's SPU downloads by digest: %v", err)
		}
		if _, err := getSM(ctx, spu, "alpha/secret-filter"); err != nil {
			t.Errorf("A's SPU describes: %v", err)
		}
		_, err = spu.ListSmartModules(ctx, connect.NewRequest(&controlplanev1.ListSmartModulesRequest{}))
		wantConnectCode(t, err, connect.CodePermissionDenied)
		_, err = createSM(ctx, spu, "alpha/spu-module", "", smartModule("filter", "spu"))
		wantConnectCode(t, err, connect.CodePermissionDenied)

		// The operator has no tenant, so no modules.
		op := cp.bearer("operator", cp.operatorKey(t)).smartModules()
		_, err = getSM(ctx, op, "alpha/secret-filter")
		wantConnectCode(t, err, connect.CodePermissionDenied)

		// Without credentials, nothing.
		anon := controlplanev1connect.NewSmartModuleServiceClient(cp.hc, cp.url)
		_, err = getSM(ctx, anon, "alpha/secret-filter")
		wantConnectCode(t, err, connect.CodeUnauthenticated)
	})
}

// BenchmarkSmartModuleDownload measures what an SPU's cache miss costs:
// a download by digest of a real module (the JSON filter example) from an
// insecure control plane over h2c, checksum verified.
func BenchmarkSmartModuleDownload(b *testing.B) {
	wasm := smtest.Example(b, "jsonfilter")
	c := startCP(b, server.Config{DataDir: b.TempDir()})
	sm := controlplanev1connect.NewSmartModuleServiceClient(h2cClient(), c.url)
	m := mustCreateSM(b, sm, "acme/json-filter", "1.0.0", wasm)
	ctx := context.Background()
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := downloadSM(ctx, sm, "", m.Digest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmartModuleCreate measures an upload: validation, the blob
// written and fsynced, the metadata transaction. Each iteration creates a
// new version of the same bytes (one blob).
func BenchmarkSmartModuleCreate(b *testing.B) {
	wasm := smtest.Example(b, "jsonfilter")
	c := startCP(b, server.Config{DataDir: b.TempDir()})
	sm := controlplanev1connect.NewSmartModuleServiceClient(h2cClient(), c.url)
	b.SetBytes(int64(len(wasm)))
	i := 0
	for b.Loop() {
		i++
		mustCreateSM(b, sm, "acme/json-filter", "1.0."+strconv.Itoa(i), wasm)
	}
}
