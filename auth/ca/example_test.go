package ca_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
)

// A cluster's CA issues a client certificate for a request; an SPU of the
// cluster, trusting only the cluster's intermediate, verifies it and reads
// the caller's identity.
func Example() {
	rootPEM, rootKey, _ := ca.NewRoot("Spate root")
	root, _ := ca.LoadRoot(rootPEM, rootKey)
	interPEM, interKey, _ := root.NewIntermediate("t-abcdefghij", "c-aaaaaaaaaa")
	cluster, _ := ca.LoadIntermediate(interPEM, interKey, root)

	// The client keeps keyPEM and sends csrPEM.
	keyPEM, csrPEM, _ := ca.NewKeyAndCSR()
	alice := identity.Identity{Tenant: "t-abcdefghij", Cluster: "c-aaaaaaaaaa", Kind: identity.User, Principal: "u-alice00000"}
	issued, err := cluster.IssueClient(alice, csrPEM, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	cert, _ := tls.X509KeyPair(issued.ChainPEM, keyPEM)

	// What an SPU's TLS stack does with ClientCAs = cluster.Pool().
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, _ := x509.ParseCertificate(der)
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         cluster.Pool(),
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	id, _ := ca.PeerIdentity(tls.ConnectionState{VerifiedChains: chains})
	fmt.Println(id)
	// Output: spate://t-abcdefghij/c-aaaaaaaaaa/user/u-alice00000
}
