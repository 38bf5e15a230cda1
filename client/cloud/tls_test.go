package cloud_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/client/cloud/cloudtest"
)

// request is what a server saw of a request.
type request struct {
	proto     int
	principal string
	cluster   string
	auth      string
}

// seen records the last request a server saw.
type seen struct {
	mu sync.Mutex
	request
}

func (s *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.proto = r.ProtoMajor
		s.auth = r.Header.Get("Authorization")
		s.principal, s.cluster = "", ""
		if id, err := ca.PeerIdentity(*r.TLS); err == nil {
			s.principal, s.cluster = id.Principal, id.Cluster
		}
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (s *seen) get() request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.request
}

// TestFromProfileSpeaksMutualTLS connects a client made from a UseCluster
// profile to servers that stand for an SPU (cluster CA, client
// certificate required) and a control plane (root CA), over HTTP/2.
func TestFromProfileSpeaksMutualTLS(t *testing.T) {
	s := cloudtest.Start(t, cloudtest.Config{})
	sess := login(t, s)
	createCluster(t, sess, "orders")
	createCluster(t, sess, "clicks")
	p, err := cloud.UseCluster(context.Background(), sess, "orders")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var spu seen
	spuURL := s.ServeSPU(t, "orders", spu.wrap(mustHandler(dataplanev1connect.NewPartitionServiceHandler(dataplanev1connect.UnimplementedPartitionServiceHandler{}))))
	direct := p
	direct.ControlPlane, direct.SPUs = "", []string{spuURL}
	c, err := client.FromProfile(direct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Unimplemented means the TLS handshake and the call went through.
	if _, err := c.ListPartitions(ctx, "events"); connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Fatalf("ListPartitions over mTLS: %v", err)
	}
	if got := spu.get(); got.proto != 2 || got.principal != cloudtest.UserID || got.cluster != p.ClusterID || got.auth != "" {
		t.Fatalf("SPU saw %+v", got)
	}

	// A certificate of another cluster is refused by the SPU's handshake.
	other, err := cloud.UseCluster(ctx, sess, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	other.ControlPlane, other.SPUs = "", []string{spuURL}
	c2, _ := client.FromProfile(other)
	defer c2.Close()
	if _, err := c2.ListPartitions(ctx, "events"); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("another cluster's certificate: %v", err)
	}

	// The control plane: root CA, the client certificate, and a bearer
	// token when asked for.
	var cp seen
	cpURL := s.ServeControlPlane(t, cp.wrap(mustHandler(controlplanev1connect.NewTopicServiceHandler(controlplanev1connect.UnimplementedTopicServiceHandler{}))))
	viaCP := p
	viaCP.ControlPlane = cpURL
	c3, err := client.FromProfile(viaCP, client.WithToken(client.StaticToken("tok")))
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := c3.ListTopics(ctx); connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Fatalf("ListTopics: %v", err)
	}
	if got := cp.get(); got.proto != 2 || got.principal != cloudtest.UserID || got.auth != "Bearer tok" {
		t.Fatalf("control plane saw %+v", got)
	}

	// A CertRenewer's options work the same.
	r, err := cloud.NewCertRenewer(sess, direct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c4, err := client.FromProfile(direct, r.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	if _, err := c4.ListPartitions(ctx, "events"); connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Fatalf("ListPartitions with a CertRenewer: %v", err)
	}
}

func mustHandler(_ string, h http.Handler) http.Handler { return h }
