package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// localUp runs `spate local up` in a fresh data folder with a config file
// of its own, and `spate local down --delete-data` when the test ends. It
// returns the binary, the environment every later command must run with,
// and the data folder.
func localUp(t *testing.T) (bin string, env []string, dir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane and an SPU")
	}
	bin = sputest.Binary(t)
	tmp := t.TempDir()
	dir = filepath.Join(tmp, "data")
	env = append(os.Environ(), "SPATE_CONFIG="+filepath.Join(tmp, "config.toml"), "SPATE_PROFILE=", "SPATE_SPU=", "NO_COLOR=1")
	t.Cleanup(func() {
		down := exec.Command(bin, "local", "down", "--data-dir", dir, "--delete-data")
		down.Env = env
		_ = waitStarted(down, 60*time.Second)
	})
	port, err := freeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	run(t, env, bin, "local", "up", "--data-dir", dir, "--port", port)
	return bin, env, dir
}
