package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spatehq/spate/smartmodule/smtest"
)

// TestSmartModulesThroughLocalUp registers the example modules with
// `spate smartmodule create`, then consumes through each kind of module on
// the SPU, by name, from a file and as a chain from a transforms file,
// produces through a map, and shows that a module that fails ends only its
// own consume, with the module's message.
func TestSmartModulesThroughLocalUp(t *testing.T) {
	bin, env, _ := localUp(t)
	tmp := t.TempDir()

	wasm := func(name string) string {
		p := filepath.Join(tmp, name+".wasm")
		if err := os.WriteFile(p, smtest.Example(t, name), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, m := range []struct{ name, example string }{
		{"acme/json-filter", "jsonfilter"}, {"acme/uppercase", "uppercase"}, {"acme/flatten", "flatten"},
		{"acme/evens", "filtermap"}, {"acme/sum", "sum"},
	} {
		run(t, env, bin, "smartmodule", "create", m.name, "--wasm-file", wasm(m.example), "--version", "1.0.0")
	}

	run(t, env, bin, "topic", "create", "logs")
	runIn(t, env, strings.Join([]string{
		`{"level":"info","n":1}`, `{"level":"error","n":2}`, `{"level":"info","n":3}`, `{"level":"error","n":4}`,
	}, "\n")+"\n", bin, "produce", "logs")
	consume := func(topic string, args ...string) string {
		return run(t, env, bin, append([]string{"consume", topic, "-B", "-d", "--format", "{{offset}} {{value}}"}, args...)...)
	}
	expect := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s printed:\n%s\nwant:\n%s", what, got, want)
		}
	}

	expect("--filter", consume("logs", "--filter", "acme/json-filter", "-e", "field=level", "-e", "equals=error"),
		"1 {\"level\":\"error\",\"n\":2}\n3 {\"level\":\"error\",\"n\":4}\n")
	expect("--map", consume("logs", "--map", "acme/uppercase@1.0.0"),
		"0 {\"LEVEL\":\"INFO\",\"N\":1}\n1 {\"LEVEL\":\"ERROR\",\"N\":2}\n2 {\"LEVEL\":\"INFO\",\"N\":3}\n3 {\"LEVEL\":\"ERROR\",\"N\":4}\n")
	expect("--filter-map", consume("logs", "--filter-map", "acme/evens"), "1 2\n3 4\n")
	expect("--smartmodule-path", consume("logs", "--smartmodule-path", wasm("filtermap"), "--smartmodule-kind", "filter-map"), "1 2\n3 4\n")

	run(t, env, bin, "topic", "create", "arrays")
	runIn(t, env, "[1,2,3]\n[]\n[4]\n", bin, "produce", "arrays")
	expect("--array-map", consume("arrays", "--array-map", "acme/flatten"), "0 1\n0 2\n0 3\n2 4\n")

	run(t, env, bin, "topic", "create", "amounts")
	runIn(t, env, "5\n10\n20\n", bin, "produce", "amounts")
	expect("--aggregate", consume("amounts", "--aggregate", "acme/sum", "--aggregate-initial", "100"), "0 105\n1 115\n2 135\n")

	// A chain from a transforms file: keep the errors, then take their n.
	tf := filepath.Join(tmp, "transforms.yaml")
	if err := os.WriteFile(tf, []byte("transforms:\n"+
		"  - uses: acme/json-filter@1.0.0\n    kind: filter\n    with:\n      field: level\n      equals: error\n"+
		"  - path: filtermap.wasm\n"+
		"  - uses: acme/sum\n    initial: \"1000\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect("--transforms-file", consume("logs", "--transforms-file", tf), "1 1002\n3 1006\n")

	// A module of another kind than asked is refused with the reason.
	out, err := runErr(env, bin, "consume", "logs", "-B", "-d", "--filter", "acme/uppercase")
	if err == nil || !strings.Contains(out, "acme/uppercase@1.0.0 is a map, not a filter") {
		t.Errorf("--filter with a map: err %v, printed:\n%s", err, out)
	}
	out, err = runErr(env, bin, "consume", "logs", "-B", "-d", "--filter", "acme/missing")
	if err == nil || !strings.Contains(out, "smartmodule acme/missing not found") {
		t.Errorf("--filter with a missing module: err %v, printed:\n%s", err, out)
	}

	// Produce through a map: what is stored is what the module emits.
	run(t, env, bin, "topic", "create", "shout")
	runIn(t, env, "hello\nworld\n", bin, "produce", "shout", "--smartmodule", "acme/uppercase")
	expect("produce --smartmodule", consume("shout"), "0 HELLO\n1 WORLD\n")

	// A module that fails ends its own consume with its message; a
	// consumer following the topic meanwhile goes on.
	follower := exec.Command(bin, "consume", "logs", "--format", "{{offset}} {{value}}")
	follower.Env = env
	stdout, err := follower.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follower.Process.Kill(); follower.Wait() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	runIn(t, env, "not json\n", bin, "produce", "logs")
	out, err = runErr(env, bin, "consume", "logs", "-B", "-d", "--filter-map", "acme/evens")
	if err == nil {
		t.Fatalf("a consume through a module that fails at offset 4 succeeded:\n%s", out)
	}
	for _, want := range []string{"smartmodule acme/evens@1.0.0 (filter-map) failed at offset 4"} {
		if !strings.Contains(out, want) {
			t.Errorf("the failing consume printed:\n%s\nwant it to say %q", out, want)
		}
	}
	runIn(t, env, `{"level":"info","n":6}`+"\n", bin, "produce", "logs")
	want := map[string]bool{`5 {"level":"info","n":6}`: true}
	deadline := time.After(60 * time.Second)
	for len(want) > 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the following consumer ended; still expected %v", want)
			}
			delete(want, l)
		case <-deadline:
			t.Fatalf("the following consumer did not print %v", want)
		}
	}
}

// runErr runs the spate command and returns what it printed on stdout and
// stderr, and its error.
func runErr(env []string, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader("")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := waitStarted(cmd, 120*time.Second)
	return out.String(), err
}
