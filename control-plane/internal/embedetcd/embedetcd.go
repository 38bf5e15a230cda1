// Package embedetcd runs a single-member etcd inside the control-plane
// process, listening only on 127.0.0.1. It is the default metadata store of
// `spate control-plane serve` and `spate local up`, and what the tests use.
package embedetcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Config says where the embedded etcd keeps its data and listens.
type Config struct {
	// Dir is etcd's data directory, where it also writes etcd.log. Required.
	Dir string
	// ClientAddr is the host:port clients connect to; empty picks a free
	// port on 127.0.0.1.
	ClientAddr string
	// PeerAddr is the host:port of the raft peer listener; empty picks a
	// free port on 127.0.0.1.
	PeerAddr string
	// StartTimeout bounds the wait for etcd to be ready. Default 1 minute.
	StartTimeout time.Duration
}

// Etcd is a running embedded etcd.
type Etcd struct {
	e        *embed.Etcd
	endpoint string
}

// Start starts etcd and waits until it serves clients.
func Start(ctx context.Context, cfg Config) (*Etcd, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedetcd: a data directory is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedetcd: %w", err)
	}
	client, err := addrURL(cfg.ClientAddr)
	if err != nil {
		return nil, err
	}
	peer, err := addrURL(cfg.PeerAddr)
	if err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = "spate"
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{*client}
	ec.AdvertiseClientUrls = []url.URL{*client}
	ec.ListenPeerUrls = []url.URL{*peer}
	ec.AdvertisePeerUrls = []url.URL{*peer}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.LogLevel = "warn"
	ec.LogOutputs = []string{filepath.Join(cfg.Dir, "etcd.log")}
	// Heartbeats write every second: keep an hour of history at most.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedetcd: start: %w", err)
	}
	timeout := cfg.StartTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedetcd: %w", err)
	case <-t.C:
		e.Close()
		return nil, fmt.Errorf("embedetcd: not ready after %v", timeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Etcd{e: e, endpoint: client.String()}, nil
}

// Endpoint is the URL clients connect to.
func (e *Etcd) Endpoint() string { return e.endpoint }

// Err reports a fatal error of the running etcd.
func (e *Etcd) Err() <-chan error { return e.e.Err() }

// Close stops etcd and waits for it.
func (e *Etcd) Close() { e.e.Close() }

func addrURL(addr string) (*url.URL, error) {
	if addr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("embedetcd: pick a port: %w", err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	return url.Parse("http://" + addr)
}
