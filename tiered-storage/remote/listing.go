package remote

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spatehq/spate/tiered-storage/layout"
)

// listPage is the number of keys asked for per listing request: S3's
// page size.
const listPage = 1000

// partState is the cached remote index of one partition: the listing of its
// prefix, possibly partial (a first read lists only as far as it needs, and
// the rest is listed in the background).
type partState struct {
	mu         sync.Mutex // guards the fields below; held across one listing request
	gen        uint64     // bumped when the listing is replaced
	segs       []layout.Segment
	idx        layout.Index
	lastKey    string    // the greatest key listed
	complete   bool      // the listing reached the end of the prefix
	listed     time.Time // when the current listing began; zero: none
	fruitless  time.Time // of the last incremental listing, when it found nothing new
	refreshed  time.Time // when the last background refresh began
	refreshing bool      // a background full listing runs
	filling    bool      // a background goroutine completes the listing
}

// index returns the remote index of a partition, listed as far as needed
// for need to hold (or to the end). The listing is cached; with force, or
// when there is none, it is taken again from the start. A listing is
// completed in the background, taken again in full in the background once
// older than the TTL (readers meanwhile use the old one: objects are
// immutable, so it is only incomplete), and extended at once, from the last
// key seen, when offset (>= 0) lies past its end, since new uploads sort
// after every key listed.
func (r *Reader) index(ctx context.Context, topic string, partition int32, need func(layout.Index) bool, offset int64, force bool) (layout.Index, error) {
	if r.opts.tiered != nil && !r.opts.tiered(topic, partition) {
		return layout.Index{}, nil
	}
	k := partKey{topic, partition}
	r.mu.Lock()
	p, ok := r.parts[k]
	if !ok {
		p = &partState{}
		r.parts[k] = p
	}
	r.mu.Unlock()

	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if force || p.listed.IsZero() {
		p.reset(now)
	}
	listedNow := false
	for !p.complete && !need(p.idx) {
		if err := r.listPage(ctx, k, p); err != nil {
			return layout.Index{}, err
		}
		listedNow = true
	}
	if !listedNow && p.complete && offset >= 0 && (len(p.idx.Segments) == 0 || offset >= p.idx.End()) && now.Sub(p.fruitless) >= relistInterval {
		n := len(p.segs)
		if err := r.listRest(ctx, k, p); err != nil {
			r.opts.logger.Warn("could not extend a remote index; using the cached one", "topic", topic, "partition", partition, "err", err)
		} else if len(p.segs) == n {
			p.fruitless = now
		} else {
			p.fruitless = time.Time{}
		}
	}
	if !p.complete && !p.filling {
		p.filling = true
		gen := p.gen
		if !r.background(func() { r.fill(k, p, gen) }) {
			p.filling = false
		}
	}
	if p.complete && !p.refreshing && now.Sub(p.listed) >= r.opts.indexTTL && now.Sub(p.refreshed) >= relistInterval {
		p.refreshing, p.refreshed = true, now
		if !r.background(func() { r.refresh(k, p) }) {
			p.refreshing = false
		}
	}
	return p.idx, nil
}

// reset starts a new listing. The caller holds p.mu.
func (p *partState) reset(now time.Time) {
	p.gen++
	p.segs, p.idx, p.lastKey, p.complete, p.listed = nil, layout.Index{}, "", false, now
}

// add takes keys listed after p.lastKey into the index. The caller holds
// p.mu.
func (p *partState) add(k partKey, keys []string, sizes []int64) {
	for i, key := range keys {
		s, suffix, ok := layout.Parse(key)
		if !ok || suffix != layout.LogSuffix || s.Topic != k.topic || s.Partition != k.partition {
			continue
		}
		s.Size = sizes[i]
		p.segs = append(p.segs, s)
	}
	if len(keys) > 0 {
		p.lastKey = keys[len(keys)-1]
	}
	p.idx = layout.NewIndex(p.segs)
}

// list lists the keys of partition k after after, at most limit of them (0:
// all).
func (r *Reader) list(ctx context.Context, k partKey, after string, limit int) ([]string, []int64, error) {
	r.m.lists.Inc()
	infos, err := r.store.List(ctx, layout.PartitionPrefix(k.topic, k.partition), after, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("remote: list the remote index of topic %q partition %d: %w", k.topic, k.partition, err)
	}
	keys, sizes := make([]string, len(infos)), make([]int64, len(infos))
	for i, info := range infos {
		keys[i], sizes[i] = info.Key, info.Size
	}
	return keys, sizes, nil
}

// listPage lists the next page of p's listing. The caller holds p.mu.
func (r *Reader) listPage(ctx context.Context, k partKey, p *partState) error {
	keys, sizes, err := r.list(ctx, k, p.lastKey, listPage)
	if err != nil {
		return err
	}
	p.add(k, keys, sizes)
	if len(keys) < listPage {
		p.complete = true
	}
	return nil
}

// listRest lists the rest of p's listing. The caller holds p.mu.
func (r *Reader) listRest(ctx context.Context, k partKey, p *partState) error {
	keys, sizes, err := r.list(ctx, k, p.lastKey, 0)
	if err != nil {
		return err
	}
	p.add(k, keys, sizes)
	p.complete = true
	return nil
}

// fill completes listing gen of p in the background, a page at a time,
// without holding p.mu during a request, so that readers that need no
// more are not held up.
func (r *Reader) fill(k partKey, p *partState, gen uint64) {
	defer func() {
		p.mu.Lock()
		if p.gen == gen {
			p.filling = false
		}
		p.mu.Unlock()
	}()
	for {
		p.mu.Lock()
		after, done := p.lastKey, p.gen != gen || p.complete
		p.mu.Unlock()
		if done {
			return
		}
		keys, sizes, err := r.list(r.ctx, k, after, listPage)
		if err != nil {
			if r.ctx.Err() == nil {
				r.opts.logger.Warn("could not complete a remote index; the next read tries again", "topic", k.topic, "partition", k.partition, "err", err)
			}
			return
		}
		p.mu.Lock()
		if p.gen == gen && p.lastKey == after && !p.complete { // else a reader listed meanwhile
			p.add(k, keys, sizes)
			p.complete = len(keys) < listPage
		}
		p.mu.Unlock()
	}
}

// refresh takes p's listing again in full, in the background, and
// replaces it.
func (r *Reader) refresh(k partKey, p *partState) {
	start := time.Now()
	fresh := &partState{}
	keys, sizes, err := r.list(r.ctx, k, "", 0)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshing = false
	if err != nil {
		if r.ctx.Err() == nil {
			r.opts.logger.Warn("could not refresh a remote index; using the cached one", "topic", k.topic, "partition", k.partition, "err", err)
		}
		return
	}
	fresh.add(k, keys, sizes)
	p.gen++
	p.segs, p.idx, p.lastKey, p.complete, p.listed = fresh.segs, fresh.idx, fresh.lastKey, true, start
}

// background runs fn in a goroutine that Close waits for, unless the Reader
// is closed; it reports whether it did.
func (r *Reader) background(fn func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn()
	}()
	return true
}
