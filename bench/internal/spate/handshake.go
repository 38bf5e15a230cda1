package spate

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/bench/internal/proc"
	"github.com/spatehq/spate/bench/internal/scenario"
	"github.com/spatehq/spate/internal/batch"
)

// handshakeWarmup connections are made before the measured ones.
const handshakeWarmup = 20

// handshake opens sc.Connections connections one after the other, each on
// a new HTTP client so that nothing is reused (no connection, no TLS
// session ticket), and completes one ProduceOne of a one-record batch on
// each. A sample is the time from the call to its response: TCP connect,
// the TLS 1.3 handshake with client certificates (mTLS) or none (h2c), the
// HTTP/2 preface and settings, and the request. It also reports the CPU
// time per connection of this process (the client) and of the SPU.
func (s *System) handshake(ctx context.Context, sc scenario.Scenario, r *scenario.Result) error {
	topic := sc.Topic()
	if err := s.createTopic(ctx, topic, 1); err != nil {
		return err
	}
	b := batch.NewBuilder(batch.None)
	b.Append(batch.Record{Value: []byte("x")})
	records, err := b.Build()
	if err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	req := &dataplanev1.ProduceOneRequest{Topic: topic, Partition: 0, Batches: records, Acks: dataplanev1.Acks_ACKS_WRITE}
	how := "h2c (HTTP/2 over cleartext TCP)"
	if s.cluster != nil {
		how = "HTTP/2 over TLS 1.3 with the user's client certificate (ECDSA P-256 chains both ways, the SDK's TLS configuration from the profile)"
	}
	r.Settings = fmt.Sprintf("%d connections one after another, each a new HTTP client (%s) making one ProduceOne of a one-record batch, acks write, then closing; %d warm-up connections first",
		sc.Connections, how, handshakeWarmup)

	one := func() (time.Duration, error) {
		hc := s.newHTTP()
		defer hc.CloseIdleConnections()
		c := dataplanev1connect.NewProduceServiceClient(hc, s.spuURL)
		start := time.Now()
		_, err := c.ProduceOne(ctx, connect.NewRequest(req))
		return time.Since(start), err
	}
	for range handshakeWarmup {
		if _, err := one(); err != nil {
			return fmt.Errorf("spate: warm-up ProduceOne: %w", err)
		}
	}
	pid := s.ServerPID()
	clientCPU0, err := proc.SelfCPUTime()
	if err != nil {
		return err
	}
	serverCPU0, err := proc.CPUTime(pid)
	if err != nil {
		return err
	}
	samples := make([]time.Duration, 0, sc.Connections)
	start := time.Now()
	for range sc.Connections {
		d, err := one()
		if err != nil {
			return fmt.Errorf("spate: ProduceOne on connection %d: %w", len(samples)+1, err)
		}
		samples = append(samples, d)
	}
	elapsed := time.Since(start)
	clientCPU1, err := proc.SelfCPUTime()
	if err != nil {
		return err
	}
	serverCPU1, err := proc.CPUTime(pid)
	if err != nil {
		return err
	}
	n := float64(len(samples))
	r.SetThroughput(int64(len(samples)), sc.RecordBytes, elapsed)
	r.SetLatencies(samples)
	r.ClientCPUMs = roundMs(float64(clientCPU1-clientCPU0) / 1e6 / n)
	r.ServerCPUMs = roundMs(float64(serverCPU1-serverCPU0) / 1e6 / n)
	return nil
}

func roundMs(ms float64) float64 { return float64(int64(ms*1000+0.5)) / 1000 }
