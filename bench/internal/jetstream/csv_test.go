package jetstream

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A CSV file as nats bench v0.5.1 writes it (--csv).
const benchCSV = `#RunID,ClientID,MsgCount,MsgBytes,MsgsPerSec,BytesPerSec,DurationSecs,MinLatencyMicroSecs,AvgLatencyMicroSecs,MaxLatencyMicroSecs,P50LatencyMicroSecs,P90LatencyMicroSecs,P99LatencyMicroSecs,P99.9LatencyMicroSecs,StdDevLatencyMicroSecs
J07HWUY7IxbOYWHyqa5N8w,P0,400000,20000000,68828,6882859.862247,2.905769,3237.449000,7253.682077,53663.863000,6414.882000,10868.607000,19537.023000,53663.863000,8344.126643
`

func TestReadBenchCSV(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	if err := os.WriteFile(good, []byte(benchCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := readBenchCSV(good)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2905769 * time.Microsecond; d != want {
		t.Errorf("duration %v, want %v", d, want)
	}

	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("#RunID,ClientID\nx,y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readBenchCSV(bad); err == nil {
		t.Error("a CSV file without DurationSecs was accepted")
	}
	if _, err := readBenchCSV(filepath.Join(dir, "missing.csv")); err == nil {
		t.Error("a missing CSV file was accepted")
	}
}
