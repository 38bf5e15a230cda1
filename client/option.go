package client

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/internal/batch"
)

// An Option configures a Client.
type Option interface {
	applyToClient(*clientConfig)
}

type clientOptionFunc func(*clientConfig)

func (f clientOptionFunc) applyToClient(c *clientConfig) { f(c) }

// WithSPU sets the URL of the SPU that serves every partition, such as
// "http://localhost:9010", bypassing the control plane. A URL without a
// scheme gets "http://".
func WithSPU(url string) Option {
	return clientOptionFunc(func(c *clientConfig) { c.spu = url })
}

// WithControlPlane sets the URL of the control plane, such as
// "http://127.0.0.1:9000". The client then learns where partitions live from
// the control plane's metadata stream, follows leaders as they move, and
// runs admin calls such as CreateTopic there. A URL without a scheme gets
// "http://".
func WithControlPlane(url string) Option {
	return clientOptionFunc(func(c *clientConfig) { c.controlPlane = url })
}

// WithHTTPClient sets the HTTP client used for every call. Produce and
// Consume stream over HTTP/2, so the client must speak it: h2c (HTTP/2
// without TLS) for http:// URLs. The default client does, with large
// HTTP/2 flow-control windows.
func WithHTTPClient(c *http.Client) Option {
	return clientOptionFunc(func(cfg *clientConfig) { cfg.httpClient = c })
}

// WithLogger sets the logger for events worth a look, such as a broken
// stream and its reconnection. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return clientOptionFunc(func(c *clientConfig) { c.logger = l })
}

// A ProducerOption configures a Producer.
type ProducerOption interface {
	applyToProducer(*producerConfig)
}

type producerOptionFunc func(*producerConfig)

func (f producerOptionFunc) applyToProducer(c *producerConfig) { f(c) }

// Producer defaults.
const (
	// DefaultLinger is how long a batch waits for more records.
	DefaultLinger = 5 * time.Millisecond
	// DefaultBatchBytes is the default largest batch, uncompressed.
	DefaultBatchBytes = 256 << 10
	// DefaultMaxBufferedBytes is the default bound of the memory held by
	// records not yet acknowledged.
	DefaultMaxBufferedBytes = 64 << 20
	// DefaultMaxInFlight is the default number of requests a producer
	// sends to one SPU before waiting for an answer.
	DefaultMaxInFlight = 16
	// DefaultDeliveryTimeout is the default time a batch may take to be
	// sent and acknowledged.
	DefaultDeliveryTimeout = 2 * time.Minute
)

// WithLinger sets how long a batch waits for more records before it is
// sent, after its first record; DefaultLinger by default. A full batch is
// sent at once. A longer linger makes larger batches under light load, at
// the cost of latency; 0 sends batches as soon as the producer can.
func WithLinger(d time.Duration) ProducerOption {
	return producerOptionFunc(func(c *producerConfig) { c.linger = d })
}

// WithBatchBytes sets the largest batch, in uncompressed bytes including
// its header; DefaultBatchBytes by default. It must not exceed the topic's
// maximum batch size, or the SPU refuses full batches. A record that does
// not fit in a batch of this size on its own is refused locally with
// ErrRecordTooLarge.
func WithBatchBytes(n int) ProducerOption {
	return producerOptionFunc(func(c *producerConfig) { c.batchBytes = n })
}

// WithCompression sets the codec that compresses each batch;
// CompressionNone by default.
func WithCompression(codec Compression) ProducerOption {
	return producerOptionFunc(func(c *producerConfig) { c.compression = codec })
}

// WithAcks sets when the SPU acknowledges a batch; AcksTopicDefault by
// default.
func WithAcks(a Acks) ProducerOption {
	return producerOptionFunc(func(c *producerConfig) { c.acks = a })
}

// WithPartitioner sets how records are assigned to partitions;
// HashPartitioner, the default, when p is nil.
func WithPartitioner(p Partitioner) ProducerOption {
	return producerOptionFunc(func(c *producerConfig) { c.partitioner = p })
}

// WithMaxBufferedBytes bounds the memory held by records produced but not
// yet acknowledged, counted as their encoded size;
// DefaultMaxBufferedBytes by default. Produce blocks while the bound is
// reached. It must be at least the batch size.
func WithMaxBufferedBytes(n int64) ProducerOption {
	return producerOptionFunc(func(c *producerConfig) { c.maxBufferedBytes = n })
}

// WithMaxInFlight sets how many requests the producer sends to one SPU
// without waiting for their answers; DefaultMaxInFlight by default.
func WithMaxInFlight(n int) ProducerOption {
	return producerOptionFunc(func(c *producerConfig) { c.maxInFlight = n })
}

// WithDeliveryTimeout bounds the time from when a batch is full (or its
// linger ends) to its acknowledgement, reconnections included;
// DefaultDeliveryTimeout by default. Records of a batch that exceeds it fail
// with ErrDeliveryTimeout. It also bounds how long Close waits.
func WithDeliveryTimeout(d time.Duration) ProducerOption {
	return producerOptionFunc(func(c *producerConfig) { c.deliveryTimeout = d })
}

// Compression is the codec of a batch. Batches are compressed as a whole by
// the producer and stored compressed; consumers decompress them.
type Compression int8

// The codecs. Their values are those of the batch format.
const (
	CompressionNone   Compression = 0
	CompressionGzip   Compression = 1
	CompressionSnappy Compression = 2
	CompressionLZ4    Compression = 3
	CompressionZstd   Compression = 4
)

// This stops compiling if the codecs' values drift from the batch format's.
var _ = [1]struct{}{}[CompressionNone-Compression(batch.None)+
	CompressionGzip-Compression(batch.Gzip)+
	CompressionSnappy-Compression(batch.Snappy)+
	CompressionLZ4-Compression(batch.LZ4)+
	CompressionZstd-Compression(batch.Zstd)]

// String returns the codec's name: none, gzip, snappy, lz4 or zstd.
func (c Compression) String() string { return batch.Compression(c).String() }

// ParseCompression returns the codec named s: none, gzip, snappy, lz4 or
// zstd. The empty string means none.
func ParseCompression(s string) (Compression, error) {
	c, err := batch.ParseCompression(s)
	if err != nil {
		return CompressionNone, fmt.Errorf("client: %w", err)
	}
	return Compression(c), nil
}

// Acks says when the SPU acknowledges a batch, which is when the producer
// calls the records' callbacks.
type Acks int8

// The acknowledgement levels.
const (
	// AcksTopicDefault uses the topic's durability setting.
	AcksTopicDefault Acks = iota
	// AcksWrite acknowledges once the SPU has written the batch (to the
	// page cache): fast; a machine crash can lose the last moments.
	AcksWrite
	// AcksFsync acknowledges once the SPU has fsynced the batch.
	// Concurrent requests share fsyncs.
	AcksFsync
)

// String returns "topic-default", "write" or "fsync".
func (a Acks) String() string {
	switch a {
	case AcksTopicDefault:
		return "topic-default"
	case AcksWrite:
		return "write"
	case AcksFsync:
		return "fsync"
	}
	return fmt.Sprintf("acks(%d)", int8(a))
}

func (a Acks) proto() dataplanev1.Acks {
	switch a {
	case AcksWrite:
		return dataplanev1.Acks_ACKS_WRITE
	case AcksFsync:
		return dataplanev1.Acks_ACKS_FSYNC
	}
	return dataplanev1.Acks_ACKS_UNSPECIFIED
}

// A ConsumeOption configures a Consumer.
type ConsumeOption interface {
	applyToConsumer(*consumeConfig)
}

type consumeOptionFunc func(*consumeConfig)

func (f consumeOptionFunc) applyToConsumer(c *consumeConfig) { f(c) }

// WithPartitions limits the consumer to these partitions; by default it
// reads every partition of the topic.
func WithPartitions(p ...int32) ConsumeOption {
	p = append([]int32(nil), p...)
	return consumeOptionFunc(func(c *consumeConfig) { c.partitions = p })
}

// WithStart sets where the consumer starts in each partition; Beginning by
// default.
func WithStart(o Offset) ConsumeOption {
	return consumeOptionFunc(func(c *consumeConfig) { c.start = o })
}

// WithEndOffset makes the consumer stop, in each partition, before offset
// n (exclusive). Once every partition has reached it, Next returns io.EOF.
// Without it or WithStopAtEnd, the consumer waits for new records forever.
func WithEndOffset(n int64) ConsumeOption {
	return consumeOptionFunc(func(c *consumeConfig) { c.end = n; c.hasEnd = true })
}

// WithStopAtEnd makes the consumer stop, in each partition, at the
// partition's end offset when Consume is called: it reads the records there
// are, then Next returns io.EOF, rather than waiting for new ones. With
// WithEndOffset too, the lower of the two ends applies.
func WithStopAtEnd() ConsumeOption {
	return consumeOptionFunc(func(c *consumeConfig) { c.stopAtEnd = true })
}

// WithMaxBytes sets the largest number of bytes of batches in one response
// of the SPU, and so in one NextBatch; 0, the default, lets the SPU choose
// (1 MiB). A batch larger than this still comes whole.
func WithMaxBytes(n int32) ConsumeOption {
	return consumeOptionFunc(func(c *consumeConfig) { c.maxBytes = n })
}

// WithSPUTLS sets the TLS configuration for https:// SPU URLs: RootCAs
// should hold only the cluster's CA (profile.Profile.ClusterCA), and
// Certificates or GetClientCertificate the client certificate the SPUs
// require. Records stream over HTTP/2 over TLS, with the same large
// flow-control windows as h2c. Without it (and WithHTTPClient), https://
// URLs use the system's roots and no client certificate.
func WithSPUTLS(c *tls.Config) Option {
	return clientOptionFunc(func(cfg *clientConfig) { cfg.spuTLS = c })
}

// WithControlPlaneTLS sets the TLS configuration for an https:// control
// plane URL: RootCAs should hold the control plane's root CA
// (profile.Profile.RootCA) and, to act on a cluster by certificate, the
// cluster's client certificate.
func WithControlPlaneTLS(c *tls.Config) Option {
	return clientOptionFunc(func(cfg *clientConfig) { cfg.cpTLS = c })
}

// WithToken makes every call to the control plane carry
// "Authorization: Bearer <token>", the token coming from ts at each call
// (cloud.Session is a TokenSource that refreshes its access token). Calls to
// SPUs never carry it: SPUs authenticate client certificates.
func WithToken(ts TokenSource) Option {
	return clientOptionFunc(func(cfg *clientConfig) { cfg.token = ts })
}
