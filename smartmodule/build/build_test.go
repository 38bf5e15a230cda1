package build_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/build"
)

// A successful build is covered by every test that runs an example module
// (smartmodule/smtest builds them with Build).

func TestACompileErrorIsReportedWithTheCompilersOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.wasm")
	err := build.Build(context.Background(), "testdata/broken", out)
	if err == nil || !strings.Contains(err.Error(), "go build failed") || !strings.Contains(err.Error(), "undefined: undefinedFunction") {
		t.Fatalf("Build = %v, want the compiler's message", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed build left %s behind (%v)", out, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(left) != 0 {
		t.Errorf("a failed build left %q behind", left)
	}
}

func TestAProgramThatIsNotASmartModuleIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("links a whole wasm program (seconds); skipped with -short")
	}
	out := filepath.Join(t.TempDir(), "m.wasm")
	err := build.Build(context.Background(), "testdata/command", out)
	if !errors.Is(err, abi.ErrNoKind) || !strings.Contains(err.Error(), "call its Register from an init function") {
		t.Fatalf("Build = %v, want ErrNoKind saying what a module needs", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused build left %s behind", out)
	}
}

func TestAMissingFolderIsAnError(t *testing.T) {
	err := build.Build(context.Background(), filepath.Join(t.TempDir(), "nope"), filepath.Join(t.TempDir(), "m.wasm"))
	if err == nil {
		t.Fatal("Build of a missing folder succeeded")
	}
}

func TestEnvTargetsWasip1WithoutFlagsWasmCannotUse(t *testing.T) {
	env := build.Env([]string{
		"HOME=/home/u", "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=1",
		"GOFLAGS=-race -mod=mod -cover -covermode=atomic -buildmode=pie -tags=x",
	})
	want := []string{"HOME=/home/u", "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=-mod=mod -tags=x"}
	if !slices.Equal(env, want) {
		t.Fatalf("Env = %q\nwant  %q", env, want)
	}
}
