// Package server runs Spate's control plane: the TopicService and
// MetadataService that users and clients call, and the RegistryService that
// SPUs join, all served over Connect (gRPC, gRPC-Web and Connect protocols,
// HTTP/1.1 and h2c on one port), with Prometheus metrics at /metrics,
// liveness at /healthz and readiness at /readyz.
//
// All metadata lives in etcd (package store), embedded as a single member
// by default or an external cluster with Config.EtcdEndpoints. Several
// control-plane replicas may share one etcd: every replica serves every
// API and stream, and the one that wins the etcd election runs the
// reconciler that places partitions and fails leaders over. Restarting any
// of them loses nothing.
//
// The CLI's `spate control-plane serve`, `spate local up` and the tests
// start a control plane through New and Serve (or Run).
package server

import (
	"context"

	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/auth/token"
	"github.com/spatehq/spate/control-plane/internal/embedetcd"
	"github.com/spatehq/spate/control-plane/internal/oauth"
	"github.com/spatehq/spate/control-plane/internal/provision"
	"github.com/spatehq/spate/control-plane/internal/store"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
	"github.com/spatehq/spate/control-plane/internal/tier"
	"github.com/spatehq/spate/internal/h2c"
)

// Provisioner runs the SPUs of clusters; see Config.Provisioner. It is the
// interface of the control plane's provision package, named here so that
// code outside the control plane can implement and pass one.
type Provisioner = provision.Provisioner

// ClusterSpec is what the control plane asks a Provisioner to run.
type ClusterSpec = provision.ClusterSpec

// SPUState is one provisioned SPU as a Provisioner reports it.
type SPUState = provision.SPUState

// DefaultAddr is where the control plane listens unless told otherwise.
const DefaultAddr = "127.0.0.1:9000"

// Config configures a control plane. Zero fields take the defaults given in
// their comments.
type Config struct {
	// Addr is the address to listen on, for Run. Default 127.0.0.1:9000.
	Addr string
	// DataDir holds the embedded etcd's data (in DataDir/etcd). Required
	// unless EtcdDir or EtcdEndpoints is set.
	DataDir string
	// EtcdDir is the embedded etcd's data directory. Default DataDir/etcd.
	EtcdDir string
	// EtcdClientAddr and EtcdPeerAddr are where the embedded etcd listens,
	// host:port on 127.0.0.1; empty picks free ports.
	EtcdClientAddr string
	EtcdPeerAddr   string
	// EtcdEndpoints are the URLs of an external etcd cluster to use instead
	// of the embedded one, as several control-plane replicas must.
	EtcdEndpoints []string

	// LivenessTimeout is how long an SPU stays online without a heartbeat.
	// It is the TTL of the SPU's etcd lease, in whole seconds, and etcd
	// raises TTLs below its minimum (about 2 s). Default 5 s.
	LivenessTimeout time.Duration
	// ElectionTTL is how long a control-plane replica that died without
	// resigning keeps leading the reconcilers. Default 5 s.
	ElectionTTL time.Duration

	// BlobDir is the folder of the control plane's blob store
	// (objstore/local), which keeps the tenants' SmartModules. Default
	// DataDir/blobs. Replicas that share an etcd must share it too.
	BlobDir string

	// DefaultTopicSettings fill the settings a CreateTopic leaves unset.
	DefaultTopicSettings TopicDefaults
	// Tier is where clusters keep tiered storage: by default a folder per
	// cluster, DataDir/tier/<cluster>; see TierConfig.
	Tier TierConfig

	// LocalSPUs, when positive, asks Provisioner for a cluster named
	// "local" of that many SPUs once the control plane serves.
	LocalSPUs int
	// Provisioner runs SPUs; nil runs none. Serve closes it on shutdown.
	Provisioner Provisioner
	// AdvertiseURL is the URL SPUs use to reach this control plane.
	// Default http:// followed by the listener's address.
	AdvertiseURL string

	// ShutdownTimeout bounds a graceful stop: streams end at once, unary
	// calls get this long. Default 2 s.
	ShutdownTimeout time.Duration

	// Insecure serves plaintext HTTP/2 (h2c) without authentication, with
	// one cluster, "local", whose SPUs run without TLS: for development
	// only. By default the control plane serves TLS, authenticates every
	// call and runs clusters for tenants.
	Insecure bool
	// TLSHosts are the DNS names and IP addresses of the control plane's
	// server certificate. Default localhost and 127.0.0.1.
	TLSHosts []string
	// OperatorKeyFile is where the operator's API key is written at the
	// first start (mode 0600), when the file does not exist. Default
	// DataDir/operator.key; with an external etcd and no DataDir, no key
	// is written.
	OperatorKeyFile string
	// ClientCertValidity is the life of the client certificates issued.
	// Default 12 h.
	ClientCertValidity time.Duration
	// AccessTokenTTL is the life of access tokens. Default 15 min.
	AccessTokenTTL time.Duration
	// ProvisionTimeout bounds how long a new cluster's SPUs get to
	// register before the cluster is marked failed. Default 2 min.
	ProvisionTimeout time.Duration
	// KeyRotation is how often the token signing key is replaced; old
	// keys keep verifying until the tokens they signed expire. Default
	// 24 h.
	KeyRotation time.Duration
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	if len(c.EtcdEndpoints) == 0 && c.DataDir == "" && c.EtcdDir == "" {
		return errors.New("control plane: a data directory is required (--data-dir), or an external etcd (--etcd-endpoints)")
	}
	if len(c.EtcdEndpoints) > 0 && (c.EtcdDir != "" || c.EtcdClientAddr != "" || c.EtcdPeerAddr != "") {
		return errors.New("control plane: --etcd-endpoints uses an external etcd; drop the embedded etcd's --etcd-dir and addresses")
	}
	for _, e := range c.EtcdEndpoints {
		if _, err := url.Parse(e); err != nil || e == "" {
			return fmt.Errorf("control plane: etcd endpoint %q is not a URL", e)
		}
	}
	if c.LivenessTimeout < 0 || (c.LivenessTimeout > 0 && c.LivenessTimeout < time.Second) {
		return fmt.Errorf("control plane: liveness timeout %v: must be at least 1s", c.LivenessTimeout)
	}
	if c.ElectionTTL < 0 || (c.ElectionTTL > 0 && c.ElectionTTL < time.Second) {
		return fmt.Errorf("control plane: election TTL %v: must be at least 1s", c.ElectionTTL)
	}
	if c.LocalSPUs < 0 {
		return fmt.Errorf("control plane: local SPUs %d: must not be negative", c.LocalSPUs)
	}
	if c.LocalSPUs > 0 && c.Provisioner == nil {
		return errors.New("control plane: local SPUs need a provisioner")
	}
	if c.LocalSPUs > 0 && !c.Insecure {
		return errors.New("control plane: local SPUs are for --insecure development; otherwise create clusters with `spate cloud cluster create`")
	}
	if c.Insecure && strings.HasPrefix(c.AdvertiseURL, "https://") {
		return errors.New("control plane: an insecure control plane serves http://, not https://")
	}
	if !c.Insecure && strings.HasPrefix(c.AdvertiseURL, "http://") {
		return errors.New("control plane: the control plane serves https:// (or pass --insecure for development)")
	}
	if c.AdvertiseURL != "" {
		u, err := url.Parse(c.AdvertiseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("control plane: advertise URL %q: use http://host:port or https://host:port", c.AdvertiseURL)
		}
	}
	if err := validateSettings(c.DefaultTopicSettings.settings()); err != nil {
		return fmt.Errorf("control plane: default topic settings: %w", err)
	}
	if err := c.Tier.Validate(); err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.EtcdDir == "" && len(c.EtcdEndpoints) == 0 {
		c.EtcdDir = filepath.Join(c.DataDir, "etcd")
	}
	if c.LivenessTimeout == 0 {
		c.LivenessTimeout = 5 * time.Second
	}
	if c.ElectionTTL == 0 {
		c.ElectionTTL = 5 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 2 * time.Second
	}
	if len(c.TLSHosts) == 0 {
		c.TLSHosts = []string{"localhost", "127.0.0.1"}
	}
	if c.OperatorKeyFile == "" && c.DataDir != "" {
		c.OperatorKeyFile = filepath.Join(c.DataDir, "operator.key")
	}
	if c.ClientCertValidity == 0 {
		c.ClientCertValidity = DefaultClientCertValidity
	}
	if c.AccessTokenTTL == 0 {
		c.AccessTokenTTL = 15 * time.Minute
	}
	if c.KeyRotation == 0 {
		c.KeyRotation = 24 * time.Hour
	}
	if c.ProvisionTimeout == 0 {
		c.ProvisionTimeout = 2 * time.Minute
	}
	if !c.Tier.S3() && c.Tier.Dir == "" && c.DataDir != "" {
		c.Tier.Dir = filepath.Join(c.DataDir, "tier")
	}
	return c
}

// Server is a control-plane replica.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	etcd    *embedetcd.Etcd // nil with an external etcd
	client  *clientv3.Client
	handler http.Handler

	// metas are the clusters this replica follows.
	metas metas
	// clustersChanged fires when a cluster record changes.
	clustersChanged signal
	// principals caches each tenant's principals for the SPUs.
	principals principalCache
	// tier prepares and cleans up the clusters' object stores.
	tier *tier.Manager

	// The cloud: absent on an insecure control plane.
	tenancy  *tenancy.Store
	pki      *pki
	keys     *token.Keyring
	verifier *token.Verifier
	// oauthServer serves the OAuth endpoints and checks API keys; set in
	// Serve before any request is served.
	oauthServer *oauth.Server
	oauth       atomic.Pointer[http.Handler]

	metrics struct {
		refused *prometheus.CounterVec
	}

	ready     chan struct{}
	readyOnce sync.Once
	leader    atomic.Bool
	served    atomic.Bool
}

// New starts the embedded etcd (unless cfg names an external one) and
// connects to it. Serve then serves and, when it returns, releases both.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, logger: logger, ready: make(chan struct{})}
	endpoints := cfg.EtcdEndpoints
	if len(endpoints) == 0 {
		e, err := embedetcd.Start(context.Background(), embedetcd.Config{Dir: cfg.EtcdDir, ClientAddr: cfg.EtcdClientAddr, PeerAddr: cfg.EtcdPeerAddr})
		if err != nil {
			return nil, fmt.Errorf("control plane: %w", err)
		}
		s.etcd = e
		endpoints = []string{e.Endpoint()}
		logger.Info("embedded etcd started", "endpoint", e.Endpoint())
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		s.closeEtcd()
		return nil, fmt.Errorf("control plane: connect to etcd: %w", err)
	}
	s.client = client
	if s.tier, err = tier.New(cfg.Tier, logger.With("component", "tier")); err != nil {
		client.Close()
		s.closeEtcd()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	s.metas.byID = map[string]*clusterMeta{}
	s.metas.changed = make(chan struct{})
	if !cfg.Insecure {
		if err := s.initCloud(); err != nil {
			client.Close()
			s.closeEtcd()
			return nil, fmt.Errorf("control plane: %w", err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.registerMetrics(reg)
	opts := []connect.HandlerOption{connect.WithReadMaxBytes(4 << 20)}
	mux := http.NewServeMux()
	mux.Handle(controlplanev1connect.NewTopicServiceHandler(&topicService{s: s}, opts...))
	mux.Handle(controlplanev1connect.NewMetadataServiceHandler(&metadataService{s: s}, opts...))
	mux.Handle(internalv1connect.NewRegistryServiceHandler(&registryService{s: s}, opts...))
	mux.Handle(s.smartModuleHandler())
	if !cfg.Insecure {
		mux.Handle(controlplanev1connect.NewTenantServiceHandler(&tenantService{s: s}, opts...))
		mux.Handle(controlplanev1connect.NewClusterServiceHandler(&clusterService{s: s}, opts...))
		mux.Handle(controlplanev1connect.NewAuthServiceHandler(&authService{s: s}, opts...))
		oauth := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := s.oauth.Load()
			if h == nil {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			(*h).ServeHTTP(w, r)
		})
		for _, p := range []string{"/oauth/", "/device", "/device/", "/.well-known/jwks.json"} {
			mux.Handle(p, oauth)
		}
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-s.ready:
			w.Write([]byte("ok\n"))
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	})
	s.handler = mux
	if !cfg.Insecure {
		s.handler = s.authenticate(mux)
	}
	return s, nil
}

func (s *Server) registerMetrics(reg *prometheus.Registry) {
	s.metrics.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spate_controlplane_requests_refused_total",
		Help: "Requests refused, by reason: unauthenticated, permission_denied, hidden (another principal's object, answered as not found).",
	}, []string{"reason"})
	reg.MustRegister(s.metrics.refused)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spate_controlplane_leader",
		Help: "1 while this control-plane replica leads the reconcilers.",
	}, func() float64 {
		if s.leader.Load() {
			return 1
		}
		return 0
	}))
	count := func(f func(*store.State) int) func() float64 {
		return func() float64 {
			var n int
			all, _ := s.allMetas()
			for _, m := range all {
				m.cache.Read(func(st *store.State) { n += f(st) })
			}
			return float64(n)
		}
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spate_controlplane_topics",
		Help: "Topics in the metadata store.",
	}, count(func(st *store.State) int { return len(st.Topics) })))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spate_controlplane_spus_online",
		Help: "SPUs whose liveness lease is held.",
	}, count(func(st *store.State) int { return len(st.SPUs) })))
}

// Handler returns the control plane's HTTP handler, for embedding and tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Ready is closed once Serve accepts connections and the metadata is
// loaded; /readyz answers 200 from then on.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Leader reports whether this replica currently leads the reconcilers.
func (s *Server) Leader() bool { return s.leader.Load() }

// EtcdEndpoint is the embedded etcd's client URL, or "" with an external
// etcd. Other control-plane replicas may use it as their EtcdEndpoints.
func (s *Server) EtcdEndpoint() string {
	if s.etcd == nil {
		return ""
	}
	return s.etcd.Endpoint()
}

func (s *Server) heartbeatInterval() time.Duration {
	return min(time.Second, s.cfg.LivenessTimeout/3)
}

func (s *Server) closeEtcd() {
	if s.etcd != nil {
		s.etcd.Close()
	}
}

// Serve serves on l until ctx ends, then stops gracefully: streams end,
// the replica resigns leadership, the provisioner's SPUs are stopped, and
// the etcd client and embedded etcd are closed. Serve may be called once.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.served.Swap(true) {
		return errors.New("control plane: Serve called twice")
	}
	advertise := s.cfg.AdvertiseURL
	if advertise == "" {
		scheme := "https://"
		if s.cfg.Insecure {
			scheme = "http://"
		}
		advertise = scheme + l.Addr().String()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.metas.mu.Lock()
	s.metas.ctx = ctx
	s.metas.mu.Unlock()
	defer s.metas.wg.Wait()

	var hs *http.Server
	var wg sync.WaitGroup
	defer wg.Wait()
	var caches []*store.Cache
	if s.cfg.Insecure {
		hs = h2c.NewServer(s.handler, ctx, s.logger, nil)
		caches = append(caches, s.meta(LocalCluster).cache)
	} else {
		if err := s.loadKeys(ctx); err != nil {
			return fmt.Errorf("control plane: %w", err)
		}
		h := s.newOAuth(advertise)
		s.oauth.Store(&h)
		hs = s.tlsServer(ctx)
		wg.Go(func() { s.followKeys(ctx) })
		wg.Go(func() { s.followClusters(ctx) })
		wg.Go(func() { s.followPrincipals(ctx) })
	}
	wg.Go(func() { s.lead(ctx, advertise) })
	errc := make(chan error, 1)
	go func() {
		if s.cfg.Insecure {
			errc <- hs.Serve(l)
		} else {
			errc <- hs.ServeTLS(l, "", "")
		}
	}()
	s.logger.Info("control plane serving", "addr", l.Addr().String(), "advertise", advertise, "insecure", s.cfg.Insecure)

	wg.Go(func() {
		for _, c := range caches {
			select {
			case <-c.Ready():
			case <-ctx.Done():
				return
			}
		}
		s.readyOnce.Do(func() { close(s.ready) })
		s.logger.Info("control plane ready")
		if s.cfg.Provisioner != nil && s.cfg.LocalSPUs > 0 {
			s.provision(ctx, advertise)
		}
	})

	var etcdErr <-chan error
	if s.etcd != nil {
		etcdErr = s.etcd.Err()
	}
	var err error
	select {
	case err = <-errc:
	case err = <-etcdErr:
		err = fmt.Errorf("control plane: embedded etcd: %w", err)
	case <-ctx.Done():
	}
	cancel()
	h2c.Shutdown(hs, s.cfg.ShutdownTimeout)
	if serr := <-errc; err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	wg.Wait()
	s.metas.wg.Wait()
	if s.cfg.Provisioner != nil {
		if perr := s.cfg.Provisioner.Close(); perr != nil {
			s.logger.Error("close provisioner", "err", perr)
		}
	}
	s.client.Close()
	s.closeEtcd()
	s.logger.Info("control plane stopped")
	return err
}

// provision asks the provisioner for the local cluster of an insecure
// control plane until it agrees.
func (s *Server) provision(ctx context.Context, advertise string) {
	spec := ClusterSpec{Name: LocalCluster, SPUs: s.cfg.LocalSPUs, ControlPlane: advertise}
	for delay := 500 * time.Millisecond; ; delay = min(2*delay, 30*time.Second) {
		var err error
		spec.Tier, err = s.tier.Prepare(ctx, tier.Cluster{ID: LocalCluster})
		if err == nil {
			err = s.cfg.Provisioner.Ensure(ctx, spec)
		}
		if err == nil {
			s.logger.Info("spus provisioned", "cluster", spec.Name, "spus", spec.SPUs)
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.logger.Error("provision spus", "cluster", spec.Name, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// lead campaigns for leadership and runs the reconciler while it leads,
// until ctx ends; it then resigns, so that another replica takes over at
// once.
func (s *Server) lead(ctx context.Context, id string) {
	host, _ := os.Hostname()
	value := fmt.Sprintf("%s pid %d %s", host, os.Getpid(), id)
	ttl := int(s.cfg.ElectionTTL.Round(time.Second) / time.Second)
	for ctx.Err() == nil {
		// The session keeps its own context so that Close can revoke the
		// lease after ctx ended.
		sess, err := concurrency.NewSession(s.client, concurrency.WithTTL(max(ttl, 1)))
		if err != nil {
			s.logger.Warn("election session", "err", err)
			store.Sleep(ctx, time.Second)
			continue
		}
		el := concurrency.NewElection(sess, store.LeaderPrefix)
		if err := el.Campaign(ctx, value); err != nil {
			sess.Close()
			if ctx.Err() == nil {
				s.logger.Warn("election campaign", "err", err)
				store.Sleep(ctx, time.Second)
			}
			continue
		}
		s.leader.Store(true)
		s.logger.Info("leading the reconcilers", "id", value)
		lctx, lcancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
				s.logger.Warn("election session lost")
			case <-lctx.Done():
			}
			lcancel()
		}()
		guard := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev())}
		var lwg sync.WaitGroup
		lwg.Go(func() { s.reconcileAll(lctx, guard) })
		if !s.cfg.Insecure {
			lwg.Go(func() { s.runLifecycle(lctx, id) })
			lwg.Go(func() { s.rotateKeys(lctx) })
		}
		lwg.Wait()
		lcancel()
		s.leader.Store(false)
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		el.Resign(rctx)
		rcancel()
		sess.Close()
		s.logger.Info("stopped leading the reconcilers")
	}
}

// Run starts a control plane listening on cfg.Addr and serves until ctx
// ends.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := New(cfg, logger)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		s.client.Close()
		s.closeEtcd()
		return fmt.Errorf("control plane: listen: %w", err)
	}
	return s.Serve(ctx, l)
}
