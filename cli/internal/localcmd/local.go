// Package localcmd implements `spate local up|status|down`: a control
// plane with an embedded etcd and a cluster of SPU processes running in the
// background on this machine, and a profile named "local" pointing at it.
//
// Everything lives in one data directory (default ~/.spate/local):
//
//	control-plane.pid   pid of the background control plane
//	control-plane.url   its URL
//	control-plane.log   its log
//	root-ca.pem         the control plane's root CA certificate
//	operator.key        the operator's API key (0600)
//	dev-password        the password of dev@localhost (0600)
//	dev-api-key         an API key of dev@localhost (0600)
//	etcd/               the embedded etcd
//	clusters/<id>/      the SPUs' data (spu-N/), certificates (spu-N.tls/),
//	                    logs (spu-N.log), ports
package localcmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/client/profile"
	"github.com/spatehq/spate/control-plane/server"
)

// ProfileName is the profile `spate local up` writes and switches to.
const ProfileName = "local"

// DefaultPort is the control plane's port unless --port says otherwise.
const DefaultPort = 9000

// Files in the data directory.
const (
	pidFile = "control-plane.pid"
	urlFile = "control-plane.url"
	logFile = "control-plane.log"
	// operatorKeyFile is the operator's API key, written by the control
	// plane at its first start.
	operatorKeyFile = "operator.key"
)

// NewCmdLocal returns `spate local`.
func NewCmdLocal(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a Spate cluster on this machine",
		Long: `Run a control plane with an embedded etcd and a cluster of SPU processes in
the background on this machine, with a profile named "local" pointing at it.

Data and logs live in one directory (--data-dir, default ~/.spate/local).`,
		Example: `  spate local up --spus 3
  spate local status
  spate local down --delete-data`,
	}
	cmd.AddCommand(newCmdUp(f), newCmdStatus(f), newCmdDown(f))
	return cmd
}

// defaultDataDir returns ~/.spate/local.
func defaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".spate", "local")
	}
	return filepath.Join(home, ".spate", "local")
}

// install is what the data directory says about a running control plane.
type install struct {
	dir string
	pid int    // 0 when there is no pid file
	url string // "" when there is no URL file
}

func readInstall(dir string) (install, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return install{}, err
	}
	in := install{dir: abs}
	if b, err := os.ReadFile(filepath.Join(abs, pidFile)); err == nil {
		in.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	} else if !errors.Is(err, os.ErrNotExist) {
		return in, err
	}
	if b, err := os.ReadFile(filepath.Join(abs, urlFile)); err == nil {
		in.url = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return in, err
	}
	return in, nil
}

// alive reports whether the pid file names a live control-plane process.
func (in install) alive() bool {
	if in.pid <= 0 {
		return false
	}
	if !processExists(in.pid) {
		return false
	}
	// Where /proc exists, make sure the pid was not reused by another
	// program, and is not a zombie.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", in.pid)); err == nil {
		if !strings.Contains(string(b), "control-plane") {
			return false
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", in.pid)); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				return false
			}
		}
	}
	return true
}

// healthy reports whether the control plane of the data directory dir
// answers /healthz at url, trusting the root CA it wrote there.
func healthy(ctx context.Context, dir, url string) bool {
	hc := http.DefaultClient
	if strings.HasPrefix(url, "https://") {
		caPEM, err := os.ReadFile(filepath.Join(dir, server.RootCAFile))
		if err != nil {
			return false
		}
		if hc, err = cloud.NewHTTPClient(caPEM); err != nil {
			return false
		}
	}
	return healthyWith(ctx, hc, url)
}

// healthyWith reports whether url answers /healthz through hc.
func healthyWith(ctx context.Context, hc *http.Client, url string) bool {
	if url == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// clearInstall removes the pid and URL files.
func clearInstall(dir string) {
	os.Remove(filepath.Join(dir, pidFile))
	os.Remove(filepath.Join(dir, urlFile))
}

// listSPUs asks the control plane of profile p for its cluster's SPUs.
func listSPUs(ctx context.Context, p profile.Profile) ([]client.SPU, error) {
	c, err := client.FromProfile(p, client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return c.ListSPUs(ctx)
}

// notRunning returns an error with the exit code of a server that cannot be
// reached (4).
func notRunning(format string, args ...any) error {
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf(format, args...))
}
