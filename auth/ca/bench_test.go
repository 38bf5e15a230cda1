package ca_test

import (
	"testing"

	"github.com/spatehq/spate/auth/ca"
)

// BenchmarkIssueClient measures signing one client certificate for a
// request (parse, check, sign through the embedded authority, encode).
func BenchmarkIssueClient(b *testing.B) {
	f := newFixture(b)
	_, csrPEM, err := ca.NewKeyAndCSR()
	if err != nil {
		b.Fatal(err)
	}
	id := user(f.a, "u-alice00000")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.a.IssueClient(id, csrPEM, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueServer measures issuing one SPU certificate, key
// generation included.
func BenchmarkIssueServer(b *testing.B) {
	f := newFixture(b)
	id := spu(f.a, "0")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.a.IssueServer(id, nil, nil, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadIntermediate measures loading an intermediate, which builds
// its embedded authority once.
func BenchmarkLoadIntermediate(b *testing.B) {
	root := newRoot(b)
	certPEM, keyPEM, err := root.NewIntermediate(tenant, "c-aaaaaaaaaa")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.LoadIntermediate(certPEM, keyPEM, root); err != nil {
			b.Fatal(err)
		}
	}
}
