// Package machine measures the reference figures of the machine the
// benchmark runs on: the disk's sequential write rate with fsync, the
// latency of a small synchronous write, and loopback TCP bandwidth. They put
// the systems' figures in proportion.
package machine

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Info describes the machine and holds the reference figures. A figure
// that could not be measured is 0, with the reason in Notes.
type Info struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	MemoryMB   int64  `json:"memory_mb"`
	Kernel     string `json:"kernel"`
	Filesystem string `json:"filesystem"`
	GoVersion  string `json:"go_version"`

	// DiskWriteMBPerSec is `dd bs=1M conv=fsync` to the work directory, in
	// 10^6 bytes/s as dd reports it.
	DiskWriteMBPerSec float64 `json:"disk_write_mb_per_sec"`
	DiskWriteCommand  string  `json:"disk_write_command"`
	// FdatasyncMs is the median time of one 4 KiB write and fdatasync.
	FdatasyncMs float64 `json:"fdatasync_4k_ms"`
	// LoopbackMBPerSec is one TCP stream over 127.0.0.1.
	LoopbackMBPerSec float64  `json:"loopback_tcp_mb_per_sec"`
	Notes            []string `json:"notes,omitempty"`
}

// Options size the measurements.
type Options struct {
	// DiskMiB is what dd writes, in MiB.
	DiskMiB int
	// Syncs is the number of 4 KiB write+fdatasync pairs.
	Syncs int
	// LoopbackBytes is what the TCP stream carries.
	LoopbackBytes int64
}

// Measure describes the machine and measures its reference figures in dir,
// which must be on the disk the systems use.
func Measure(ctx context.Context, dir string, o Options) Info {
	info := Info{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	info.CPU = cpuModel()
	info.MemoryMB = memTotalMB()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		info.Kernel = strings.TrimSpace(string(b))
	}
	info.Filesystem = filesystem(dir)
	if info.Filesystem == "tmpfs" {
		info.Notes = append(info.Notes, "the work directory is on tmpfs: fsync costs nothing there; pass -workdir on a real disk")
	}

	var err error
	if info.DiskWriteMBPerSec, info.DiskWriteCommand, err = ddWrite(ctx, dir, o.DiskMiB); err != nil {
		info.Notes = append(info.Notes, err.Error())
	}
	if info.FdatasyncMs, err = fdatasync(dir, o.Syncs); err != nil {
		info.Notes = append(info.Notes, err.Error())
	}
	if info.LoopbackMBPerSec, err = loopback(o.LoopbackBytes); err != nil {
		info.Notes = append(info.Notes, err.Error())
	}
	return info
}

var ddRate = regexp.MustCompile(`copied, ([0-9.]+) s, ([0-9.]+) ([kMG]?B)/s`)

// ddWrite runs dd with conv=fsync and returns its rate in MB/s.
func ddWrite(ctx context.Context, dir string, mib int) (float64, string, error) {
	path := filepath.Join(dir, "dd.tmp")
	defer os.Remove(path)
	args := []string{"if=/dev/zero", "of=" + path, "bs=1M", fmt.Sprintf("count=%d", mib), "conv=fsync"}
	line := "dd " + strings.Join(args, " ")
	out, err := exec.CommandContext(ctx, "dd", args...).CombinedOutput()
	if err != nil {
		return 0, line, fmt.Errorf("%s: %v: %s", line, err, out)
	}
	m := ddRate.FindStringSubmatch(string(out))
	if m == nil {
		return 0, line, fmt.Errorf("%s: cannot parse %q", line, out)
	}
	secs, err := strconv.ParseFloat(m[1], 64)
	if err != nil || secs <= 0 {
		return 0, line, fmt.Errorf("%s: cannot parse %q", line, out)
	}
	// Compute from bytes and seconds rather than trust dd's unit choice.
	return round(float64(mib)*(1<<20)/secs/1e6, 0), line, nil
}

// fdatasync returns the median time of a 4 KiB write followed by
// fdatasync, appending to a fresh file as a log does.
func fdatasync(dir string, n int) (float64, error) {
	f, err := os.CreateTemp(dir, "fdatasync-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("fdatasync: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	times := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("fdatasync: %w", err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, fmt.Errorf("fdatasync: %w", err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return round(float64(times[len(times)/2])/1e6, 3), nil
}

// loopback returns the rate of one TCP stream over 127.0.0.1, in MB/s.
func loopback(total int64) (float64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("loopback: %w", err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		for {
			if _, err := c.Read(buf); err != nil {
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("loopback: %w", err)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := int64(0); sent < total; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, fmt.Errorf("loopback: %w", err)
		}
	}
	c.Close()
	if err := <-done; err != nil {
		return 0, fmt.Errorf("loopback: %w", err)
	}
	return round(float64(total)/time.Since(start).Seconds()/1e6, 0), nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotalMB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb >> 10
			}
		}
	}
	return 0
}

// filesystem names the file system type of dir, from statfs's magic number.
func filesystem(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs"
	case 0x794C7630:
		return "overlayfs"
	case 0x2FC12FC1:
		return "zfs"
	}
	return fmt.Sprintf("0x%x", st.Type)
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
