package secret_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/spatehq/spate/auth/secret"
)

var (
	idRE       = regexp.MustCompile(`^[a-z2-7]{12}$`)
	secretRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	userCodeRE = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)
)

type idSecret struct {
	name   string
	prefix string
	make   func() (id, full string, hash []byte)
	parse  func(string) (string, []byte, error)
	other  func() (id, full string, hash []byte) // the other kind, which parse must refuse
}

var idSecrets = []idSecret{
	{"API key", "spk_", secret.NewAPIKey, secret.ParseAPIKey, secret.NewRefreshToken},
	{"refresh token", "sprt_", secret.NewRefreshToken, secret.ParseRefreshToken, secret.NewAPIKey},
}

func TestIDSecrets(t *testing.T) {
	for _, k := range idSecrets {
		t.Run(k.name, func(t *testing.T) {
			id, full, hash := k.make()
			if !idRE.MatchString(id) {
				t.Errorf("id %q: want 12 lowercase base32 chars", id)
			}
			s, ok := strings.CutPrefix(full, k.prefix+id+"_")
			if !ok || !secretRE.MatchString(s) {
				t.Fatalf("full %q: want %s<id>_<43 base64url chars>", full, k.prefix)
			}
			if b, err := base64.RawURLEncoding.DecodeString(s); err != nil || len(b) != 32 {
				t.Errorf("secret decodes to %d bytes (%v), want 32", len(b), err)
			}
			if len(hash) != 32 {
				t.Errorf("hash is %d bytes, want 32 (SHA-256)", len(hash))
			}

			gotID, gotHash, err := k.parse(full)
			if err != nil {
				t.Fatal(err)
			}
			if gotID != id || !secret.Equal(gotHash, hash) {
				t.Errorf("parse = %q %x, want %q %x", gotID, gotHash, id, hash)
			}

			id2, full2, hash2 := k.make()
			if id2 == id || full2 == full || secret.Equal(hash2, hash) {
				t.Error("two new values are equal")
			}

			// A well-formed key with another secret parses but does not match.
			last := s[len(s)-2]
			swapped := byte('A')
			if last == 'A' {
				swapped = 'B'
			}
			tampered := full[:len(full)-2] + string(swapped) + full[len(full)-1:]
			tid, thash, err := k.parse(tampered)
			if err != nil {
				t.Fatalf("tampered %q: %v", tampered, err)
			}
			if tid != id || secret.Equal(thash, hash) {
				t.Error("a tampered secret matches the stored hash")
			}
		})
	}
}

func TestParseIDSecretRefuses(t *testing.T) {
	for _, k := range idSecrets {
		_, full, _ := k.make()
		_, otherFull, _ := k.other()
		id := full[len(k.prefix) : len(k.prefix)+12]
		s := full[len(k.prefix)+13:]
		tests := map[string]string{
			"empty":               "",
			"prefix only":         k.prefix,
			"other kind":          otherFull,
			"no prefix":           full[len(k.prefix):],
			"upper-case prefix":   strings.ToUpper(k.prefix) + full[len(k.prefix):],
			"upper-case id":       k.prefix + strings.ToUpper(id) + "_" + s,
			"id with 0 and 1":     k.prefix + "0123456789ab_" + s,
			"short id":            k.prefix + id[1:] + "_" + s,
			"long id":             k.prefix + id + "a_" + s,
			"no separator":        k.prefix + id + s,
			"other separator":     k.prefix + id + "-" + s,
			"short secret":        k.prefix + id + "_" + s[1:],
			"long secret":         k.prefix + id + "_" + s + "A",
			"padded secret":       k.prefix + id + "_" + s + "=",
			"standard base64":     k.prefix + id + "_" + s[:42] + "+",
			"non-canonical last":  k.prefix + id + "_" + s[:42] + "B", // 43rd char carries 4 bits; B sets a low one
			"trailing newline":    full + "\n",
			"leading space":       " " + full,
			"non-ASCII":           k.prefix + id + "_" + s[:41] + "é",
			"secret of 32 zeroes": k.prefix + id + "_" + strings.Repeat("A", 42) + "=",
		}
		for name, in := range tests {
			t.Run(k.name+"/"+name, func(t *testing.T) {
				gotID, hash, err := k.parse(in)
				if !errors.Is(err, secret.ErrMalformed) {
					t.Fatalf("parse(%q) = %q, %x, %v; want ErrMalformed", in, gotID, hash, err)
				}
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q reveals the secret", err)
				}
			})
		}
	}
}

func TestDeviceCode(t *testing.T) {
	code, hash := secret.NewDeviceCode()
	if !secretRE.MatchString(code) {
		t.Errorf("device code %q: want 43 base64url chars", code)
	}
	if !secret.Equal(secret.HashDeviceCode(code), hash) {
		t.Error("HashDeviceCode(code) is not the hash NewDeviceCode returned")
	}
	code2, hash2 := secret.NewDeviceCode()
	if code2 == code || secret.Equal(hash, hash2) {
		t.Error("two device codes are equal")
	}
	if secret.Equal(secret.HashDeviceCode(code+"x"), hash) {
		t.Error("a different code has the same hash")
	}
}

func TestUserCode(t *testing.T) {
	seen := map[rune]bool{}
	codes := map[string]bool{}
	for range 500 {
		c := secret.NewUserCode()
		if !userCodeRE.MatchString(c) {
			t.Fatalf("user code %q: want XXXX-XXXX from BCDFGHJKLMNPQRSTVWXZ", c)
		}
		codes[c] = true
		for _, r := range c {
			seen[r] = true
		}
		n, err := secret.NormalizeUserCode(strings.ToLower(c))
		if err != nil || n != c {
			t.Fatalf("NormalizeUserCode(%q) = %q, %v", strings.ToLower(c), n, err)
		}
	}
	if len(codes) < 499 {
		t.Errorf("%d distinct codes of 500", len(codes))
	}
	if len(seen) != 21 { // 20 letters and '-'
		t.Errorf("letters used: %d, want all 20", len(seen)-1)
	}
}

func TestNormalizeUserCode(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"BCDF-GHJK", "BCDF-GHJK"},
		{"bcdf-ghjk", "BCDF-GHJK"},
		{"bcdfghjk", "BCDF-GHJK"},
		{"  BcDf GhJk ", "BCDF-GHJK"},
		{"B-C-D-F-G-H-J-K", "BCDF-GHJK"},
		{"ZXWV--TSRQ", "ZXWV-TSRQ"},
		{"", ""},
		{"----", ""},
		{"BCDF-GHJ", ""},      // 7 letters
		{"BCDF-GHJKL", ""},    // 9 letters
		{"ABCD-FGHJ", ""},     // vowel
		{"BCDF-GHIK", ""},     // vowel
		{"bcdf-ghjy", ""},     // Y is not in the alphabet
		{"BCDF-GH1K", ""},     // digit
		{"BCDF_GHJK", ""},     // underscore
		{"BCDF\tGHJK", ""},    // tab
		{"BCDF-GHJK\n", ""},   // newline
		{"BCDF-GHJſ", ""},     // U+017F upper-cases to S in Unicode
		{"ＢCDF-GHJK", ""},     // full-width B
		{"BCDF-GHJK\x00", ""}, // NUL
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := secret.NormalizeUserCode(tt.in)
			if tt.want == "" {
				if !errors.Is(err, secret.ErrMalformed) {
					t.Errorf("= %q, %v; want ErrMalformed", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	const pw = "correct horse battery staple"
	h, err := secret.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !phc.MatchString(h) {
		t.Fatalf("hash %q is not a PHC argon2id string with the expected parameters", h)
	}
	if !secret.CheckPassword(h, pw) {
		t.Fatal("the right password does not match")
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple", pw + " "} {
		if secret.CheckPassword(h, wrong) {
			t.Errorf("wrong password %q matches", wrong)
		}
	}
	h2, err := secret.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if h2 == h {
		t.Error("two hashes of one password are equal (salt not random)")
	}

	parts := strings.Split(h, "$") // "", argon2id, v=19, params, salt, hash
	flip := func(s string) string {
		c := byte('A')
		if s[0] == 'A' {
			c = 'B'
		}
		return string(c) + s[1:]
	}
	join := func(p ...string) string { return strings.Join(p, "$") }
	tampered := map[string]string{
		"empty":          "",
		"hash changed":   join(parts[0], parts[1], parts[2], parts[3], parts[4], flip(parts[5])),
		"salt changed":   join(parts[0], parts[1], parts[2], parts[3], flip(parts[4]), parts[5]),
		"memory changed": join(parts[0], parts[1], parts[2], "m=19457,t=2,p=1", parts[4], parts[5]),
		"argon2i":        join(parts[0], "argon2i", parts[2], parts[3], parts[4], parts[5]),
		"version 16":     join(parts[0], parts[1], "v=16", parts[3], parts[4], parts[5]),
		"no version":     join(parts[0], parts[1], parts[3], parts[4], parts[5]),
		"hash truncated": join(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5][:20]),
		"hash missing":   join(parts[0], parts[1], parts[2], parts[3], parts[4]),
		"huge memory":    join(parts[0], parts[1], parts[2], "m=4294967295,t=2,p=1", parts[4], parts[5]),
		"zero time":      join(parts[0], parts[1], parts[2], "m=19456,t=0,p=1", parts[4], parts[5]),
		"signed param":   join(parts[0], parts[1], parts[2], "m=+19456,t=2,p=1", parts[4], parts[5]),
		"params swapped": join(parts[0], parts[1], parts[2], "t=2,m=19456,p=1", parts[4], parts[5]),
		"padded base64":  join(parts[0], parts[1], parts[2], parts[3], parts[4]+"==", parts[5]),
		"trailing $":     h + "$",
		"bcrypt":         "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
	}
	for name, enc := range tampered {
		if secret.CheckPassword(enc, pw) {
			t.Errorf("%s: %q matches", name, enc)
		}
	}

	// Parameters are read from the hash: an older, cheaper hash still checks.
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pw), salt, 1, 8192, 1, 32)
	old := fmt.Sprintf("$argon2id$v=19$m=8192,t=1,p=1$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	if !secret.CheckPassword(old, pw) || secret.CheckPassword(old, "nope") {
		t.Error("a hash with other parameters is not checked with its own parameters")
	}

	if _, err := secret.HashPassword(""); err == nil {
		t.Error("hashed an empty password")
	}
	if _, err := secret.HashPassword(strings.Repeat("x", 1025)); err == nil {
		t.Error("hashed a 1025-byte password")
	}
}

func TestNewPassword(t *testing.T) {
	re := regexp.MustCompile(`^[a-km-zA-HJ-NP-Z2-9]{20}$`)
	a, b := secret.NewPassword(), secret.NewPassword()
	if !re.MatchString(a) || !re.MatchString(b) {
		t.Errorf("passwords %q, %q: want 20 letters and digits without look-alikes", a, b)
	}
	if a == b {
		t.Error("two passwords are equal")
	}
}

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^t-[a-z2-7]{10}$`)
	a, b := secret.NewID("t"), secret.NewID("t")
	if !re.MatchString(a) || !re.MatchString(b) {
		t.Errorf("ids %q, %q: want t-<10 lowercase base32 chars>", a, b)
	}
	if a == b {
		t.Error("two ids are equal")
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"", "a", false},
	}
	for _, tt := range tests {
		if got := secret.Equal([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func fuzzIDSecret(f *testing.F, k idSecret) {
	_, full, _ := k.make()
	_, other, _ := k.other()
	for _, s := range []string{full, other, "", k.prefix, k.prefix + "aaaaaaaaaaaa_", full + "=", full[:len(full)-1]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, hash, err := k.parse(in)
		if err != nil {
			if !errors.Is(err, secret.ErrMalformed) || id != "" || hash != nil {
				t.Fatalf("parse(%q) = %q, %x, %v", in, id, hash, err)
			}
			return
		}
		s, ok := strings.CutPrefix(in, k.prefix+id+"_")
		if !ok || !idRE.MatchString(id) || !secretRE.MatchString(s) || len(hash) != 32 {
			t.Fatalf("parse(%q) accepted: id %q, hash %x", in, id, hash)
		}
		if base64.RawURLEncoding.EncodeToString(mustDecode(t, s)) != s {
			t.Fatalf("parse(%q) accepted a non-canonical secret", in)
		}
	})
}

func mustDecode(t *testing.T, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzParseAPIKey(f *testing.F)       { fuzzIDSecret(f, idSecrets[0]) }
func FuzzParseRefreshToken(f *testing.F) { fuzzIDSecret(f, idSecrets[1]) }

func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{"BCDF-GHJK", "bcdf ghjk", "", "AEIO-UYBC", "BCDF-GHJſ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := secret.NormalizeUserCode(in)
		if err != nil {
			if !errors.Is(err, secret.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !userCodeRE.MatchString(got) {
			t.Fatalf("NormalizeUserCode(%q) = %q", in, got)
		}
		if again, err := secret.NormalizeUserCode(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q, %v", got, again, err)
		}
	})
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := secret.HashPassword("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAPIKey(b *testing.B) {
	_, full, _ := secret.NewAPIKey()
	for b.Loop() {
		if _, _, err := secret.ParseAPIKey(full); err != nil {
			b.Fatal(err)
		}
	}
}
