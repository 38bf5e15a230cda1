// Package remotetest helps the tests of the remote tier: it uploads the
// closed segments of a commit-log folder as package upload would (the
// .index and .timeindex first, the .log last, under layout keys), and
// counts the requests a Store receives.
package remotetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
)

// UploadClosed uploads every closed segment of the commit-log folder dir
// (all but the one with the highest base offset, the active one) that is
// not empty, and returns them in offset order. It reads the segment files
// as the commit log left them, taking the last offset, leader epoch and
// newest timestamp from the batch headers. Uploading twice is harmless.
func UploadClosed(t testing.TB, store objstore.Store, topic string, partition int32, dir string) []layout.Segment {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if len(names) > 0 {
		names = names[:len(names)-1]
	}
	var segs []layout.Segment
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			continue
		}
		base, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(name), ".log"), 10, 64)
		if err != nil {
			t.Fatalf("segment file %s: %v", name, err)
		}
		seg, err := Describe(topic, partition, base, data)
		if err != nil {
			t.Fatalf("segment file %s: %v", name, err)
		}
		stem := strings.TrimSuffix(name, ".log")
		for _, suffix := range []string{layout.IndexSuffix, layout.TimeIndexSuffix} {
			b, err := os.ReadFile(stem + suffix)
			if err != nil {
				t.Fatal(err)
			}
			Put(t, store, seg.Key(suffix), b)
		}
		Put(t, store, seg.Key(layout.LogSuffix), data)
		segs = append(segs, seg)
	}
	return segs
}

// Describe returns the layout.Segment of a segment's .log contents that
// start at offset base.
func Describe(topic string, partition int32, base int64, data []byte) (layout.Segment, error) {
	seg := layout.Segment{Topic: topic, Partition: partition, Base: base, Size: int64(len(data))}
	next := base
	for p := data; len(p) > 0; {
		_, h, rest, err := batch.Next(p)
		if err != nil {
			return seg, err
		}
		if h.BaseOffset != next {
			return seg, fmt.Errorf("batch at offset %d, expected %d", h.BaseOffset, next)
		}
		seg.Last, seg.Epoch = h.LastOffset(), h.LeaderEpoch
		seg.MaxTimestamp = max(seg.MaxTimestamp, h.MaxTimestamp)
		next = h.NextOffset()
		p = rest
	}
	return seg, nil
}

// Put stores b under key, failing t on error.
func Put(t testing.TB, store objstore.Store, key string, b []byte) {
	t.Helper()
	if err := store.Put(context.Background(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// Counting is an objstore.Store that counts the requests it passes on.
type Counting struct {
	objstore.Store

	mu    sync.Mutex // guards gets, lists and bytes
	gets  map[string]int
	lists int
	bytes int64
}

var _ objstore.Store = (*Counting)(nil)

// NewCounting returns a Counting over s.
func NewCounting(s objstore.Store) *Counting {
	return &Counting{Store: s, gets: map[string]int{}}
}

// Get counts the call by the key's suffix (".log", ".index", ...).
func (c *Counting) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	c.mu.Lock()
	c.gets[filepath.Ext(key)]++
	c.mu.Unlock()
	rc, err := c.Store.Get(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	return &countingReader{rc, c}, nil
}

// List counts the call.
func (c *Counting) List(ctx context.Context, prefix, startAfter string, limit int) ([]objstore.ObjectInfo, error) {
	c.mu.Lock()
	c.lists++
	c.mu.Unlock()
	return c.Store.List(ctx, prefix, startAfter, limit)
}

// Gets returns the number of Gets of keys with the suffix ("" for all).
func (c *Counting) Gets(suffix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if suffix != "" {
		return c.gets[suffix]
	}
	n := 0
	for _, v := range c.gets {
		n += v
	}
	return n
}

// Lists returns the number of Lists.
func (c *Counting) Lists() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists
}

// Bytes returns the bytes read from the Gets' readers.
func (c *Counting) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

type countingReader struct {
	io.ReadCloser
	c *Counting
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.c.mu.Lock()
	r.c.bytes += int64(n)
	r.c.mu.Unlock()
	return n, err
}
