package remote

import (
	"container/list"
	"sync"
)

// cache is a byte-bounded LRU of immutable values (chunks of .log objects,
// decoded indexes). Objects are immutable, so an entry never goes stale; it
// is only evicted. It is safe for concurrent use.
type cache struct {
	mu    sync.Mutex // guards the fields below
	limit int64
	size  int64
	ll    *list.List // front: most recently used; values are *cacheEntry
	items map[string]*list.Element
}

type cacheEntry struct {
	key  string
	val  any
	size int64
}

func newCache(limit int64) *cache {
	return &cache{limit: limit, ll: list.New(), items: map[string]*list.Element{}}
}

// get returns the value under key and marks it used. A shared value is
// retained for the caller, who must release it.
func (c *cache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	v := e.Value.(*cacheEntry).val
	if s, ok := v.(shared); ok {
		s.retain()
	}
	return v, true
}

// contains reports whether key is cached, without marking it used.
func (c *cache) contains(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[key]
	return ok
}

// add stores val of size bytes under key and evicts the least recently used
// entries beyond the limit. A value larger than the limit is not stored.
// A shared value passes one reference to the cache, which releases it when
// it does not store the value or evicts it.
func (c *cache) add(key string, val any, size int64) {
	s, isShared := val.(shared)
	if size > c.limit {
		if isShared {
			s.release()
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		if isShared {
			s.release()
		}
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, val: val, size: size})
	c.size += size
	for c.size > c.limit {
		e := c.ll.Back()
		ce := e.Value.(*cacheEntry)
		c.ll.Remove(e)
		delete(c.items, ce.key)
		c.size -= ce.size
		if s, ok := ce.val.(shared); ok {
			s.release()
		}
	}
}

// removeIdle removes the entry under key, if any, releasing a shared
// value, unless the value is shared and someone besides the cache holds a
// reference to it (another reader using it now).
func (c *cache) removeIdle(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return
	}
	ce := e.Value.(*cacheEntry)
	if s, ok := ce.val.(shared); ok && s.inUse() {
		return
	}
	c.ll.Remove(e)
	delete(c.items, key)
	c.size -= ce.size
	if s, ok := ce.val.(shared); ok {
		s.release()
	}
}

// purge removes every entry.
func (c *cache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.ll.Front(); e != nil; e = e.Next() {
		if s, ok := e.Value.(*cacheEntry).val.(shared); ok {
			s.release()
		}
	}
	c.ll.Init()
	clear(c.items)
	c.size = 0
}

// bytes returns the bytes held.
func (c *cache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
