package sputest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/spu"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of a spate binary: $SPATE_BIN when set (make test
// sets it to bin/spate), else one built once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SPATE_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "spate-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "spate")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cli/cmd/spate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build spate: %v", buildErr)
	}
	return buildPath
}

// Process is an SPU running as a separate `spate spu serve` process.
type Process struct {
	URL     string
	Addr    string
	DataDir string
	Args    []string

	cmd    *exec.Cmd
	exited chan struct{}
	log    *lockedBuffer
	health *http.Client
}

// lockedBuffer is a bytes.Buffer safe for the process's output copier and
// the test to use at once.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartProcess starts `spate spu serve` on a free loopback port with the
// given data dir and extra flags, and waits until it answers /healthz.
func StartProcess(t testing.TB, dataDir string, args ...string) *Process {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := &Process{URL: "http://" + addr, Addr: addr, DataDir: dataDir, Args: args, health: http.DefaultClient}
	p.start(t)
	t.Cleanup(func() { p.Kill(t) })
	return p
}

// StartProcessTLS is StartProcess with the TLS files of files (see
// SPUFiles): the SPU serves HTTPS, and URL is https://.
func StartProcessTLS(t testing.TB, dataDir string, files spu.TLS, args ...string) *Process {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	pem, err := os.ReadFile(files.ClusterCAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	args = append([]string{"--tls-cert", files.CertFile, "--tls-key", files.KeyFile, "--cluster-ca", files.ClusterCAFile, "--control-plane-ca", files.ControlPlaneCAFile}, args...)
	p := &Process{URL: "https://" + addr, Addr: addr, DataDir: dataDir, Args: args,
		health: TLSClient(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots})}
	p.start(t)
	t.Cleanup(func() { p.Kill(t) })
	return p
}

func (p *Process) start(t testing.TB) {
	t.Helper()
	args := append([]string{"spu", "serve", "--addr", p.Addr, "--data-dir", p.DataDir, "--log-level", "debug"}, p.Args...)
	p.log = &lockedBuffer{}
	p.cmd = exec.Command(Binary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start spu process: %v", err)
	}
	exited := make(chan struct{})
	p.exited = exited
	cmd := p.cmd
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := p.health.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("spu process exited at start:\n%s", p.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("spu process not ready after 30s:\n%s", p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to go; safe to call twice.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("spu process %d did not exit after SIGKILL", p.cmd.Process.Pid)
	}
	p.cmd = nil
}

// Restart starts the process again on the same address and data dir.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	p.Kill(t)
	p.start(t)
}

// Log returns what the process has written so far.
func (p *Process) Log() string { return p.log.String() }

// Pid returns the process id, or 0 when it is not running.
func (p *Process) Pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}
