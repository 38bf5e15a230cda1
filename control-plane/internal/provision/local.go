package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spatehq/spate/internal/names"
)

// LocalConfig configures the local-process provisioner.
type LocalConfig struct {
	// Binary is the spate executable that runs `spate spu serve`. Default
	// the running executable (os.Executable).
	Binary string
	// DataDir holds, per cluster, the SPUs' data under
	// clusters/<name>/spu-<id>, their logs in clusters/<name>/spu-<id>.log
	// and the ports they were given in clusters/<name>/ports.json, and the
	// cluster's object store of tiered storage in tier/<name> (--tier-dir)
	// unless ClusterSpec.Tier names one. Required.
	DataDir string
	// BasePort gives SPU i the port BasePort+i on 127.0.0.1. Zero picks a
	// free port for each SPU the first time it starts; either way an SPU
	// keeps its port across restarts.
	BasePort int
	// ExtraArgs are appended to every `spate spu serve` command line.
	ExtraArgs []string
	// StopTimeout is how long a stopping SPU gets after SIGTERM before
	// SIGKILL. Default 10 seconds.
	StopTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before restarting an SPU
	// that died. Defaults 200 ms and 10 s; an SPU that ran for a minute
	// starts again from MinBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// Local runs each SPU as a `spate spu serve` process on this machine,
// listening on 127.0.0.1, and restarts one that dies. It is the default
// provisioner of `spate control-plane serve` and `spate local up`.
//
// On Linux the SPUs get SIGTERM when the process that started them dies
// (PR_SET_PDEATHSIG), so a control plane that is killed leaves no orphans;
// they also run in their own process group, so a Ctrl-C meant for the
// control plane reaches them only through Close.
type Local struct {
	cfg    LocalConfig
	logger *slog.Logger

	mu       sync.Mutex // guards clusters and closed
	clusters map[string]*localCluster
	closed   bool
}

var _ Provisioner = (*Local)(nil)

// ErrClosed is returned by a Local provisioner after Close.
var ErrClosed = errors.New("provision: provisioner closed")

// NewLocal returns a local-process provisioner. It starts nothing until
// Ensure.
func NewLocal(cfg LocalConfig, logger *slog.Logger) *Local {
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(10*time.Second, cfg.MinBackoff)
	}
	return &Local{cfg: cfg, logger: logger, clusters: map[string]*localCluster{}}
}

// localCluster is the SPUs of one cluster.
type localCluster struct {
	name string
	dir  string

	// mu guards spus and ports and is held across Ensure. Lock order:
	// c.mu before l.mu; nothing takes c.mu while holding l.mu.
	mu    sync.Mutex
	spus  map[int32]*localSPU
	ports map[int32]int
}

// localSPU supervises one SPU process.
type localSPU struct {
	id      int32
	port    int
	tlsDir  string
	creds   func(int32) (Credentials, error)
	args    []string
	env     []string // nil: this process's environment
	binary  string
	logPath string
	timeout time.Duration
	minB    time.Duration
	maxB    time.Duration
	logger  *slog.Logger

	stop chan struct{} // closed to stop the SPU
	done chan struct{} // closed when the supervisor has stopped

	mu        sync.Mutex // guards running, restarts, lastErr
	running   bool
	restarts  int
	lastError string
}

func (l *Local) binary() (string, error) {
	if l.cfg.Binary != "" {
		return l.cfg.Binary, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("provision: find the spate binary: %w", err)
	}
	return p, nil
}

// Ensure starts the SPUs 0..spec.SPUs-1 that are not running and stops
// those with higher ids (their data stays). It is idempotent.
func (l *Local) Ensure(ctx context.Context, spec ClusterSpec) error {
	if err := names.Topic(spec.Name); err != nil {
		return fmt.Errorf("provision: cluster name: %w", err)
	}
	if spec.SPUs < 0 {
		return fmt.Errorf("provision: cluster %s: %d SPUs", spec.Name, spec.SPUs)
	}
	if spec.ControlPlane == "" {
		return fmt.Errorf("provision: cluster %s: no control plane URL", spec.Name)
	}
	if l.cfg.DataDir == "" {
		return errors.New("provision: the local provisioner needs a data directory")
	}
	bin, err := l.binary()
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	c := l.clusters[spec.Name]
	if c == nil {
		c = &localCluster{name: spec.Name, dir: filepath.Join(l.cfg.DataDir, "clusters", spec.Name), spus: map[int32]*localSPU{}}
		l.clusters[spec.Name] = c
	}
	l.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	// Close and Delete take a cluster's SPUs under c.mu after dropping it
	// from l.clusters: check again, so that no SPU starts after them.
	l.mu.Lock()
	closed, current := l.closed, l.clusters[spec.Name] == c
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !current {
		return fmt.Errorf("provision: cluster %s was deleted meanwhile", spec.Name)
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("provision: cluster %s: %w", spec.Name, err)
	}
	if c.ports == nil {
		if c.ports, err = readPorts(c.dir); err != nil {
			return fmt.Errorf("provision: cluster %s: %w", spec.Name, err)
		}
	}
	var surplus []*localSPU
	for id, s := range c.spus {
		if int(id) >= spec.SPUs {
			surplus = append(surplus, s)
			delete(c.spus, id)
		}
	}
	stopAll(surplus)
	for i := range spec.SPUs {
		id := int32(i)
		if c.spus[id] != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		port, err := l.port(c, id)
		if err != nil {
			return fmt.Errorf("provision: cluster %s: SPU %d: %w", spec.Name, id, err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		scheme := "http://"
		if spec.Credentials != nil {
			scheme = "https://"
		}
		args := []string{"spu", "serve",
			"--id", strconv.Itoa(i),
			"--addr", addr,
			"--data-dir", filepath.Join(c.dir, fmt.Sprintf("spu-%d", i)),
			"--control-plane", spec.ControlPlane,
			"--public-addr", scheme + addr,
		}
		tierArgs, env := l.tierArgs(spec)
		args = append(args, tierArgs...)
		var tlsDir string
		if spec.Credentials != nil {
			tlsDir = filepath.Join(c.dir, fmt.Sprintf("spu-%d.tls", i))
			args = append(args,
				"--tls-cert", filepath.Join(tlsDir, "cert.pem"),
				"--tls-key", filepath.Join(tlsDir, "key.pem"),
				"--cluster-ca", filepath.Join(tlsDir, "cluster-ca.pem"),
				"--control-plane-ca", filepath.Join(tlsDir, "control-plane-ca.pem"))
		}
		s := &localSPU{
			id:      id,
			port:    port,
			tlsDir:  tlsDir,
			creds:   spec.Credentials,
			args:    append(args, l.cfg.ExtraArgs...),
			env:     env,
			binary:  bin,
			logPath: filepath.Join(c.dir, fmt.Sprintf("spu-%d.log", i)),
			timeout: l.cfg.StopTimeout,
			minB:    l.cfg.MinBackoff,
			maxB:    l.cfg.MaxBackoff,
			logger:  l.logger.With("cluster", spec.Name, "spu", id),
			stop:    make(chan struct{}),
			done:    make(chan struct{}),
		}
		c.spus[id] = s
		go s.supervise()
	}
	return nil
}

// tierArgs returns the tiered-storage flags of the cluster's SPUs and
// their environment (nil: this process's). Without spec.Tier, the cluster's
// objects go to the folder DataDir/tier/<name>, shared by its SPUs. S3
// keys go into the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
// which other users cannot read, replacing any AWS credentials of this
// process, so that the SPUs hold the cluster's keys and no others.
func (l *Local) tierArgs(spec ClusterSpec) ([]string, []string) {
	t := spec.Tier
	if t.S3Bucket == "" {
		dir := t.Dir
		if dir == "" {
			dir = filepath.Join(l.cfg.DataDir, "tier", spec.Name)
		}
		return []string{"--tier-dir", dir}, nil
	}
	args := []string{"--tier-s3-bucket", t.S3Bucket}
	for _, f := range []struct{ flag, v string }{{"--tier-s3-endpoint", t.S3Endpoint}, {"--tier-s3-region", t.S3Region}, {"--tier-s3-prefix", t.S3Prefix}} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	if t.S3PathStyle {
		args = append(args, "--tier-s3-path-style")
	}
	if t.S3AccessKey == "" {
		return args, nil
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	// No shared config or credentials files either: only these keys.
	env = append(env, "AWS_ACCESS_KEY_ID="+t.S3AccessKey, "AWS_SECRET_ACCESS_KEY="+t.S3SecretKey,
		"AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_CONFIG_FILE="+os.DevNull)
	return args, env
}

// port returns the SPU's port, choosing and persisting one the first time.
// With a BasePort, it is the lowest port from BasePort on that no SPU of
// any cluster holds and that is free now, so the first cluster's SPUs get
// BasePort, BasePort+1, ...; without one, any free port.
func (l *Local) port(c *localCluster, id int32) (int, error) {
	if p, ok := c.ports[id]; ok && p >= l.cfg.BasePort {
		return p, nil
	}
	taken := map[int]bool{}
	l.mu.Lock()
	for _, other := range l.clusters {
		if other == c {
			continue
		}
		// other.ports is guarded by other.mu, which must not be taken
		// under l.mu: read the ports file it wrote instead.
		if ports, err := readPorts(other.dir); err == nil {
			for _, q := range ports {
				taken[q] = true
			}
		}
	}
	l.mu.Unlock()
	for _, q := range c.ports {
		taken[q] = true
	}
	var p int
	if l.cfg.BasePort > 0 {
		for p = l.cfg.BasePort; ; p++ {
			if p > 65535 {
				return 0, fmt.Errorf("no free port from %d on", l.cfg.BasePort)
			}
			if taken[p] {
				continue
			}
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue
			}
			ln.Close()
			break
		}
	} else {
		for {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, fmt.Errorf("find a free port: %w", err)
			}
			p = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			if !taken[p] {
				break
			}
		}
	}
	c.ports[id] = p
	if err := writePorts(c.dir, c.ports); err != nil {
		return 0, err
	}
	return p, nil
}

const portsFile = "ports.json"

func readPorts(dir string) (map[int32]int, error) {
	ports := map[int32]int{}
	b, err := os.ReadFile(filepath.Join(dir, portsFile))
	if errors.Is(err, os.ErrNotExist) {
		return ports, nil
	}
	if err != nil {
		return nil, err
	}
	var byName map[string]int
	if err := json.Unmarshal(b, &byName); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(dir, portsFile), err)
	}
	for k, v := range byName {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 || v <= 0 || v > 65535 {
			continue
		}
		ports[int32(id)] = v
	}
	return ports, nil
}

func writePorts(dir string, ports map[int32]int) error {
	byName := map[string]int{}
	for id, p := range ports {
		byName[strconv.Itoa(int(id))] = p
	}
	b, err := json.MarshalIndent(byName, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, portsFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write ports: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, portsFile)); err != nil {
		return fmt.Errorf("write ports: %w", err)
	}
	return nil
}

// State returns the SPUs of a cluster, ordered by id; nil for a cluster it
// does not run.
func (l *Local) State(cluster string) []SPUState {
	l.mu.Lock()
	c := l.clusters[cluster]
	l.mu.Unlock()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	spus := make([]*localSPU, 0, len(c.spus))
	for _, s := range c.spus {
		spus = append(spus, s)
	}
	c.mu.Unlock()
	out := make([]SPUState, 0, len(spus))
	for _, s := range spus {
		s.mu.Lock()
		out = append(out, SPUState{
			ID:        s.id,
			Address:   "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
			Running:   s.running,
			Restarts:  s.restarts,
			LastError: s.lastError,
		})
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b SPUState) int { return int(a.ID - b.ID) })
	return out
}

// Delete stops the cluster's SPUs and waits for them; with deleteData it
// then removes their data, logs, ports and default tiered-storage folder
// (DataDir/tier/<name>; a store named in ClusterSpec.Tier is the caller's
// to empty). Deleting
// an unknown cluster only removes its data when asked.
func (l *Local) Delete(ctx context.Context, cluster string, deleteData bool) error {
	if err := names.Topic(cluster); err != nil {
		return fmt.Errorf("provision: cluster name: %w", err)
	}
	l.mu.Lock()
	c := l.clusters[cluster]
	delete(l.clusters, cluster)
	l.mu.Unlock()
	if c != nil {
		c.mu.Lock()
		spus := make([]*localSPU, 0, len(c.spus))
		for _, s := range c.spus {
			spus = append(spus, s)
		}
		c.spus = map[int32]*localSPU{}
		c.mu.Unlock()
		stopAll(spus)
	}
	if deleteData && l.cfg.DataDir != "" {
		for _, dir := range []string{filepath.Join(l.cfg.DataDir, "clusters", cluster), filepath.Join(l.cfg.DataDir, "tier", cluster)} {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("provision: delete cluster %s data: %w", cluster, err)
			}
		}
	}
	return ctx.Err()
}

// Close stops every SPU it started and waits for them. Later calls to
// Ensure fail with ErrClosed; Close itself is idempotent.
func (l *Local) Close() error {
	l.mu.Lock()
	l.closed = true
	cs := l.clusters
	l.clusters = map[string]*localCluster{}
	l.mu.Unlock()
	var spus []*localSPU
	for _, c := range cs {
		c.mu.Lock()
		for _, s := range c.spus {
			spus = append(spus, s)
		}
		c.spus = map[int32]*localSPU{}
		c.mu.Unlock()
	}
	stopAll(spus)
	return nil
}

// stopAll stops SPUs in parallel and waits for them.
func stopAll(spus []*localSPU) {
	for _, s := range spus {
		close(s.stop)
	}
	for _, s := range spus {
		<-s.done
	}
}

// supervise runs the SPU process until stop is closed, restarting it with
// backoff whenever it dies.
func (s *localSPU) supervise() {
	defer close(s.done)
	backoff := s.minB
	for first := true; ; first = false {
		if !first {
			s.mu.Lock()
			s.restarts++
			s.mu.Unlock()
		}
		started := time.Now()
		cmd, logf, err := s.start()
		if err == nil {
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			s.setRunning(true, "")
			s.logger.Info("spu started", "pid", cmd.Process.Pid, "port", s.port, "log", s.logPath)
			select {
			case err = <-exited:
				logf.Close()
				if err == nil {
					err = errors.New("exited with status 0")
				}
				err = fmt.Errorf("spu process %d %w (log: %s)", cmd.Process.Pid, asExit(err), s.logPath)
			case <-s.stop:
				s.terminate(cmd, exited)
				logf.Close()
				s.setRunning(false, "")
				return
			}
		}
		s.setRunning(false, err.Error())
		s.logger.Warn("spu died; restarting", "err", err, "backoff", backoff)
		if time.Since(started) > time.Minute {
			backoff = s.minB
		}
		select {
		case <-s.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.maxB)
	}
}

// asExit words an exit error for LastError.
func asExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("was killed by %v", ws.Signal())
		}
		return fmt.Errorf("exited with status %d", ee.ExitCode())
	}
	return err
}

func (s *localSPU) setRunning(running bool, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = running
	if lastErr != "" {
		s.lastError = lastErr
	}
}

func (s *localSPU) start() (*exec.Cmd, *os.File, error) {
	if s.creds != nil {
		if err := s.writeCredentials(); err != nil {
			return nil, nil, err
		}
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open spu log: %w", err)
	}
	cmd := exec.Command(s.binary, s.args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("start spu: %w", err)
	}
	return cmd, logf, nil
}

// terminate sends SIGTERM, then SIGKILL after the stop timeout, and waits.
func (s *localSPU) terminate(cmd *exec.Cmd, exited <-chan error) {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = cmd.Process.Kill()
	}
	select {
	case <-exited:
		s.logger.Info("spu stopped", "pid", cmd.Process.Pid)
		return
	case <-time.After(s.timeout):
	}
	s.logger.Warn("spu did not stop after SIGTERM; killing it", "pid", cmd.Process.Pid, "timeout", s.timeout)
	_ = cmd.Process.Kill()
	<-exited
}

// writeCredentials writes fresh certificates for the SPU into its TLS
// folder (mode 0700, the key 0600), each file replaced atomically.
func (s *localSPU) writeCredentials() error {
	c, err := s.creds(s.id)
	if err != nil {
		return fmt.Errorf("spu credentials: %w", err)
	}
	if err := os.MkdirAll(s.tlsDir, 0o700); err != nil {
		return fmt.Errorf("spu credentials: %w", err)
	}
	for name, data := range map[string][]byte{
		"cert.pem":             c.CertPEM,
		"key.pem":              c.KeyPEM,
		"cluster-ca.pem":       c.ClusterCAPEM,
		"control-plane-ca.pem": c.ControlPlaneCAPEM,
	} {
		if err := writeFileAtomic(filepath.Join(s.tlsDir, name), data, 0o600); err != nil {
			return fmt.Errorf("spu credentials: %w", err)
		}
	}
	return nil
}

// writeFileAtomic writes data to path with mode perm through a temporary
// file, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
