package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spatehq/spate/auth/token"
)

const issuer = "https://cp.spate.test"

func newKey(t testing.TB, created time.Time) token.Key {
	t.Helper()
	k, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k.Created = created
	return k
}

func claims(now time.Time) token.Claims {
	return token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   "u-abcdefghij",
			Audience:  jwt.ClaimStrings{token.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(15 * time.Minute)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        "jti-1",
		},
		Tenant: "t-abcdefghij",
		Kind:   "user",
		Name:   "ada@example.com",
	}
}

// sign signs c with any method and key, setting kid unless it is empty.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seg(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// jwksServer serves kr's JWKS and counts requests.
func jwksServer(t testing.TB, kr *token.Keyring) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	h := kr.JWKSHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRoundTrip(t *testing.T) {
	kr := token.NewKeyring(newKey(t, time.Now()))
	srv, _ := jwksServer(t, kr)
	sources := []struct {
		name string
		keys token.KeySource
	}{
		{"keyring", kr},
		{"jwks", token.NewJWKSSource(srv.URL, srv.Client())},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			want := claims(time.Now())
			raw, err := kr.Sign(want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := token.NewVerifier(issuer, src.keys).Verify(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != want.Subject || got.Tenant != want.Tenant || got.Kind != want.Kind ||
				got.Name != want.Name || got.ID != want.ID || !got.ExpiresAt.Equal(want.ExpiresAt.Time) {
				t.Errorf("claims = %+v, want %+v", got, want)
			}
			tok, _, err := jwt.NewParser().ParseUnverified(raw, &jwt.RegisteredClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if tok.Header["kid"] != kr.Signer().KID || tok.Header["alg"] != "ES256" {
				t.Errorf("header = %v, want alg ES256 and kid %s", tok.Header, kr.Signer().KID)
			}
		})
	}
}

func TestSignSetsIssuedAt(t *testing.T) {
	kr := token.NewKeyring(newKey(t, time.Now()))
	c := claims(time.Now())
	c.IssuedAt = nil
	raw, err := kr.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := token.NewVerifier(issuer, kr).Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.IssuedAt == nil {
		t.Error("Sign did not set iat")
	}
}

func TestSignRefuses(t *testing.T) {
	if _, err := token.NewKeyring().Sign(claims(time.Now())); !errors.Is(err, token.ErrNoSigningKey) {
		t.Errorf("empty keyring: err = %v, want ErrNoSigningKey", err)
	}
	if _, err := new(token.Keyring).Sign(claims(time.Now())); !errors.Is(err, token.ErrNoSigningKey) {
		t.Errorf("zero keyring: err = %v, want ErrNoSigningKey", err)
	}
	c := claims(time.Now())
	c.ExpiresAt = nil
	if _, err := token.NewKeyring(newKey(t, time.Now())).Sign(c); err == nil {
		t.Error("signed claims without exp")
	}
}

var sentinels = []error{
	token.ErrExpired, token.ErrNotYetValid, token.ErrBadSignature, token.ErrUnknownKey,
	token.ErrMalformed, token.ErrWrongAlgorithm, token.ErrWrongIssuer, token.ErrWrongAudience,
	token.ErrKeysUnavailable,
}

// checkErr fails unless err wraps want and no other sentinel.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("err = %v wraps %v as well as %v", err, s, want)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	key := newKey(t, now)
	kr := token.NewKeyring(key)
	other := newKey(t, now) // not in kr
	v := token.NewVerifier(issuer, kr)

	with := func(f func(*token.Claims)) token.Claims {
		c := claims(now)
		f(&c)
		return c
	}
	es := func(c jwt.Claims) string { return sign(t, jwt.SigningMethodES256, key.Private, key.KID, c) }
	valid := es(claims(now))
	parts := strings.Split(valid, ".")

	pubDER, err := x509.MarshalPKIXPublicKey(&key.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubRaw, err := key.Private.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"valid", valid, nil},
		{"expired within leeway", es(with(func(c *token.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-16 * time.Minute))
			c.NotBefore = c.IssuedAt
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-10 * time.Second))
		})), nil},
		{"expired", es(with(func(c *token.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-20 * time.Minute))
			c.NotBefore = c.IssuedAt
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute))
		})), token.ErrExpired},
		{"nbf within leeway", es(with(func(c *token.Claims) {
			c.NotBefore = jwt.NewNumericDate(now.Add(10 * time.Second))
		})), nil},
		{"not yet valid", es(with(func(c *token.Claims) {
			c.NotBefore = jwt.NewNumericDate(now.Add(time.Minute))
		})), token.ErrNotYetValid},
		{"issued in the future", es(with(func(c *token.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(time.Minute))
		})), token.ErrNotYetValid},
		{"no exp", es(with(func(c *token.Claims) { c.ExpiresAt = nil })), token.ErrMalformed},
		{"wrong issuer", es(with(func(c *token.Claims) { c.Issuer = "https://evil.test" })), token.ErrWrongIssuer},
		{"wrong audience", es(with(func(c *token.Claims) { c.Audience = jwt.ClaimStrings{"other"} })), token.ErrWrongAudience},
		{"wrong issuer and expired", es(with(func(c *token.Claims) {
			c.Issuer = "https://evil.test"
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
		})), token.ErrWrongIssuer},
		{"forged: other key, same kid", sign(t, jwt.SigningMethodES256, other.Private, key.KID, claims(now)), token.ErrBadSignature},
		{"tampered payload", parts[0] + "." + seg(t, with(func(c *token.Claims) { c.Tenant = "t-victim0000" })) + "." + parts[2], token.ErrBadSignature},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:20], token.ErrBadSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", token.ErrBadSignature},
		{"alg none", seg(t, map[string]string{"alg": "none", "kid": key.KID, "typ": "JWT"}) + "." + parts[1] + ".", token.ErrWrongAlgorithm},
		{"alg none with signature", seg(t, map[string]string{"alg": "none", "kid": key.KID}) + "." + parts[1] + "." + parts[2], token.ErrWrongAlgorithm},
		{"alg None", seg(t, map[string]string{"alg": "None", "kid": key.KID}) + "." + parts[1] + ".", token.ErrWrongAlgorithm},
		{"no alg", seg(t, map[string]string{"kid": key.KID}) + "." + parts[1] + "." + parts[2], token.ErrWrongAlgorithm},
		{"HS256 keyed with the public key PEM", sign(t, jwt.SigningMethodHS256, pubPEM, key.KID, claims(now)), token.ErrWrongAlgorithm},
		{"HS256 keyed with the public key point", sign(t, jwt.SigningMethodHS256, pubRaw, key.KID, claims(now)), token.ErrWrongAlgorithm},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, key.KID, claims(now)), token.ErrWrongAlgorithm},
		{"ES384", sign(t, jwt.SigningMethodES384, p384, key.KID, claims(now)), token.ErrWrongAlgorithm},
		{"unknown kid", sign(t, jwt.SigningMethodES256, other.Private, other.KID, claims(now)), token.ErrUnknownKey},
		{"missing kid", sign(t, jwt.SigningMethodES256, key.Private, "", claims(now)), token.ErrUnknownKey},
		{"kid not a string", seg(t, map[string]any{"alg": "ES256", "kid": 7}) + "." + parts[1] + "." + parts[2], token.ErrUnknownKey},
		{"crit header", seg(t, map[string]any{"alg": "ES256", "kid": key.KID, "crit": []string{"exp"}}) + "." + parts[1] + "." + parts[2], token.ErrMalformed},
		{"empty", "", token.ErrMalformed},
		{"garbage", "not a token", token.ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], token.ErrMalformed},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], token.ErrMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + parts[1] + "." + parts[2], token.ErrMalformed},
		{"claims not JSON", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + "." + parts[2], token.ErrMalformed},
		{"exp not a number", parts[0] + "." + seg(t, map[string]any{"exp": "soon", "iss": issuer, "aud": "spate"}) + "." + parts[2], token.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(t.Context(), tt.raw)
			t.Log(err)
			checkErr(t, err, tt.want)
			if err == nil && c.Tenant != "t-abcdefghij" {
				t.Errorf("tenant = %q", c.Tenant)
			}
			if err != nil && c != nil {
				t.Errorf("claims returned with error")
			}
		})
	}
}

func TestRotation(t *testing.T) {
	now := time.Now()
	old := newKey(t, now.Add(-time.Hour))
	kr := token.NewKeyring(old)
	srv, _ := jwksServer(t, kr)
	jwks := token.NewJWKSSource(srv.URL, srv.Client())
	clock := now
	jwks.SetClock(func() time.Time { return clock })
	verifiers := map[string]*token.Verifier{
		"keyring": token.NewVerifier(issuer, kr),
		"jwks":    token.NewVerifier(issuer, jwks),
	}
	verifyAll := func(t *testing.T, raw string, want error) {
		t.Helper()
		for name, v := range verifiers {
			_, err := v.Verify(t.Context(), raw)
			if want == nil && err != nil || want != nil && !errors.Is(err, want) {
				t.Errorf("%s: err = %v, want %v", name, err, want)
			}
		}
	}
	kidOf := func(raw string) string {
		tok, _, err := jwt.NewParser().ParseUnverified(raw, &jwt.RegisteredClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Header["kid"].(string)
	}

	oldTok, err := kr.Sign(claims(now))
	if err != nil {
		t.Fatal(err)
	}
	verifyAll(t, oldTok, nil)

	// Add a new key, given first to show order does not matter: newest signs.
	newer := newKey(t, now)
	kr.Set(newer, old)
	if kr.Signer().KID != newer.KID {
		t.Fatalf("signer = %s, want the new key %s", kr.Signer().KID, newer.KID)
	}
	newTok, err := kr.Sign(claims(now))
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(newTok) != newer.KID || kidOf(oldTok) != old.KID {
		t.Fatalf("kids: new token %s, old token %s", kidOf(newTok), kidOf(oldTok))
	}
	clock = clock.Add(token.RefetchInterval) // the JWKS source learns new kids at most this late
	verifyAll(t, oldTok, nil)
	verifyAll(t, newTok, nil)

	// Retire the old key.
	kr.Set(newer)
	clock = clock.Add(token.MaxKeyAge) // the JWKS source drops removed keys at most this late
	verifyAll(t, oldTok, token.ErrUnknownKey)
	verifyAll(t, newTok, nil)
}

func TestJWKSSourceRefetchLimit(t *testing.T) {
	now := time.Now()
	kr := token.NewKeyring(newKey(t, now))
	srv, requests := jwksServer(t, kr)
	src := token.NewJWKSSource(srv.URL, srv.Client())
	clock := now
	var clockMu sync.Mutex
	src.SetClock(func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock })
	advance := func(d time.Duration) { clockMu.Lock(); defer clockMu.Unlock(); clock = clock.Add(d) }
	v := token.NewVerifier(issuer, src)

	good, err := kr.Sign(claims(now))
	if err != nil {
		t.Fatal(err)
	}
	stranger := newKey(t, now)
	bad := sign(t, jwt.SigningMethodES256, stranger.Private, stranger.KID, claims(now))

	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if _, err := v.Verify(t.Context(), bad); !errors.Is(err, token.ErrUnknownKey) {
					t.Errorf("wrong kid: err = %v, want ErrUnknownKey", err)
				}
			})
		}
		wg.Wait()
	}
	expect := func(want int64) {
		t.Helper()
		if got := requests.Load(); got != want {
			t.Fatalf("JWKS requests = %d, want %d", got, want)
		}
	}

	if _, err := v.Verify(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	expect(1)
	flood()
	expect(1) // within RefetchInterval of the first fetch: no refetch

	advance(token.RefetchInterval)
	flood()
	expect(2) // one refetch for the whole flood
	advance(token.RefetchInterval - time.Second)
	flood()
	expect(2)
	if _, err := v.Verify(t.Context(), good); err != nil { // known kids need no fetch
		t.Fatal(err)
	}
	expect(2)

	// A key added to the keyring is found on the next allowed refetch.
	advance(time.Second)
	added := newKey(t, now.Add(time.Second))
	kr.Set(kr.Keys()[0], added)
	fresh, err := kr.Sign(claims(now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), fresh); err != nil {
		t.Fatal(err)
	}
	expect(3)
}

func TestJWKSSourceErrors(t *testing.T) {
	kr := token.NewKeyring(newKey(t, time.Now()))
	raw, err := kr.Sign(claims(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name string
		url  string
	}{
		{"HTTP 500", serve(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) })},
		{"not JSON", serve(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) })},
		{"no keys member", serve(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) })},
		{"bad coordinates", serve(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"AAAA","y":"AAAA"}]}`))
		})},
		{"no server", "http://127.0.0.1:1/jwks.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := token.NewVerifier(issuer, token.NewJWKSSource(tt.url, nil))
			_, err := v.Verify(t.Context(), raw)
			checkErr(t, err, token.ErrKeysUnavailable)
			// Within RefetchInterval the failure is remembered, not retried.
			_, err = v.Verify(t.Context(), raw)
			checkErr(t, err, token.ErrKeysUnavailable)
		})
	}

	t.Run("context", func(t *testing.T) {
		release := make(chan struct{})
		url := serve(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			kr.JWKSHandler().ServeHTTP(w, r)
		})
		v := token.NewVerifier(issuer, token.NewJWKSSource(url, nil))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if _, err := v.Verify(ctx, raw); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
		// The fetch went on without the caller who gave up; the next caller gets its result.
		close(release)
		if _, err := v.Verify(t.Context(), raw); err != nil {
			t.Errorf("after the fetch completed: %v", err)
		}
	})
}

func TestJWKS(t *testing.T) {
	// Find a key whose x or y starts with a zero byte, to check left-padding.
	var padded token.Key
	for range 20000 {
		k := newKey(t, time.Now())
		b, err := k.Private.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if b[1] == 0 || b[33] == 0 {
			padded = k
			break
		}
	}
	if padded.Private == nil {
		t.Fatal("no key with a short coordinate found")
	}
	plain := newKey(t, time.Now().Add(time.Second))
	kr := token.NewKeyring(padded, plain)

	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(kr.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(set.Keys))
	}
	for i, k := range []token.Key{padded, plain} {
		j := set.Keys[i]
		if len(j) != 7 || j["kty"] != "EC" || j["crv"] != "P-256" || j["alg"] != "ES256" || j["use"] != "sig" || j["kid"] != k.KID {
			t.Errorf("key %d = %v", i, j)
		}
		b, _ := k.Private.PublicKey.Bytes()
		for name, want := range map[string][]byte{"x": b[1:33], "y": b[33:]} {
			got, err := base64.RawURLEncoding.DecodeString(j[name])
			if err != nil || len(got) != 32 || string(got) != string(want) {
				t.Errorf("key %d: %s = %q (%v), want 32 bytes %x", i, name, j[name], err, want)
			}
		}
		// RFC 7638: SHA-256 of the required members in lexicographic order.
		canon, err := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "x": j["x"], "y": j["y"]})
		if err != nil {
			t.Fatal(err)
		}
		if tp := thumbprintOf(canon); tp != k.KID {
			t.Errorf("key %d: kid %s, RFC 7638 thumbprint %s", i, k.KID, tp)
		}
	}
	keys, err := token.ParseJWKS(kr.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	if !keys[padded.KID].Equal(&padded.Private.PublicKey) || !keys[plain.KID].Equal(&plain.Private.PublicKey) {
		t.Error("ParseJWKS does not return the keyring's keys")
	}
	if empty := string(token.NewKeyring().JWKS()); empty != `{"keys":[]}` {
		t.Errorf("empty JWKS = %s", empty)
	}
}

func TestParseJWKSSkipsForeignKeys(t *testing.T) {
	k := newKey(t, time.Now())
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(token.NewKeyring(k).JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	set.Keys = append(set.Keys,
		map[string]any{"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
		map[string]any{"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
		map[string]any{"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "AA", "y": "AA"},
		map[string]any{"kty": "oct", "kid": 5},
	)
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := token.ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[k.KID] == nil {
		t.Errorf("keys = %v, want only %s", keys, k.KID)
	}
}

func TestJWKSHandler(t *testing.T) {
	kr := token.NewKeyring(newKey(t, time.Now()))
	srv, _ := jwksServer(t, kr)
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=60" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET: %s %v", resp.Status, resp.Header)
	}
	post, err := srv.Client().Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", post.Status)
	}
}

func TestMarshalKey(t *testing.T) {
	k := newKey(t, time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC))
	data, err := token.MarshalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := token.UnmarshalKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.KID != k.KID || !got.Created.Equal(k.Created) || !got.Private.Equal(k.Private) {
		t.Errorf("round trip: got %s %v, want %s %v", got.KID, got.Created, k.KID, k.Created)
	}

	var stored map[string]string
	if err := json.Unmarshal(data, &stored); err != nil {
		t.Fatal(err)
	}
	stored["kid"] = newKey(t, time.Now()).KID
	tampered, _ := json.Marshal(stored)
	if _, err := token.UnmarshalKey(tampered); err == nil {
		t.Error("accepted a kid that is not the key's thumbprint")
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	stored = map[string]string{"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}
	rsaJSON, _ := json.Marshal(stored)
	for name, data := range map[string][]byte{"rsa": rsaJSON, "garbage": []byte("{"), "no pem": []byte(`{"private_key":"x"}`)} {
		if _, err := token.UnmarshalKey(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Now()
	k := newKey(f, now)
	kr := token.NewKeyring(k)
	good, err := kr.Sign(claims(now))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add(good[:len(good)-3])
	v := token.NewVerifier(issuer, kr)
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(context.Background(), raw)
		if err == nil {
			if c == nil || c.Issuer != issuer {
				t.Fatalf("accepted %q with claims %+v", raw, c)
			}
			return
		}
		n := 0
		for _, s := range sentinels {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("error %v wraps %d sentinels, want 1", err, n)
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	f.Add(token.NewKeyring(newKey(f, time.Now())).JWKS())
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := token.ParseJWKS(data)
		if err == nil && keys == nil {
			t.Fatal("nil keys without an error")
		}
	})
}

func BenchmarkSign(b *testing.B) {
	kr := token.NewKeyring(newKey(b, time.Now()))
	c := claims(time.Now())
	for b.Loop() {
		if _, err := kr.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	kr := token.NewKeyring(newKey(b, time.Now()))
	raw, err := kr.Sign(claims(time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	v := token.NewVerifier(issuer, kr)
	ctx := context.Background()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func thumbprintOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
