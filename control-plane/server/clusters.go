package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/control-plane/internal/reconcile"
	"github.com/spatehq/spate/control-plane/internal/store"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
	"github.com/spatehq/spate/control-plane/internal/tier"
)

// LocalCluster is the id of the one cluster of an insecure control plane.
const LocalCluster = "local"

// clusterMeta is what a control-plane replica keeps of one cluster: its
// metadata store and a cache of it, followed while the replica runs.
type clusterMeta struct {
	id     string
	store  *store.Store
	cache  *store.Cache
	cancel context.CancelFunc
	done   chan struct{}
}

// metas are the clusters a replica follows, created on first use.
type metas struct {
	mu      sync.Mutex
	ctx     context.Context // of Serve; nil before
	wg      sync.WaitGroup
	byID    map[string]*clusterMeta
	changed chan struct{} // closed and replaced when byID changes
}

// meta returns the metadata of cluster id, following it from now on.
func (s *Server) meta(id string) *clusterMeta {
	m := &s.metas
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.byID[id]; ok {
		return c
	}
	st := store.New(s.client, id)
	c := &clusterMeta{id: id, store: st, cache: store.NewCache(st, s.logger.With("cluster", id)), done: make(chan struct{})}
	ctx := m.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, c.cancel = context.WithCancel(ctx)
	m.wg.Go(func() {
		defer close(c.done)
		if err := c.cache.Run(ctx); err != nil {
			s.logger.Error("metadata cache", "cluster", id, "err", err)
		}
	})
	m.byID[id] = c
	close(m.changed)
	m.changed = make(chan struct{})
	return c
}

// dropMeta stops following a deleted cluster.
func (s *Server) dropMeta(id string) {
	m := &s.metas
	m.mu.Lock()
	c, ok := m.byID[id]
	delete(m.byID, id)
	if ok {
		close(m.changed)
		m.changed = make(chan struct{})
	}
	m.mu.Unlock()
	if ok {
		c.cancel()
		<-c.done
	}
}

// allMetas returns the followed clusters and a channel closed when the set
// changes.
func (s *Server) allMetas() ([]*clusterMeta, <-chan struct{}) {
	m := &s.metas
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*clusterMeta, 0, len(m.byID))
	for _, c := range m.byID {
		out = append(out, c)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].id < out[b].id })
	return out, m.changed
}

// clusterOf returns a cluster of a tenant; a cluster of another tenant is
// reported exactly as one that does not exist.
func (s *Server) clusterOf(ctx context.Context, tenant, id string) (tenancy.Cluster, error) {
	c, err := s.tenancy.GetCluster(ctx, id)
	if err != nil {
		return tenancy.Cluster{}, err
	}
	if c.Tenant != tenant {
		return tenancy.Cluster{}, fmt.Errorf("cluster %s: %w", id, tenancy.ErrNotFound)
	}
	return c, nil
}

// clusterNotFound is the one answer for a cluster that does not exist or
// belongs to another tenant.
func clusterNotFound(name string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("cluster %q not found; `spate cloud cluster list` shows yours", name))
}

// scope authenticates a call of a cluster-scoped service (topics,
// metadata) and returns the caller and the cluster it acts on: the client
// certificate's cluster, or the one the Spate-Cluster header names. An
// insecure control plane has one cluster and no callers.
func (s *Server) scope(ctx context.Context, procedure string, h http.Header) (*caller, *clusterMeta, error) {
	if s.cfg.Insecure {
		return nil, s.meta(LocalCluster), nil
	}
	c, err := s.requireTenantPrincipal(ctx, procedure)
	if err != nil {
		return nil, nil, err
	}
	var cl tenancy.Cluster
	if c.Cluster != "" && c.Cluster != identity.NoCluster {
		cl, err = s.clusterOf(ctx, c.Tenant, c.Cluster)
		if errors.Is(err, tenancy.ErrNotFound) {
			return nil, nil, s.denied(c, procedure, connect.NewError(connect.CodeUnauthenticated, errors.New("the cluster of this client certificate no longer exists")))
		}
	} else {
		name := h.Get(ClusterHeader)
		if name == "" {
			return nil, nil, s.denied(c, procedure, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("name the cluster in the %s header, or call with a client certificate of the cluster", ClusterHeader)))
		}
		cl, err = s.tenancy.ClusterByName(ctx, c.Tenant, name)
		if errors.Is(err, tenancy.ErrNotFound) {
			return nil, nil, s.denied(c, procedure, clusterNotFound(name).(*connect.Error))
		}
	}
	if err != nil {
		return nil, nil, s.internal(ctx, "read cluster", err)
	}
	if cl.Status == tenancy.ClusterDeleting {
		return nil, nil, s.denied(c, procedure, clusterNotFound(cl.Name).(*connect.Error))
	}
	return c, s.meta(cl.ID), nil
}

// followClusters keeps a cluster meta for every cluster in the store, so
// that the leader reconciles all of them, until ctx ends.
func (s *Server) followClusters(ctx context.Context) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		resp, err := s.client.Get(wctx, tenancy.ClustersPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err == nil {
			wch := s.client.Watch(wctx, tenancy.ClustersPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
			s.syncMetas(ctx)
			for wresp := range wch {
				if wresp.Err() != nil {
					break
				}
				s.syncMetas(ctx)
			}
		}
		cancel()
		store.Sleep(ctx, 500*time.Millisecond)
	}
}

// syncMetas follows every stored cluster and notifies the lifecycle loop.
func (s *Server) syncMetas(ctx context.Context) {
	clusters, err := s.tenancy.ListAllClusters(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("list clusters", "err", err)
		}
		return
	}
	live := map[string]bool{}
	for _, c := range clusters {
		live[c.ID] = true
		if c.Status != tenancy.ClusterDeleting {
			s.meta(c.ID)
		}
	}
	// Stop following clusters deleted meanwhile (the leader dropped its
	// own copy when it deleted them; other replicas learn it here).
	all, _ := s.allMetas()
	for _, m := range all {
		if !live[m.id] {
			s.dropMeta(m.id)
		}
	}
	s.clustersChanged.notify()
}

// signal is a broadcast: waiters take the channel, notify closes it.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (g *signal) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

func (g *signal) notify() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
	}
	g.ch = make(chan struct{})
}

// reconcileAll runs a reconciler for every followed cluster while this
// replica leads, until ctx ends.
func (s *Server) reconcileAll(ctx context.Context, guard []clientv3.Cmp) {
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		wg.Wait()
	}()
	for {
		all, changed := s.allMetas()
		live := map[string]bool{}
		for _, m := range all {
			live[m.id] = true
			if _, ok := running[m.id]; ok {
				continue
			}
			rctx, cancel := context.WithCancel(ctx)
			running[m.id] = cancel
			r := &reconcile.Reconciler{Store: m.store, Cache: m.cache, Guard: guard, Logger: s.logger.With("cluster", m.id), Purge: s.purger(m.id)}
			wg.Go(func() { r.Run(rctx) })
		}
		for id, cancel := range running {
			if !live[id] {
				cancel()
				delete(running, id)
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// runLifecycle drives clusters through their states while this replica
// leads: provisioning → ready (or failed), and deleting → gone. After a
// restart it asks the provisioner again for every ready cluster, so the
// SPUs run again.
func (s *Server) runLifecycle(ctx context.Context, advertise string) {
	if s.cfg.Provisioner == nil {
		return
	}
	ensured := map[string]bool{}
	busy := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		changed := s.clustersChanged.wait()
		clusters, err := s.tenancy.ListAllClusters(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("list clusters", "err", err)
			}
			store.Sleep(ctx, time.Second)
			continue
		}
		for _, c := range clusters {
			mu.Lock()
			skip := busy[c.ID] || (c.Status == tenancy.ClusterReady && ensured[c.ID]) || c.Status == tenancy.ClusterFailed
			if !skip {
				busy[c.ID] = true
			}
			mu.Unlock()
			if skip {
				continue
			}
			wg.Go(func() {
				done := s.advance(ctx, c, advertise)
				mu.Lock()
				delete(busy, c.ID)
				ensured[c.ID] = done
				mu.Unlock()
				s.clustersChanged.notify()
			})
		}
		select {
		case <-changed:
		case <-ctx.Done():
		}
	}
}

// advance moves one cluster on by one state; it reports whether the
// cluster's SPUs are running as asked.
func (s *Server) advance(ctx context.Context, c tenancy.Cluster, advertise string) bool {
	log := s.logger.With("cluster", c.ID, "tenant", c.Tenant, "name", c.Name)
	switch c.Status {
	case tenancy.ClusterDeleting:
		if err := s.cfg.Provisioner.Delete(ctx, c.ID, true); err != nil {
			log.Error("delete cluster spus", "err", err)
			store.Sleep(ctx, 2*time.Second)
			return false
		}
		// The SPUs are gone: nothing uploads any more.
		if err := s.tier.Remove(ctx, tier.Cluster{Tenant: c.Tenant, ID: c.ID}); err != nil {
			log.Error("delete cluster tier objects; the cluster stays deleting until it succeeds", "err", err)
			store.Sleep(ctx, 5*time.Second)
			return false
		}
		s.dropMeta(c.ID)
		if _, err := s.client.Delete(ctx, store.ClusterPrefix(c.ID), clientv3.WithPrefix()); err != nil {
			log.Error("delete cluster metadata", "err", err)
			return false
		}
		if err := s.tenancy.DeleteCluster(ctx, c.ID); err != nil && !errors.Is(err, tenancy.ErrNotFound) {
			log.Error("delete cluster record", "err", err)
			return false
		}
		s.pki.forget(c.ID)
		log.Info("cluster deleted")
		return true
	case tenancy.ClusterProvisioning, tenancy.ClusterReady:
	default:
		return false
	}
	spec := ClusterSpec{Name: c.ID, SPUs: int(c.SPUs), ControlPlane: advertise, Credentials: s.pki.spuCredentials(c)}
	var err error
	if spec.Tier, err = s.tier.Prepare(ctx, tier.Cluster{Tenant: c.Tenant, ID: c.ID}); err != nil {
		if ctx.Err() != nil {
			return false
		}
		// The object store may come back: try again, unless the cluster
		// waited too long to start at all.
		log.Error("prepare cluster tier store", "err", err)
		if c.Status == tenancy.ClusterProvisioning && time.Since(c.CreatedAt) > s.cfg.ProvisionTimeout {
			s.setClusterStatus(ctx, c.ID, tenancy.ClusterFailed, "preparing the tiered-storage object store failed: "+err.Error(), nil)
		}
		store.Sleep(ctx, 5*time.Second)
		return false
	}
	if err := s.cfg.Provisioner.Ensure(ctx, spec); err != nil {
		if ctx.Err() != nil {
			return false
		}
		log.Error("provision cluster", "err", err)
		s.setClusterStatus(ctx, c.ID, tenancy.ClusterFailed, "provisioning failed: "+err.Error(), nil)
		return false
	}
	if c.Status == tenancy.ClusterReady {
		log.Info("cluster spus running again")
		return true
	}
	m := s.meta(c.ID)
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ProvisionTimeout)
	defer cancel()
	var endpoints []string
	for {
		var online int
		changed := m.cache.Read(func(st *store.State) {
			online = len(st.SPUs)
			endpoints = endpoints[:0]
			for _, spu := range st.SPUs {
				endpoints = append(endpoints, spu.Address)
			}
		})
		if online >= int(c.SPUs) {
			break
		}
		select {
		case <-changed:
		case <-wctx.Done():
			if ctx.Err() != nil {
				return false
			}
			reason := fmt.Sprintf("%d of %d SPUs registered within %v", online, c.SPUs, s.cfg.ProvisionTimeout)
			for _, st := range s.cfg.Provisioner.State(c.ID) {
				if st.LastError != "" {
					reason += fmt.Sprintf("; SPU %d: %s", st.ID, st.LastError)
					break
				}
			}
			log.Error("cluster failed", "reason", reason)
			s.setClusterStatus(ctx, c.ID, tenancy.ClusterFailed, reason, nil)
			return false
		}
	}
	sort.Strings(endpoints)
	s.setClusterStatus(ctx, c.ID, tenancy.ClusterReady, "", endpoints)
	log.Info("cluster ready", "spus", c.SPUs, "after", time.Since(c.CreatedAt).Round(time.Millisecond))
	return true
}

// setClusterStatus records a cluster's new state unless it is being
// deleted meanwhile.
func (s *Server) setClusterStatus(ctx context.Context, id string, status tenancy.ClusterStatus, reason string, endpoints []string) {
	_, err := s.tenancy.UpdateCluster(ctx, id, func(c *tenancy.Cluster) error {
		if c.Status == tenancy.ClusterDeleting {
			return errClusterDeleting
		}
		c.Status, c.Reason = status, reason
		if endpoints != nil {
			c.Endpoints = endpoints
		}
		if status == tenancy.ClusterReady && c.ReadyAt.IsZero() {
			c.ReadyAt = time.Now()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errClusterDeleting) && !errors.Is(err, tenancy.ErrNotFound) && ctx.Err() == nil {
		s.logger.Error("record cluster status", "cluster", id, "err", err)
	}
}

var errClusterDeleting = errors.New("cluster is being deleted")
