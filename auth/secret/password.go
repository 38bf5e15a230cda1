package secret

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters of new hashes (OWASP's minimum: 19 MiB, 2 passes,
// 1 lane). CheckPassword reads the parameters from each hash, so they can
// be raised without invalidating stored hashes.
const (
	argonMemory  = 19456 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on the parameters CheckPassword accepts, so that a tampered hash
// cannot make it burn unbounded memory or time.
const (
	maxArgonMemory  = 1 << 20 // 1 GiB
	maxArgonTime    = 16
	maxArgonThreads = 16
	maxPasswordLen  = 1024
)

// HashPassword returns the argon2id hash of pw as a PHC string,
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" with a random 16-byte
// salt and a 32-byte hash, both base64 without padding. Hashing the same
// password twice gives different strings. It refuses an empty password
// and one longer than 1024 bytes.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("secret: password is empty")
	}
	if len(pw) > maxPasswordLen {
		return "", fmt.Errorf("secret: password is longer than %d bytes", maxPasswordLen)
	}
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt) // never fails (crypto/rand, Go 1.24+)
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches encoded, a hash made by
// HashPassword (or any argon2id v=19 PHC string within sane parameters).
// A malformed or tampered hash never matches. The comparison is constant
// time.
func CheckPassword(encoded, pw string) bool {
	if pw == "" || len(pw) > maxPasswordLen {
		return false
	}
	p, salt, want, ok := parsePHC(encoded)
	if !ok {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return Equal(got, want)
}

type argonParams struct {
	memory, time uint32
	threads      uint8
}

// parsePHC reads "$argon2id$v=19$m=M,t=T,p=P$salt$hash".
func parsePHC(s string) (p argonParams, salt, hash []byte, ok bool) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, false
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return p, nil, nil, false
	}
	m, okM := param(params[0], "m=")
	t, okT := param(params[1], "t=")
	th, okP := param(params[2], "p=")
	if !okM || !okT || !okP {
		return p, nil, nil, false
	}
	if m < 8*th || m > maxArgonMemory || t < 1 || t > maxArgonTime || th < 1 || th > maxArgonThreads {
		return p, nil, nil, false
	}
	salt, err1 := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	hash, err2 := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(salt) > 64 || len(hash) < 16 || len(hash) > 64 {
		return p, nil, nil, false
	}
	return argonParams{memory: m, time: t, threads: uint8(th)}, salt, hash, true
}

// param reads "<name>=<decimal uint32>".
func param(s, name string) (uint32, bool) {
	v, ok := strings.CutPrefix(s, name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	return uint32(n), err == nil
}
