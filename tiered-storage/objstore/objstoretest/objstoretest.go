// Package objstoretest is the conformance suite of [objstore.Store]: every
// implementation runs [Run] in its tests, so the contract written on the
// interface is checked the same way for a folder and for a real S3 server.
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/spatehq/spate/tiered-storage/objstore"
)

// LargeSize is the size of the suite's large objects: more than two 5 MiB
// parts, the smallest part S3 allows. Stores that upload in parts must be
// configured with a part size of 5 MiB in their conformance test so that the
// suite exercises multipart uploads, including part boundaries.
const LargeSize = 11<<20 + 12345

// Option adapts the suite to a store's documented limits.
type Option func(*options)

type options struct {
	noNested bool
}

// WithoutNestedKeys skips the checks that a key and keys below it ("a" and
// "a/b") can exist at the same time. S3 allows it; servers that map keys to
// files, such as the Versity S3 Gateway's posix backend, refuse the second
// Put (ObjectParentIsFile). Spate's own key layouts never nest keys.
func WithoutNestedKeys() Option { return func(o *options) { o.noNested = true } }

// Run runs the conformance suite. newStore returns an empty store; it is
// called once per subtest and should register its own cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store, o options)
	}{
		{"RoundTrip", testRoundTrip},
		{"Large", testLarge},
		{"Ranges", testRanges},
		{"RangesEmpty", testRangesEmpty},
		{"Head", testHead},
		{"NotFound", testNotFound},
		{"Overwrite", testOverwrite},
		{"Keys", testKeys},
		{"InvalidKeys", testInvalidKeys},
		{"List", testList},
		{"ListPaginated", testListPaginated},
		{"DeleteMissing", testDeleteMissing},
		{"ConcurrentPuts", testConcurrentPuts},
		{"AtomicFailedReader", testAtomicFailedReader},
		{"SizeMismatch", testSizeMismatch},
		{"Cancel", testCancel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t), o) })
	}
}

// Data returns n pseudo-random bytes determined by seed.
func Data(seed uint64, n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func put(t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctx(t), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

func get(t *testing.T, s objstore.Store, key string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := s.Get(ctx(t), key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func mustGet(t *testing.T, s objstore.Store, key string, off, n int64) []byte {
	t.Helper()
	b, err := get(t, s, key, off, n)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, off, n, err)
	}
	return b
}

func equal(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d bytes (first difference at %d)", what, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func mustNotExist(t *testing.T, s objstore.Store, key string) {
	t.Helper()
	if _, err := s.Head(ctx(t), key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Head(%q) = %v, want ErrNotFound", key, err)
	}
}

func testRoundTrip(t *testing.T, s objstore.Store, o options) {
	for i, n := range []int{0, 1, 1000, 256 << 10} {
		data := Data(uint64(i), n)
		for _, known := range []bool{true, false} {
			key := fmt.Sprintf("rt/%d-%t", n, known)
			size := int64(n)
			if !known {
				size = -1
			}
			// Hide any WriterTo/Seeker so unknown sizes are really streamed.
			if err := s.Put(ctx(t), key, struct{ io.Reader }{bytes.NewReader(data)}, size); err != nil {
				t.Fatalf("Put(%q, size %d): %v", key, size, err)
			}
			equal(t, key, mustGet(t, s, key, 0, -1), data)
		}
	}
}

func testLarge(t *testing.T, s objstore.Store, o options) {
	data := Data(7, LargeSize)
	for _, size := range []int64{LargeSize, -1} {
		key := fmt.Sprintf("large/%d", size)
		if err := s.Put(ctx(t), key, struct{ io.Reader }{bytes.NewReader(data)}, size); err != nil {
			t.Fatalf("Put(%q, size %d): %v", key, size, err)
		}
		equal(t, key, mustGet(t, s, key, 0, -1), data)
		info, err := s.Head(ctx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != LargeSize {
			t.Fatalf("Head(%q).Size = %d, want %d", key, info.Size, LargeSize)
		}
		// Ranges across the 5 MiB part boundaries and at the end.
		for _, r := range [][2]int64{{5<<20 - 10, 20}, {10<<20 - 1, 2}, {LargeSize - 100, -1}, {LargeSize - 1, 1}, {3, 6 << 20}} {
			end := int64(len(data))
			if r[1] >= 0 {
				end = min(end, r[0]+r[1])
			}
			equal(t, fmt.Sprintf("%s[%d:+%d]", key, r[0], r[1]), mustGet(t, s, key, r[0], r[1]), data[r[0]:end])
		}
	}
}

func testRanges(t *testing.T, s objstore.Store, o options) {
	data := Data(3, 1000)
	put(t, s, "ranges", data)
	tests := []struct {
		name   string
		off, n int64
		want   []byte // nil with wantErr
		err    error
	}{
		{"whole", 0, -1, data, nil},
		{"whole exact", 0, 1000, data, nil},
		{"first byte", 0, 1, data[:1], nil},
		{"middle", 400, 100, data[400:500], nil},
		{"last byte", 999, 1, data[999:], nil},
		{"last byte to end", 999, -1, data[999:], nil},
		{"tail", 900, -1, data[900:], nil},
		{"short read past the end", 990, 100, data[990:], nil},
		{"zero length", 10, 0, []byte{}, nil},
		{"start at the end", 1000, 1, nil, objstore.ErrInvalidRange},
		{"start at the end, to end", 1000, -1, nil, objstore.ErrInvalidRange},
		{"start past the end", 5000, 10, nil, objstore.ErrInvalidRange},
		{"negative offset", -1, 5, nil, objstore.ErrInvalidRange},
		{"bad length", 0, -2, nil, objstore.ErrInvalidRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := get(t, s, "ranges", tt.off, tt.n)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Get(%d, %d) = %d bytes, %v; want %v", tt.off, tt.n, len(got), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get(%d, %d): %v", tt.off, tt.n, err)
			}
			equal(t, tt.name, got, tt.want)
		})
	}
}

func testRangesEmpty(t *testing.T, s objstore.Store, o options) {
	put(t, s, "empty", nil)
	for _, n := range []int64{-1, 0, 10} {
		if got := mustGet(t, s, "empty", 0, n); len(got) != 0 {
			t.Fatalf("Get(empty, 0, %d) = %d bytes", n, len(got))
		}
	}
	if _, err := get(t, s, "empty", 1, -1); !errors.Is(err, objstore.ErrInvalidRange) {
		t.Fatalf("Get(empty, 1, -1) = %v, want ErrInvalidRange", err)
	}
	info, err := s.Head(ctx(t), "empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("Head(empty) = %+v, %v", info, err)
	}
}

func testHead(t *testing.T, s objstore.Store, o options) {
	before := time.Now()
	put(t, s, "head/a", Data(1, 1234))
	after := time.Now()
	info, err := s.Head(ctx(t), "head/a")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "head/a" || info.Size != 1234 || info.ETag == "" {
		t.Fatalf("Head = %+v, want key head/a, size 1234 and an ETag", info)
	}
	// S3 keeps seconds; allow for that and a little clock skew.
	if info.LastModified.Before(before.Add(-2*time.Second)) || info.LastModified.After(after.Add(2*time.Second)) {
		t.Fatalf("Head.LastModified = %v, want between %v and %v", info.LastModified, before, after)
	}
	list, err := s.List(ctx(t), "head/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Key != info.Key || list[0].Size != info.Size || list[0].ETag != info.ETag {
		t.Fatalf("List = %+v, want [%+v]", list, info)
	}
	put(t, s, "head/a", Data(2, 1234))
	info2, err := s.Head(ctx(t), "head/a")
	if err != nil {
		t.Fatal(err)
	}
	if info2.ETag == info.ETag {
		t.Fatalf("ETag %q unchanged after a Put of other contents", info.ETag)
	}
}

func testNotFound(t *testing.T, s objstore.Store, o options) {
	put(t, s, "nf/there", []byte("x"))
	for _, key := range []string{"nf/missing", "nf/there/below", "nf", "nothing/at/all"} {
		if _, err := s.Head(ctx(t), key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Head(%q) = %v, want ErrNotFound", key, err)
		} else if !strings.Contains(err.Error(), key) {
			t.Errorf("Head(%q) error %q does not name the key", key, err)
		}
		for _, n := range []int64{-1, 0, 1} {
			if _, err := get(t, s, key, 0, n); !errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("Get(%q, 0, %d) = %v, want ErrNotFound", key, n, err)
			} else if !strings.Contains(err.Error(), key) {
				t.Errorf("Get(%q) error %q does not name the key", key, err)
			}
		}
	}
}

func testOverwrite(t *testing.T, s objstore.Store, o options) {
	a, b := Data(1, 5000), Data(2, 300)
	put(t, s, "ow", a)
	put(t, s, "ow", b)
	equal(t, "after overwrite", mustGet(t, s, "ow", 0, -1), b)
	if info, err := s.Head(ctx(t), "ow"); err != nil || info.Size != 300 {
		t.Fatalf("Head = %+v, %v; want size 300", info, err)
	}
	if list, err := s.List(ctx(t), "ow", "", 0); err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v; want one object", list, err)
	}
	// A reader opened before an overwrite may see either version, in full.
	put(t, s, "ow", a)
	rc, err := s.Get(ctx(t), "ow", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "ow", b)
	got, err := io.ReadAll(rc)
	rc.Close()
	if err == nil && !bytes.Equal(got, a) && !bytes.Equal(got, b) {
		t.Fatalf("reader across an overwrite returned %d bytes of neither version", len(got))
	}
}

// keys mixes separators, '=', unicode and names that stress a folder mapping:
// an object that is also a "folder" of others, segments ending in the local
// store's suffixes, and neighbours of '/' in byte order.
var keys = []string{
	"a",
	"a/b",
	"a/b/c",
	"a-b",
	"a.b",
	"a0",
	"a.obj",
	"a.obj/x",
	"a.dir/y",
	"a.dir.dir/z",
	"tenant=t1/cluster=c1/topic=orders/partition=0/00000000000000000000-00000000000000000999-1.log",
	"tenant=t1/cluster=c1/topic=orders/partition=0/00000000000000000000-00000000000000000999-1.index",
	"unicode/日本語/ключ/ünïcødé",
	"with space/and+plus&amp",
	"emoji/🙂",
	"~tilde",
	"Z",
}

// dropNested returns keys without those that are a "folder" of another key
// ("a" when there is "a/b").
func dropNested(keys []string) []string {
	var out []string
	for _, k := range keys {
		if !slices.ContainsFunc(keys, func(o string) bool { return strings.HasPrefix(o, k+"/") }) {
			out = append(out, k)
		}
	}
	return out
}

func testKeys(t *testing.T, s objstore.Store, o options) {
	keys := keys
	if o.noNested {
		keys = dropNested(keys)
	}
	for _, k := range keys {
		put(t, s, k, []byte(k))
	}
	for _, k := range keys {
		equal(t, k, mustGet(t, s, k, 0, -1), []byte(k))
		info, err := s.Head(ctx(t), k)
		if err != nil || info.Key != k || info.Size != int64(len(k)) {
			t.Fatalf("Head(%q) = %+v, %v", k, info, err)
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	got := listKeys(t, s, "", "", 0)
	if !slices.Equal(got, want) {
		t.Fatalf("List keys:\n got %q\nwant %q", got, want)
	}
	if o.noNested {
		if err := s.Delete(ctx(t), keys...); err != nil {
			t.Fatal(err)
		}
		if got := listKeys(t, s, "", "", 0); len(got) != 0 {
			t.Fatalf("List after deleting all = %q", got)
		}
		return
	}
	if err := s.Delete(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, s, "a")
	equal(t, "a/b/c after deleting a", mustGet(t, s, "a/b/c", 0, -1), []byte("a/b/c"))
	if err := s.Delete(ctx(t), "a/b/c", "a/b"); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, s, "a/", "", 0); len(got) != 0 {
		t.Fatalf("List(a/) after deletes = %q", got)
	}
	// The "folder" a/ is gone; a/b can be created again.
	put(t, s, "a/b", []byte("again"))
	equal(t, "a/b", mustGet(t, s, "a/b", 0, -1), []byte("again"))
}

func listKeys(t *testing.T, s objstore.Store, prefix, startAfter string, limit int) []string {
	t.Helper()
	list, err := s.List(ctx(t), prefix, startAfter, limit)
	if err != nil {
		t.Fatalf("List(%q, %q, %d): %v", prefix, startAfter, limit, err)
	}
	out := make([]string, len(list))
	for i, o := range list {
		out[i] = o.Key
	}
	return out
}

func testInvalidKeys(t *testing.T, s objstore.Store, o options) {
	put(t, s, "valid", []byte("v"))
	bad := []string{"", "/abs", "trail/", "a//b", "../up", "a/../b", "a..b", ".", "./a", "a/./b", "a/.", "nl\n", "tab\tkey", "nul\x00", "bad\xffutf8", strings.Repeat("k", objstore.MaxKeyLen+1)}
	for _, k := range bad {
		for op, err := range map[string]error{
			"Put":    s.Put(ctx(t), k, strings.NewReader("x"), 1),
			"Get":    func() error { _, err := s.Get(ctx(t), k, 0, -1); return err }(),
			"Head":   func() error { _, err := s.Head(ctx(t), k); return err }(),
			"Delete": s.Delete(ctx(t), "valid", k),
		} {
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want ErrInvalidKey", op, k, err)
			}
		}
	}
	// Delete validates every key before deleting any.
	equal(t, "valid", mustGet(t, s, "valid", 0, -1), []byte("v"))
	if _, err := s.List(ctx(t), "/abs", "", 0); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Errorf("List(/abs) = %v, want ErrInvalidKey", err)
	}
	if err := s.Put(ctx(t), "size", strings.NewReader(""), -2); err == nil {
		t.Errorf("Put with size -2 succeeded")
	}
}

func testList(t *testing.T, s objstore.Store, o options) {
	var all []string
	keys := []string{"p/0", "p/1", "p/10", "p/2", "p/2/x", "p/3", "p0", "p-", "q/1", "q/2", "r"}
	if o.noNested {
		keys = dropNested(keys)
	}
	for _, k := range keys {
		put(t, s, k, []byte(k))
		all = append(all, k)
	}
	slices.Sort(all)
	want := func(prefix, startAfter string, limit int) []string {
		var out []string
		for _, k := range all {
			if strings.HasPrefix(k, prefix) && k > startAfter && (limit <= 0 || len(out) < limit) {
				out = append(out, k)
			}
		}
		return out
	}
	for _, prefix := range []string{"", "p", "p/", "p/1", "p/2", "p/2/", "q/", "r", "s", "o"} {
		for _, startAfter := range []string{"", "a", "p", "p/", "p/1", "p/10", "p/2", "p/2/x", "p/25", "p0", "q/1", "r", "z"} {
			for _, limit := range []int{0, 1, 2, 3, 100} {
				got := listKeys(t, s, prefix, startAfter, limit)
				if w := want(prefix, startAfter, limit); !slices.Equal(got, w) {
					t.Fatalf("List(%q, %q, %d) = %q, want %q", prefix, startAfter, limit, got, w)
				}
			}
		}
	}
}

func testListPaginated(t *testing.T, s objstore.Store, o options) {
	const n = 1100
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("many/%05d", i)
	}
	putAll(t, s, keys, 8)
	check := func(startAfter string, limit int, want []string) {
		t.Helper()
		if got := listKeys(t, s, "many/", startAfter, limit); !slices.Equal(got, want) {
			t.Fatalf("List(many/, %q, %d) = %d keys [%s ... %s], want %d", startAfter, limit, len(got), first(got), last(got), len(want))
		}
	}
	check("", 0, keys)
	check("", 1050, keys[:1050])
	check(keys[99], 0, keys[100:])
	check(keys[99], 999, keys[100:1099])
	// Page through it the way callers do.
	var paged []string
	for after := ""; ; {
		page := listKeys(t, s, "many/", after, 300)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, keys) {
		t.Fatalf("paging by 300 returned %d keys, want %d", len(paged), n)
	}
	// Delete more than one batch of 1000, with missing keys mixed in.
	if err := s.Delete(ctx(t), append(slices.Clone(keys), "many/missing", "many/00001/no")...); err != nil {
		t.Fatalf("Delete(%d keys): %v", n+2, err)
	}
	check("", 0, nil)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func putAll(t *testing.T, s objstore.Store, keys []string, concurrency int) {
	t.Helper()
	g, gctx := errgroup.WithContext(ctx(t))
	g.SetLimit(concurrency)
	for _, k := range keys {
		g.Go(func() error { return s.Put(gctx, k, strings.NewReader(k), int64(len(k))) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func testDeleteMissing(t *testing.T, s objstore.Store, o options) {
	if err := s.Delete(ctx(t)); err != nil {
		t.Fatalf("Delete() = %v", err)
	}
	if err := s.Delete(ctx(t), "never", "never/there", "x/y/z"); err != nil {
		t.Fatalf("Delete of missing keys = %v", err)
	}
	put(t, s, "d/1", []byte("1"))
	put(t, s, "d/2", []byte("2"))
	if err := s.Delete(ctx(t), "d/1", "d/missing", "d/1"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	mustNotExist(t, s, "d/1")
	equal(t, "d/2", mustGet(t, s, "d/2", 0, -1), []byte("2"))
	if err := s.Delete(ctx(t), "d/1"); err != nil {
		t.Fatalf("second Delete = %v", err)
	}
}

func testConcurrentPuts(t *testing.T, s objstore.Store, o options) {
	const writers, each = 16, 4
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("conc/%02d/%d", w, i)
				data := Data(uint64(w*each+i), 10000+w*100+i)
				if err := s.Put(ctx(t), key, bytes.NewReader(data), -1); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		for i := range each {
			key := fmt.Sprintf("conc/%02d/%d", w, i)
			equal(t, key, mustGet(t, s, key, 0, -1), Data(uint64(w*each+i), 10000+w*100+i))
		}
	}
	if got := listKeys(t, s, "conc/", "", 0); len(got) != writers*each {
		t.Fatalf("List = %d keys, want %d", len(got), writers*each)
	}
}

var errBoom = errors.New("objstoretest: reader failed")

// failingReader yields data then fails with errBoom.
func failingReader(data []byte) io.Reader {
	return io.MultiReader(bytes.NewReader(data), iotest{errBoom})
}

type iotest struct{ err error }

func (r iotest) Read([]byte) (int, error) { return 0, r.err }

func testAtomicFailedReader(t *testing.T, s objstore.Store, o options) {
	old := Data(9, 100)
	for _, tt := range []struct {
		name string
		n    int // bytes before the failure
		size int64
	}{
		{"small known", 100, 1000},
		{"small unknown", 100, -1},
		{"after a part known", LargeSize - 1000, LargeSize},
		{"after a part unknown", LargeSize - 1000, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := "atomic/" + strings.ReplaceAll(tt.name, " ", "-")
			err := s.Put(ctx(t), key, failingReader(Data(1, tt.n)), tt.size)
			if !errors.Is(err, errBoom) {
				t.Fatalf("Put with a failing reader = %v, want the reader's error", err)
			}
			mustNotExist(t, s, key)
			// Over an existing object, the old one stays whole.
			put(t, s, key, old)
			if err := s.Put(ctx(t), key, failingReader(Data(1, tt.n)), tt.size); !errors.Is(err, errBoom) {
				t.Fatalf("Put with a failing reader = %v, want the reader's error", err)
			}
			equal(t, key, mustGet(t, s, key, 0, -1), old)
		})
	}
	// A reader that also reads at offsets (like a file) and fails midway.
	for _, n := range []int{1000, LargeSize} {
		key := fmt.Sprintf("atomic/readerat-%d", n)
		r := &failingReaderAt{data: Data(2, n), failAt: int64(n) * 3 / 4}
		err := s.Put(ctx(t), key, r, int64(n))
		if !errors.Is(err, errBoom) {
			t.Fatalf("Put(%q) with a failing io.ReaderAt = %v, want the reader's error", key, err)
		}
		t.Logf("Put with a failing io.ReaderAt: %v", err)
		mustNotExist(t, s, key)
	}
	if got := listKeys(t, s, "", "", 0); len(got) != 4 {
		t.Fatalf("List after failed Puts = %q, want the 4 old objects only", got)
	}
}

// failingReaderAt is an io.Reader, io.ReaderAt and io.Seeker over data whose
// reads of the bytes from failAt on fail with errBoom.
type failingReaderAt struct {
	data   []byte
	failAt int64
	off    int64
}

func (r *failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if off+int64(n) > r.failAt {
		return int(max(0, r.failAt-off)), errBoom
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *failingReaderAt) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *failingReaderAt) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += r.off
	case io.SeekEnd:
		off += int64(len(r.data))
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	r.off = off
	return off, nil
}

func testSizeMismatch(t *testing.T, s objstore.Store, o options) {
	for _, tt := range []struct {
		name string
		n    int
		size int64
	}{
		{"short", 50, 100},
		{"long", 100, 50},
		{"large short", LargeSize - 1, LargeSize},
		{"large long", LargeSize, LargeSize - 1},
		{"empty long", 1, 0},
	} {
		key := "size/" + strings.ReplaceAll(tt.name, " ", "-")
		err := s.Put(ctx(t), key, bytes.NewReader(Data(1, tt.n)), tt.size)
		if err == nil {
			t.Fatalf("%s: Put of %d bytes with size %d succeeded", tt.name, tt.n, tt.size)
		}
		mustNotExist(t, s, key)
	}
}

func testCancel(t *testing.T, s objstore.Store, o options) {
	data := Data(5, LargeSize)
	put(t, s, "cancel/there", data)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(cancelled, "cancel/new", bytes.NewReader(data[:10]), 10); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled ctx = %v, want context.Canceled", err)
	}
	if _, err := s.Get(cancelled, "cancel/there", 0, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled ctx = %v, want context.Canceled", err)
	}
	if _, err := s.Head(cancelled, "cancel/there"); !errors.Is(err, context.Canceled) {
		t.Errorf("Head with a cancelled ctx = %v, want context.Canceled", err)
	}
	if _, err := s.List(cancelled, "", "", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled ctx = %v, want context.Canceled", err)
	}
	if err := s.Delete(cancelled, "cancel/there"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled ctx = %v, want context.Canceled", err)
	}

	// Cancelled in the middle of an upload, small and large: nothing stored.
	for _, n := range []int{1000, LargeSize} {
		c, cancel := context.WithCancel(t.Context())
		r := &cancellingReader{r: bytes.NewReader(data[:n]), after: n - 100, cancel: cancel}
		key := fmt.Sprintf("cancel/mid-%d", n)
		if err := s.Put(c, key, r, int64(n)); !errors.Is(err, context.Canceled) {
			t.Errorf("Put(%q) cancelled midway = %v, want context.Canceled", key, err)
		}
		cancel()
		mustNotExist(t, s, key)
	}

	// Cancelled while reading: the reader fails.
	c, cancel := context.WithCancel(t.Context())
	defer cancel()
	rc, err := s.Get(c, "cancel/there", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if n, err := io.Copy(io.Discard, rc); err == nil {
		t.Errorf("reading after cancel: read %d more bytes and no error", n)
	}
	equal(t, "cancel/there", mustGet(t, s, "cancel/there", 0, -1), data)
}

// cancellingReader cancels a context once it has yielded after bytes, and
// keeps yielding.
type cancellingReader struct {
	r      io.Reader
	after  int
	n      int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
