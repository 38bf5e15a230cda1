package secret

import "testing"

// FuzzParsePHC checks that no stored hash, however damaged, makes
// CheckPassword panic or run argon2id with parameters out of bounds.
func FuzzParsePHC(f *testing.F) {
	h, err := HashPassword("pw")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{h, "", "$argon2id$v=19$m=1,t=1,p=1$$", "$argon2id$v=19$m=19456,t=2,p=0$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, hash, ok := parsePHC(s)
		if !ok {
			return
		}
		if p.memory > maxArgonMemory || p.memory < 8*uint32(p.threads) || p.time < 1 || p.time > maxArgonTime ||
			p.threads < 1 || p.threads > maxArgonThreads || len(salt) < 8 || len(hash) < 16 || len(hash) > 64 {
			t.Fatalf("parsePHC(%q) accepted %+v, salt %d bytes, hash %d bytes", s, p, len(salt), len(hash))
		}
	})
}
