package h2c_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/internal/h2c"
)

// TestConnectionsEndWhenTheClientCertificateExpires: a connection that
// was opened with a certificate is closed when it expires, so that no
// HTTP/2 connection outlives the certificate it was verified with.
func TestConnectionsEndWhenTheClientCertificateExpires(t *testing.T) {
	rootCert, rootKey, err := ca.NewRoot("test root")
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(rootCert, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	ic, ik, err := root.NewIntermediate("t-1", "c-1")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := ca.LoadIntermediate(ic, ik, root)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := inter.IssueServer(identity.Identity{Tenant: "t-1", Cluster: "c-1", Kind: identity.SPU, Principal: "spu-0"}, nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := ca.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	client, err := inter.IssueClient(identity.Identity{Tenant: "t-1", Cluster: "c-1", Kind: identity.User, Principal: "u-1"}, csrPEM, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	client.KeyPEM = keyPEM
	sc, err := srvCert.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := client.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A long stream: it sends until the connection goes.
		for r.Context().Err() == nil {
			if _, err := w.Write([]byte("tick\n")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	hs := h2c.NewTLSServer(handler, context.Background(), slog.New(slog.DiscardHandler), nil, &tls.Config{
		Certificates: []tls.Certificate{sc},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    inter.Pool(),
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.ServeTLS(l, "", "")
	defer hs.Close()

	hc := h2c.NewTLSClient(&tls.Config{RootCAs: inter.Pool(), Certificates: []tls.Certificate{cc}})
	resp, err := hc.Get("https://" + l.Addr().String() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		done <- err
	}()
	select {
	case <-done: // the stream ended with the connection
	case <-time.After(30 * time.Second):
		t.Fatal("the stream outlived the client certificate")
	}
	if time.Now().Before(client.NotAfter) {
		t.Fatalf("the stream ended at %v, before the certificate expired at %v", time.Now(), client.NotAfter)
	}
}
