package ca

import (
	"crypto/tls"
	"fmt"

	"github.com/spatehq/spate/auth/identity"
)

// PeerIdentity returns the identity named by the verified leaf of a TLS
// connection (state.VerifiedChains[0][0]). It returns an error wrapping
// ErrNoVerifiedChain when the peer sent no certificate or it was not
// verified (for example with tls.RequestClientCert or
// InsecureSkipVerify), and one wrapping identity.ErrNoIdentity when the
// leaf names no spate:// identity.
func PeerIdentity(state tls.ConnectionState) (identity.Identity, error) {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return identity.Identity{}, ErrNoVerifiedChain
	}
	id, err := identity.FromCertificate(state.VerifiedChains[0][0])
	if err != nil {
		return identity.Identity{}, fmt.Errorf("ca: peer certificate: %w", err)
	}
	return id, nil
}
