// Package profile reads and writes the Spate CLI and SDK configuration file,
// ~/.spate/config.toml (or the file named by $SPATE_CONFIG).
//
// The file is TOML and always written with mode 0600 (a temporary file
// renamed over the old one), because it holds client keys and tokens. It
// has two tables: the logins, one per control plane, keyed by its URL, and
// the profiles, one per cluster. Profiles of several control planes live
// side by side; certificates and keys are inline PEM in multi-line strings:
//
//	current_profile = "orders-prod"
//
//	[logins."https://cp.example.com:9443"]
//	control_plane_ca = '''
//	-----BEGIN CERTIFICATE-----
//	...
//	-----END CERTIFICATE-----
//	'''
//	tenant = "t-abcdefghij"
//	principal = "ada@example.com"
//	access_token = "eyJ..."
//	access_token_expires = 2026-11-22T23:15:00Z
//	refresh_token = "sprt_..."
//
//	[profiles.local]
//	control_plane = "http://127.0.0.1:9000"
//
//	[profiles.orders-prod]
//	control_plane = "https://cp.example.com:9443"
//	tenant = "t-abcdefghij"
//	cluster = "orders"
//	cluster_id = "c-0123456789"
//	spus = ["https://10.0.0.5:9010"]
//	cluster_ca = '''...'''
//	root_ca = '''...'''
//	client_cert = '''...'''
//	client_key = '''...'''
//	client_cert_expires = 2026-11-23T10:47:00Z
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
	"time"

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
	// ErrNotLoggedIn is returned by Login when there is no login at a
	// control plane.
	ErrNotLoggedIn = errors.New("profile: not logged in")
)

// Profile is how to reach one Spate cluster.
//
// A profile without certificates (for example the one `spate local up`
// writes) speaks plain HTTP/2 (h2c) to the control plane. A profile made by
// `spate cloud cluster use` (cloud.UseCluster) holds the cluster's
// endpoints, its CAs and a client certificate with its key.
type Profile struct {
	// ControlPlane is the URL of the control plane, for example
	// "http://127.0.0.1:9000" or "https://cp.example.com:9443". A profile
	// with a login shares its URL with Config.Logins.
	ControlPlane string `toml:"control_plane"`
	// Tenant is the id of the tenant the cluster belongs to.
	Tenant string `toml:"tenant,omitempty"`
	// Cluster names the cluster within its tenant.
	Cluster string `toml:"cluster,omitempty"`
	// ClusterID is the cluster's id ("c-...").
	ClusterID string `toml:"cluster_id,omitempty"`
	// SPUs are the URLs of the cluster's SPUs (https://).
	SPUs []string `toml:"spus,omitempty"`
	// ClusterCA is the cluster's CA certificate: the only trust anchor for
	// the SPUs.
	ClusterCA PEM `toml:"cluster_ca,omitempty"`
	// RootCA is the control plane's root CA certificate: the trust anchor
	// for the control plane.
	RootCA PEM `toml:"root_ca,omitempty"`
	// ClientCert is the client certificate chain (leaf, then the cluster
	// CA).
	ClientCert PEM `toml:"client_cert,omitempty"`
	// ClientKey is the client certificate's private key (PKCS #8).
	ClientKey PEM `toml:"client_key,omitempty"`
	// ClientCertExpires is when ClientCert expires; zero without one.
	ClientCertExpires time.Time `toml:"client_cert_expires,omitzero"`
}

// HasTLS reports whether the profile holds a client certificate, so that
// clients speak TLS to it.
func (p Profile) HasTLS() bool { return p.ClientCert != "" && p.ClientKey != "" }

// Login is a signed-in session with one control plane: what `spate cloud
// login` stores.
type Login struct {
	// ControlPlaneCA is the PEM certificate that the control plane's
	// certificate chains to; empty to use the system's roots.
	ControlPlaneCA PEM `toml:"control_plane_ca,omitempty"`
	// Tenant is the id of the signed-in principal's tenant.
	Tenant string `toml:"tenant,omitempty"`
	// Principal is a person's email or a service account's name.
	Principal string `toml:"principal,omitempty"`
	// AccessToken is the last access token (a JWT), valid until
	// AccessTokenExpires.
	AccessToken        string    `toml:"access_token,omitempty"`
	AccessTokenExpires time.Time `toml:"access_token_expires,omitzero"`
	// RefreshToken gets new access tokens; it is rotated on every use.
	RefreshToken string `toml:"refresh_token,omitempty"`
}

// PEM is PEM-encoded data (certificates or a key), written to the file as
// a TOML multi-line string so that it reads as it would in a .pem file.
type PEM string

// Bytes returns the PEM data.
func (p PEM) Bytes() []byte { return []byte(p) }

// MarshalTOML writes p as a multi-line literal string when it can (PEM
// always can), otherwise as a basic string with escapes.
func (p PEM) MarshalTOML() ([]byte, error) {
	s := string(p)
	literal := !strings.Contains(s, "'''") && !strings.HasSuffix(s, "'")
	for _, r := range s {
		if r != '\n' && r != '\t' && (r < 0x20 || r == 0x7f) {
			literal = false
			break
		}
	}
	if literal {
		// The newline right after the opening quotes is not part of the
		// string.
		return []byte("'''\n" + s + "'''"), nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return []byte(b.String()), nil
}

var _ toml.Marshaler = PEM("")

// Config is the whole configuration file.
type Config struct {
	// CurrentProfile names the profile used when none is given.
	CurrentProfile string `toml:"current_profile"`
	// Logins maps a control plane's URL to the login there.
	Logins map[string]Login `toml:"logins,omitempty"`
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
	c := &Config{path: path, Profiles: map[string]Profile{}, Logins: map[string]Login{}}
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
	if c.Logins == nil {
		c.Logins = map[string]Login{}
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

// Login returns the login at the control plane controlPlane (a URL; a
// trailing slash is ignored) or an error wrapping ErrNotLoggedIn.
func (c *Config) Login(controlPlane string) (Login, error) {
	l, ok := c.Logins[strings.TrimRight(controlPlane, "/")]
	if !ok {
		return Login{}, fmt.Errorf("%w to %s: run `spate cloud login --control-plane %s`", ErrNotLoggedIn, controlPlane, controlPlane)
	}
	return l, nil
}

// SetLogin adds or replaces the login at the control plane controlPlane.
func (c *Config) SetLogin(controlPlane string, l Login) {
	if c.Logins == nil {
		c.Logins = map[string]Login{}
	}
	c.Logins[strings.TrimRight(controlPlane, "/")] = l
}

// DeleteLogin forgets the login at controlPlane and the client keys and
// certificates of every profile on that control plane, which stay
// otherwise (log in again and run `spate cloud cluster use` to renew them).
// It returns the names of the profiles it changed.
func (c *Config) DeleteLogin(controlPlane string) []string {
	controlPlane = strings.TrimRight(controlPlane, "/")
	delete(c.Logins, controlPlane)
	var changed []string
	for _, name := range c.Names() {
		p := c.Profiles[name]
		if strings.TrimRight(p.ControlPlane, "/") != controlPlane || (p.ClientKey == "" && p.ClientCert == "") {
			continue
		}
		p.ClientKey, p.ClientCert, p.ClientCertExpires = "", "", time.Time{}
		c.Profiles[name] = p
		changed = append(changed, name)
	}
	return changed
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
