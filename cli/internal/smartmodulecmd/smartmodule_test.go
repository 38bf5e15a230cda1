package smartmodulecmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/smartmodulecmd"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/client/profile"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// env is a real control plane (insecure, embedded etcd) and a config file
// whose current profile points at it.
type env struct {
	t      *testing.T
	config string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv, err := server.New(server.Config{Insecure: true, DataDir: t.TempDir(), LivenessTimeout: 3 * time.Second, ElectionTTL: 2 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-srv.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("control plane not ready")
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	cfg, _ := profile.Load(path)
	if err := cfg.Set("test", profile.Profile{ControlPlane: "http://" + l.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Switch("test"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Save(); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, config: path}
}

// run runs `spate ARGS` in-process with this package's commands.
func (e *env) run(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	f := &cmdutil.Factory{IO: &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, ConfigPath: e.config}
	root := &cobra.Command{Use: "spate", SilenceUsage: true, SilenceErrors: true}
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	root.AddCommand(smartmodulecmd.NewCmdSmartModule(f))
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil {
		errOut.WriteString(cmdutil.Explain(err, f.Hint()))
	}
	return out.String(), errOut.String(), cmdutil.ExitCode(err)
}

func (e *env) must(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("spate %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fail runs a command that must exit with code and say want on stderr.
func (e *env) fail(code int, want string, args ...string) {
	e.t.Helper()
	out, errOut, got := e.run(args...)
	if got != code || !strings.Contains(errOut, want) {
		e.t.Fatalf("spate %s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, want, out, errOut)
	}
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSmartModuleCommands creates, lists, describes and deletes modules
// against a real control plane, with the examples' real modules.
func TestSmartModuleCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane with etcd and builds modules; skipped with -short")
	}
	e := newEnv(t)
	filter := writeFile(t, "jsonfilter.wasm", smtest.Example(t, "jsonfilter"))
	upper := writeFile(t, "uppercase.wasm", smtest.Example(t, "uppercase"))

	out := e.must("smartmodule", "create", "acme/json-filter", "--wasm-file", filter, "--version", "1.0.0", "--description", "keeps matching JSON records")
	if !strings.Contains(out, "SmartModule acme/json-filter@1.0.0 created (filter,") {
		t.Errorf("create says %q", out)
	}
	e.must("smartmodule", "create", "acme/json-filter@1.1.0", "--wasm-file", filter)
	e.must("smartmodule", "create", "acme/upper", "--wasm-file", upper)

	out = e.must("smartmodule", "list")
	for _, want := range []string{"NAME", "acme/json-filter  1.0.0", "acme/json-filter  1.1.0", "acme/upper        0.1.0    map"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	var listed []client.SmartModule
	if err := json.Unmarshal([]byte(e.must("smartmodule", "list", "-o", "json")), &listed); err != nil || len(listed) != 3 {
		t.Fatalf("list -o json: %v, %v", listed, err)
	}

	out = e.must("smartmodule", "describe", "acme/json-filter")
	for _, want := range []string{"Version:     1.1.0", "Kind:        filter", "Digest:      " + listed[0].Digest, "ABI version: 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	out = e.must("smartmodule", "describe", "acme/json-filter@1.0.0")
	if !strings.Contains(out, "Description: keeps matching JSON records") {
		t.Errorf("describe of 1.0.0:\n%s", out)
	}

	// Refusals say why, with the exit codes of the other commands.
	e.fail(cmdutil.ExitExists, "acme/json-filter@1.0.0 exists already", "smartmodule", "create", "acme/json-filter", "--wasm-file", filter, "--version", "1.0.0")
	e.fail(cmdutil.ExitUsage, "not a WebAssembly module", "smartmodule", "create", "acme/text", "--wasm-file", writeFile(t, "text.wasm", []byte("(module)")))
	e.fail(cmdutil.ExitUsage, "use group/name", "smartmodule", "create", "json-filter", "--wasm-file", filter)
	e.fail(cmdutil.ExitUsage, "--wasm-file", "smartmodule", "create", "acme/x")
	e.fail(cmdutil.ExitUsage, "no such file", "smartmodule", "create", "acme/x", "--wasm-file", filepath.Join(t.TempDir(), "missing.wasm"))
	e.fail(cmdutil.ExitNotFound, `SmartModule "acme/nothing" not found`, "smartmodule", "describe", "acme/nothing")

	out = e.must("smartmodule", "delete", "acme/json-filter@1.0.0")
	if out != "SmartModule acme/json-filter@1.0.0 deleted\n" {
		t.Errorf("delete says %q", out)
	}
	out = e.must("smartmodule", "delete", "acme/json-filter", "acme/upper")
	if out != "SmartModule acme/json-filter@1.1.0 deleted\nSmartModule acme/upper@0.1.0 deleted\n" {
		t.Errorf("delete says %q", out)
	}
	e.fail(cmdutil.ExitNotFound, "not found", "smartmodule", "delete", "acme/upper")
	if _, errOut, code := e.run("smartmodule", "list"); code != 0 || !strings.Contains(errOut, "No SmartModules") {
		t.Errorf("empty list: exit %d, %q", code, errOut)
	}
}

// TestBuild builds an example with `spate smartmodule build`, which checks
// the result is a SmartModule.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go compiler; skipped with -short")
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "smartmodule", "examples", "keepall")
	out := filepath.Join(t.TempDir(), "keepall.wasm")
	e := &env{t: t}
	if stdout := e.must("smartmodule", "build", dir, "-o", out); !strings.Contains(stdout, "a filter SmartModule") {
		t.Errorf("build says %q", stdout)
	}
	e.fail(cmdutil.ExitUsage, "not a folder", "smartmodule", "build", filepath.Join(t.TempDir(), "missing"))
}

// TestRunningAModuleInTheCLI runs example modules in the CLI's own engine,
// from a file and from the registry, and shows a failing module's message.
func TestRunningAModuleInTheCLI(t *testing.T) {
	e := newEnv(t)
	filter := writeFile(t, "jsonfilter.wasm", smtest.Example(t, "jsonfilter"))
	sum := writeFile(t, "sum.wasm", smtest.Example(t, "sum"))

	out := e.must("smartmodule", "test", "--wasm-file", filter, "-e", "field=level", "-e", "equals=error",
		"--text", `{"level":"error","n":1}`, "--text", `{"level":"info"}`, "--text", `{"level":"error","n":3}`)
	if want := "{\"level\":\"error\",\"n\":1}\n{\"level\":\"error\",\"n\":3}\n"; out != want {
		t.Fatalf("filter printed %q, want %q", out, want)
	}

	e.must("smartmodule", "create", "acme/sum@1.0.0", "--wasm-file", sum)
	numbers := writeFile(t, "numbers.txt", []byte("1\n2\n3\n"))
	out = e.must("smartmodule", "test", "acme/sum", "--aggregate-initial", "100", "--file", numbers, "-v")
	if want := "[0] key=null 101\n[1] key=null 103\n[2] key=null 106\n"; out != want {
		t.Fatalf("aggregate printed %q, want %q", out, want)
	}

	// The module's own words and the record's offset, not "wasm trap".
	e.fail(1, "failed at offset 1", "smartmodule", "test", "--wasm-file", sum, "--text", "1", "--text", "one")
	e.fail(2, "--aggregate-initial: jsonfilter.wasm is a filter, not an aggregate", "smartmodule", "test", "--wasm-file", filter, "--aggregate-initial", "1", "--text", "x")
	e.fail(2, "not a WebAssembly module", "smartmodule", "test", "--wasm-file", numbers, "--text", "x")
}
