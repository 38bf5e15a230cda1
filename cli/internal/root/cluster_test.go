package root_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/root"
	"github.com/spatehq/spate/client/profile"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// cluster is an in-process control plane with SPUs joined to it, and a
// config file whose current profile points at it.
type cluster struct {
	URL    string
	Config string
}

func startCluster(t *testing.T, spus int) *cluster {
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
	url := "http://" + l.Addr().String()
	for i := range spus {
		sputest.Start(t, spu.Config{ID: int32(i + 1), ControlPlane: url})
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	cfg, _ := profile.Load(path)
	if err := cfg.Set("test", profile.Profile{ControlPlane: url}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Switch("test"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Save(); err != nil {
		t.Fatal(err)
	}
	return &cluster{URL: url, Config: path}
}

// run runs the CLI in-process with the cluster's config file.
func (c *cluster) run(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &cmdutil.Factory{IO: &cmdutil.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, ConfigPath: c.Config}
	cmd := root.NewCmdRoot(f)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		errOut.WriteString(cmdutil.Explain(err, f.Hint()))
	}
	return out.String(), errOut.String(), cmdutil.ExitCode(err)
}

func (c *cluster) ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := c.run(t, stdin, args...)
	if code != 0 {
		t.Fatalf("spate %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// TestTopicsThroughTheControlPlane runs the topic commands, produce and
// consume against a real control plane and three SPUs.
func TestTopicsThroughTheControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane with etcd; skipped with -short")
	}
	t.Setenv("SPATE_SPU", "")
	t.Setenv("SPATE_PROFILE", "")
	c := startCluster(t, 3)
	c.ok(t, "", "topic", "create", "orders", "--partitions", "6", "--replication", "1", "--retention-time", "7d")

	_, errOut, code := c.run(t, "", "topic", "create", "orders", "--partitions", "6")
	if code != cmdutil.ExitExists {
		t.Fatalf("second create: exit %d, %s", code, errOut)
	}

	var input strings.Builder
	for i := range 60 {
		input.WriteString("k" + string(rune('a'+i%6)) + ":" + "v" + string(rune('0'+i%10)) + "\n")
	}
	c.ok(t, input.String(), "produce", "orders", "--key-separator", ":")
	out := c.ok(t, "", "consume", "orders", "-A", "-B", "-d", "--format", "{{partition}} {{offset}} {{key}}")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 60 {
		t.Fatalf("consumed %d records, want 60:\n%s", len(lines), out)
	}

	c.ok(t, "", "topic", "update", "orders", "--retention-time", "30d")
	out = c.ok(t, "", "topic", "describe", "orders", "--output", "json")
	var topic struct {
		Spec struct {
			Settings struct {
				Retention int64 `json:"retention_ns"`
			} `json:"settings"`
		} `json:"spec"`
		Partitions []struct {
			Leader int32 `json:"leader"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out), &topic); err != nil {
		t.Fatalf("describe json: %v\n%s", err, out)
	}
	if time.Duration(topic.Spec.Settings.Retention) != 30*24*time.Hour || len(topic.Partitions) != 6 {
		t.Fatalf("describe after update:\n%s", out)
	}
	out = c.ok(t, "", "partition", "list", "--topic", "orders")
	if strings.Count(out, "orders") != 6 {
		t.Fatalf("partition list:\n%s", out)
	}
	out = c.ok(t, "", "topic", "list", "--output", "yaml")
	if !strings.Contains(out, "name: orders") {
		t.Fatalf("topic list yaml:\n%s", out)
	}
	c.ok(t, "", "topic", "delete", "orders")
	// Deletion removes the replicas from the SPUs first.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, code := c.run(t, "", "topic", "describe", "orders")
		if code == cmdutil.ExitNotFound {
			break
		}
		if code != 0 || !strings.Contains(out, "deleting") || time.Now().After(deadline) {
			t.Fatalf("describe deleted topic: exit %d\n%s", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProfileErrors checks the messages and exit codes of config problems.
func TestProfileErrors(t *testing.T) {
	t.Setenv("SPATE_SPU", "")
	t.Setenv("SPATE_PROFILE", "")
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.toml")
	if err := os.WriteFile(corrupt, []byte("current_profile = \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.toml")
	down := filepath.Join(dir, "down.toml")
	cfg, _ := profile.Load(down)
	_ = cfg.Set("down", profile.Profile{ControlPlane: "http://127.0.0.1:1"})
	_ = cfg.Switch("down")
	if err := cfg.Save(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		config  string
		args    []string
		code    int
		message string
	}{
		{name: "corrupt config", config: corrupt, args: []string{"topic", "list"}, code: cmdutil.ExitConfig, message: corrupt + " is corrupt at line 1"},
		{name: "no profile", config: empty, args: []string{"topic", "list"}, code: cmdutil.ExitConfig, message: "spate local up"},
		{name: "unknown profile", config: down, args: []string{"--profile", "nope", "topic", "list"}, code: cmdutil.ExitConfig, message: `profile "nope" not found`},
		{name: "unreachable", config: down, args: []string{"topic", "list"}, code: cmdutil.ExitUnavailable, message: "http://127.0.0.1:1"},
		{name: "unreachable produce", config: down, args: []string{"produce", "t"}, code: cmdutil.ExitUnavailable, message: "http://127.0.0.1:1"},
		{name: "zero partitions", config: down, args: []string{"topic", "create", "t", "--partitions", "0"}, code: cmdutil.ExitUsage, message: "--partitions must be at least 1"},
		{name: "bad duration", config: down, args: []string{"topic", "create", "t", "--retention-time", "7w"}, code: cmdutil.ExitUsage, message: "unknown unit"},
		{name: "switch unknown", config: down, args: []string{"profile", "switch", "nope"}, code: cmdutil.ExitConfig, message: "nope"},
		{name: "topic with --spu", config: down, args: []string{"--spu", "http://127.0.0.1:2", "topic", "list"}, code: cmdutil.ExitUsage, message: "drop --spu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &cluster{Config: tt.config}
			_, errOut, code := c.run(t, "a\n", tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.message) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tt.code, tt.message)
			}
		})
	}
}

// TestProfileCommands switches, renames and deletes profiles.
func TestProfileCommands(t *testing.T) {
	c := &cluster{Config: filepath.Join(t.TempDir(), "x", "config.toml")}
	c.ok(t, "", "profile", "set", "a", "--control-plane", "http://127.0.0.1:9000", "--switch")
	c.ok(t, "", "profile", "set", "b", "--control-plane", "http://127.0.0.1:9001")
	if out := c.ok(t, "", "profile", "current"); out != "a\n" {
		t.Fatalf("current = %q", out)
	}
	c.ok(t, "", "profile", "switch", "b")
	c.ok(t, "", "profile", "rename", "b", "c")
	out := c.ok(t, "", "profile", "list")
	if !strings.Contains(out, "*  c") || !strings.Contains(out, "a") {
		t.Fatalf("list:\n%s", out)
	}
	c.ok(t, "", "profile", "delete", "c")
	if _, errOut, code := c.run(t, "", "profile", "current"); code != cmdutil.ExitConfig || !strings.Contains(errOut, "spate local up") {
		t.Fatalf("current after delete: %d %s", code, errOut)
	}
	st, err := os.Stat(c.Config)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v %v", st.Mode(), err)
	}
}
