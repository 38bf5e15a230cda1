package provision_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spatehq/spate/control-plane/internal/provision"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

func healthy(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// spuPids finds, in /proc, the SPU processes whose data dir is under
// dataDir, by the base name of that data dir (spu-0, spu-1, ...).
func spuPids(t *testing.T, dataDir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for i, a := range args {
			if a == "--data-dir" && i+1 < len(args) && strings.HasPrefix(args[i+1], dataDir) {
				var pid int
				for _, c := range e.Name() {
					pid = pid*10 + int(c-'0')
				}
				out[filepath.Base(args[i+1])] = pid
			}
		}
	}
	return out
}

func TestLocalRestartsKilledSPUOnItsPort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds spate and runs SPU processes; skipped with -short")
	}
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("needs /proc to find the SPU processes")
	}
	dir := t.TempDir()
	p := provision.NewLocal(provision.LocalConfig{Binary: sputest.Binary(t), DataDir: dir, StopTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { p.Close() })
	ctx := context.Background()
	spec := provision.ClusterSpec{Name: "dev", SPUs: 2, ControlPlane: "http://127.0.0.1:1"}
	if err := p.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := p.Ensure(ctx, spec); err != nil { // idempotent
		t.Fatal(err)
	}
	st := p.State("dev")
	if len(st) != 2 || st[0].ID != 0 || st[1].ID != 1 || st[0].Address == st[1].Address {
		t.Fatalf("state = %+v", st)
	}
	for _, s := range st {
		waitFor(t, s.Address+" to answer", func() bool { return healthy(s.Address) })
	}
	pids := spuPids(t, dir)
	if len(pids) != 2 {
		t.Fatalf("found SPU processes %v, want 2", pids)
	}
	if err := syscall.Kill(pids["spu-1"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SPU 1 to be restarted", func() bool {
		s := p.State("dev")[1]
		return s.Restarts == 1 && s.Running && healthy(s.Address)
	})
	after := p.State("dev")
	if after[1].Address != st[1].Address || !strings.Contains(after[1].LastError, "killed") {
		t.Fatalf("after the kill: %+v, before %+v", after[1], st[1])
	}
	if after[0].Restarts != 0 {
		t.Fatalf("SPU 0 restarted: %+v", after[0])
	}
	if b, err := os.ReadFile(filepath.Join(dir, "clusters", "dev", "spu-1.log")); err != nil || !strings.Contains(string(b), "spu serving") {
		t.Fatalf("spu-1.log: %v\n%s", err, b)
	}

	// Scaling down stops the surplus SPU and keeps its data.
	if err := p.Ensure(ctx, provision.ClusterSpec{Name: "dev", SPUs: 1, ControlPlane: spec.ControlPlane}); err != nil {
		t.Fatal(err)
	}
	if got := p.State("dev"); len(got) != 1 || got[0].ID != 0 {
		t.Fatalf("after scaling down: %+v", got)
	}
	waitFor(t, "SPU 1 to stop", func() bool { _, ok := spuPids(t, dir)["spu-1"]; return !ok })
	if _, err := os.Stat(filepath.Join(dir, "clusters", "dev", "spu-1")); err != nil {
		t.Fatalf("SPU 1's data: %v", err)
	}

	// A new provisioner (a restarted control plane) gives the SPUs the
	// same ports.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if left := spuPids(t, dir); len(left) != 0 {
		t.Fatalf("SPUs left after Close: %v", left)
	}
	if err := p.Ensure(ctx, spec); err == nil {
		t.Fatal("Ensure after Close succeeded")
	}
	p2 := provision.NewLocal(provision.LocalConfig{Binary: sputest.Binary(t), DataDir: dir}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { p2.Close() })
	if err := p2.Ensure(ctx, provision.ClusterSpec{Name: "dev", SPUs: 1, ControlPlane: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if got := p2.State("dev"); len(got) != 1 || got[0].Address != st[0].Address {
		t.Fatalf("after restart: %+v, want the address %s", got, st[0].Address)
	}
	waitFor(t, "SPU 0 to answer again", func() bool { return healthy(st[0].Address) })
	if err := p2.Delete(ctx, "dev", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "clusters", "dev")); !os.IsNotExist(err) {
		t.Fatalf("cluster data left after Delete: %v", err)
	}
	if got := p2.State("dev"); got != nil {
		t.Fatalf("state after Delete: %+v", got)
	}
}
