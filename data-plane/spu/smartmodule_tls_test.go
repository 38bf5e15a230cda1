package spu_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/data-plane/internal/certs"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/engine"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// moduleRegistry answers GetSmartModule and DownloadSmartModule for one
// module, and records who called.
type moduleRegistry struct {
	controlplanev1connect.UnimplementedSmartModuleServiceHandler
	module *controlplanev1.SmartModule
	wasm   []byte

	mu      sync.Mutex
	callers []string // identities of the callers, one per call
}

func (m *moduleRegistry) GetSmartModule(_ context.Context, req *connect.Request[controlplanev1.GetSmartModuleRequest]) (*connect.Response[controlplanev1.GetSmartModuleResponse], error) {
	if req.Msg.Name != m.module.Name && req.Msg.Name != m.module.Name+"@"+m.module.Version {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such module"))
	}
	return connect.NewResponse(&controlplanev1.GetSmartModuleResponse{Smartmodule: m.module}), nil
}

func (m *moduleRegistry) DownloadSmartModule(_ context.Context, req *connect.Request[controlplanev1.DownloadSmartModuleRequest]) (*connect.Response[controlplanev1.DownloadSmartModuleResponse], error) {
	if req.Msg.GetDigest() != m.module.Digest {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such digest"))
	}
	return connect.NewResponse(&controlplanev1.DownloadSmartModuleResponse{Smartmodule: m.module, Wasm: m.wasm}), nil
}

// TestTLSSPUFetchesModulesWithItsOwnCertificate runs a registry module on
// an SPU with TLS: the SPU resolves and downloads it from its control plane
// presenting its own certificate, whose tenant is the registry's scope.
func TestTLSSPUFetchesModulesWithItsOwnCertificate(t *testing.T) {
	p := newPKI(t)
	wasm := smtest.Example(t, "uppercase")
	mods := &moduleRegistry{wasm: wasm, module: &controlplanev1.SmartModule{Name: "acme/upper", Version: "1.0.0", Kind: "map", Digest: engine.Digest(wasm)}}
	f := &fakeRegistry{watchers: map[int32]chan *internalv1.WatchReplicasResponse{}, addresses: map[int32]string{}, quit: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle(internalv1connect.NewRegistryServiceHandler(f))
	mux.Handle(controlplanev1connect.NewSmartModuleServiceHandler(mods))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "SmartModuleService") {
			who := "no certificate"
			if id, err := certs.PeerIdentity(req.TLS); err == nil {
				who = id.String()
			}
			mods.mu.Lock()
			mods.callers = append(mods.callers, who)
			mods.mu.Unlock()
		}
		mux.ServeHTTP(w, req)
	}))
	cp := p.root.Issue(t, sputest.Leaf{ID: identity.Identity{Tenant: "operator", Cluster: identity.NoCluster, Kind: identity.ControlPlane, Principal: "control-plane"}, Server: true})
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cp.Cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.root.Pool()}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() { f.stop(); srv.Close() })

	s := sputest.Start(t, spu.Config{ID: 1, ControlPlane: srv.URL, TLS: sputest.SPUFiles(t, p.cluster, 1, "")})
	f.send(t, 1, &internalv1.WatchReplicasResponse{Revision: 1, Replicas: desiredLedBy(1, "logs", 0), Principals: acl("u-alice")})
	alice := clientsAs(s.URL, p.cluster.ClientTLS(t, member(identity.User, "u-alice")))
	waitProduce(t, alice, "logs")

	end := int64(1)
	stream, err := alice.consume.Consume(testContext(t), connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic:      "logs",
		Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, EndOffset: &end}},
		Smartmodules: []*dataplanev1.SmartModuleInvocation{{
			Module: &dataplanev1.SmartModuleInvocation_Name{Name: "acme/upper"}, Kind: "map",
		}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var got []string
	for stream.Receive() {
		recs, err := decodeAll(stream.Msg().Batches)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, recs...)
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("consume through acme/upper: %v", err)
	}
	if len(got) != 1 || got[0] != "FIRST" {
		t.Fatalf("consumed %q through acme/upper; want [FIRST]", got)
	}
	mods.mu.Lock()
	defer mods.mu.Unlock()
	want := sputest.SPUIdentity(p.cluster, 1).String()
	if len(mods.callers) != 2 || mods.callers[0] != want || mods.callers[1] != want {
		t.Fatalf("the registry was called by %v; want a Get and a Download by %s", mods.callers, want)
	}
}

// decodeAll returns the values of the records in batches.
func decodeAll(batches []byte) ([]string, error) {
	recs, err := batch.DecodeAll(batches, nil)
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out, err
}
