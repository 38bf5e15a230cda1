// Package agent joins an SPU to the control plane. It holds the
// RegistryService.WatchReplicas stream open, applies each desired replica
// set it receives to the SPU's replica.Manager, and sends a Heartbeat with
// the status of every replica once a second. Replicas led by another SPU
// are followers: the agent marks them so (produce is refused) and runs a
// fetch loop for each (package follower) while they follow.
//
// The control plane may go away at any time: the agent reconnects with
// backoff while the SPU keeps serving the replicas it holds. As a guard
// against wiping data on a control-plane bug (or a control plane started on
// an empty store), an empty desired set at revision 0 is ignored until the
// agent has received a non-empty set.
//
// Heartbeats carry, per replica, the local log's offsets and size and, with
// tiering, the remote start offset, remote size, upload lag and what is
// wrong with the remote tier (replica.TierReport).
//
// Each desired set also carries the tenant's access list, which the agent
// hands to Config.Principals (the SPU's authorizer) as it arrives.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/data-plane/internal/follower"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/internal/h2c"
)

// Config configures an Agent.
type Config struct {
	// ID is the SPU's id in its cluster.
	ID int32
	// ControlPlane is the control plane's base URL. Required.
	ControlPlane string
	// Address is the URL clients use to reach this SPU. Required.
	Address string
	// HTTPClient talks to the control plane. Default: an HTTP/2 client
	// without TLS (h2c) that pings an idle connection to notice a lost
	// control plane.
	HTTPClient *http.Client
	// PeerHTTPClient fetches from leader SPUs (see follower.Config).
	// Default: like HTTPClient's default.
	PeerHTTPClient *http.Client
	// Principals, when set, receives the access list of every desired set
	// received, before the replicas are applied.
	Principals func([]*internalv1.Principal)
	// HeartbeatInterval is how often the SPU heartbeats until the control
	// plane names another interval. Default 1 second.
	HeartbeatInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts. Defaults 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	if c.ControlPlane == "" {
		return errors.New("agent: a control plane URL is required")
	}
	if c.Address == "" {
		return errors.New("agent: the SPU's public address is required")
	}
	if c.ID < 0 {
		return fmt.Errorf("agent: SPU id %d is negative", c.ID)
	}
	return nil
}

// Agent keeps one SPU registered with the control plane. Create it with New
// and run it with Run.
type Agent struct {
	cfg      Config
	replicas *replica.Manager
	logger   *slog.Logger
	registry internalv1connect.RegistryServiceClient
	// followers runs the fetch loops of the replicas this SPU follows;
	// only apply updates it, and Run closes it.
	followers *follower.Set

	mu           sync.Mutex // guards the fields below
	interval     time.Duration
	seenNonEmpty bool
	applied      int64 // revision of the last applied set; -1 before any
	connected    bool
}

// New returns an agent for the replicas of one SPU.
func New(cfg Config, replicas *replica.Manager, logger *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = h2c.NewClient()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	return &Agent{
		cfg:      cfg,
		replicas: replicas,
		logger:   logger.With("spu", cfg.ID),
		registry: internalv1connect.NewRegistryServiceClient(cfg.HTTPClient, cfg.ControlPlane, connect.WithReadMaxBytes(64<<20)),
		interval: cfg.HeartbeatInterval,
		applied:  -1,
		followers: follower.New(follower.Config{
			HTTPClient: cfg.PeerHTTPClient,
			MinBackoff: cfg.MinBackoff,
			MaxBackoff: cfg.MaxBackoff,
		}, logger.With("spu", cfg.ID)),
	}, nil
}

// Run watches the desired replicas and heartbeats until ctx ends; it then
// stops the fetch loops of the followers and returns nil. Failures to reach
// the control plane are logged and retried, never returned. Run is called
// once.
func (a *Agent) Run(ctx context.Context) error {
	defer a.followers.Close()
	var wg sync.WaitGroup
	wg.Go(func() { a.heartbeatLoop(ctx) })
	a.watchLoop(ctx)
	wg.Wait()
	return nil
}

// Applied returns the revision of the last desired set applied, or -1.
func (a *Agent) Applied() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied
}

func (a *Agent) watchLoop(ctx context.Context) {
	backoff := a.cfg.MinBackoff
	for ctx.Err() == nil {
		received, err := a.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if received {
			backoff = a.cfg.MinBackoff
		}
		a.setConnected(false, err)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, a.cfg.MaxBackoff)
	}
}

func (a *Agent) setConnected(c bool, err error) {
	a.mu.Lock()
	was := a.connected
	a.connected = c
	a.mu.Unlock()
	switch {
	case c && !was:
		a.logger.Info("connected to the control plane", "control_plane", a.cfg.ControlPlane)
	case !c && was:
		a.logger.Warn("lost the control plane; serving the replicas held and reconnecting", "control_plane", a.cfg.ControlPlane, "err", err)
	case !c:
		a.logger.Debug("control plane not reachable", "control_plane", a.cfg.ControlPlane, "err", err)
	}
}

// watchOnce holds one WatchReplicas stream until it fails. It reports
// whether any message arrived.
func (a *Agent) watchOnce(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.registry.WatchReplicas(ctx, connect.NewRequest(&internalv1.WatchReplicasRequest{SpuId: a.cfg.ID, Address: a.cfg.Address}))
	if err != nil {
		return false, err
	}
	defer stream.Close()
	received := false
	last := int64(-1) // revisions only increase within one stream
	for stream.Receive() {
		if !received {
			a.setConnected(true, nil)
		}
		received = true
		msg := stream.Msg()
		if msg.Revision < last {
			a.logger.Debug("ignore older desired replicas", "revision", msg.Revision, "last", last)
			continue
		}
		last = msg.Revision
		if a.cfg.Principals != nil {
			a.cfg.Principals(msg.Principals)
		}
		a.apply(msg)
	}
	err = stream.Err()
	if err == nil {
		err = errors.New("the control plane ended the stream")
	}
	return received, err
}

// apply makes the SPU's replicas match one desired set.
func (a *Agent) apply(msg *internalv1.WatchReplicasResponse) {
	a.mu.Lock()
	if len(msg.Replicas) > 0 {
		a.seenNonEmpty = true
	}
	guard := len(msg.Replicas) == 0 && msg.Revision == 0 && !a.seenNonEmpty
	a.mu.Unlock()
	if guard {
		if held := len(a.replicas.List("")); held > 0 {
			a.logger.Warn("ignore an empty desired set at revision 0; keeping the replicas held", "replicas", held)
		}
		return
	}
	want := make(map[replica.Key]bool, len(msg.Replicas))
	failed := 0
	var leaders []*replica.Replica
	var follow []follower.Target
	for _, d := range msg.Replicas {
		spec := replica.Spec{
			Topic:       d.Topic,
			Partition:   d.Partition,
			LeaderEpoch: d.LeaderEpoch,
			Settings:    replica.SettingsFromProto(d.Config),
		}
		if d.Leader != a.cfg.ID {
			spec.FollowsLeader = &d.Leader
		}
		want[spec.Key()] = true
		if _, err := a.replicas.Ensure(spec); err != nil {
			failed++
			a.logger.Error("ensure replica", "topic", d.Topic, "partition", d.Partition, "err", err)
			continue
		}
		r, err := a.replicas.Get(d.Topic, d.Partition)
		if err != nil {
			continue // closed meanwhile
		}
		if d.Leader == a.cfg.ID {
			leaders = append(leaders, r)
			continue
		}
		// Refuse produce before the fetch loop starts writing.
		r.SetFollower(d.Leader)
		follow = append(follow, follower.Target{Replica: r, Leader: d.Leader, Address: d.LeaderAddress})
	}
	// Stop the loops of replicas that now lead or are removed, and wait for
	// them, before those replicas accept produce or are deleted.
	a.followers.Update(follow)
	for _, r := range leaders {
		r.SetLeader()
	}
	for _, r := range a.replicas.List("") {
		if want[r.Key] {
			continue
		}
		if _, err := a.replicas.Remove(r.Key); err != nil {
			failed++
			a.logger.Error("remove replica", "topic", r.Topic, "partition", r.Partition, "err", err)
		}
	}
	a.mu.Lock()
	a.applied = msg.Revision
	a.mu.Unlock()
	a.logger.Debug("applied desired replicas", "revision", msg.Revision, "replicas", len(msg.Replicas), "failed", failed)
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	for {
		a.heartbeat(ctx)
		a.mu.Lock()
		d := a.interval
		a.mu.Unlock()
		if !sleep(ctx, d) {
			return
		}
	}
}

// heartbeat sends one Heartbeat with the status of every replica held.
func (a *Agent) heartbeat(ctx context.Context) {
	req := &internalv1.HeartbeatRequest{SpuId: a.cfg.ID, Address: a.cfg.Address}
	for _, r := range a.replicas.List("") {
		req.Replicas = append(req.Replicas, replicaStatus(r))
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := a.registry.Heartbeat(ctx, connect.NewRequest(req))
	if err != nil {
		if ctx.Err() == nil {
			a.logger.Debug("heartbeat failed", "err", err)
		}
		return
	}
	if ms := resp.Msg.IntervalMs; ms > 0 {
		d := time.Duration(ms) * time.Millisecond
		d = min(max(d, 50*time.Millisecond), time.Minute)
		a.mu.Lock()
		a.interval = d
		a.mu.Unlock()
	}
}

// replicaStatus is what a heartbeat says of one replica: its local log and,
// with tiering, its remote tier (remote start -1 when nothing is remote).
func replicaStatus(r *replica.Replica) *internalv1.ReplicaStatus {
	info := r.Log.Info()
	tier := r.TierReport()
	return &internalv1.ReplicaStatus{
		Topic:             r.Topic,
		Partition:         r.Partition,
		StartOffset:       info.StartOffset,
		EndOffset:         info.EndOffset,
		SizeBytes:         info.Size,
		LeaderEpoch:       info.LeaderEpoch,
		RemoteStartOffset: tier.RemoteStartOffset,
		RemoteSizeBytes:   tier.RemoteSizeBytes,
		UploadLagBytes:    tier.UploadLagBytes,
		TieringError:      tier.Error,
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
