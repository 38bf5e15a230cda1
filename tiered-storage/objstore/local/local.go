// Package local is an [objstore.Store] over a folder of the local file
// system: the default object store of `spate local up`, and a fast store for
// tests.
//
// # On-disk layout
//
// Under the root folder given to [New]:
//
//	objects/            one file per object, in folders named for the key's segments
//	  a/b/c.log.obj     the object with key "a/b/c.log"
//	tmp/                Puts in progress (removed when they fail; stale ones at New)
//
// A key's segments before the last become folders; the last segment becomes
// a file with the suffix ".obj", so "a" and "a/b" can both be objects (file
// "a.obj" beside folder "a"). A folder segment that itself ends in ".obj" or
// ".dir" gets ".dir" appended ("x.obj/y" is stored as "x.obj.dir/y.obj"), so
// folder and file names never collide. Other files under objects/ are
// ignored. Segments longer than 251 bytes exceed common file-name limits and
// are refused with [objstore.ErrInvalidKey].
//
// # Guarantees
//
// Put writes to a temporary file in tmp/, fsyncs it, renames it into place
// and fsyncs the folder, so an object is either wholly there or not at all,
// also across a crash. Get reads the file that was there when Get was called,
// even if a Put replaces it meanwhile. List walks the folders in key order
// (byte order of the keys), pruning those outside the prefix or before
// startAfter. Empty folders are removed when their last object is deleted.
//
// The ETag is a version stamp (inode, size, modification time): it changes
// whenever the object is rewritten, even with equal contents.
//
// Several Stores, also in several processes, may share one root.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spatehq/spate/tiered-storage/objstore"
)

var _ objstore.Store = (*Store)(nil)

const (
	objSuffix = ".obj"
	dirSuffix = ".dir"
	tmpSuffix = ".tmp"
	// staleTmp is the age after which New removes a leftover temporary file
	// (from a process that crashed during a Put).
	staleTmp = time.Hour
)

// Store is an [objstore.Store] over a folder. Create it with [New]. It is safe
// for concurrent use.
type Store struct {
	root   string
	objDir string // root/objects: the objects, see the package doc
	tmpDir string // root/tmp: Puts in progress
}

// New returns a Store over the folder root, creating it and its layout when
// missing, and removes temporary files left over for more than an hour by
// Puts that crashed.
func New(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("objstore/local: empty root folder")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("objstore/local: %w", err)
	}
	s := &Store{root: root, objDir: filepath.Join(root, "objects"), tmpDir: filepath.Join(root, "tmp")}
	for _, d := range []string{s.objDir, s.tmpDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("objstore/local: create %s: %w", d, mapErr(err))
		}
	}
	if entries, err := os.ReadDir(s.tmpDir); err == nil {
		for _, e := range entries {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTmp {
				_ = os.Remove(filepath.Join(s.tmpDir, e.Name()))
			}
		}
	}
	return s, nil
}

// Root returns the folder the Store was created over.
func (s *Store) Root() string { return s.root }

// path returns the file of key, which must be valid.
func (s *Store) path(key string) (string, error) {
	segs := strings.Split(key, "/")
	parts := make([]string, 0, len(segs)+1)
	parts = append(parts, s.objDir)
	for i, seg := range segs {
		if i == len(segs)-1 {
			seg += objSuffix
		} else {
			seg = encodeDir(seg)
		}
		if len(seg) > 255 {
			return "", fmt.Errorf("%w %q: segment of %d bytes is too long for a file name", objstore.ErrInvalidKey, key, len(seg))
		}
		parts = append(parts, seg)
	}
	return filepath.Join(parts...), nil
}

// encodeDir returns the folder name of a key segment: see the package doc.
func encodeDir(seg string) string {
	if strings.HasSuffix(seg, objSuffix) || strings.HasSuffix(seg, dirSuffix) {
		return seg + dirSuffix
	}
	return seg
}

// decodeDir inverts encodeDir.
func decodeDir(name string) string {
	if strings.HasSuffix(name, objSuffix+dirSuffix) || strings.HasSuffix(name, dirSuffix+dirSuffix) {
		return strings.TrimSuffix(name, dirSuffix)
	}
	return name
}

func (s *Store) checkKey(op, key string) (string, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return "", fmt.Errorf("objstore/local: %s: %w", op, err)
	}
	p, err := s.path(key)
	if err != nil {
		return "", fmt.Errorf("objstore/local: %s: %w", op, err)
	}
	return p, nil
}

// mapErr makes file-system errors match the objstore sentinels, keeping the
// original in the chain.
func mapErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w: %w", objstore.ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w", objstore.ErrPermission, err)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("%w: %w", objstore.ErrInvalidKey, err)
	}
	return err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Put implements [objstore.Store].
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	path, err := s.checkKey("put", key)
	if err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("objstore/local: put %q: invalid size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore/local: put %q: %w", key, err)
	}
	tmp, err := os.CreateTemp(s.tmpDir, "put-*"+tmpSuffix)
	if err != nil {
		return fmt.Errorf("objstore/local: put %q: %w", key, mapErr(err))
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	src := io.Reader(&ctxReader{ctx: ctx, r: r})
	if size >= 0 {
		src = io.LimitReader(src, size+1) // one byte more reveals a reader longer than size
	}
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(struct{ io.Writer }{tmp}, src, *buf)
	copyBufs.Put(buf)
	if err != nil {
		return fmt.Errorf("objstore/local: put %q: after %d bytes: %w", key, n, mapErr(err))
	}
	if size >= 0 && n != size {
		return fmt.Errorf("objstore/local: put %q: reader yielded %s bytes, want %d", key, countDesc(n, size), size)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("objstore/local: put %q: sync: %w", key, mapErr(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("objstore/local: put %q: %w", key, mapErr(err))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore/local: put %q: %w", key, err)
	}
	dir := filepath.Dir(path)
	// A concurrent Delete may remove empty folders while mkdirAll creates
	// them or before Rename: then create them again.
	for attempt := 0; ; attempt++ {
		err = s.mkdirAll(dir)
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 100 {
			return fmt.Errorf("objstore/local: put %q: %w", key, mapErr(err))
		}
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("objstore/local: put %q: sync folder: %w", key, mapErr(err))
	}
	return nil
}

// countDesc describes how many bytes a reader yielded when it did not match
// the announced size.
func countDesc(n, size int64) string {
	if n > size {
		return "more than " + fmt.Sprint(size)
	}
	return fmt.Sprint(n)
}

// mkdirAll creates dir and its missing parents under objDir, fsyncing the
// parent of every folder it creates so the new entries survive a crash.
func (s *Store) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if len(parent) > len(s.objDir) {
		if err := s.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get implements [objstore.Store]. ctx also governs the returned reader.
func (s *Store) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	path, err := s.checkKey("get", key)
	if err != nil {
		return nil, err
	}
	if err := objstore.ValidateRange(off, n); err != nil {
		return nil, fmt.Errorf("objstore/local: get %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("objstore/local: get %q: %w", key, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("objstore/local: get %q: %w", key, mapErr(err))
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("objstore/local: get %q: %w", key, mapErr(err))
	}
	size := fi.Size()
	if off >= size && off > 0 {
		_ = f.Close()
		return nil, fmt.Errorf("objstore/local: get %q: %w: offset %d, object size %d", key, objstore.ErrInvalidRange, off, size)
	}
	length := size - off
	if n >= 0 && n < length {
		length = n
	}
	return &fileReader{ctxReader: ctxReader{ctx: ctx, r: io.NewSectionReader(f, off, length)}, f: f}, nil
}

// Head implements [objstore.Store].
func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	path, err := s.checkKey("head", key)
	if err != nil {
		return objstore.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("objstore/local: head %q: %w", key, err)
	}
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("objstore/local: head %q: %w", key, mapErr(err))
	}
	return info(key, fi), nil
}

func info(key string, fi fs.FileInfo) objstore.ObjectInfo {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return objstore.ObjectInfo{
		Key:          key,
		Size:         fi.Size(),
		ETag:         fmt.Sprintf("%x-%x-%x", ino, fi.Size(), fi.ModTime().UnixNano()),
		LastModified: fi.ModTime(),
	}
}

// errLimit stops a List walk that has found limit objects.
var errLimit = errors.New("limit reached")

// List implements [objstore.Store].
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) ([]objstore.ObjectInfo, error) {
	if err := objstore.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("objstore/local: list: %w", err)
	}
	var out []objstore.ObjectInfo
	w := walker{ctx: ctx, prefix: prefix, startAfter: startAfter, limit: limit, out: &out}
	if err := w.walk(s.objDir, ""); err != nil && err != errLimit {
		return nil, fmt.Errorf("objstore/local: list %q after %q: %w", prefix, startAfter, mapErr(err))
	}
	return out, nil
}

type walker struct {
	ctx                context.Context
	prefix, startAfter string
	limit              int
	out                *[]objstore.ObjectInfo
}

type entry struct {
	name  string // the name in the folder
	sort  string // the key segment, with '/' appended for folders
	isDir bool
}

// walk appends the objects under dir, whose keys start with keyPrefix ("" or
// ending in '/'), in key order. Ordering the entries of a folder by segment,
// with '/' appended to folders' segments, makes the depth-first walk visit
// keys in byte order: every key under folder "a" starts with "a/".
func (w *walker) walk(dir, keyPrefix string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && keyPrefix != "" {
			return nil // removed by a concurrent Delete
		}
		return err
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		switch name := de.Name(); {
		case de.IsDir():
			entries = append(entries, entry{name: name, sort: decodeDir(name) + "/", isDir: true})
		case de.Type().IsRegular() && strings.HasSuffix(name, objSuffix):
			entries = append(entries, entry{name: name, sort: strings.TrimSuffix(name, objSuffix)})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.sort, b.sort) })
	for _, e := range entries {
		full := keyPrefix + e.sort
		if e.isDir {
			// Every key below starts with full.
			if !strings.HasPrefix(full, w.prefix) && !strings.HasPrefix(w.prefix, full) {
				continue
			}
			if full < w.startAfter && !strings.HasPrefix(w.startAfter, full) {
				continue // all of them sort before startAfter
			}
			if err := w.walk(filepath.Join(dir, e.name), full); err != nil {
				return err
			}
			continue
		}
		if !strings.HasPrefix(full, w.prefix) || full <= w.startAfter {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.name))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since ReadDir
			}
			return err
		}
		*w.out = append(*w.out, info(full, fi))
		if w.limit > 0 && len(*w.out) >= w.limit {
			return errLimit
		}
	}
	return nil
}

// Delete implements [objstore.Store]. It fsyncs the folders it removed files
// from, and removes folders left empty.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	paths := make([]string, len(keys))
	for i, key := range keys {
		p, err := s.checkKey("delete", key)
		if err != nil {
			return err
		}
		paths[i] = p
	}
	dirs := map[string]bool{}
	for i, p := range paths {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("objstore/local: delete %q: %w", keys[i], err)
		}
		if err := os.Remove(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				continue
			}
			return fmt.Errorf("objstore/local: delete %q: %w", keys[i], mapErr(err))
		}
		dirs[filepath.Dir(p)] = true
	}
	for dir := range dirs {
		if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("objstore/local: delete: sync folder: %w", mapErr(err))
		}
		// Remove the folders left empty, up to objects/; Remove fails on a
		// folder that is not empty, which ends the climb.
		for d := dir; len(d) > len(s.objDir); d = filepath.Dir(d) {
			if os.Remove(d) != nil {
				break
			}
		}
	}
	return nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type fileReader struct {
	ctxReader
	f *os.File
}

func (r *fileReader) Close() error { return r.f.Close() }
