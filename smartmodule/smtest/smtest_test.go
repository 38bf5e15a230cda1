package smtest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTheCacheKeyFollowsTheModulesSources(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.go", "package main\n\nfunc main() {}\n")
	key := func() string {
		k, err := cacheKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1 := key()
	if key() != k1 {
		t.Fatal("the key of unchanged sources changed")
	}
	write("main_test.go", "package main\n")
	if key() != k1 {
		t.Error("a test file changed the key; tests are not linked into a module")
	}
	write("main.go", "package main\n\nfunc main() { println() }\n")
	if key() == k1 {
		t.Error("editing the module's source did not change the key")
	}
}

func TestExampleBuildsOncePerProcess(t *testing.T) {
	a := Example(t, "keepall")
	b := Example(t, "keepall")
	if &a[0] != &b[0] {
		t.Error("the second call built or read the module again")
	}
}
