package format_test

import (
	"testing"
	"time"

	"github.com/spatehq/spate/cli/internal/format"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		err  bool
	}{
		{name: "days", in: "7d", want: 7 * 24 * time.Hour},
		{name: "year", in: "1y", want: 365 * 24 * time.Hour},
		{name: "hours", in: "36h", want: 36 * time.Hour},
		{name: "mixed", in: "1d12h30m", want: 36*time.Hour + 30*time.Minute},
		{name: "millis", in: "250ms", want: 250 * time.Millisecond},
		{name: "fraction", in: "1.5h", want: 90 * time.Minute},
		{name: "forever", in: "forever", want: -1},
		{name: "minus one", in: "-1", want: -1},
		{name: "zero", in: "0", want: 0},
		{name: "no unit", in: "7", err: true},
		{name: "bad unit", in: "7w", err: true},
		{name: "empty", in: "", err: true},
		{name: "words", in: "soon", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := format.ParseDuration(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{7 * format.Day, "7d"},
		{format.Year, "1y"},
		{36 * time.Hour, "1d12h"},
		{90 * time.Minute, "1h30m"},
		{-1, "forever"},
		{0, "default"},
	}
	for _, tt := range tests {
		if got := format.FormatDuration(tt.in); got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"7d", "1y", "36h", "1d12h30m", "250ms", "1.5h", "forever", "-1", "", "7w", "9999999999y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := format.ParseDuration(s)
		if err != nil {
			return
		}
		if d < -1 {
			t.Fatalf("ParseDuration(%q) = %v: negative beyond -1", s, d)
		}
		if d > 0 {
			back, err := format.ParseDuration(format.FormatDuration(d))
			if err != nil || back != d {
				t.Fatalf("%q → %v → %q → %v, %v", s, d, format.FormatDuration(d), back, err)
			}
		}
	})
}
