// Package spu runs a Streaming Processing Unit: the server that holds
// partition replicas on local disk and serves produce and consume over
// Connect (gRPC, gRPC-Web and Connect protocols, HTTP/1.1 and h2c on one
// port), with Prometheus metrics at /metrics.
//
// The CLI's `spate spu serve`, the benchmarks and in-process tests all start
// an SPU through New and Serve (or Run).
package spu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/data-plane/internal/agent"
	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/data-plane/internal/service"
	"github.com/spatehq/spate/internal/h2c"
)

// Config configures an SPU. The zero value of each storage field takes the
// default given in its comment; these defaults apply to partitions whose
// declared settings leave a field unset.
type Config struct {
	// Addr is the address to listen on, for Run. Default 127.0.0.1:9010.
	Addr string
	// DataDir holds the replicas. Required.
	DataDir string

	// ID is the SPU's id in its cluster, for the control plane.
	ID int32
	// ControlPlane is the URL of the control plane to join. When set, the
	// SPU registers, heartbeats and holds the replicas the control plane
	// assigns to it (see package agent); empty runs the SPU standalone,
	// with replicas declared through its ReplicaService.
	ControlPlane string
	// PublicAddr is the URL clients use to reach this SPU, as told to the
	// control plane. Default http:// and the address listened on.
	PublicAddr string

	// SegmentBytes rolls the active segment at this size. Default 1 GiB.
	SegmentBytes int64
	// SegmentAge rolls the active segment at this age. Default 7 days.
	SegmentAge time.Duration
	// RetentionTime deletes closed segments whose newest record is older.
	// Default 7 days; negative keeps records forever.
	RetentionTime time.Duration
	// RetentionBytes deletes the oldest closed segments while a partition is
	// larger. Default 0, no size limit.
	RetentionBytes int64
	// MaxBatchBytes is the largest batch accepted. Default 8 MiB.
	MaxBatchBytes int
	// Fsync makes partitions acknowledge after fsync by default.
	Fsync bool
	// RetentionCheckInterval is how often retention runs. Default 1 minute.
	RetentionCheckInterval time.Duration

	// Pprof serves Go's profiler at /debug/pprof/ (off by default).
	Pprof bool

	// ShutdownTimeout bounds a graceful stop: stream contexts are cancelled
	// at once, unary calls get this long to finish, then every connection is
	// closed (which also ends produce streams waiting for their next
	// request). Default 2 seconds.
	ShutdownTimeout time.Duration
}

// DefaultAddr is where an SPU listens unless told otherwise.
const DefaultAddr = "127.0.0.1:9010"

// maxMessageBytes bounds one Connect message, well above the largest batch.
const maxMessageBytes = 64 << 20

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("spu: a data directory is required (--data-dir)")
	}
	if c.ID < 0 {
		return fmt.Errorf("spu: id %d is negative", c.ID)
	}
	for _, u := range []struct{ name, url string }{{"control plane", c.ControlPlane}, {"public address", c.PublicAddr}} {
		if u.url == "" {
			continue
		}
		if pu, err := url.Parse(u.url); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("spu: %s %q is not a URL such as http://127.0.0.1:9000", u.name, u.url)
		}
	}
	_, err := c.logConfig()
	return err
}

func (c Config) logConfig() (commitlog.Config, error) {
	lc := commitlog.DefaultConfig()
	if c.SegmentBytes > 0 {
		lc.SegmentBytes = c.SegmentBytes
	}
	if c.SegmentAge > 0 {
		lc.SegmentAge = c.SegmentAge
	}
	switch {
	case c.RetentionTime < 0:
		lc.RetentionTime = 0
	case c.RetentionTime > 0:
		lc.RetentionTime = c.RetentionTime
	}
	if c.RetentionBytes > 0 {
		lc.RetentionBytes = c.RetentionBytes
	}
	lc.MaxBatchBytes = 8 << 20
	if c.MaxBatchBytes > 0 {
		lc.MaxBatchBytes = c.MaxBatchBytes
	}
	if c.Fsync {
		lc.Durability = commitlog.Fsync
	}
	if c.RetentionCheckInterval > 0 {
		lc.RetentionCheckInterval = c.RetentionCheckInterval
	}
	if err := lc.Validate(); err != nil {
		return lc, fmt.Errorf("spu: %w", err)
	}
	if lc.MaxBatchBytes > maxMessageBytes/2 {
		return lc, fmt.Errorf("spu: max batch bytes %d is above the limit of %d", lc.MaxBatchBytes, maxMessageBytes/2)
	}
	return lc, nil
}

// Server is a running SPU's state.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	replicas *replica.Manager
	handler  http.Handler
}

// New opens the SPU's data directory, recovering every replica in it.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lc, _ := cfg.logConfig()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	replicas, err := replica.Open(cfg.DataDir, lc, reg, logger)
	if err != nil {
		return nil, err
	}
	metrics := service.NewMetrics(reg)
	opts := []connect.HandlerOption{
		connect.WithReadMaxBytes(maxMessageBytes),
		connect.WithSendMaxBytes(maxMessageBytes),
	}
	mux := http.NewServeMux()
	produce := &service.Produce{Replicas: replicas, Metrics: metrics, Logger: logger}
	consume := &service.Consume{Replicas: replicas, Metrics: metrics, Logger: logger}
	parts := &service.Partitions{Replicas: replicas, Logger: logger}
	mux.Handle(dataplanev1connect.NewProduceServiceHandler(produce, opts...))
	mux.Handle(dataplanev1connect.NewConsumeServiceHandler(consume, opts...))
	mux.Handle(dataplanev1connect.NewPartitionServiceHandler(parts, opts...))
	mux.Handle(internalv1connect.NewReplicaServiceHandler(parts, opts...))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return &Server{cfg: cfg, logger: logger, replicas: replicas, handler: mux}, nil
}

// Handler returns the SPU's HTTP handler, for embedding and tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on l until ctx ends, then stops gracefully (open streams are
// cancelled after ShutdownTimeout) and closes every replica. With a
// ControlPlane configured it also runs the agent that joins it, stopped
// before the replicas are closed.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	var ag *agent.Agent
	if s.cfg.ControlPlane != "" {
		public := s.cfg.PublicAddr
		if public == "" {
			public = "http://" + l.Addr().String()
		}
		var err error
		ag, err = agent.New(agent.Config{ID: s.cfg.ID, ControlPlane: s.cfg.ControlPlane, Address: public}, s.replicas, s.logger)
		if err != nil {
			s.replicas.Close()
			return fmt.Errorf("spu: %w", err)
		}
	}
	hs := h2c.NewServer(s.handler, ctx, s.logger, &http.HTTP2Config{
		MaxConcurrentStreams:          1000,
		MaxReceiveBufferPerStream:     8 << 20,
		MaxReceiveBufferPerConnection: 32 << 20,
	})
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	s.logger.Info("spu serving", "addr", l.Addr().String(), "data_dir", s.cfg.DataDir, "id", s.cfg.ID, "control_plane", s.cfg.ControlPlane)
	var agents sync.WaitGroup
	actx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	if ag != nil {
		agents.Go(func() { ag.Run(actx) })
	}
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		timeout := s.cfg.ShutdownTimeout
		if timeout == 0 {
			timeout = 2 * time.Second
		}
		// Streams run on ctx, which is done: they end, and Shutdown returns.
		h2c.Shutdown(hs, timeout)
		<-errc
	}
	stopAgent()
	agents.Wait()
	if cerr := s.replicas.Close(); cerr != nil {
		s.logger.Error("close replicas", "err", cerr)
	}
	s.logger.Info("spu stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Run listens on cfg.Addr and serves until ctx ends.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := New(cfg, logger)
	if err != nil {
		return err
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.replicas.Close()
		return fmt.Errorf("spu: listen: %w", err)
	}
	return s.Serve(ctx, l)
}
