package spu_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// benchSPU is an SPU holding topic "b" with partition 0, and an HTTP
// client of a member user (TLS) or anyone (h2c).
type benchSPU struct {
	url    string
	client func() *http.Client // a new client: a new connection
}

func startBenchSPU(b *testing.B, withTLS bool) benchSPU {
	b.Helper()
	if !withTLS {
		s := sputest.Start(b, spu.Config{})
		c := newClients(s.URL)
		if _, err := c.replicas.EnsureReplica(context.Background(), connect.NewRequest(&internalv1.EnsureReplicaRequest{Topic: "b", Partition: 0})); err != nil {
			b.Fatal(err)
		}
		return benchSPU{url: s.URL, client: sputest.HTTPClient}
	}
	p := newPKI(b)
	reg := startTLSRegistry(b, p)
	s := startTLSSPU(b, p, reg, 1)
	reg.send(b, 1, &internalv1.WatchReplicasResponse{Revision: 1, Replicas: desiredLedBy(1, "b", 0), Principals: acl("u-alice")})
	tc := p.cluster.ClientTLS(b, member(identity.User, "u-alice"))
	bs := benchSPU{url: s.URL, client: func() *http.Client { return sputest.TLSClient(tc) }}
	c := dataplanev1connect.NewProduceServiceClient(bs.client(), bs.url)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.ProduceOne(context.Background(), connect.NewRequest(&dataplanev1.ProduceOneRequest{Topic: "b", Batches: makeBatch(b, 0, "warm")}))
		if err == nil {
			return bs
		}
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchmarkProduce sends b.N batches of 1000 100-byte records on one
// Produce stream, pipelined, and waits for every acknowledgement.
func benchmarkProduce(b *testing.B, withTLS bool) {
	s := startBenchSPU(b, withTLS)
	c := dataplanev1connect.NewProduceServiceClient(s.client(), s.url)
	value := strings.Repeat("v", 100)
	values := make([]string, 1000)
	for i := range values {
		values[i] = value
	}
	batch := makeBatch(b, time.Now().UnixMilli(), values...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := c.Produce(ctx)
	acked := make(chan error, 1)
	b.SetBytes(int64(len(values) * len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		for range b.N {
			resp, err := stream.Receive()
			if err == nil && resp.ErrorCode != 0 {
				err = connect.NewError(connect.Code(resp.ErrorCode), nil)
			}
			if err != nil {
				acked <- err
				return
			}
		}
		acked <- nil
	}()
	for i := range b.N {
		if err := stream.Send(&dataplanev1.ProduceRequest{RequestId: uint64(i), Topic: "b", Batches: batch}); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-acked; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(values))/time.Since(start).Seconds(), "records/s")
	stream.CloseRequest()
	stream.CloseResponse()
}

// BenchmarkProduceTLS is produce throughput over TLS with a client
// certificate, authorized per request.
func BenchmarkProduceTLS(b *testing.B) { benchmarkProduce(b, true) }

// BenchmarkProduceH2C is BenchmarkProduceTLS without TLS.
func BenchmarkProduceH2C(b *testing.B) { benchmarkProduce(b, false) }

// BenchmarkHandshake is the cost of a new connection and one ProduceOne
// of a one-record batch: over TLS with a client certificate (full TLS 1.3
// handshake, ECDSA P-256, chain verification both ways) and over h2c.
func BenchmarkHandshake(b *testing.B) {
	for _, withTLS := range []bool{true, false} {
		name := "h2c"
		if withTLS {
			name = "tls"
		}
		b.Run(name, func(b *testing.B) {
			s := startBenchSPU(b, withTLS)
			batch := makeBatch(b, 0, "x")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				hc := s.client()
				c := dataplanev1connect.NewProduceServiceClient(hc, s.url)
				if _, err := c.ProduceOne(context.Background(), connect.NewRequest(&dataplanev1.ProduceOneRequest{Topic: "b", Batches: batch})); err != nil {
					b.Fatal(err)
				}
				hc.CloseIdleConnections()
			}
		})
	}
}
