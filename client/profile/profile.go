// Package profile reads and writes the Spate CLI and SDK configuration file,
// ~/.spate/config.toml (or the file named by $SPATE_CONFIG).
//
// The file is TOML and always written with mode 0600, because later versions
// hold client keys and tokens:
//
//	current_profile = "local"
//
//	[profiles.local]
//	control_plane = "http://127.0.0.1:9000"
//
// A Config is not safe for concurrent use.
package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// EnvConfig names the environment variable that overrides the path of the
// configuration file.
const EnvConfig = "SPATE_CONFIG"

var (
	// ErrNoProfile is returned by Current when no profile is selected.
	ErrNoProfile = errors.New("profile: no current profile; run `spate local up` or `spate profile switch NAME`")
	// ErrNotFound is returned when a named profile does not exist.
	ErrNotFound = errors.New("profile: not found")
	// ErrExists is returned by Rename when the new name is taken.
	ErrExists = errors.New("profile: already exists")
	// ErrInvalidName is returned for an empty or malformed profile name.
	ErrInvalidName = errors.New("profile: invalid name")
)

// Profile is how to reach one Spate cluster.
//
// Fields for TLS and tokens (issue 4) will be added here; unknown keys in the
// file are kept as far as TOML decoding allows, so older CLIs do not fail.
type Profile struct {
	// ControlPlane is the URL of the control plane, for example
	// "http://127.0.0.1:9000".
	ControlPlane string `toml:"control_plane"`
	// Cluster names the cluster within the control plane (optional).
	Cluster string `toml:"cluster,omitempty"`
	// CA is a PEM file of the cluster CA (reserved, issue 4).
	CA string `toml:"ca,omitempty"`
	// ClientCert is a PEM client certificate file (reserved, issue 4).
	ClientCert string `toml:"client_cert,omitempty"`
	// ClientKey is a PEM client key file (reserved, issue 4).
	ClientKey string `toml:"client_key,omitempty"`
}

// Config is the whole configuration file.
type Config struct {
	// CurrentProfile names the profile used when none is given.
	CurrentProfile string `toml:"current_profile"`
	// Profiles maps a profile name to its settings.
	Profiles map[string]Profile `toml:"profiles"`

	path string
}

// DefaultPath returns $SPATE_CONFIG if set, otherwise ~/.spate/config.toml.
func DefaultPath() (string, error) {
	if p := os.Getenv(EnvConfig); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("profile: find home directory (set %s to choose a config file): %w", EnvConfig, err)
	}
	return filepath.Join(home, ".spate", "config.toml"), nil
}

// Load reads the configuration file at path. A missing file yields an empty
// Config that Save will create. A file that cannot be parsed yields an error
// naming the file, the line and what to do. A file that group or others may
// read is made private (mode 0600) first.
func Load(path string) (*Config, error) {
	c := &Config{path: path, Profiles: map[string]Profile{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("profile: read config file %s: %w", path, err)
	}
	// The file will hold keys and tokens: take away what group and others
	// may do with it, as Save would.
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		_ = os.Chmod(path, st.Mode().Perm()&0o700)
	}
	if _, err := toml.Decode(string(data), c); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			line := perr.Position.Line
			if strings.Contains(perr.Message, `'\n'`) && line > 1 {
				// The parser is past the newline that ends the bad line.
				line--
			}
			return nil, fmt.Errorf("profile: config file %s is corrupt at line %d: %s; fix or remove the file (it will be recreated by `spate local up`)",
				path, line, perr.Message)
		}
		return nil, fmt.Errorf("profile: config file %s is invalid: %v; fix or remove the file", path, err)
	}
	if c.Profiles == nil {
		c.Profiles = map[string]Profile{}
	}
	c.path = path
	return c, nil
}

// Path returns the file the Config was loaded from and is saved to.
func (c *Config) Path() string { return c.path }

// Names returns the profile names in sorted order.
func (c *Config) Names() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Current returns the current profile. It fails with ErrNoProfile when none
// is selected and with ErrNotFound when the selected one does not exist.
func (c *Config) Current() (string, Profile, error) {
	if c.CurrentProfile == "" {
		return "", Profile{}, ErrNoProfile
	}
	p, err := c.Get(c.CurrentProfile)
	if err != nil {
		return "", Profile{}, err
	}
	return c.CurrentProfile, p, nil
}

// Get returns the named profile or an error wrapping ErrNotFound.
func (c *Config) Get(name string) (Profile, error) {
	p, ok := c.Profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("%w: %q (see `spate profile list`)", ErrNotFound, name)
	}
	return p, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidateName reports whether name is a usable profile name: 1 to 63
// letters, digits, '.', '_' or '-', starting with a letter or digit.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalidName, name)
	}
	return nil
}

// Set adds or replaces the named profile. It does not change the current
// profile; call Switch for that.
func (c *Config) Set(name string, p Profile) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if c.Profiles == nil {
		c.Profiles = map[string]Profile{}
	}
	c.Profiles[name] = p
	return nil
}

// Switch makes the named profile current.
func (c *Config) Switch(name string) error {
	if _, err := c.Get(name); err != nil {
		return err
	}
	c.CurrentProfile = name
	return nil
}

// Delete removes the named profile. Deleting the current profile leaves no
// profile selected.
func (c *Config) Delete(name string) error {
	if _, err := c.Get(name); err != nil {
		return err
	}
	delete(c.Profiles, name)
	if c.CurrentProfile == name {
		c.CurrentProfile = ""
	}
	return nil
}

// Rename renames a profile, keeping it current if it was.
func (c *Config) Rename(oldName, newName string) error {
	p, err := c.Get(oldName)
	if err != nil {
		return err
	}
	if err := ValidateName(newName); err != nil {
		return err
	}
	if oldName == newName {
		return nil
	}
	if _, ok := c.Profiles[newName]; ok {
		return fmt.Errorf("%w: %q", ErrExists, newName)
	}
	delete(c.Profiles, oldName)
	c.Profiles[newName] = p
	if c.CurrentProfile == oldName {
		c.CurrentProfile = newName
	}
	return nil
}

// Save writes the Config atomically (a temporary file renamed over the old
// one) with mode 0600, creating the directory with mode 0700 if needed.
func (c *Config) Save() error {
	if c.path == "" {
		p, err := DefaultPath()
		if err != nil {
			return err
		}
		c.path = p
	}
	var buf bytes.Buffer
	buf.WriteString("# Spate configuration; written by the spate CLI. Mode 0600.\n")
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return fmt.Errorf("profile: encode config: %w", err)
	}
	dir := filepath.Dir(c.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("profile: create config directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(c.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("profile: write config file %s: %w", c.path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("profile: write config file %s: %w", c.path, err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("profile: write config file %s: %w", c.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("profile: write config file %s: %w", c.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("profile: write config file %s: %w", c.path, err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("profile: write config file %s: %w", c.path, err)
	}
	return nil
}

// String returns a one-line description, for logs.
func (p Profile) String() string {
	var b strings.Builder
	b.WriteString("control_plane=" + p.ControlPlane)
	if p.Cluster != "" {
		b.WriteString(" cluster=" + p.Cluster)
	}
	return b.String()
}
