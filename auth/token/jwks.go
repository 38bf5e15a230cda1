package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// jwk is one RFC 7517 JSON Web Key; only EC P-256 signing keys are used.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	KID string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// jwkSet is an RFC 7517 JWK Set.
type jwkSet struct {
	Keys []jwk `json:"keys"`
}

func publicJWK(kid string, pub *ecdsa.PublicKey) (jwk, error) {
	x, y, err := coordinates(pub)
	if err != nil {
		return jwk{}, err
	}
	return jwk{Kty: "EC", Crv: "P-256", X: x, Y: y, KID: kid, Alg: "ES256", Use: "sig"}, nil
}

// ParseJWKS reads a JSON Web Key Set and returns its ES256 verification
// keys by kid. Keys of other types, curves, algorithms or uses, and keys
// without a kid, are skipped as RFC 7517 §5 asks; a malformed EC P-256 key
// or a kid named twice is an error, as is a set that is not JSON.
func ParseJWKS(data []byte) (map[string]*ecdsa.PublicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("token: parse JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`token: parse JWKS: no "keys" member`)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(set.Keys))
	for _, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			continue // not an object of strings: a key we do not understand
		}
		if k.Kty != "EC" || k.Crv != "P-256" || k.KID == "" ||
			(k.Alg != "" && k.Alg != "ES256") || (k.Use != "" && k.Use != "sig") {
			continue
		}
		x, errX := base64.RawURLEncoding.Strict().DecodeString(k.X)
		y, errY := base64.RawURLEncoding.Strict().DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return nil, fmt.Errorf("token: parse JWKS: key %q: x and y must be 32 bytes, base64url", k.KID)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("token: parse JWKS: key %q: %w", k.KID, err)
		}
		if _, dup := keys[k.KID]; dup {
			return nil, fmt.Errorf("token: parse JWKS: kid %q names two keys", k.KID)
		}
		keys[k.KID] = pub
	}
	return keys, nil
}

// JWKS fetching limits.
const (
	// RefetchInterval is the least time between two fetches of a JWKS: an
	// unknown kid within it fails without a fetch, so a flood of tokens
	// with made-up kids costs the JWKS endpoint one request per interval.
	RefetchInterval = 10 * time.Second
	// MaxKeyAge is how long fetched keys are used before the set is fetched
	// again (so a removed key stops verifying). When that fetch fails, the
	// old keys stay in use.
	MaxKeyAge = 5 * time.Minute
	// fetchTimeout bounds one fetch.
	fetchTimeout = 10 * time.Second
	// maxJWKSSize bounds a JWKS response body.
	maxJWKSSize = 1 << 20
)

// JWKSSource is a KeySource reading a JSON Web Key Set from a URL (the
// control plane's /.well-known/jwks.json). It fetches the set on first
// use, again when asked for a kid it does not know, and when its keys are
// older than MaxKeyAge; never more than once per RefetchInterval. It is
// safe for concurrent use; concurrent callers share one fetch.
type JWKSSource struct {
	url    string
	client *http.Client
	now    func() time.Time // for tests

	mu        sync.Mutex // guards the fields below
	keys      map[string]*ecdsa.PublicKey
	fetched   time.Time     // last successful fetch
	attempted time.Time     // start of the last fetch
	lastErr   error         // the last fetch's error, nil if it succeeded
	inflight  chan struct{} // non-nil while a fetch runs, closed when it ends
}

var _ KeySource = (*JWKSSource)(nil)

// NewJWKSSource returns a JWKSSource for url, fetched with client (nil: a
// client with a 10 s timeout). Configure client's TLS to trust the
// control plane. No request is made until the first Key.
func NewJWKSSource(url string, client *http.Client) *JWKSSource {
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	return &JWKSSource{url: url, client: client, now: time.Now}
}

// Key returns the key named kid, fetching the set if needed (see
// JWKSSource). It fails with an error wrapping ErrUnknownKey when the
// current set has no such kid, ErrKeysUnavailable when no set could be
// fetched, or ctx's error if ctx ends while it waits for a fetch.
func (s *JWKSSource) Key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	for {
		s.mu.Lock()
		now := s.now()
		pub, known := s.keys[kid]
		fresh := !s.fetched.IsZero() && now.Sub(s.fetched) < MaxKeyAge
		if known && fresh {
			s.mu.Unlock()
			return pub, nil
		}
		if s.inflight == nil {
			if !s.attempted.IsZero() && now.Sub(s.attempted) < RefetchInterval {
				// Fetched too recently to fetch again: answer from the set we have.
				lastErr, haveSet := s.lastErr, s.keys != nil
				s.mu.Unlock()
				switch {
				case known:
					return pub, nil // stale, but the refetch failed: keep going
				case !haveSet:
					return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, lastErr)
				}
				return nil, fmt.Errorf("%w: kid %q is not in the JWKS at %s", ErrUnknownKey, kid, s.url)
			}
			s.attempted = now
			s.inflight = make(chan struct{})
			// The fetch runs on its own, bounded by fetchTimeout, so that a
			// caller giving up neither cancels it for the others waiting
			// nor wastes the one fetch allowed per RefetchInterval.
			go s.fetch(s.inflight)
		}
		wait := s.inflight
		s.mu.Unlock()
		select {
		case <-wait:
			// Loop: the set is new, or the fetch failed and the
			// RefetchInterval branch answers.
		case <-ctx.Done():
			return nil, fmt.Errorf("token: fetch JWKS: %w", ctx.Err())
		}
	}
}

// fetch reads the set, records the outcome and closes done.
func (s *JWKSSource) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	keys, err := s.get(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.keys, s.fetched = keys, s.now()
	}
	s.lastErr = err
	s.inflight = nil
	close(done)
}

func (s *JWKSSource) get(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS from %s: HTTP %s", s.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS from %s: %w", s.url, err)
	}
	if len(body) > maxJWKSSize {
		return nil, fmt.Errorf("fetch JWKS from %s: larger than %d bytes", s.url, maxJWKSSize)
	}
	return ParseJWKS(body)
}
