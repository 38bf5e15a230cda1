// Package acceptance runs the real spate binary as a user would, from the
// txtar scripts in testdata (github.com/rogpeppe/go-internal/testscript).
//
// Each script gets its own $HOME, config file ($SPATE_CONFIG) and data
// directory ($DATA). The binary is $SPATE_BIN, or built once. Scripts that
// need `spate local up` skip, saying so, while the binary lacks it.
//
// Commands the scripts have beyond testscript's:
//
//	spate ARGS...        run the binary; the exit code goes to $EXIT
//	exitcode N           fail unless the last spate exited with N
//	freeport VAR         set VAR to a free 127.0.0.1 port number
//	startcluster N       start, in the test process, a control plane with
//	                     embedded etcd and N SPUs joined to it, and make
//	                     the profile "local" point at it (for when `spate
//	                     local up` is not available; stopped at the end)
//	checkorder N         stdout holds N lines "PARTITION OFFSET KEY VALUE":
//	                     offsets rise in each partition, each key stays in
//	                     one partition with rising values
//
// Conditions: [localup] is true when the binary has `spate local up`.
package acceptance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("acceptance scripts start clusters of processes; skipped with -short")
	}
	bin := sputest.Binary(t)
	hasLocal := exec.Command(bin, "local", "up", "--help").Run() == nil
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			home := filepath.Join(env.WorkDir, "home")
			if err := os.MkdirAll(home, 0o700); err != nil {
				return err
			}
			env.Setenv("HOME", home)
			env.Setenv("SPATE_CONFIG", filepath.Join(home, ".spate", "config.toml"))
			env.Setenv("DATA", filepath.Join(env.WorkDir, "data"))
			env.Setenv("SPATE_SPU", "")
			env.Setenv("SPATE_PROFILE", "")
			env.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
			env.Setenv("SPATE_BIN", bin)
			// A script that fails half-way leaves its local cluster
			// running: stop it (a no-op when none runs).
			env.Defer(func() {
				cmd := exec.Command(bin, "local", "down")
				cmd.Env = []string{"HOME=" + home, "SPATE_CONFIG=" + filepath.Join(home, ".spate", "config.toml"), "PATH=" + os.Getenv("PATH")}
				_ = cmd.Run()
			})
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "localup":
				return hasLocal, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"spate":        cmdSpate(bin),
			"exitcode":     cmdExitCode,
			"freeport":     cmdFreePort,
			"checkorder":   cmdCheckOrder,
			"startcluster": cmdStartCluster(bin),
			"addspus":      cmdAddSPUs,
			"waittopic":    cmdWaitTopic,
			"stopleader":   cmdStopLeader,
			"sleep":        cmdSleep,
		},
	})
}

// envKeys are passed from the script to the binary.
var envKeys = []string{"HOME", "PATH", "TMPDIR", "SPATE_CONFIG", "SPATE_SPU", "SPATE_PROFILE", "SPATE_BIN", "GOCOVERDIR"}

// spateCmd returns the command that runs the binary in the script's
// directory and environment.
func spateCmd(ts *testscript.TestScript, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = ts.MkAbs(".")
	for _, k := range envKeys {
		if v := ts.Getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	return cmd
}

func cmdSpate(bin string) func(ts *testscript.TestScript, neg bool, args []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		cmd := spateCmd(ts, bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			ts.Fatalf("run spate: %v", err)
		}
		ts.Setenv("EXIT", strconv.Itoa(code))
		fmt.Fprint(ts.Stdout(), stdout.String())
		fmt.Fprint(ts.Stderr(), stderr.String())
		if neg && code == 0 {
			ts.Fatalf("spate %s: unexpected success", strings.Join(args, " "))
		}
		if !neg && code != 0 {
			ts.Fatalf("spate %s: exit %d", strings.Join(args, " "), code)
		}
	}
}

func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: exitcode N")
	}
	if got := ts.Getenv("EXIT"); got != args[0] {
		ts.Fatalf("exit code %s, want %s", got, args[0])
	}
}

func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: freeport VAR")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	port := l.Addr().(*net.TCPAddr).Port
	ts.Check(l.Close())
	ts.Setenv(args[0], strconv.Itoa(port))
}

func cmdCheckOrder(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: checkorder N")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	lines := strings.Split(strings.TrimSpace(ts.ReadFile("stdout")), "\n")
	if len(lines) != want {
		ts.Fatalf("%d records, want %d", len(lines), want)
	}
	lastOffset := map[string]int64{}
	keyPart := map[string]string{}
	lastValue := map[string]int{}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 4 {
			ts.Fatalf("line %q: want PARTITION OFFSET KEY VALUE", line)
		}
		off, err := strconv.ParseInt(f[1], 10, 64)
		ts.Check(err)
		val, err := strconv.Atoi(f[3])
		ts.Check(err)
		if last, ok := lastOffset[f[0]]; ok && off <= last {
			ts.Fatalf("partition %s: offset %d after %d", f[0], off, last)
		}
		lastOffset[f[0]] = off
		if p, ok := keyPart[f[2]]; ok && p != f[0] {
			ts.Fatalf("key %s in partitions %s and %s", f[2], p, f[0])
		}
		keyPart[f[2]] = f[0]
		if last, ok := lastValue[f[2]]; ok && val <= last {
			ts.Fatalf("key %s: value %d after %d", f[2], val, last)
		}
		lastValue[f[2]] = val
	}
	if len(lastOffset) < 2 {
		ts.Fatalf("records in %d partitions only", len(lastOffset))
	}
}

func cmdStartCluster(bin string) func(ts *testscript.TestScript, neg bool, args []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 1 || neg {
			ts.Fatalf("usage: startcluster N")
		}
		n, err := strconv.Atoi(args[0])
		ts.Check(err)
		dir := ts.MkAbs(filepath.Join(ts.Getenv("DATA"), "inproc"))
		logger := slog.New(slog.DiscardHandler)
		srv, err := server.New(server.Config{Insecure: true, DataDir: filepath.Join(dir, "cp"), LivenessTimeout: 3 * time.Second, ElectionTTL: 2 * time.Second}, logger)
		ts.Check(err)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		ts.Check(err)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		ts.Defer(func() { cancel(); wg.Wait() })
		wg.Go(func() { _ = srv.Serve(ctx, l) })
		select {
		case <-srv.Ready():
		case <-time.After(30 * time.Second):
			ts.Fatalf("control plane not ready within 30s")
		}
		url := "http://" + l.Addr().String()
		ts.Setenv("CONTROL_PLANE", url)
		startSPUs(ts, 1, n)
		out, err := spateCmd(ts, bin, "profile", "set", "local", "--control-plane", url, "--switch").CombinedOutput()
		if err != nil {
			ts.Fatalf("profile set: %v\n%s", err, out)
		}
	}
}

// startSPUs starts n in-process SPUs with ids from first on, registered
// with the control plane at $CONTROL_PLANE, and stops them when the script
// ends.
func startSPUs(ts *testscript.TestScript, first, n int) {
	url := ts.Getenv("CONTROL_PLANE")
	if url == "" {
		ts.Fatalf("no control plane: run startcluster first")
	}
	dir := ts.MkAbs(filepath.Join(ts.Getenv("DATA"), "inproc"))
	logger := slog.New(slog.DiscardHandler)
	for id := first; id < first+n; id++ {
		s, err := spu.New(spu.Config{DataDir: filepath.Join(dir, fmt.Sprintf("spu-%d", id)), ID: int32(id), ControlPlane: url, ShutdownTimeout: 500 * time.Millisecond}, logger)
		ts.Check(err)
		sl, err := net.Listen("tcp", "127.0.0.1:0")
		ts.Check(err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Serve(ctx, sl) }()
		stop := func() { cancel(); <-done }
		runningSPUs.Store(fmt.Sprintf("%s/%d", url, id), stop)
		ts.Defer(stop)
	}
}

// cmdSleep is `sleep DURATION`, e.g. `sleep 1s`.
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}

// runningSPUs maps "<control plane URL>/<SPU id>" to a func that stops
// that in-process SPU and waits for it.
var runningSPUs sync.Map

// cmdStopLeader is `stopleader TOPIC PARTITION`: stop the SPU that leads
// the partition, then wait up to 30 s until the control plane has moved
// leadership to another replica and the topic is ready again.
func cmdStopLeader(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: stopleader TOPIC PARTITION")
	}
	p, err := strconv.Atoi(args[1])
	ts.Check(err)
	url := ts.Getenv("CONTROL_PLANE")
	c, err := client.New(client.WithControlPlane(url))
	ts.Check(err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leaderOf := func() (int32, client.TopicState) {
		t, err := c.DescribeTopic(ctx, args[0])
		ts.Check(err)
		for _, ps := range t.Partitions {
			if ps.Partition == int32(p) {
				return ps.Leader, t.State
			}
		}
		ts.Fatalf("topic %s has no partition %d", args[0], p)
		return 0, 0
	}
	old, _ := leaderOf()
	stop, ok := runningSPUs.Load(fmt.Sprintf("%s/%d", url, old))
	if !ok {
		ts.Fatalf("SPU %d does not run in this script", old)
	}
	stop.(func())()
	ts.Logf("stopped SPU %d, the leader of %s/%d", old, args[0], p)
	for ctx.Err() == nil {
		if leader, state := leaderOf(); leader != old && leader >= 0 && state.String() == "ready" {
			ts.Logf("SPU %d leads %s/%d now", leader, args[0], p)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts.Fatalf("leadership of %s/%d did not move from SPU %d within 30s", args[0], p, old)
}

// cmdAddSPUs is `addspus FIRST_ID N`: N more SPUs join the cluster.
func cmdAddSPUs(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: addspus FIRST_ID N")
	}
	first, err := strconv.Atoi(args[0])
	ts.Check(err)
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	startSPUs(ts, first, n)
}

// cmdWaitTopic is `waittopic NAME STATE`: wait up to 30 s until the topic
// reaches the state (pending, provisioning, ready), as the SDK reports it.
func cmdWaitTopic(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: waittopic NAME STATE")
	}
	c, err := client.New(client.WithControlPlane(ts.Getenv("CONTROL_PLANE")))
	ts.Check(err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		t, err := c.DescribeTopic(ctx, args[0])
		if err == nil {
			last = t.State.String() + " (" + t.Reason + ")"
			if t.State.String() == args[1] {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts.Fatalf("topic %s did not become %s within 30s; last seen %s", args[0], args[1], last)
}
