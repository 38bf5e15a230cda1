// Package spu runs a Streaming Processing Unit: the server that holds
// partition replicas on local disk and serves produce and consume over
// Connect (gRPC, gRPC-Web and Connect protocols, HTTP/1.1 and HTTP/2 on one
// port), with Prometheus metrics at /metrics.
//
// Without TLS files the SPU serves plaintext (h2c) and lets every caller
// do everything: for development on one machine. With them (Config.TLS) it
// serves HTTPS, asks for client certificates issued by its cluster's CA,
// and authorizes every RPC against the access list its control plane
// pushes (package authz); /healthz and /metrics need no certificate.
//
// The CLI's `spate spu serve`, the benchmarks and in-process tests all start
// an SPU through New and Serve (or Run).
package spu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/data-plane/internal/agent"
	"github.com/spatehq/spate/data-plane/internal/authz"
	"github.com/spatehq/spate/data-plane/internal/certs"
	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/data-plane/internal/service"
	"github.com/spatehq/spate/internal/h2c"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
	"github.com/spatehq/spate/tiered-storage/objstore/s3"
	"github.com/spatehq/spate/tiered-storage/remote"
	"github.com/spatehq/spate/tiered-storage/upload"
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
	// control plane. Default http:// (https:// with TLS) and the address
	// listened on.
	PublicAddr string

	// TLS makes the SPU serve HTTPS and require client certificates. Set
	// all of its files or none.
	TLS TLS

	// Tier is the object store of tiered storage, where the leaders of
	// partitions whose settings turn tiering on upload their closed
	// segments. The zero value has none: such partitions then keep their
	// local retention and report that the SPU has no object store.
	Tier Tier

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

	// SmartModules configures the engine that runs the SmartModules
	// consumers and producers ask for.
	SmartModules SmartModules

	// Pprof serves Go's profiler at /debug/pprof/ (off by default).
	Pprof bool

	// ShutdownTimeout bounds a graceful stop: stream contexts are cancelled
	// at once, unary calls get this long to finish, then every connection is
	// closed (which also ends produce streams waiting for their next
	// request). Default 2 seconds.
	ShutdownTimeout time.Duration
}

// TLS names the PEM files of an SPU that serves over TLS. The SPU reads
// CertFile and KeyFile again when they change (looking at most every 10
// seconds), so that a re-issued certificate takes effect without a
// restart; the CA files are read once.
type TLS struct {
	// CertFile is the SPU's certificate chain: its leaf, then the cluster's
	// intermediate CA. The leaf's URI SAN is the SPU's identity,
	// spate://<tenant>/<cluster>/spu/spu-<ID>; its tenant and cluster are
	// those whose principals may call the SPU. It serves as the server
	// certificate and as the client certificate towards the control plane
	// and leader SPUs.
	CertFile string
	// KeyFile is the leaf's private key.
	KeyFile string
	// ClusterCAFile is the cluster's intermediate CA: the only trust
	// anchor for client certificates and for the certificates of peer SPUs.
	ClusterCAFile string
	// ControlPlaneCAFile is the root CA that the control plane's server
	// certificate chains to.
	ControlPlaneCAFile string
}

// Enabled reports whether any TLS file is set.
func (t TLS) Enabled() bool {
	return t != TLS{}
}

// Validate reports the TLS files missing when some are set.
func (t TLS) Validate() error {
	if !t.Enabled() {
		return nil
	}
	var missing []string
	for _, f := range []struct{ flag, file string }{
		{"--tls-cert", t.CertFile}, {"--tls-key", t.KeyFile},
		{"--cluster-ca", t.ClusterCAFile}, {"--control-plane-ca", t.ControlPlaneCAFile},
	} {
		if f.file == "" {
			missing = append(missing, f.flag)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("spu: TLS needs all four files; missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// Tier configures the object store of tiered storage: a local folder (Dir)
// or an S3 bucket (S3Bucket), not both. There is no default store: a folder
// on the SPU's own disk would be no safer than the data directory, so the
// choice is the operator's (`spate local up` passes a folder per cluster).
//
// S3 credentials come from the AWS default chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, shared files, web identity, instance roles), never
// from flags, which other users of the machine can read.
type Tier struct {
	// Dir is the folder of a local object store (package
	// objstore/local). It holds one cluster's objects.
	Dir string
	// S3Endpoint is the URL of an S3-compatible server; empty for AWS S3.
	S3Endpoint string
	// S3Region is the region requests are signed for. Default us-east-1.
	S3Region string
	// S3Bucket is the bucket; it must exist.
	S3Bucket string
	// S3Prefix puts the cluster's objects under "<prefix>/". Default, with
	// TLS: "<tenant>/<cluster>" from the SPU's certificate; without TLS it
	// is required, so that two clusters never share keys.
	S3Prefix string
	// S3PathStyle addresses the bucket in the URL path (most
	// S3-compatible servers need it).
	S3PathStyle bool
	// UploadConcurrency is how many segments go up at once over all
	// partitions. Default 2.
	UploadConcurrency int
	// UploadBytesPerSecond limits the upload bandwidth over all
	// partitions; 0 for no limit.
	UploadBytesPerSecond int64
}

// Enabled reports whether an object store is configured.
func (t Tier) Enabled() bool { return t.Dir != "" || t.S3Bucket != "" }

// Validate reports what is wrong with the tiering flags.
func (t Tier) Validate(tlsOn bool) error {
	s3Set := t.S3Endpoint != "" || t.S3Region != "" || t.S3Prefix != "" || t.S3PathStyle
	switch {
	case t.Dir != "" && (t.S3Bucket != "" || s3Set):
		return errors.New("spu: choose one object store: --tier-dir or --tier-s3-bucket, not both")
	case t.S3Bucket == "" && s3Set:
		return errors.New("spu: the --tier-s3-* flags need --tier-s3-bucket")
	case t.S3Bucket != "" && t.S3Prefix == "" && !tlsOn:
		return errors.New("spu: --tier-s3-bucket needs --tier-s3-prefix (<tenant>/<cluster>) without TLS, so that clusters never share keys")
	case t.UploadConcurrency < 0 || t.UploadBytesPerSecond < 0:
		return errors.New("spu: --tier-upload-concurrency and --tier-upload-bytes-per-second must not be negative")
	}
	return nil
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
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if err := c.Tier.Validate(c.TLS.Enabled()); err != nil {
		return err
	}
	if err := c.SmartModules.Validate(); err != nil {
		return err
	}
	for _, u := range []struct{ name, url string }{{"control plane", c.ControlPlane}, {"public address", c.PublicAddr}} {
		if u.url == "" {
			continue
		}
		pu, err := url.Parse(u.url)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("spu: %s %q is not a URL such as http://127.0.0.1:9000", u.name, u.url)
		}
		if u.name == "control plane" && c.TLS.Enabled() != (pu.Scheme == "https") {
			if c.TLS.Enabled() {
				return fmt.Errorf("spu: with TLS the control plane URL must be https://, not %q", u.url)
			}
			return fmt.Errorf("spu: control plane %q needs the TLS files (--tls-cert, --tls-key, --cluster-ca, --control-plane-ca)", u.url)
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
	tier     *upload.Manager // nil without an object store
	remote   *remote.Reader  // nil without an object store
	handler  http.Handler
	tls      *tlsState // nil without TLS
	modules  *smartModules
}

// tlsState is what an SPU with TLS holds.
type tlsState struct {
	keyPair      *certs.KeyPair
	self         identity.Identity
	clusterCA    *x509.CertPool
	controlPlane *x509.CertPool
	authz        *authz.Authorizer
}

// loadTLS reads the TLS files and checks that the certificate names this
// SPU.
func loadTLS(cfg Config, logger *slog.Logger) (*tlsState, error) {
	kp, err := certs.LoadKeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile, logger)
	if err != nil {
		return nil, fmt.Errorf("spu: %w", err)
	}
	self := kp.Identity()
	want := fmt.Sprintf("spu-%d", cfg.ID)
	if self.Kind != identity.SPU || self.Principal != want || self.Cluster == identity.NoCluster || self.Cluster == "" {
		return nil, fmt.Errorf("spu: the certificate in %s names %s; an SPU with id %d needs spate://<tenant>/<cluster>/spu/%s", cfg.TLS.CertFile, self, cfg.ID, want)
	}
	st := &tlsState{keyPair: kp, self: self}
	if st.clusterCA, err = certs.LoadPool(cfg.TLS.ClusterCAFile); err != nil {
		return nil, fmt.Errorf("spu: cluster CA: %w", err)
	}
	if st.controlPlane, err = certs.LoadPool(cfg.TLS.ControlPlaneCAFile); err != nil {
		return nil, fmt.Errorf("spu: control plane CA: %w", err)
	}
	return st, nil
}

// serverConfig asks for client certificates of the cluster, without
// requiring one in the handshake: /healthz and /metrics serve without, and
// RPCs without one are refused with a Connect error that says why.
func (st *tlsState) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: st.keyPair.GetCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      st.clusterCA,
	}
}

// clientConfig presents the SPU's certificate to a server that chains to
// roots.
func (st *tlsState) clientConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		RootCAs:              roots,
		GetClientCertificate: st.keyPair.GetClientCertificate,
	}
}

// New opens the SPU's data directory, recovering every replica in it.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lc, _ := cfg.logConfig()
	var st *tlsState
	if cfg.TLS.Enabled() {
		var err error
		if st, err = loadTLS(cfg, logger); err != nil {
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ropts []replica.Option
	var tier *upload.Manager
	if cfg.Tier.Enabled() {
		var err error
		if tier, err = openTier(cfg, st, reg, logger); err != nil {
			return nil, err
		}
		ropts = append(ropts, replica.WithTiering(tier))
	}
	replicas, err := replica.Open(cfg.DataDir, lc, reg, logger, ropts...)
	if err != nil {
		if tier != nil {
			tier.Close()
		}
		return nil, err
	}
	metrics := service.NewMetrics(reg)
	sm, err := openSmartModules(cfg, st, reg, logger)
	if err != nil {
		replicas.Close()
		if tier != nil {
			tier.Close()
		}
		return nil, err
	}
	opts := []connect.HandlerOption{
		connect.WithReadMaxBytes(maxMessageBytes),
		connect.WithSendMaxBytes(maxMessageBytes),
	}
	var az *authz.Authorizer
	if st != nil {
		az = authz.New(st.self, reg, logger)
		st.authz = az
		opts = append(opts, connect.WithInterceptors(az.Interceptor()))
	}
	mux := http.NewServeMux()
	produce := &service.Produce{Replicas: replicas, Metrics: metrics, Logger: logger, Authz: az, SmartModules: sm.resolver}
	consume := &service.Consume{Replicas: replicas, Metrics: metrics, Logger: logger, SmartModules: sm.resolver}
	var reader *remote.Reader
	if tier != nil {
		// Reads below a partition's local start come from the remote tier.
		reader = remote.NewReader(tier.Store(), remote.WithRegisterer(reg), remote.WithLogger(logger),
			remote.WithTiered(func(topic string, partition int32) bool {
				r, err := replicas.Get(topic, partition)
				return err == nil && r.Spec().Settings.Tiering
			}))
		consume.Remote = reader
	}
	parts := &service.Partitions{Replicas: replicas, Logger: logger, Authz: az}
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
	var handler http.Handler = mux
	if az != nil {
		handler = az.Middleware(mux)
	}
	return &Server{cfg: cfg, logger: logger, replicas: replicas, tier: tier, remote: reader, handler: handler, tls: st, modules: sm}, nil
}

// openTier opens the object store and the upload manager of tiered
// storage.
func openTier(cfg Config, st *tlsState, reg prometheus.Registerer, logger *slog.Logger) (*upload.Manager, error) {
	t := cfg.Tier
	ucfg := upload.Config{Concurrency: t.UploadConcurrency, Registerer: reg, Logger: logger}
	if t.Dir != "" {
		store, err := local.New(t.Dir)
		if err != nil {
			return nil, fmt.Errorf("spu: tier folder: %w", err)
		}
		ucfg.Store = store
		ucfg.BytesPerSecond = t.UploadBytesPerSecond
		logger.Info("tiered storage in a local folder", "dir", store.Root())
	} else {
		prefix := t.S3Prefix
		if prefix == "" && st != nil {
			prefix = st.self.Tenant + "/" + st.self.Cluster
		}
		store, err := s3.New(context.Background(), s3.Config{
			Endpoint:             t.S3Endpoint,
			Region:               t.S3Region,
			Bucket:               t.S3Bucket,
			Prefix:               prefix,
			PathStyle:            t.S3PathStyle,
			UploadBytesPerSecond: t.UploadBytesPerSecond,
		})
		if err != nil {
			return nil, fmt.Errorf("spu: tier S3 store: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := store.Check(ctx); err != nil {
			// Not fatal: produce goes on from local disk and uploads
			// retry until the store answers.
			logger.Warn("tiered storage: the S3 bucket is not usable yet; uploads will retry", "bucket", t.S3Bucket, "prefix", prefix, "err", err)
		}
		ucfg.Store = store
		logger.Info("tiered storage in S3", "endpoint", t.S3Endpoint, "bucket", t.S3Bucket, "prefix", prefix)
	}
	tier, err := upload.New(ucfg)
	if err != nil {
		return nil, fmt.Errorf("spu: %w", err)
	}
	return tier, nil
}

// Replicas returns the SPU's replicas, for embedding and tests.
func (s *Server) Replicas() *replica.Manager { return s.replicas }

// closeStorage closes the replicas (which stops their uploaders), then the
// upload manager and the remote reader.
func (s *Server) closeStorage() error {
	err := s.replicas.Close()
	if s.tier != nil {
		s.tier.Close()
	}
	if s.remote != nil {
		s.remote.Close()
	}
	s.modules.close()
	return err
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
			public = s.scheme() + "://" + l.Addr().String()
		}
		acfg := agent.Config{ID: s.cfg.ID, ControlPlane: s.cfg.ControlPlane, Address: public}
		if s.tls != nil {
			acfg.HTTPClient = h2c.NewTLSClient(s.tls.clientConfig(s.tls.controlPlane))
			acfg.PeerHTTPClient = h2c.NewTLSClient(s.tls.clientConfig(s.tls.clusterCA))
			acfg.Principals = s.tls.authz.SetPrincipals
		}
		var err error
		ag, err = agent.New(acfg, s.replicas, s.logger)
		if err != nil {
			s.closeStorage()
			return fmt.Errorf("spu: %w", err)
		}
	}
	h2 := &http.HTTP2Config{
		MaxConcurrentStreams:          1000,
		MaxReceiveBufferPerStream:     8 << 20,
		MaxReceiveBufferPerConnection: 32 << 20,
	}
	var hs *http.Server
	errc := make(chan error, 1)
	if s.tls != nil {
		hs = h2c.NewTLSServer(s.handler, ctx, s.logger, h2, s.tls.serverConfig())
		go func() { errc <- hs.ServeTLS(l, "", "") }()
		s.logger.Info("spu serving over TLS", "addr", l.Addr().String(), "identity", s.tls.self.String(), "data_dir", s.cfg.DataDir, "id", s.cfg.ID, "control_plane", s.cfg.ControlPlane)
	} else {
		hs = h2c.NewServer(s.handler, ctx, s.logger, h2)
		go func() { errc <- hs.Serve(l) }()
		s.logger.Info("spu serving", "addr", l.Addr().String(), "data_dir", s.cfg.DataDir, "id", s.cfg.ID, "control_plane", s.cfg.ControlPlane)
	}
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
	if cerr := s.closeStorage(); cerr != nil {
		s.logger.Error("close replicas", "err", cerr)
	}
	s.logger.Info("spu stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// scheme is "https" with TLS, else "http".
func (s *Server) scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
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
		s.closeStorage()
		return fmt.Errorf("spu: listen: %w", err)
	}
	return s.Serve(ctx, l)
}
