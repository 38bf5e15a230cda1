package certs_test

import (
	"crypto/tls"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/internal/certs"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

func TestKeyPairReloadsAReissuedCertificate(t *testing.T) {
	root := sputest.NewRootCA(t)
	cluster := root.NewIntermediate(t, "t-acme", "c-main")
	files := sputest.SPUFiles(t, cluster, 1, "")
	kp, err := certs.LoadKeyPair(files.CertFile, files.KeyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kp.Identity(), sputest.SPUIdentity(cluster, 1); got != want {
		t.Fatalf("identity %v, want %v", got, want)
	}

	// A server with the key pair, and a client that reports the serial
	// number of the certificate it is shown.
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: kp.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: cluster.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := served()

	// A re-issued certificate is not looked for before the check interval.
	kp.SetCheckInterval(time.Hour)
	next := cluster.Issue(t, sputest.Leaf{ID: sputest.SPUIdentity(cluster, 1), Server: true})
	sputest.WriteKeyPair(t, files, next)
	if got := served(); got != first {
		t.Fatalf("served %s before the check interval, want %s", got, first)
	}
	// After it, the new one is served.
	kp.SetCheckInterval(0)
	want := next.Cert.Leaf.SerialNumber.String()
	if got := served(); got != want {
		t.Fatalf("served %s after re-issue, want %s", got, want)
	}

	// A certificate for another identity is not taken.
	sputest.WriteKeyPair(t, files, cluster.Issue(t, sputest.Leaf{ID: sputest.SPUIdentity(cluster, 2), Server: true}))
	if got := served(); got != want {
		t.Fatalf("served %s after a certificate for SPU 2, want %s", got, want)
	}

	// A half-written file keeps the certificate loaded.
	if err := os.WriteFile(files.CertFile, next.ChainPEM[:100], 0o600); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != want {
		t.Fatalf("served %s with a broken file, want %s", got, want)
	}
}

func TestLoadKeyPairRefusesAKeyFileWithoutKey(t *testing.T) {
	root := sputest.NewRootCA(t)
	cluster := root.NewIntermediate(t, "t-acme", "c-main")
	files := sputest.SPUFiles(t, cluster, 1, "")
	is := cluster.Issue(t, sputest.Leaf{ID: sputest.SPUIdentity(cluster, 1)})
	sputest.WriteKeyPair(t, files, sputest.Issued{ChainPEM: is.ChainPEM, KeyPEM: root.CertPEM})
	if _, err := certs.LoadKeyPair(files.CertFile, files.KeyFile, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("LoadKeyPair accepted a key file without a key")
	}
}
