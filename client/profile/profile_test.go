package profile_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

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

const testPEM = `-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIQYm9ndXMgY2VydGlmaWNhdGUwCgYIKoZIzj0EAwIwEjEQ
MA4GA1UEAxMHdGVzdCBjYTAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAwMDBa
-----END CERTIFICATE-----
`

func TestRoundTripWithLoginsAndPEM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	c, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cloudA := profile.Profile{
		ControlPlane: "https://cp-a.example.com:9443", Tenant: "t-aaaaaaaaaa", Cluster: "orders", ClusterID: "c-0123456789",
		SPUs:      []string{"https://10.0.0.5:9010", "https://10.0.0.6:9010"},
		ClusterCA: testPEM, RootCA: testPEM, ClientCert: testPEM + testPEM, ClientKey: "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n",
		ClientCertExpires: expires,
	}
	cloudB := cloudA
	cloudB.ControlPlane = "https://cp-b.example.com"
	cloudB.Cluster = "clicks"
	local := profile.Profile{ControlPlane: "http://127.0.0.1:9000", Cluster: "local"}
	for name, p := range map[string]profile.Profile{"a": cloudA, "b": cloudB, "local": local} {
		if err := c.Set(name, p); err != nil {
			t.Fatal(err)
		}
	}
	loginA := profile.Login{ControlPlaneCA: testPEM, Tenant: "t-aaaaaaaaaa", Principal: "ada@example.com",
		AccessToken: "eyJhbGciOiJFUzI1NiJ9.e30.sig", AccessTokenExpires: expires, RefreshToken: "sprt_abc_def"}
	c.SetLogin("https://cp-a.example.com:9443/", loginA)
	c.SetLogin("https://cp-b.example.com", profile.Login{Tenant: "t-bbbbbbbbbb", RefreshToken: "sprt_x_y"})
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v, want mode 0600", st.Mode(), err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), "cluster_ca = '''\n-----BEGIN CERTIFICATE-----\n") {
		t.Errorf("PEM not written as a multi-line string:\n%s", raw)
	}
	c2, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]profile.Profile{"a": cloudA, "b": cloudB, "local": local} {
		got, err := c2.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("profile %s:\n got %#v\nwant %#v", name, got, want)
		}
	}
	gotLogin, err := c2.Login("https://cp-a.example.com:9443")
	if err != nil || !reflect.DeepEqual(gotLogin, loginA) {
		t.Errorf("login: %#v %v", gotLogin, err)
	}
	if _, err := c2.Login("https://nowhere"); !errors.Is(err, profile.ErrNotLoggedIn) {
		t.Errorf("Login(nowhere) = %v", err)
	}

	// Logging out of A forgets its login and the keys of its profiles only.
	changed := c2.DeleteLogin("https://cp-a.example.com:9443")
	if !reflect.DeepEqual(changed, []string{"a"}) {
		t.Errorf("DeleteLogin changed %v", changed)
	}
	if p, _ := c2.Get("a"); p.ClientKey != "" || p.ClientCert != "" || p.Cluster != "orders" {
		t.Errorf("after logout: %#v", p)
	}
	if p, _ := c2.Get("b"); p.ClientKey == "" {
		t.Error("logout of A removed B's key")
	}
	if _, err := c2.Login("https://cp-b.example.com"); err != nil {
		t.Error(err)
	}
}

func TestPEMEscapesWhatALiteralCannotHold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	c, _ := profile.Load(path)
	odd := profile.PEM("a'''b\r\n\"q\" \\ end'")
	if err := c.Set("x", profile.Profile{ControlPlane: "http://x", ClusterCA: odd}); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c2, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.Profiles["x"].ClusterCA; got != odd {
		t.Fatalf("got %q, want %q", got, odd)
	}
}

func TestUpdateIsAtomicAcrossWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := profile.Update(ctx, path, func(c *profile.Config) error {
				return c.Set(fmt.Sprintf("p%d", i), profile.Profile{ControlPlane: "http://x"})
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Profiles); n != 20 {
		t.Fatalf("%d profiles, want 20: an update was lost", n)
	}
	// A failed change saves nothing.
	if _, err := profile.Update(ctx, path, func(c *profile.Config) error { c.Profiles = nil; return errors.New("no") }); err == nil {
		t.Fatal("error lost")
	}
	if c, _ := profile.Load(path); len(c.Profiles) != 20 {
		t.Fatal("a failed change was saved")
	}
}
