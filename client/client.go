package client

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
)

// maxMessageBytes bounds every message sent or received, well above the
// largest batch a topic accepts.
const maxMessageBytes = 64 << 20

// Client is a connection to a Spate cluster. It makes producers and
// consumers and runs admin calls. A Client is safe for concurrent use; make
// one and share it.
type Client struct {
	httpClient connect.HTTPClient // to the SPUs
	cpHTTP     connect.HTTPClient // to the control plane
	ownHTTP    []*http.Client     // the default clients, closed by Close; none if the caller's
	logger     *slog.Logger
	resolver   resolver
	connectOps []connect.ClientOption
	cpOps      []connect.ClientOption // connectOps and, with a token, the bearer interceptor

	// The control plane's services; nil without WithControlPlane.
	controlPlane string
	topics       controlplanev1connect.TopicServiceClient
	metadata     controlplanev1connect.MetadataServiceClient

	mu   sync.Mutex          // guards spus
	spus map[string]*spuConn // by endpoint URL
}

type clientConfig struct {
	spu          string
	controlPlane string
	httpClient   *http.Client
	logger       *slog.Logger
	spuTLS       *tls.Config
	cpTLS        *tls.Config
	token        TokenSource
}

// New returns a Client configured by opts: WithControlPlane, to follow a
// cluster, or WithSPU, to talk to one SPU that holds every partition. With
// both, admin calls go to the control plane and records to the SPU.
// New does no I/O: an unreachable server shows in the first call.
func New(opts ...Option) (*Client, error) {
	var cfg clientConfig
	for _, o := range opts {
		o.applyToClient(&cfg)
	}
	if cfg.spu == "" && cfg.controlPlane == "" {
		return nil, errors.New("client: no control plane or SPU URL: pass WithControlPlane(\"http://host:port\") or WithSPU(\"http://host:port\")")
	}
	var spu, cp string
	if cfg.spu != "" {
		spu = normalizeURL(cfg.spu)
		if !validURL(spu) {
			return nil, fmt.Errorf("client: SPU URL %q: use http://host:port (or https://)", cfg.spu)
		}
	}
	if cfg.controlPlane != "" {
		cp = normalizeURL(cfg.controlPlane)
		if !validURL(cp) {
			return nil, fmt.Errorf("client: control plane URL %q: use http://host:port (or https://)", cfg.controlPlane)
		}
	}
	c := &Client{
		logger: cfg.logger,
		spus:   make(map[string]*spuConn),
		connectOps: []connect.ClientOption{
			connect.WithReadMaxBytes(maxMessageBytes),
			connect.WithSendMaxBytes(maxMessageBytes),
			// Batches are compressed already, by the producer's codec.
			connect.WithAcceptCompression("gzip", nil, nil),
		},
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.httpClient != nil:
		if cfg.spuTLS != nil || cfg.cpTLS != nil {
			return nil, errors.New("client: WithHTTPClient and WithSPUTLS/WithControlPlaneTLS exclude each other: configure TLS in your HTTP client's transport")
		}
		c.httpClient, c.cpHTTP = cfg.httpClient, cfg.httpClient
	case cfg.spuTLS == nil && cfg.cpTLS == nil:
		h := defaultHTTPClient(nil)
		c.ownHTTP = []*http.Client{h}
		c.httpClient, c.cpHTTP = h, h
	default:
		spuHTTP, cpHTTP := defaultHTTPClient(cfg.spuTLS), defaultHTTPClient(cfg.cpTLS)
		c.ownHTTP = []*http.Client{spuHTTP, cpHTTP}
		c.httpClient, c.cpHTTP = spuHTTP, cpHTTP
	}
	c.cpOps = c.connectOps
	if cfg.token != nil {
		c.cpOps = append(slices.Clip(c.connectOps), connect.WithInterceptors(bearerInterceptor{cfg.token}))
	}
	if cp != "" {
		c.controlPlane = cp
		c.topics = controlplanev1connect.NewTopicServiceClient(c.cpHTTP, cp, c.cpOps...)
		c.metadata = controlplanev1connect.NewMetadataServiceClient(c.cpHTTP, cp, c.cpOps...)
	}
	if spu != "" {
		c.resolver = &staticResolver{client: c, endpoint: spu}
	} else {
		c.resolver = newMetadataResolver(c, cp)
	}
	return c, nil
}

// normalizeURL adds "http://" to a URL without a scheme and drops trailing
// slashes.
func normalizeURL(u string) string {
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return strings.TrimRight(u, "/")
}

// validURL reports whether u is an http or https URL with a host.
func validURL(u string) bool {
	pu, err := url.Parse(u)
	return err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != ""
}

// Close stops the client's metadata watch and releases the idle
// connections of its default HTTP client. Close producers and consumers
// first. It returns nil; the error is there
// for future use.
func (c *Client) Close() error {
	if r, ok := c.resolver.(*metadataResolver); ok {
		r.stop()
	}
	for _, h := range c.ownHTTP {
		h.CloseIdleConnections()
	}
	return nil
}

// defaultHTTPClient returns an HTTP client that speaks HTTP/2 without TLS
// (h2c, with prior knowledge) to http:// URLs and HTTP/2 over TLS, with
// tlsConfig (nil for the system's roots and no client certificate), to
// https:// ones, with flow-control windows large enough for streams of
// batches.
func defaultHTTPClient(tlsConfig *tls.Config) *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
		if tlsConfig.MinVersion == 0 {
			tlsConfig.MinVersion = tls.VersionTLS12
		}
	}
	return &http.Client{Transport: &http.Transport{
		Protocols:         &p,
		TLSClientConfig:   tlsConfig,
		ForceAttemptHTTP2: true,
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerConnection: 64 << 20,
			MaxReceiveBufferPerStream:     16 << 20,
			MaxReadFrameSize:              1 << 20,
			// Find dead connections, so that a stream breaks and
			// reconnects instead of hanging.
			SendPingTimeout: 15 * time.Second,
			PingTimeout:     10 * time.Second,
		},
		IdleConnTimeout: 90 * time.Second,
	}}
}

// spuConn holds the Connect clients of one SPU.
type spuConn struct {
	url        string
	produce    dataplanev1connect.ProduceServiceClient
	consume    dataplanev1connect.ConsumeServiceClient
	partitions dataplanev1connect.PartitionServiceClient
	replicas   internalv1connect.ReplicaServiceClient
}

// spu returns the clients of the SPU at url, making them on first use.
func (c *Client) spu(url string) *spuConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.spus[url]
	if s == nil {
		s = &spuConn{
			url:        url,
			produce:    dataplanev1connect.NewProduceServiceClient(c.httpClient, url, c.connectOps...),
			consume:    dataplanev1connect.NewConsumeServiceClient(c.httpClient, url, c.connectOps...),
			partitions: dataplanev1connect.NewPartitionServiceClient(c.httpClient, url, c.connectOps...),
			replicas:   internalv1connect.NewReplicaServiceClient(c.httpClient, url, c.connectOps...),
		}
		c.spus[url] = s
	}
	return s
}

// resolver tells where partitions live. Its methods are safe for
// concurrent use. The staticResolver places every partition on one SPU;
// the metadataResolver follows the control plane's metadata.
type resolver interface {
	// partitions returns the partitions of topic, sorted by number, each
	// with the URL of the SPU that leads it. It returns an empty slice,
	// not an error, when the topic has no partitions.
	partitions(ctx context.Context, topic string) ([]partitionLeader, error)
	// leader returns the URL of the SPU that leads, or is to hold, a
	// partition.
	leader(ctx context.Context, topic string, partition int32) (string, error)
	// endpoints returns the URLs of every SPU, for calls that ask them all.
	endpoints(ctx context.Context) ([]string, error)
}

// leaderWatcher is implemented by resolvers whose leaders change, so that
// producers and consumers move to a new leader.
type leaderWatcher interface {
	// changes returns a channel closed at the next change of placement.
	changes() <-chan struct{}
	// currentLeader returns the leader URL known now, "" when none.
	currentLeader(topic string, partition int32) string
}

// partitionLeader is a partition and the URL of its leader.
type partitionLeader struct {
	partition int32
	leader    string
}

// staticResolver knows one SPU, which holds every partition.
type staticResolver struct {
	client   *Client
	endpoint string
}

var _ resolver = (*staticResolver)(nil)

func (r *staticResolver) partitions(ctx context.Context, topic string) ([]partitionLeader, error) {
	resp, err := r.client.spu(r.endpoint).partitions.ListPartitions(ctx,
		connect.NewRequest(&dataplanev1.ListPartitionsRequest{Topic: topic}))
	if err != nil {
		return nil, fmt.Errorf("client: list partitions of topic %q: %w", topic, err)
	}
	var out []partitionLeader
	for _, p := range resp.Msg.GetPartitions() {
		if p.GetTopic() == topic {
			out = append(out, partitionLeader{partition: p.GetPartition(), leader: r.endpoint})
		}
	}
	slices.SortFunc(out, func(a, b partitionLeader) int { return cmp.Compare(a.partition, b.partition) })
	out = slices.CompactFunc(out, func(a, b partitionLeader) bool { return a.partition == b.partition })
	return out, nil
}

func (r *staticResolver) leader(context.Context, string, int32) (string, error) {
	return r.endpoint, nil
}

func (r *staticResolver) endpoints(context.Context) ([]string, error) {
	return []string{r.endpoint}, nil
}

// topicPartitions returns the partitions of topic, or a NotFound error that
// says what to do when it has none.
func (c *Client) topicPartitions(ctx context.Context, topic string) ([]partitionLeader, error) {
	if topic == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("client: empty topic name"))
	}
	parts, err := c.resolver.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return nil, connect.NewError(connect.CodeNotFound,
			fmt.Errorf("client: topic %q has no partitions: create the topic first (or, without a control plane, Client.EnsurePartition)", topic))
	}
	return parts, nil
}

// backoff is an exponential backoff with jitter between min and max.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

// wait sleeps for the next backoff step or until ctx is done, and reports
// whether ctx is still live.
func (b *backoff) wait(ctx context.Context) bool {
	if b.next < b.min {
		b.next = b.min
	}
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(b.next*2, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// reset makes the next wait short again, after a success.
func (b *backoff) reset() { b.next = 0 }
