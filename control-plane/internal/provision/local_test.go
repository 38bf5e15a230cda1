package provision_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spatehq/spate/control-plane/internal/provision"
)

func TestLocalEnsureRejectsBadSpecs(t *testing.T) {
	p := provision.NewLocal(provision.LocalConfig{Binary: "/nonexistent/spate", DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	defer p.Close()
	for _, tc := range []struct {
		name string
		spec provision.ClusterSpec
	}{
		{"bad name", provision.ClusterSpec{Name: "../x", SPUs: 1, ControlPlane: "http://x"}},
		{"negative", provision.ClusterSpec{Name: "a", SPUs: -1, ControlPlane: "http://x"}},
		{"no control plane", provision.ClusterSpec{Name: "a", SPUs: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.Ensure(context.Background(), tc.spec); err == nil {
				t.Fatal("Ensure succeeded")
			}
		})
	}
}

func TestLocalRecordsStartFailures(t *testing.T) {
	p := provision.NewLocal(provision.LocalConfig{Binary: "/nonexistent/spate", DataDir: t.TempDir(), MinBackoff: 10 * time.Millisecond}, slog.New(slog.DiscardHandler))
	defer p.Close()
	if err := p.Ensure(context.Background(), provision.ClusterSpec{Name: "a", SPUs: 1, ControlPlane: "http://x"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a start failure", func() bool {
		s := p.State("a")[0]
		return !s.Running && s.Restarts >= 2 && strings.Contains(s.LastError, "start spu")
	})
}

// waitFor polls cond for up to 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
