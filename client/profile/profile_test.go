package profile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spatehq/spate/client/profile"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "config.toml")
	c, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Current(); !errors.Is(err, profile.ErrNoProfile) {
		t.Fatalf("Current on empty config: %v", err)
	}
	if err := c.Set("local", profile.Profile{ControlPlane: "http://127.0.0.1:9000"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Switch("local"); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	c2, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	name, p, err := c2.Current()
	if err != nil || name != "local" || p.ControlPlane != "http://127.0.0.1:9000" {
		t.Fatalf("Current = %q %+v %v", name, p, err)
	}
	if err := c2.Rename("local", "dev"); err != nil {
		t.Fatal(err)
	}
	if c2.CurrentProfile != "dev" {
		t.Fatalf("current after rename = %q", c2.CurrentProfile)
	}
	if err := c2.Delete("dev"); err != nil {
		t.Fatal(err)
	}
	if c2.CurrentProfile != "" {
		t.Fatalf("current after delete = %q", c2.CurrentProfile)
	}
}

func TestErrors(t *testing.T) {
	c, _ := profile.Load(filepath.Join(t.TempDir(), "none.toml"))
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"switch unknown", c.Switch("nope"), profile.ErrNotFound},
		{"delete unknown", c.Delete("nope"), profile.ErrNotFound},
		{"rename unknown", c.Rename("nope", "x"), profile.ErrNotFound},
		{"bad name", c.Set("bad name", profile.Profile{}), profile.ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("err = %v, want %v", tt.err, tt.want)
			}
		})
	}
	_ = c.Set("a", profile.Profile{})
	_ = c.Set("b", profile.Profile{})
	if err := c.Rename("a", "b"); !errors.Is(err, profile.ErrExists) {
		t.Fatalf("rename onto existing: %v", err)
	}
}

func TestCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("current_profile = \"x\"\n[profiles.x\ncontrol_plane = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := profile.Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "at line ") {
		t.Fatalf("Load corrupt = %v", err)
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv(profile.EnvConfig, "/tmp/x.toml")
	if p, _ := profile.DefaultPath(); p != "/tmp/x.toml" {
		t.Fatalf("DefaultPath = %q", p)
	}
	t.Setenv(profile.EnvConfig, "")
	t.Setenv("HOME", "/home/u")
	if p, _ := profile.DefaultPath(); p != "/home/u/.spate/config.toml" {
		t.Fatalf("DefaultPath = %q", p)
	}
}

func TestLoadMakesFilePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("current_profile = \"a\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.Load(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after Load: %v, %v", st.Mode().Perm(), err)
	}
}
