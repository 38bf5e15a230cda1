// Package follower copies partitions from their leaders. For each replica
// this SPU follows, a fetch loop holds a Consume stream open to the leader
// SPU, starting at the follower's end offset, and writes every batch it
// receives with commitlog.Log.AppendReplicated, which keeps the leader's
// offsets and epochs. A failed stream is retried with backoff.
//
// This is the simplest correct replication: there is no high watermark, no
// in-sync set and no truncation to a common point. A follower whose log is
// ahead of its leader's, or whose end falls inside one of the leader's
// batches, has diverged: the loop logs it, discards the replica's whole log
// with commitlog.Log.Reset, and fetches everything again from offset 0.
//
// A follower whose diverged log happens to end exactly at a batch boundary
// of the leader's, at or below the leader's end, is not noticed: there is
// no check of leader epochs yet.
package follower

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/internal/h2c"
)

// ErrDiverged means the follower's log does not end at a batch boundary of
// the leader's: the leader sent a batch that begins below the follower's
// end offset and ends above it, or the follower's end offset is past the
// leader's.
var ErrDiverged = errors.New("follower: log diverged from the leader's")

// Config configures a Set.
type Config struct {
	// HTTPClient reaches the leaders. Default: an HTTP/2 client without
	// TLS (h2c) that pings idle connections to notice a lost leader.
	HTTPClient *http.Client
	// MaxBytes bounds one fetch response. Default 1 MiB.
	MaxBytes int32
	// MinBackoff and MaxBackoff bound the wait between attempts to reach
	// a leader. Defaults 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
}

// Target is a replica to follow and where its leader is.
type Target struct {
	Replica *replica.Replica
	// Leader is the leader's SPU id, Address its base URL.
	Leader  int32
	Address string
}

// Set runs one fetch loop per followed replica. It is safe for concurrent
// use; Close stops every loop and waits for it.
type Set struct {
	cfg    Config
	logger *slog.Logger

	mu     sync.Mutex // guards loops and closed
	loops  map[replica.Key]*loop
	closed bool
}

// loop is the fetch loop of one replica.
type loop struct {
	target Target
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns an empty Set.
func New(cfg Config, logger *slog.Logger) *Set {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = h2c.NewClient()
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 20
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	return &Set{cfg: cfg, logger: logger, loops: map[replica.Key]*loop{}}
}

// Update makes the running loops match targets: it stops, and waits for,
// the loops of replicas not in targets (now leaders, or removed) and of
// those whose leader changed, and starts the missing ones. After Update
// returns, no stopped loop writes to its replica any more.
func (s *Set) Update(targets []Target) {
	want := make(map[replica.Key]Target, len(targets))
	for _, t := range targets {
		want[t.Replica.Key] = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for k, l := range s.loops {
		if t, ok := want[k]; ok && t == l.target {
			continue
		}
		l.stop()
		delete(s.loops, k)
	}
	for k, t := range want {
		if _, ok := s.loops[k]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &loop{target: t, cancel: cancel, done: make(chan struct{})}
		s.loops[k] = l
		go func() {
			defer close(l.done)
			s.run(ctx, t)
		}()
	}
}

// Close stops every loop and waits for them. Later Updates do nothing.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for k, l := range s.loops {
		l.stop()
		delete(s.loops, k)
	}
}

func (l *loop) stop() {
	l.cancel()
	<-l.done
}

// run fetches from the leader until ctx ends, reconnecting with backoff.
func (s *Set) run(ctx context.Context, t Target) {
	r := t.Replica
	logger := s.logger.With("topic", r.Topic, "partition", r.Partition, "leader", t.Leader)
	logger.Info("following the leader", "address", t.Address, "end_offset", r.Log.EndOffset())
	client := dataplanev1connect.NewConsumeServiceClient(s.cfg.HTTPClient, t.Address, connect.WithReadMaxBytes(64<<20))
	backoff := s.cfg.MinBackoff
	for {
		progressed, err := s.fetch(ctx, client, t)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = s.cfg.MinBackoff
		}
		if errors.Is(err, ErrDiverged) {
			logger.Warn("the log diverged from the leader's; discarding it to fetch everything again",
				"start_offset", r.Log.StartOffset(), "end_offset", r.Log.EndOffset(), "err", err)
			if err := r.Log.Reset(); err != nil {
				logger.Error("could not reset the diverged log", "err", err)
			}
		} else {
			logger.Debug("fetch stream ended; retrying", "end_offset", r.Log.EndOffset(), "backoff", backoff, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// fetch holds one Consume stream to the leader from the follower's end
// offset and appends what arrives. It reports whether it wrote anything.
func (s *Set) fetch(ctx context.Context, client dataplanev1connect.ConsumeServiceClient, t Target) (progressed bool, err error) {
	if t.Address == "" {
		return false, errors.New("the leader's address is not known yet")
	}
	r := t.Replica
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic: r.Topic,
		Partitions: []*dataplanev1.PartitionConsume{{
			Partition: r.Partition,
			Start:     &dataplanev1.Offset{Position: &dataplanev1.Offset_Absolute{Absolute: r.Log.EndOffset()}},
		}},
		MaxBytes: s.cfg.MaxBytes,
	}))
	if err != nil {
		return false, err
	}
	defer stream.Close()
	for stream.Receive() {
		b, err := skipHeld(stream.Msg().Batches, r.Log.EndOffset())
		if err != nil {
			return progressed, err
		}
		if len(b) == 0 {
			continue
		}
		if _, err := r.Log.AppendReplicated(b); err != nil {
			return progressed, fmt.Errorf("append from the leader: %w", err)
		}
		progressed = true
	}
	err = stream.Err()
	if connect.CodeOf(err) == connect.CodeOutOfRange {
		if derr := s.checkAhead(ctx, client, t); derr != nil {
			return progressed, derr
		}
	}
	return progressed, err
}

// checkAhead asks the leader for its end offset after it refused the
// follower's end as out of range, and returns an ErrDiverged error if the
// follower's log is ahead of the leader's.
func (s *Set) checkAhead(ctx context.Context, client dataplanev1connect.ConsumeServiceClient, t Target) error {
	r := t.Replica
	resp, err := client.Offsets(ctx, connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: r.Topic, Partitions: []int32{r.Partition}}))
	if err != nil {
		return nil
	}
	for _, p := range resp.Msg.Partitions {
		if p.Partition != r.Partition {
			continue
		}
		if end := r.Log.EndOffset(); end > p.EndOffset {
			return fmt.Errorf("%w: the follower's end offset %d is past the leader's %d", ErrDiverged, end, p.EndOffset)
		}
	}
	return nil
}

// skipHeld drops the leading batches of b that end at or below end, which
// the follower holds already. A batch that begins below end and ends above
// it fails with ErrDiverged.
func skipHeld(b []byte, end int64) ([]byte, error) {
	for len(b) > 0 {
		h, err := batch.ParseHeader(b)
		if err != nil {
			return nil, fmt.Errorf("leader sent a bad batch: %w", err)
		}
		if h.NextOffset() <= end {
			if h.Size() > len(b) {
				return nil, fmt.Errorf("leader sent a bad batch: %w", batch.ErrTruncated)
			}
			b = b[h.Size():]
			continue
		}
		if h.BaseOffset < end {
			return nil, fmt.Errorf("%w: the leader's batch %d-%d spans the follower's end offset %d", ErrDiverged, h.BaseOffset, h.LastOffset(), end)
		}
		return b, nil
	}
	return b, nil
}
