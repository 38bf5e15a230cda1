package objstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/spatehq/spate/tiered-storage/objstore"
)

func TestValidateKey(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  string
		ok   bool
	}{
		{"simple", "a", true},
		{"segment layout", "t1/c1/orders/0/00000000000000000000-00000000000000000999-3.log", true},
		{"equals and unicode", "k=v/日本語/🙂", true},
		{"space", "with space", true},
		{"dots inside", "a.b/c.d.e", true},
		{"dot leading segment", ".hidden/x", true},
		{"max length", strings.Repeat("k", objstore.MaxKeyLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("k", objstore.MaxKeyLen+1), false},
		{"leading slash", "/a", false},
		{"trailing slash", "a/", false},
		{"empty segment", "a//b", false},
		{"dot dot", "a/../b", false},
		{"dot dot inside", "a..b", false},
		{"dot segment", "a/./b", false},
		{"dot", ".", false},
		{"dot first", "./a", false},
		{"dot last", "a/.", false},
		{"newline", "a\nb", false},
		{"nul", "a\x00", false},
		{"del", "a\x7f", false},
		{"invalid utf-8", "a\xff", false},
		{"non-printable unicode", "a\u200bb", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := objstore.ValidateKey(tt.key)
			if tt.ok != (err == nil) {
				t.Fatalf("ValidateKey(%q) = %v, want ok=%t", tt.key, err, tt.ok)
			}
			if err != nil && !errors.Is(err, objstore.ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v, does not wrap ErrInvalidKey", tt.key, err)
			}
		})
	}
}

func TestValidatePrefix(t *testing.T) {
	for prefix, ok := range map[string]bool{"": true, "a": true, "a/": true, "a/b/c": true, "/a": false, "a//": false, "../": false} {
		if err := objstore.ValidatePrefix(prefix); ok != (err == nil) {
			t.Errorf("ValidatePrefix(%q) = %v, want ok=%t", prefix, err, ok)
		}
	}
}

// FuzzValidateKey checks that no accepted key can escape a folder or confuse
// a file-system mapping.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "a//b", "ü/🙂", "a/./b", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if objstore.ValidateKey(key) != nil {
			return
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q with segment %q", key, seg)
			}
		}
		if len(key) > objstore.MaxKeyLen || strings.ContainsAny(key, "\x00\n\r\t") {
			t.Fatalf("accepted %q", key)
		}
	})
}
