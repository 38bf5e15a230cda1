package tenancy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SigningKeys returns the stored token signing keys (each as
// token.MarshalKey wrote it) and the mod revision of their key, for
// PutSigningKeysIf; nil and 0 when none are stored.
func (s *Store) SigningKeys(ctx context.Context) ([][]byte, int64, error) {
	var keys [][]byte
	kv, err := s.get(ctx, SigningKeysKey, &keys)
	if err != nil {
		return nil, 0, fmt.Errorf("get signing keys: %w", err)
	}
	if kv == nil {
		return nil, 0, nil
	}
	return keys, kv.ModRevision, nil
}

// PutSigningKeys replaces the token signing keys.
func (s *Store) PutSigningKeys(ctx context.Context, keys [][]byte) error {
	if _, err := s.c.Put(ctx, SigningKeysKey, mustJSON(keys)); err != nil {
		return fmt.Errorf("put signing keys: %w", err)
	}
	return nil
}

// PutSigningKeysIf replaces the token signing keys if they are still at
// mod revision rev (0: none stored), as SigningKeys returned it;
// ErrConflict otherwise. Replicas that rotate keys use it so that only one
// rotation wins.
func (s *Store) PutSigningKeysIf(ctx context.Context, keys [][]byte, rev int64) error {
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(SigningKeysKey), "=", rev)).
		Then(clientv3.OpPut(SigningKeysKey, mustJSON(keys))).
		Commit()
	if err != nil {
		return fmt.Errorf("put signing keys: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("signing keys: %w", ErrConflict)
	}
	return nil
}

// WatchSigningKeys delivers the stored signing keys now and then the full
// list after every change (nil when they are deleted), until ctx ends;
// then it closes the channel. The receiver must keep reading.
func (s *Store) WatchSigningKeys(ctx context.Context) <-chan [][]byte {
	ch := make(chan [][]byte, 1)
	send := func(keys [][]byte) bool {
		select {
		case ch <- keys:
			return true
		case <-ctx.Done():
			return false
		}
	}
	resync := func() (int64, bool, error) {
		resp, err := s.c.Get(ctx, SigningKeysKey)
		if err != nil {
			return 0, true, err
		}
		var keys [][]byte
		if len(resp.Kvs) > 0 {
			if err := json.Unmarshal(resp.Kvs[0].Value, &keys); err != nil {
				keys = nil
			}
		}
		return resp.Header.Revision, send(keys), nil
	}
	events := func(evs []*clientv3.Event) bool {
		last := evs[len(evs)-1]
		var keys [][]byte
		if last.Type == clientv3.EventTypePut {
			if err := json.Unmarshal(last.Kv.Value, &keys); err != nil {
				keys = nil
			}
		}
		return send(keys)
	}
	go func() {
		defer close(ch)
		s.follow(ctx, SigningKeysKey, false, 0, resync, events)
	}()
	return ch
}

// WatchTenants delivers the id of a tenant each time one of its users or
// service accounts is created, changed or removed after the call (a
// tenant's creation counts: it adds the owner), until ctx ends; then it
// closes the channel. Should the watch miss changes (etcd compacted the
// history it needed), it delivers every tenant's id. The receiver must
// keep reading; an id may come more than once for one change.
func (s *Store) WatchTenants(ctx context.Context) <-chan string {
	ch := make(chan string, 64)
	var rev int64
	if resp, err := s.c.Get(ctx, PrincipalsPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err == nil {
		rev = resp.Header.Revision
	}
	go func() {
		defer close(ch)
		s.watchTenants(ctx, rev, ch)
	}()
	return ch
}

// watchTenants is WatchTenants from after revision rev (0: resync first).
func (s *Store) watchTenants(ctx context.Context, rev int64, ch chan<- string) {
	send := func(id string) bool {
		select {
		case ch <- id:
			return true
		case <-ctx.Done():
			return false
		}
	}
	resync := func() (int64, bool, error) {
		resp, err := s.c.Get(ctx, TenantsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return 0, true, err
		}
		for _, kv := range resp.Kvs {
			if !send(strings.TrimPrefix(string(kv.Key), TenantsPrefix)) {
				return 0, false, nil
			}
		}
		return resp.Header.Revision, true, nil
	}
	events := func(evs []*clientv3.Event) bool {
		sent := make(map[string]bool)
		for _, ev := range evs {
			id, _, _ := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), PrincipalsPrefix), "/")
			if !sent[id] {
				sent[id] = true
				if !send(id) {
					return false
				}
			}
		}
		return true
	}
	s.follow(ctx, PrincipalsPrefix, true, rev, resync, events)
}

// follow watches key (a prefix if prefix is set) from after revision rev
// until ctx ends, passing each batch of events to events. When it has no
// revision to go on (at first if rev is 0, and after etcd compacted the
// revisions it needed) it calls resync, which reads afresh and returns the
// revision it read at. A false from events or resync stops it. Other watch
// errors (a lost leader, a broken connection) resume from the last event
// seen. It logs nothing.
func (s *Store) follow(ctx context.Context, key string, prefix bool, rev int64,
	resync func() (int64, bool, error), events func([]*clientv3.Event) bool) {
	for ctx.Err() == nil {
		if rev == 0 {
			r, ok, err := resync()
			if !ok {
				return
			}
			if err != nil {
				sleep(ctx, time.Second)
				continue
			}
			rev = r
		}
		opts := []clientv3.OpOption{clientv3.WithRev(rev + 1)}
		if prefix {
			opts = append(opts, clientv3.WithPrefix())
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range s.c.Watch(wctx, key, opts...) {
			if resp.CompactRevision != 0 {
				rev = 0
				break
			}
			if resp.Err() != nil {
				break
			}
			if len(resp.Events) == 0 {
				continue
			}
			if !events(resp.Events) {
				cancel()
				return
			}
			rev = resp.Events[len(resp.Events)-1].Kv.ModRevision
		}
		cancel()
		sleep(ctx, 100*time.Millisecond)
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
