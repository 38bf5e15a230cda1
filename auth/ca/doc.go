// Package ca issues Spate's X.509 certificates and reads identities back
// from verified TLS connections.
//
// # Hierarchy
//
// There are three levels:
//
//	root (ECDSA P-256, 10 years, held by the control plane)
//	├── control plane server certificate (server and client auth)
//	└── one intermediate per cluster (5 years, MaxPathLen 0)
//	    ├── SPU certificates (server and client auth)
//	    └── client certificates of users and service accounts (client auth, 12 h by default)
//
// Every leaf names exactly one identity as a URI SAN,
// spate://<tenant>/<cluster>/<kind>/<principal> (see package identity), with
// CN = principal id, O = tenant id and OU = cluster id for people reading
// the certificate. The subject is informative only: code trusts the URI SAN
// of a verified leaf (PeerIdentity), never the CN.
//
// # Why an SPU trusts only its cluster's intermediate
//
// All intermediates chain to the same root, so a pool holding the root
// accepts a certificate of any cluster of any tenant. An SPU therefore uses
// its cluster's intermediate as its only trust anchor (Intermediate.Pool as
// tls.Config.ClientCAs), so that a certificate issued for another cluster —
// even another cluster of the same tenant — fails the TLS handshake before
// any request is read. Clients connecting to SPUs likewise use the cluster's
// intermediate as RootCAs, so a server certificate of another cluster cannot
// impersonate an SPU. Only the control plane, which serves every tenant,
// trusts the root (Root.Pool). An intermediate issues only identities of
// its own tenant and cluster.
//
// # Validity
//
// Leaves are backdated by one minute (NotBefore = now - 1m) to absorb
// clock skew, never more, and never outlive their issuer: NotAfter is
// capped at the issuer's NotAfter. Issuing from an expired issuer fails.
//
// # Formats
//
// Certificates and chains are PEM "CERTIFICATE" blocks; a chain is the leaf
// followed by the intermediate, never the root (peers already hold it).
// Private keys are PEM PKCS #8 ("PRIVATE KEY"), unencrypted: callers store
// them where only their owner reads them.
//
// # Signing
//
// Leaves are signed through an embedded smallstep authority
// (github.com/smallstep/certificates/authority), built once per Root and per
// Intermediate and reused; the certificate's contents are set entirely by
// this package, nothing is taken from a certificate request but its public
// key.
package ca
