package replica_test

import (
	"testing"
	"time"

	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/replica"
)

func TestSettingsApply(t *testing.T) {
	d := commitlog.DefaultConfig()
	tests := []struct {
		name  string
		s     replica.Settings
		check func(commitlog.Config) bool
		err   bool
	}{
		{name: "zero takes the defaults", s: replica.Settings{}, check: func(c commitlog.Config) bool { return c == d }},
		{name: "retention forever", s: replica.Settings{RetentionMS: -1}, check: func(c commitlog.Config) bool { return c.RetentionTime == 0 }},
		{name: "retention a year", s: replica.Settings{RetentionMS: 365 * 24 * 3600 * 1000}, check: func(c commitlog.Config) bool { return c.RetentionTime == 365*24*time.Hour }},
		{name: "no size limit", s: replica.Settings{RetentionBytes: -1}, check: func(c commitlog.Config) bool { return c.RetentionBytes == 0 }},
		{name: "fsync", s: replica.Settings{Durability: "fsync"}, check: func(c commitlog.Config) bool { return c.Durability == commitlog.Fsync }},
		{name: "segment size", s: replica.Settings{SegmentBytes: 1 << 20}, check: func(c commitlog.Config) bool { return c.SegmentBytes == 1<<20 }},
		{name: "tiering with local limits", s: replica.Settings{Tiering: true, LocalRetentionMS: 3600_000, LocalRetentionBytes: 1 << 30}, check: func(c commitlog.Config) bool {
			return c.Tiering && c.LocalRetentionTime == time.Hour && c.LocalRetentionBytes == 1<<30
		}},
		{name: "no local limit", s: replica.Settings{Tiering: true, LocalRetentionMS: -1, LocalRetentionBytes: -1}, check: func(c commitlog.Config) bool {
			return c.Tiering && c.LocalRetentionTime == 0 && c.LocalRetentionBytes == 0
		}},
		{name: "bad local retention", s: replica.Settings{LocalRetentionMS: -2}, err: true},
		{name: "bad local bytes", s: replica.Settings{LocalRetentionBytes: -3}, err: true},
		{name: "bad retention", s: replica.Settings{RetentionMS: -2}, err: true},
		{name: "bad durability", s: replica.Settings{Durability: "maybe"}, err: true},
		{name: "negative segment", s: replica.Settings{SegmentBytes: -1}, err: true},
		{name: "segment too large", s: replica.Settings{SegmentBytes: 1 << 40}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.s.Apply(d)
			if tt.err {
				if err == nil {
					t.Fatalf("Apply(%+v) = %+v, want an error", tt.s, c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("Apply(%+v) = %+v", tt.s, c)
			}
		})
	}
}

func TestSettingsFromProto(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *internalv1.ReplicaConfig
		want replica.Settings
	}{
		{"nil", nil, replica.Settings{}},
		{"all fields", &internalv1.ReplicaConfig{SegmentBytes: 1, SegmentAgeMs: 2, RetentionMs: -1, RetentionBytes: 4, MaxBatchBytes: 5, Durability: internalv1.Durability_DURABILITY_FSYNC},
			replica.Settings{SegmentBytes: 1, SegmentAgeMS: 2, RetentionMS: -1, RetentionBytes: 4, MaxBatchBytes: 5, Durability: "fsync"}},
		{"tiering", &internalv1.ReplicaConfig{Tiering: true, LocalRetentionMs: 60_000, LocalRetentionBytes: -1},
			replica.Settings{Tiering: true, LocalRetentionMS: 60_000, LocalRetentionBytes: -1}},
		{"write", &internalv1.ReplicaConfig{Durability: internalv1.Durability_DURABILITY_WRITE}, replica.Settings{Durability: "write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replica.SettingsFromProto(tc.in); got != tc.want {
				t.Fatalf("SettingsFromProto = %+v, want %+v", got, tc.want)
			}
		})
	}
}
