// Package secret makes and checks the secrets Spate hands out: API keys,
// refresh tokens, OAuth device and user codes, ids and passwords. Only
// hashes are stored; a secret is shown once, when it is made.
//
// # Formats
//
//	API key        spk_<id>_<secret>    id: 12 lowercase base32 chars,
//	refresh token  sprt_<id>_<secret>   secret: 32 random bytes, base64url (43 chars)
//	device code    <secret>             32 random bytes, base64url (43 chars)
//	user code      XXXX-XXXX            8 chars from BCDFGHJKLMNPQRSTVWXZ
//	id             <prefix>-<10 lowercase base32 chars>
//	password hash  $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>  (PHC, base64 without padding)
//
// The id of an API key or refresh token is not secret: it finds the stored
// record (and its hash) without a scan, and may be logged. The base64url
// secret may itself contain '_' and '-', so parsers split by position, not
// by '_'.
//
// # Why SHA-256 for tokens but argon2id for passwords
//
// API keys, refresh tokens and device codes carry 256 random bits. Guessing
// one from its stored hash means searching 2^256 values, however fast the
// hash: a slow hash would add nothing but latency on every request, so the
// stored hash is a plain SHA-256 of the secret part (a preimage-resistant
// one-way function is all that is needed). User codes have only ~34 bits
// and are never stored hashed; they live minutes and are protected by
// rate limits and attempt counters instead.
//
// Passwords are chosen by people and have little entropy: an attacker with
// a stolen hash tries likely passwords, billions per second against a
// fast hash. Argon2id (RFC 9106) makes each guess cost memory and time
// (19 MiB, 2 passes: the OWASP minimum), and a random salt per hash
// defeats precomputed tables and guessing many hashes at once.
//
// Hashes are compared in constant time (Equal), so response times do not
// reveal how much of a hash matched.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Prefixes of the secrets that carry an id.
const (
	APIKeyPrefix       = "spk_"
	RefreshTokenPrefix = "sprt_"
)

const (
	// base32 is the lowercase RFC 4648 base32 alphabet used for ids.
	base32 = "abcdefghijklmnopqrstuvwxyz234567"
	// idLen is the length of an API key's or refresh token's id.
	idLen = 12
	// secretBytes is the entropy of every random secret.
	secretBytes = 32
	// secretLen is the length of secretBytes in unpadded base64url.
	secretLen = 43
	// userCodeAlphabet has no vowels (no words can be spelled) and no
	// letters easily confused with digits.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	// passwordAlphabet avoids 0/O, 1/l/I.
	passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
)

// Errors returned by the parsers, wrapped with details.
var (
	// ErrMalformed: the text is not a secret of the expected kind.
	ErrMalformed = errors.New("secret: malformed")
)

// NewAPIKey returns a new API key: its id, the full key to give the user
// once, and the hash to store (SHA-256 of the secret part).
func NewAPIKey() (id, full string, hash []byte) { return newIDSecret(APIKeyPrefix) }

// ParseAPIKey checks that full is an API key ("spk_<id>_<secret>") and
// returns its id and the hash of its secret, to compare with the stored
// hash using Equal. It returns an error wrapping ErrMalformed for
// anything else, never panics, and does not reveal the secret in the
// error.
func ParseAPIKey(full string) (id string, hash []byte, err error) {
	return parseIDSecret(APIKeyPrefix, "API key", full)
}

// NewRefreshToken returns a new refresh token: its id, the full token to
// give the client once, and the hash to store.
func NewRefreshToken() (id, full string, hash []byte) { return newIDSecret(RefreshTokenPrefix) }

// ParseRefreshToken is ParseAPIKey for refresh tokens ("sprt_<id>_<secret>").
func ParseRefreshToken(full string) (id string, hash []byte, err error) {
	return parseIDSecret(RefreshTokenPrefix, "refresh token", full)
}

func newIDSecret(prefix string) (id, full string, hash []byte) {
	id = randomString(base32, idLen)
	s := randomSecret()
	return id, prefix + id + "_" + s, hashSecret(s)
}

func parseIDSecret(prefix, what, full string) (id string, hash []byte, err error) {
	rest, ok := strings.CutPrefix(full, prefix)
	if !ok {
		return "", nil, fmt.Errorf("%w: not a Spate %s (want %s<id>_<secret>)", ErrMalformed, what, prefix)
	}
	if len(rest) != idLen+1+secretLen || rest[idLen] != '_' {
		return "", nil, fmt.Errorf("%w: %s has the wrong length or shape (want %s<id>_<secret>)", ErrMalformed, what, prefix)
	}
	id, s := rest[:idLen], rest[idLen+1:]
	for i := range len(id) {
		if !strings.ContainsRune(base32, rune(id[i])) {
			return "", nil, fmt.Errorf("%w: %s id has characters outside a-z, 2-7", ErrMalformed, what)
		}
	}
	if !validSecret(s) {
		return "", nil, fmt.Errorf("%w: %s secret is not 32 bytes of base64url", ErrMalformed, what)
	}
	return id, hashSecret(s), nil
}

// NewDeviceCode returns a new OAuth device code and the hash to store.
func NewDeviceCode() (code string, hash []byte) {
	code = randomSecret()
	return code, hashSecret(code)
}

// HashDeviceCode returns the stored hash of a device code presented by a
// client: SHA-256 of code. It accepts any string (an unknown code simply
// finds nothing).
func HashDeviceCode(code string) []byte { return hashSecret(code) }

// NewUserCode returns a new user code, 8 random letters from
// BCDFGHJKLMNPQRSTVWXZ as "XXXX-XXXX" (about 34.6 bits).
func NewUserCode() string {
	c := randomString(userCodeAlphabet, 8)
	return c[:4] + "-" + c[4:]
}

// NormalizeUserCode returns the canonical "XXXX-XXXX" form of a user code
// typed by a person: ASCII letters in either case, with any '-' and
// spaces, which it drops. It returns an error wrapping ErrMalformed if
// what is left is not 8 letters from BCDFGHJKLMNPQRSTVWXZ (vowels and
// digits never occur in user codes).
func NormalizeUserCode(s string) (string, error) {
	if len(s) > 64 {
		return "", fmt.Errorf("%w: user code too long", ErrMalformed)
	}
	b := make([]byte, 0, 8)
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		if !strings.ContainsRune(userCodeAlphabet, rune(c)) {
			return "", fmt.Errorf("%w: user code: use the 8 letters shown, like BCDF-GHJK", ErrMalformed)
		}
		b = append(b, c)
	}
	if len(b) != 8 {
		return "", fmt.Errorf("%w: user code: want 8 letters, like BCDF-GHJK", ErrMalformed)
	}
	return string(b[:4]) + "-" + string(b[4:]), nil
}

// Equal reports whether a and b are equal, in time that depends only on
// their lengths.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// NewPassword returns a random 20-character password (letters and digits,
// without look-alikes such as 0/O and 1/l/I; about 117 bits).
func NewPassword() string { return randomString(passwordAlphabet, 20) }

// NewID returns prefix + "-" + 10 random lowercase base32 characters
// (50 bits), e.g. NewID("t") = "t-k3x9qa7m2b".
func NewID(prefix string) string { return prefix + "-" + randomString(base32, 10) }

func hashSecret(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func randomSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func validSecret(s string) bool {
	if len(s) != secretLen {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == secretBytes
}

// randomString returns n characters drawn uniformly from alphabet (at most
// 256 characters), by rejection sampling.
func randomString(alphabet string, n int) string {
	limit := 256 - 256%len(alphabet) // bytes >= limit would bias the draw
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		_, _ = rand.Read(buf)
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, alphabet[int(c)%len(alphabet)])
			}
		}
	}
	return string(out)
}
