package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Key is a signing key of the control plane.
type Key struct {
	// KID is the RFC 7638 thumbprint of the public key (see Thumbprint).
	KID string
	// Private is an ECDSA P-256 private key.
	Private *ecdsa.PrivateKey
	// Created orders keys: the newest signs.
	Created time.Time
}

// NewKey generates a P-256 key created now.
func NewKey() (Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("token: generate key: %w", err)
	}
	kid, err := Thumbprint(&priv.PublicKey)
	if err != nil {
		return Key{}, err
	}
	return Key{KID: kid, Private: priv, Created: time.Now().UTC()}, nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint of a P-256 public key:
// the SHA-256 of {"crv":"P-256","kty":"EC","x":"…","y":"…"}, base64url
// without padding. It fails for a key on another curve.
func Thumbprint(pub *ecdsa.PublicKey) (string, error) {
	x, y, err := coordinates(pub)
	if err != nil {
		return "", err
	}
	// RFC 7638 §3.2: required members only, lexicographic order, no spaces.
	canonical := `{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// coordinates returns the base64url (no padding) x and y of a P-256 public
// key, each 32 bytes, left-padded.
func coordinates(pub *ecdsa.PublicKey) (x, y string, err error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return "", "", errors.New("token: key is not an ECDSA P-256 key")
	}
	b, err := pub.Bytes() // 0x04 || X || Y, fixed width
	if err != nil || len(b) != 65 {
		return "", "", fmt.Errorf("token: encode public key: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[1:33]), base64.RawURLEncoding.EncodeToString(b[33:]), nil
}

// storedKey is the JSON form of a Key.
type storedKey struct {
	KID        string    `json:"kid"`
	Created    time.Time `json:"created"`
	PrivateKey string    `json:"private_key"` // PEM, PKCS #8
}

// MarshalKey encodes k as JSON holding its kid, its creation time and its
// private key as a PKCS #8 PEM block (see the package documentation). The
// result is a secret.
func MarshalKey(k Key) ([]byte, error) {
	if k.Private == nil {
		return nil, errors.New("token: marshal key: no private key")
	}
	kid, err := Thumbprint(&k.Private.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("token: marshal key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("token: marshal key: %w", err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return json.Marshal(storedKey{KID: kid, Created: k.Created.UTC(), PrivateKey: string(p)})
}

// UnmarshalKey decodes a key written by MarshalKey. It recomputes the kid
// from the key and refuses a stored kid that does not match, and a key
// that is not ECDSA P-256.
func UnmarshalKey(data []byte) (Key, error) {
	var s storedKey
	if err := json.Unmarshal(data, &s); err != nil {
		return Key{}, fmt.Errorf("token: unmarshal key: %w", err)
	}
	block, _ := pem.Decode([]byte(s.PrivateKey))
	if block == nil || block.Type != "PRIVATE KEY" {
		return Key{}, errors.New("token: unmarshal key: private_key is not a PEM PRIVATE KEY block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("token: unmarshal key: %w", err)
	}
	priv, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return Key{}, errors.New("token: unmarshal key: not an ECDSA P-256 key")
	}
	kid, err := Thumbprint(&priv.PublicKey)
	if err != nil {
		return Key{}, fmt.Errorf("token: unmarshal key: %w", err)
	}
	if s.KID != "" && s.KID != kid {
		return Key{}, fmt.Errorf("token: unmarshal key: stored kid %q does not match the key's thumbprint %q", s.KID, kid)
	}
	return Key{KID: kid, Private: priv, Created: s.Created}, nil
}
