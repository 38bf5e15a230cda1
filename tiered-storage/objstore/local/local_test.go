package local_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
	"github.com/spatehq/spate/tiered-storage/objstore/objstoretest"
)

func newStore(t *testing.T) objstore.Store {
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	objstoretest.Run(t, newStore)
}

func TestLayout(t *testing.T) {
	root := t.TempDir()
	s, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, key := range []string{"a/b.log", "x.obj/y", "x.dir/z", "x.obj.dir/w"} {
		if err := s.Put(ctx, key, strings.NewReader(key), -1); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{"objects/a/b.log.obj", "objects/x.obj.dir/y.obj", "objects/x.dir.dir/z.obj", "objects/x.obj.dir.dir/w.obj"} {
		if _, err := os.Stat(filepath.Join(root, path)); err != nil {
			t.Errorf("layout: %v", err)
		}
	}
	// Failed Puts leave nothing in tmp/.
	_ = s.Put(ctx, "fail", iotest.ErrReader(errors.New("boom")), -1)
	if entries, _ := os.ReadDir(filepath.Join(root, "tmp")); len(entries) != 0 {
		t.Errorf("tmp/ holds %d files after a failed Put", len(entries))
	}
	// Foreign files are not objects.
	if err := os.WriteFile(filepath.Join(root, "objects", "a", "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, "", "", 0)
	if err != nil || len(list) != 4 {
		t.Fatalf("List = %+v, %v; want the 4 objects", list, err)
	}
	// Deleting the last object of a folder removes the folder.
	if err := s.Delete(ctx, "x.obj/y"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "objects", "x.obj.dir")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty folder left after Delete: %v", err)
	}
}

func TestStaleTemporaryFiles(t *testing.T) {
	root := t.TempDir()
	if _, err := local.New(root); err != nil {
		t.Fatal(err)
	}
	stale, fresh := filepath.Join(root, "tmp", "put-1.tmp"), filepath.Join(root, "tmp", "put-2.tmp")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := local.New(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file (maybe another process's Put) removed: %v", err)
	}
}

func TestLongSegment(t *testing.T) {
	s := newStore(t)
	err := s.Put(t.Context(), strings.Repeat("s", 300), strings.NewReader("x"), 1)
	if !errors.Is(err, objstore.ErrInvalidKey) {
		t.Fatalf("Put with a 300-byte segment = %v, want ErrInvalidKey", err)
	}
}

// TestConcurrentPutDelete races Puts into a folder against Deletes that
// empty it (and so remove it).
func TestConcurrentPutDelete(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				key := fmt.Sprintf("race/dir/%d-%d", w, i)
				if err := s.Put(ctx, key, strings.NewReader("x"), 1); err != nil {
					t.Error(err)
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if list, err := s.List(ctx, "", "", 0); err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v; want nothing", list, err)
	}
}
