package format

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Day and Year are the units ParseDuration adds to Go's: a day is 24 hours
// and a year 365 days.
const (
	Day  = 24 * time.Hour
	Year = 365 * Day
)

// units are the suffixes ParseDuration knows, two-letter ones first so
// that "ms" is not read as "m".
var units = []struct{ suffix string }{
	{"ns"}, {"us"}, {"µs"}, {"ms"}, {"s"}, {"m"}, {"h"}, {"d"}, {"y"},
}

// ParseDuration parses a duration such as "7d", "1y", "36h", "1d12h" or
// "90s": Go's units plus d (days) and y (365-day years). "-1" and "forever"
// give -1ns, which the commands take to mean forever / no limit.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "-1" || in == "forever" {
		return -1, nil
	}
	if in == "0" {
		return 0, nil
	}
	if in == "" {
		return 0, fmt.Errorf("empty duration: use for example 7d, 36h or 1y")
	}
	var total time.Duration
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("duration %q: use a number and a unit, for example 7d, 36h, 90m or 1y", s)
		}
		num := rest[:i]
		rest = rest[i:]
		var unit string
		for _, u := range units {
			if strings.HasPrefix(rest, u.suffix) {
				unit = u.suffix
				break
			}
		}
		if unit == "" {
			return 0, fmt.Errorf("duration %q: missing or unknown unit: use ns, us, ms, s, m, h, d (days) or y (years)", s)
		}
		rest = rest[len(unit):]
		var d time.Duration
		switch unit {
		case "d", "y":
			n, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: bad number %q", s, num)
			}
			u := Day
			if unit == "y" {
				u = Year
			}
			f := math.Round(n * float64(u))
			if f >= math.MaxInt64 {
				return 0, fmt.Errorf("duration %q is too long", s)
			}
			d = time.Duration(f)
		default:
			var err error
			// Go's parser is exact for its own units.
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("duration %q: %v", s, err)
			}
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		total += d
	}
	return total, nil
}

// FormatDuration prints d with days and years where they fit: 7d, 1y,
// 36h, 1d12h; "forever" for a negative duration and "default" for 0.
func FormatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "forever"
	case d == 0:
		return "default"
	}
	var b strings.Builder
	if y := d / Year; y > 0 && d%Day == 0 {
		fmt.Fprintf(&b, "%dy", y)
		d -= y * Year
	}
	if days := d / Day; days > 0 {
		fmt.Fprintf(&b, "%dd", days)
		d -= days * Day
	}
	if d > 0 {
		s := d.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		b.WriteString(s)
	}
	return b.String()
}

// DurationValue is a pflag.Value for durations in ParseDuration's syntax.
type DurationValue struct {
	D *time.Duration
}

// String returns the duration as FormatDuration prints it.
func (v *DurationValue) String() string {
	if v.D == nil || *v.D == 0 {
		return ""
	}
	return FormatDuration(*v.D)
}

// Type names the flag's type in help.
func (v *DurationValue) Type() string { return "duration" }

// Set parses s with ParseDuration.
func (v *DurationValue) Set(s string) error {
	d, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*v.D = d
	return nil
}
