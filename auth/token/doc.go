// Package token issues and verifies Spate's access tokens: short-lived JWTs
// signed with ES256 (ECDSA P-256, SHA-256) by the control plane and
// verified by the control plane itself and by the SPUs.
//
// # Keys
//
// A [Keyring] holds the control plane's signing keys. Each [Key] is named by
// its kid, the RFC 7638 JWK thumbprint of its public key (SHA-256,
// base64url without padding), so a kid can be recomputed from the key and
// never names two keys. The newest key (latest Created) signs; the others
// only verify, until they are removed. Rotation is therefore:
//
//  1. add a new key (Set(old, new)): new tokens carry the new kid, tokens
//     signed by the old key still verify;
//  2. once every token signed by the old key has expired (access tokens
//     live 15 minutes), remove it (Set(new)): its tokens now fail with
//     [ErrUnknownKey].
//
// Keys are stored with [MarshalKey] as JSON:
//
//	{"kid":"<thumbprint>","created":"<RFC 3339>","private_key":"<PEM PKCS #8>"}
//
// # Publishing keys
//
// [Keyring.JWKS] and [Keyring.JWKSHandler] publish the public keys as an
// RFC 7517 JSON Web Key Set:
//
//	{"keys":[{"kty":"EC","crv":"P-256","x":"…","y":"…","kid":"…","alg":"ES256","use":"sig"}]}
//
// with x and y the big-endian coordinates, left-padded to 32 bytes,
// base64url without padding. A [JWKSSource] reads such a set over HTTP for
// processes that do not hold the keys (SPUs).
//
// # Tokens
//
// A token's header is {"alg":"ES256","kid":"…","typ":"JWT"}; its payload is
// [Claims]: the registered claims (iss = the control plane's URL, sub = the
// principal id, aud = ["spate"], exp, nbf, iat, jti) and tnt (tenant id),
// knd (identity kind), nam (display name, optional).
//
// A [Verifier] accepts a token only if its alg is ES256 (never "none",
// HS256 or RS256: see [ErrWrongAlgorithm]), its kid names a known key, the
// signature verifies, exp is present and, like nbf and iat, holds with 30 s
// of leeway, iss is the verifier's issuer and aud contains "spate". Every
// refusal wraps one of the sentinel errors (ErrExpired, ErrNotYetValid,
// ErrBadSignature, ErrUnknownKey, ErrMalformed, ErrWrongAlgorithm,
// ErrWrongIssuer, ErrWrongAudience, ErrKeysUnavailable), so a caller can
// log the reason and answer the client clearly with errors.Is.
package token
