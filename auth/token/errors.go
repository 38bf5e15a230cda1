package token

import "errors"

// Errors returned by Verifier.Verify, always wrapped: test with errors.Is.
var (
	// ErrExpired: the token's exp is past (beyond the leeway). The client
	// should refresh its token.
	ErrExpired = errors.New("token: expired")
	// ErrNotYetValid: the token's nbf or iat is in the future (beyond the
	// leeway), usually a clock out of step.
	ErrNotYetValid = errors.New("token: not valid yet")
	// ErrBadSignature: the signature does not verify with the key its kid
	// names: the token was forged or altered.
	ErrBadSignature = errors.New("token: bad signature")
	// ErrUnknownKey: the token names no kid, or a kid that is not (or no
	// longer) a signing key.
	ErrUnknownKey = errors.New("token: unknown signing key")
	// ErrMalformed: the token is not a well-formed JWT, or lacks a required
	// claim such as exp.
	ErrMalformed = errors.New("token: malformed")
	// ErrWrongAlgorithm: the token's alg is not ES256 ("none", HS256,
	// RS256... are refused).
	ErrWrongAlgorithm = errors.New("token: algorithm not accepted (want ES256)")
	// ErrWrongIssuer: the token was issued by another control plane.
	ErrWrongIssuer = errors.New("token: wrong issuer")
	// ErrWrongAudience: the token is not meant for Spate.
	ErrWrongAudience = errors.New("token: wrong audience")
	// ErrKeysUnavailable: the verification keys could not be fetched; the
	// token may be valid. Answer "unavailable, retry", not
	// "unauthenticated".
	ErrKeysUnavailable = errors.New("token: signing keys unavailable")
	// ErrNoSigningKey is returned by Keyring.Sign when the keyring is empty.
	ErrNoSigningKey = errors.New("token: no signing key")
)
