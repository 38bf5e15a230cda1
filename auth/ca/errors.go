package ca

import "errors"

var (
	// ErrUnsupportedKey is returned for a key that is not ECDSA P-256,
	// Ed25519, or RSA of 2048 to 8192 bits.
	ErrUnsupportedKey = errors.New("ca: unsupported key: use ECDSA P-256, Ed25519 or RSA of at least 2048 bits")

	// ErrInvalidCSR is returned for a certificate request that does not
	// parse or whose signature does not verify.
	ErrInvalidCSR = errors.New("ca: invalid certificate request")

	// ErrWrongIdentity is returned when an intermediate is asked to issue a
	// certificate for an identity of another tenant or cluster.
	ErrWrongIdentity = errors.New("ca: identity does not belong to this intermediate's tenant and cluster")

	// ErrIssuerExpired is returned when issuing from a CA whose certificate
	// has expired (or is not yet valid).
	ErrIssuerExpired = errors.New("ca: issuer certificate is not valid now")

	// ErrNoVerifiedChain is returned by PeerIdentity for a connection whose
	// peer presented no certificate or whose certificate was not verified.
	ErrNoVerifiedChain = errors.New("ca: connection has no verified peer certificate")

	// ErrNoKey is returned by Issued.TLSCertificate when the private key is
	// held by someone else (certificates issued from a CSR).
	ErrNoKey = errors.New("ca: issued certificate carries no private key: pair the chain with the key that signed the CSR")
)
