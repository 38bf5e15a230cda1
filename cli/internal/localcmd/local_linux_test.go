package localcmd_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// run runs the spate binary and returns its output and exit code.
func run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	return runIn(t, env, "", args...)
}

// runIn runs the spate binary with stdin and returns its output and exit
// code.
func runIn(t *testing.T, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(sputest.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// processesUnder returns the pids of live processes with an argument under
// dir, from /proc.
func processesUnder(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), dir) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue // a zombie: dead, waiting to be reaped
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

func waitNoProcesses(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := processesUnder(dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left running: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func TestLocalUpStatusDown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds spate and runs a control plane and SPUs; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("finds processes through /proc")
	}
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "data")
	config := filepath.Join(tmp, "config.toml")
	env := []string{"SPATE_CONFIG=" + config, "SPATE_SPU=", "SPATE_PROFILE="}
	port := freePort(t)
	t.Cleanup(func() {
		run(t, env, "local", "down", "--data-dir", dir)
		for _, pid := range processesUnder(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	out, errOut, code := run(t, env, "local", "up", "--spus", "2", "--data-dir", dir, "--port", port)
	if code != 0 || !strings.Contains(out, "2 SPU(s) ready") || !strings.Contains(errOut, `cluster "local": ready`) {
		t.Fatalf("up: exit %d\n%s\n%s\nlog:\n%s", code, out, errOut, readFile(filepath.Join(dir, "control-plane.log")))
	}
	cfg := readFile(config)
	if !strings.Contains(cfg, `current_profile = "local"`) || !strings.Contains(cfg, "https://127.0.0.1:"+port) || !strings.Contains(cfg, "BEGIN CERTIFICATE") {
		t.Fatalf("config:\n%s", cfg)
	}
	if st, err := os.Stat(config); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v %v", st.Mode(), err)
	}

	// A second up says so and succeeds.
	out, _, code = run(t, env, "local", "up", "--spus", "2", "--data-dir", dir, "--port", port)
	if code != 0 || !strings.Contains(out, "already running") {
		t.Fatalf("second up: exit %d: %s", code, out)
	}
	out, errOut, code = run(t, env, "local", "status", "--data-dir", dir)
	if code != 0 || strings.Count(out, "online") != 2 {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	// The development tenant's secrets are private.
	for _, f := range []string{"operator.key", "dev-password", "dev-api-key"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
	}
	clusterDirs, _ := filepath.Glob(filepath.Join(dir, "clusters", "c-*"))
	if len(clusterDirs) != 1 {
		t.Fatalf("cluster folders: %v", clusterDirs)
	}
	clusterDir := clusterDirs[0]

	// The profile reaches the cluster, over mTLS.
	if out, errOut, code = run(t, env, "topic", "create", "t1", "--partitions", "2"); code != 0 {
		t.Fatalf("topic create: exit %d\n%s\n%s", code, out, errOut)
	}

	// An SPU killed with SIGKILL is restarted and serves its partitions
	// again.
	if out, errOut, code = runIn(t, env, "a:1\nb:2\nc:3\nd:4\n", "produce", "t1", "--key-separator", ":"); code != 0 {
		t.Fatalf("produce: exit %d\n%s\n%s", code, out, errOut)
	}
	spu0 := processesUnder(filepath.Join(clusterDir, "spu-0"))
	if len(spu0) != 1 {
		t.Fatalf("SPU 0 processes: %v", spu0)
	}
	if err := syscall.Kill(spu0[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, code = run(t, env, "consume", "t1", "-A", "-B", "-d", "--format", "{{key}}={{value}}")
		if code == 0 && strings.Count(out, "=") == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consume after killing SPU 0: exit %d\n%s\n%s", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if left := processesUnder(filepath.Join(clusterDir, "spu-0")); len(left) != 1 || left[0] == spu0[0] {
		t.Fatalf("SPU 0 not restarted: %v (was %v)", left, spu0)
	}

	// A control plane killed with SIGKILL takes its SPUs along.
	ports := readFile(filepath.Join(clusterDir, "ports.json"))
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(filepath.Join(dir, "control-plane.pid"))))
	if pid <= 0 || len(processesUnder(dir)) != 3 {
		t.Fatalf("pid %d, processes %v", pid, processesUnder(dir))
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitNoProcesses(t, dir)
	if _, _, code = run(t, env, "local", "status", "--data-dir", dir); code != 4 {
		t.Fatalf("status with the control plane gone: exit %d, want 4", code)
	}

	// Up again: the same SPU ports, the topic still there.
	if out, errOut, code = run(t, env, "local", "up", "--spus", "2", "--data-dir", dir, "--port", port); code != 0 {
		t.Fatalf("up after kill: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := readFile(filepath.Join(clusterDir, "ports.json")); got != ports {
		t.Fatalf("ports changed:\n%s\nwas\n%s", got, ports)
	}
	if out, errOut, code = run(t, env, "topic", "describe", "t1"); code != 0 {
		t.Fatalf("topic describe: exit %d\n%s\n%s", code, out, errOut)
	}

	out, _, code = run(t, env, "local", "down", "--data-dir", dir, "--delete-data")
	if code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("down: exit %d: %s", code, out)
	}
	waitNoProcesses(t, dir)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data dir left: %v", err)
	}
	out, _, code = run(t, env, "local", "down", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "No local control plane") {
		t.Fatalf("down twice: exit %d: %s", code, out)
	}
}

func TestLocalUpRejectsBadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds spate; skipped with -short")
	}
	env := []string{"SPATE_CONFIG=" + filepath.Join(t.TempDir(), "config.toml")}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"zero spus", []string{"--spus", "0"}},
		{"bad port", []string{"--port", "70000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, env, append([]string{"local", "up", "--data-dir", t.TempDir()}, tc.args...)...)
			if code != 2 || !strings.Contains(errOut, "use 1 to") {
				t.Fatalf("exit %d: %s", code, errOut)
			}
		})
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
