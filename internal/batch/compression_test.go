package batch_test

import (
	"testing"

	"github.com/spatehq/spate/internal/batch"
)

func TestParseCompression(t *testing.T) {
	tests := []struct {
		name    string
		s       string
		want    batch.Compression
		wantErr bool
	}{
		{name: "empty means none", s: "", want: batch.None},
		{name: "none", s: "none", want: batch.None},
		{name: "gzip", s: "gzip", want: batch.Gzip},
		{name: "snappy", s: "snappy", want: batch.Snappy},
		{name: "lz4", s: "lz4", want: batch.LZ4},
		{name: "zstd", s: "zstd", want: batch.Zstd},
		{name: "upper case", s: "ZSTD", wantErr: true},
		{name: "unknown", s: "brotli", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := batch.ParseCompression(tt.s)
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Errorf("ParseCompression(%q) = %v, %v; want %v, error %v", tt.s, got, err, tt.want, tt.wantErr)
			}
			if !tt.wantErr && tt.s != "" && got.String() != tt.s {
				t.Errorf("String() = %q, want %q", got.String(), tt.s)
			}
		})
	}
	if c := batch.Compression(5); c.Valid() || c.String() != "compression(5)" {
		t.Errorf("Compression(5): Valid %v, String %q", c.Valid(), c.String())
	}
}
