package token

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Audience is the audience of every Spate access token.
const Audience = "spate"

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 30 * time.Second

// Claims are the claims of a Spate access token. Subject is the principal
// id, Issuer the control plane's URL, Audience ["spate"].
type Claims struct {
	jwt.RegisteredClaims
	// Tenant is the principal's tenant id.
	Tenant string `json:"tnt"`
	// Kind is the principal's identity kind (identity.Kind).
	Kind string `json:"knd"`
	// Name is a display name (an email, a service account's name).
	Name string `json:"nam,omitempty"`
}

// KeySource finds the public key that verifies tokens signed under a kid.
type KeySource interface {
	// Key returns the public key named kid. It fails with an error wrapping
	// ErrUnknownKey if no such key exists, ErrKeysUnavailable if the keys
	// cannot be read, or ctx's error. It is safe for concurrent use.
	Key(ctx context.Context, kid string) (*ecdsa.PublicKey, error)
}

// Verifier checks access tokens issued by one control plane. It is safe
// for concurrent use.
type Verifier struct {
	issuer string
	keys   KeySource
	now    func() time.Time // for tests; nil means time.Now
}

// NewVerifier returns a Verifier accepting tokens whose iss is issuer,
// signed by keys from keys.
func NewVerifier(issuer string, keys KeySource) *Verifier {
	return &Verifier{issuer: issuer, keys: keys}
}

// Verify parses raw, checks it (see the package documentation) and returns
// its claims. Every failure wraps exactly one of ErrMalformed,
// ErrWrongAlgorithm, ErrUnknownKey, ErrKeysUnavailable, ErrBadSignature,
// ErrWrongIssuer, ErrWrongAudience, ErrExpired, ErrNotYetValid, or ctx's
// error when ctx ends while keys are fetched. Error texts carry no secret
// and may be logged; they may be shown to the token's bearer.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(Audience),
		jwt.WithLeeway(Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if v.now != nil {
		opts = append(opts, jwt.WithTimeFunc(v.now))
	}
	var keyErr error // the KeySource's error, returned as is
	keyfunc := func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodECDSA); !ok || t.Method.Alg() != "ES256" {
			keyErr = fmt.Errorf("%w: alg %v", ErrWrongAlgorithm, t.Header["alg"])
			return nil, keyErr
		}
		if _, ok := t.Header["crit"]; ok {
			keyErr = fmt.Errorf("%w: critical header extensions are not supported", ErrMalformed)
			return nil, keyErr
		}
		kid, ok := t.Header["kid"].(string)
		if !ok || kid == "" {
			keyErr = fmt.Errorf("%w: token names no kid", ErrUnknownKey)
			return nil, keyErr
		}
		pub, err := v.keys.Key(ctx, kid)
		if err != nil {
			keyErr = err
			return nil, err
		}
		return pub, nil
	}
	var c Claims
	_, err := jwt.NewParser(opts...).ParseWithClaims(raw, &c, keyfunc)
	if err == nil {
		return &c, nil
	}
	if keyErr != nil {
		if errors.Is(keyErr, context.Canceled) || errors.Is(keyErr, context.DeadlineExceeded) {
			return nil, fmt.Errorf("token: verify: %w", keyErr)
		}
		return nil, keyErr
	}
	return nil, classify(raw, err)
}

// classify maps a jwt/v5 error to one of the package's sentinels.
func classify(raw string, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid) && !algIs(raw, "ES256"):
		// Unknown, missing or refused alg (the parser refuses methods
		// outside WithValidMethods as "signature invalid").
		return fmt.Errorf("%w: %v", ErrWrongAlgorithm, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: %v", ErrWrongIssuer, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: %v", ErrWrongAudience, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrInvalidType):
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %v", ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: %v", ErrNotYetValid, err)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// algIs reports whether raw's header names alg. Only called on tokens the
// parser has already decoded.
func algIs(raw, alg string) bool {
	t, _, err := jwt.NewParser().ParseUnverified(raw, &jwt.RegisteredClaims{})
	return err == nil && t.Method != nil && t.Method.Alg() == alg
}
