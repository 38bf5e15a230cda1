package root_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/root"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// spate runs the CLI in-process against spuURL with stdin and returns its
// output and exit code.
func spate(t *testing.T, spuURL, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &cmdutil.Factory{IO: &cmdutil.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}}
	cmd := root.NewCmdRoot(f)
	cmd.SetArgs(append([]string{"--spu", spuURL}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		errOut.WriteString(cmdutil.Explain(err, f.Hint()))
	}
	return out.String(), errOut.String(), cmdutil.ExitCode(err)
}

func TestProduceAndConsumeThroughTheCLI(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	if _, errOut, code := spate(t, s.URL, "", "spu", "partition", "create", "greetings", "--partitions", "2"); code != 0 {
		t.Fatalf("partition create: exit %d: %s", code, errOut)
	}
	input := "alice:one\nbob:two\nalice:three\nbob:four\n"
	if _, errOut, code := spate(t, s.URL, input, "produce", "greetings", "--key-separator", ":"); code != 0 {
		t.Fatalf("produce: exit %d: %s", code, errOut)
	}
	out, errOut, code := spate(t, s.URL, "", "consume", "greetings", "-A", "-B", "-d", "--format", "{{key}}={{value}}")
	if code != 0 {
		t.Fatalf("consume: exit %d: %s", code, errOut)
	}
	// Records of one key stay in one partition, in order.
	var alice, bob []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasPrefix(line, "alice="):
			alice = append(alice, line)
		case strings.HasPrefix(line, "bob="):
			bob = append(bob, line)
		default:
			t.Fatalf("unexpected line %q in\n%s", line, out)
		}
	}
	if strings.Join(alice, ",") != "alice=one,alice=three" || strings.Join(bob, ",") != "bob=two,bob=four" {
		t.Fatalf("consumed\n%s", out)
	}

	out, _, code = spate(t, s.URL, "", "consume", "greetings", "-A", "-T", "1", "-d", "-O", "json")
	if code != 0 {
		t.Fatalf("consume -O json: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("-T 1 over two partitions printed %d lines:\n%s", len(lines), out)
	}
	var rec struct {
		Topic  string `json:"topic"`
		Offset int64  `json:"offset"`
		Key    string `json:"key"`
		Value  string `json:"value"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Topic != "greetings" || rec.Offset != 1 {
		t.Fatalf("json line %q: %+v %v", lines[0], rec, err)
	}

	out, _, code = spate(t, s.URL, "", "partition", "list", "--output", "json")
	if code != 0 || !strings.Contains(out, `"EndOffset": 2`) && !strings.Contains(out, `"end_offset": 2`) {
		t.Fatalf("partition list: exit %d\n%s", code, out)
	}
}

func TestCLIErrorsHaveExitCodesAndSayWhatToDo(t *testing.T) {
	s := sputest.Start(t, spu.Config{})
	tests := []struct {
		name    string
		spu     string
		args    []string
		code    int
		message string
	}{
		{name: "unknown topic", spu: s.URL, args: []string{"consume", "nope", "-B", "-d"}, code: cmdutil.ExitNotFound, message: "nope"},
		{name: "produce to unknown topic", spu: s.URL, args: []string{"produce", "nope"}, code: cmdutil.ExitNotFound, message: "nope"},
		{name: "bad flag", spu: s.URL, args: []string{"consume", "x", "--bogus"}, code: cmdutil.ExitUsage, message: "unknown flag"},
		{name: "bad format", spu: s.URL, args: []string{"consume", "x", "--format", "{{nope}}"}, code: cmdutil.ExitUsage, message: "unknown placeholder"},
		{name: "bad compression", spu: s.URL, args: []string{"produce", "x", "--compression", "rar"}, code: cmdutil.ExitUsage, message: "compression"},
		{name: "no SPU there", spu: "http://127.0.0.1:1", args: []string{"partition", "list"}, code: cmdutil.ExitUnavailable, message: "spate spu serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := spate(t, tt.spu, "a\n", tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.message) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tt.code, tt.message)
			}
		})
	}
}
