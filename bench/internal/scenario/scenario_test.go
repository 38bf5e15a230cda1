package scenario_test

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/spatehq/spate/bench/internal/scenario"
)

func TestPercentile(t *testing.T) {
	samples := make([]time.Duration, 1000)
	for i := range samples {
		samples[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name string
		q    float64
		want time.Duration
	}{
		{"p50", 0.50, 500 * time.Millisecond},
		{"p99", 0.99, 990 * time.Millisecond},
		{"p99.9", 0.999, 999 * time.Millisecond},
		{"max", 1, 1000 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scenario.Percentile(samples, tt.q); got != tt.want {
				t.Errorf("Percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
	if got := scenario.Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile of nothing = %v, want 0", got)
	}
}

func TestPlanAndFilter(t *testing.T) {
	o := scenario.Options{Duration: time.Second, LatencyDuration: time.Second, LatencyRate: 10_000, Handshakes: 100}
	write := scenario.Plan(scenario.Write, o)
	var names []string
	for _, s := range write {
		names = append(names, s.Name())
	}
	for _, want := range []string{"idle-write", "produce-100B-p1-write", "consume-1KiB-p6-write", "latency-100B-10000rps-write", "handshake-100conns-write"} {
		if !slices.Contains(names, want) {
			t.Errorf("the write plan has no %s: %v", want, names)
		}
	}
	for _, s := range scenario.Plan(scenario.Fsync, o) {
		if s.Kind == scenario.Consume || s.Kind == scenario.Handshake {
			t.Errorf("the fsync plan has %s; consume and handshake run in the write mode only", s.Name())
		}
	}

	got := scenario.Filter(write, regexp.MustCompile(`^consume-100B-p6`))
	if len(got) != 2 || got[0].Name() != "produce-100B-p6-write" || got[1].Name() != "consume-100B-p6-write" {
		t.Errorf("Filter kept %v, want the consume scenario and the produce it needs", got)
	}
	if topic := got[1].Topic(); topic != "produce-100b-p6-write" {
		t.Errorf("consume reads topic %q, want its producer's, in lower case", topic)
	}
}

func TestSetThroughput(t *testing.T) {
	var r scenario.Result
	r.SetThroughput(2_000_000, 100, 2*time.Second)
	if r.RecordsPerSec != 1_000_000 || r.MBPerSec != 100 {
		t.Errorf("got %v records/s and %v MB/s, want 1,000,000 and 100", r.RecordsPerSec, r.MBPerSec)
	}
}
