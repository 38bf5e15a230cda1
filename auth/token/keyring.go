package token

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Keyring holds the control plane's ES256 signing keys. The newest key
// (latest Created; the last given on a tie) signs; all of them verify. A
// Keyring is safe for concurrent use; its zero value is an empty keyring.
type Keyring struct {
	mu     sync.RWMutex // guards the fields below
	keys   []Key        // oldest first; the last one signs
	byKID  map[string]*ecdsa.PublicKey
	jwks   []byte // the JWKS of keys, built by Set
	signer Key
}

var _ KeySource = (*Keyring)(nil)

// NewKeyring returns a keyring holding keys (see Set).
func NewKeyring(keys ...Key) *Keyring {
	k := &Keyring{}
	k.Set(keys...)
	return k
}

// Set replaces the keys with keys, which the control plane reads from
// etcd. Keys without a private key are ignored; a key whose KID is empty
// gets its thumbprint; a kid given twice keeps its first key.
func (k *Keyring) Set(keys ...Key) {
	var kept []Key
	byKID := make(map[string]*ecdsa.PublicKey, len(keys))
	for _, key := range keys {
		if key.Private == nil {
			continue
		}
		if key.KID == "" {
			kid, err := Thumbprint(&key.Private.PublicKey)
			if err != nil {
				continue
			}
			key.KID = kid
		}
		if _, dup := byKID[key.KID]; dup {
			continue
		}
		byKID[key.KID] = &key.Private.PublicKey
		kept = append(kept, key)
	}
	slices.SortStableFunc(kept, func(a, b Key) int { return a.Created.Compare(b.Created) })
	set := jwkSet{Keys: []jwk{}}
	for _, key := range kept {
		j, err := publicJWK(key.KID, &key.Private.PublicKey)
		if err != nil {
			continue
		}
		set.Keys = append(set.Keys, j)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		panic(fmt.Sprintf("token: encode JWKS: %v", err)) // plain strings only
	}
	var signer Key
	if len(kept) > 0 {
		signer = kept[len(kept)-1]
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys, k.byKID, k.jwks, k.signer = kept, byKID, jwks, signer
}

// Keys returns the keys, oldest first.
func (k *Keyring) Keys() []Key {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return slices.Clone(k.keys)
}

// Signer returns the newest key, the one Sign uses; the zero Key if the
// keyring is empty.
func (k *Keyring) Signer() Key {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.signer
}

// Key returns the public key named kid, or an error wrapping ErrUnknownKey.
// It never blocks and ignores ctx.
func (k *Keyring) Key(_ context.Context, kid string) (*ecdsa.PublicKey, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if pub, ok := k.byKID[kid]; ok {
		return pub, nil
	}
	return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
}

// JWKS returns the public keys as a JSON Web Key Set (see the package
// documentation); {"keys":[]} when the keyring is empty.
func (k *Keyring) JWKS() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.jwks == nil {
		return []byte(`{"keys":[]}`)
	}
	return slices.Clone(k.jwks)
}

// JWKSHandler serves JWKS to GET and HEAD requests (other methods get 405),
// as application/json with Cache-Control: public, max-age=60. Mount it at
// /.well-known/jwks.json.
func (k *Keyring) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body := k.JWKS()
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}

// Sign returns c signed by the newest key, as a compact JWT whose header
// names the key's kid. If c has no IssuedAt, Sign sets it to now. Sign
// fails with ErrNoSigningKey on an empty keyring, and refuses claims
// without ExpiresAt, which no Verifier would accept. Sign does not check
// the other claims: the caller sets Issuer, Subject and Audience.
func (k *Keyring) Sign(c Claims) (string, error) {
	key := k.Signer()
	if key.Private == nil {
		return "", ErrNoSigningKey
	}
	if c.ExpiresAt == nil {
		return "", fmt.Errorf("token: sign: claims have no expiry (ExpiresAt)")
	}
	if c.IssuedAt == nil {
		c.IssuedAt = jwt.NewNumericDate(time.Now())
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = key.KID
	s, err := t.SignedString(key.Private)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}
