package commitlog_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
)

// mountTmpfs mounts a tmpfs of the given size (mount(8) syntax, "256k") on a
// new folder and unmounts it when the test ends. It skips the test when it
// cannot mount, which needs root.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("SKIPPED: the disk-full test needs to mount a tmpfs, which needs root and mount(8): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func TestDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "256k")
	dir := filepath.Join(mnt, "topic-0")
	cfg := testConfig()
	cfg.SegmentBytes = 64 << 10
	cfg.IndexIntervalBytes = 4096
	l, err := commitlog.Open(dir, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	var want []appended
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		b := makeBatch(t, i, 4, 2000, 1000) // about 8 KiB
		before := l.Info()
		base, last, err := l.Append(b)
		if err == nil {
			want = append(want, appended{base: base, last: last, bytes: b})
			continue
		}
		if !errors.Is(err, commitlog.ErrNoSpace) {
			t.Fatalf("Append on a full disk = %v, want ErrNoSpace", err)
		}
		full = err
		after := l.Info()
		if after.EndOffset != before.EndOffset || after.Size != before.Size || after.StartOffset != before.StartOffset {
			t.Fatalf("a failed append changed the log: %+v, was %+v", after, before)
		}
	}
	if full == nil {
		t.Fatal("the disk never filled up")
	}
	t.Logf("disk full after %d batches: %v", len(want), full)
	if len(want) < 10 {
		t.Fatalf("only %d batches fit", len(want))
	}

	// Nothing partial on disk: the segment files hold exactly the log.
	var onDisk int64
	for _, p := range segmentFiles(t, dir, ".log") {
		onDisk += fileSize(t, p)
	}
	if onDisk != l.Info().Size {
		t.Fatalf("segment files hold %d bytes, the log %d", onDisk, l.Info().Size)
	}
	checkAll(t, l, want)

	// Close on a full disk may fail to write the recovery point; that only
	// makes the next Open scan more.
	if err := l.Close(); err != nil && !errors.Is(err, commitlog.ErrNoSpace) {
		t.Fatalf("Close: %v", err)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=4m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	l, err = commitlog.Open(dir, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, l, want)
	want = append(want, appendBatch(t, l, makeBatch(t, 1000, 4, 2000, 1000)))
	checkAll(t, l, want)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDiskFullWithUploadsFailing fills the disk of a tiered log whose
// segments cannot be uploaded: appends fail with ErrNoSpace, nothing that
// was acknowledged is deleted, Info says why; once the segments are
// uploaded, retention frees the disk and appends succeed again.
func TestDiskFullWithUploadsFailing(t *testing.T) {
	mnt := mountTmpfs(t, "256k")
	cfg := testConfig()
	cfg.SegmentBytes = 32 << 10
	cfg.IndexIntervalBytes = 4096
	cfg.Tiering = true
	cfg.LocalRetentionBytes = 64 << 10
	l, err := commitlog.Open(filepath.Join(mnt, "topic-0"), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var uploaded atomic.Bool
	l.SetDeletionGate(func(int64, int64) bool { return uploaded.Load() })

	var want []appended
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		b := makeBatch(t, i, 4, 2000, 1000)
		base, last, err := l.Append(b)
		if err != nil {
			full = err
			break
		}
		want = append(want, appended{base: base, last: last, bytes: b})
		if _, err := l.EnforceRetention(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if !errors.Is(full, commitlog.ErrNoSpace) {
		t.Fatalf("the disk never filled: %v", full)
	}
	info := l.Info()
	if !info.DiskFull || info.RetentionHeldSegments == 0 || info.StartOffset != 0 {
		t.Fatalf("with the disk full: %+v", info)
	}
	checkAll(t, l, want) // nothing acknowledged was lost

	uploaded.Store(true)
	if n, err := l.EnforceRetention(time.Now()); err != nil || n == 0 {
		t.Fatalf("EnforceRetention after the uploads = %d, %v", n, err)
	}
	if _, _, err := l.Append(makeBatch(t, 0, 4, 2000, 1000)); err != nil {
		t.Fatalf("append after retention freed the disk: %v", err)
	}
	if info := l.Info(); info.DiskFull || info.RetentionHeldSegments != 0 {
		t.Fatalf("after freeing the disk: %+v", info)
	}
}
