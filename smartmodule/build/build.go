// Package build compiles a Go SmartModule into a .wasm file with the
// standard Go toolchain. `spate smartmodule build` calls it; the same build
// by hand is
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o module.wasm .
//
// (-buildmode=c-shared makes a WASI reactor: the host calls its exports
// instead of running main.)
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spatehq/spate/smartmodule/abi"
)

// ErrNoGo is returned when no Go toolchain is on the PATH.
var ErrNoGo = errors.New("build: the go command is not on the PATH (install Go 1.24 or later from https://go.dev/dl)")

// Build compiles the package main in dir into the WebAssembly module out,
// then checks with abi.Inspect that the result is a SmartModule of exactly
// one kind. It runs the go command on the PATH (Go 1.24 or later, for
// //go:wasmexport) with GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared and
// -trimpath, and without -race or -cover from GOFLAGS (wasm supports
// neither). The error of a failed build carries the compiler's output.
// out is written only when the build succeeds, by renaming a temporary
// file in its folder, so a reader never sees half a module; an existing
// file is replaced.
func Build(ctx context.Context, dir, out string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return ErrNoGo
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(absOut), ".spate-build-*.wasm")
	if err != nil {
		return fmt.Errorf("build: output: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	cmd := exec.CommandContext(ctx, goCmd, "build", "-buildmode=c-shared", "-trimpath", "-o", tmp.Name(), ".")
	cmd.Dir = dir
	cmd.Env = Env(os.Environ())
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("build %s: %w", dir, ctx.Err())
		}
		msg := strings.TrimSpace(output.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("build %s: go build failed:\n%s", dir, msg)
	}
	wasm, err := os.ReadFile(tmp.Name())
	if err != nil {
		return fmt.Errorf("build %s: %w", dir, err)
	}
	if _, err := abi.Inspect(wasm); err != nil {
		return fmt.Errorf("build %s: it compiled but is not a SmartModule: %w (package main must import exactly one of github.com/spatehq/spate/smartmodule/filter, mapper, filtermap, arraymap or aggregate, and call its Register from an init function)", dir, err)
	}
	if err := os.Rename(tmp.Name(), absOut); err != nil {
		return fmt.Errorf("build %s: %w", dir, err)
	}
	return nil
}

// Env returns environ with what a SmartModule build needs: GOOS=wasip1,
// GOARCH=wasm, CGO_ENABLED=0, and GOFLAGS without the flags WebAssembly
// does not support (-race, -msan, -asan, -cover...) or that Build sets
// itself (-buildmode). Build uses it; it is exported for tools that run the
// go command themselves.
func Env(environ []string) []string {
	env := make([]string, 0, len(environ)+4)
	goflags := ""
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		switch name {
		case "GOOS", "GOARCH", "CGO_ENABLED":
			continue
		case "GOFLAGS":
			goflags = value
			continue
		}
		env = append(env, kv)
	}
	var keep []string
	for _, f := range strings.Fields(goflags) {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		switch name {
		case "race", "msan", "asan", "cover", "covermode", "coverpkg", "buildmode":
			continue
		}
		keep = append(keep, f)
	}
	return append(env, "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS="+strings.Join(keep, " "))
}
