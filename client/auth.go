package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/client/profile"
)

// TokenSource gives the access token that control-plane calls carry as
// "Authorization: Bearer <token>". Token is called before every call and
// must be safe for concurrent use; it should return a cached token until
// that nears expiry. An error fails the call with code Unauthenticated.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource that always returns the same token, for
// tests and short-lived programs.
type StaticToken string

// Token returns t.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// bearerInterceptor adds the Authorization header of a TokenSource to every
// request.
type bearerInterceptor struct{ ts TokenSource }

var _ connect.Interceptor = bearerInterceptor{}

func (b bearerInterceptor) token(ctx context.Context) (string, error) {
	tok, err := b.ts.Token(ctx)
	if err != nil {
		if connect.CodeOf(err) != connect.CodeUnknown {
			return "", err
		}
		return "", connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("client: get access token: %w", err))
	}
	return tok, nil
}

func (b bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		tok, err := b.token(ctx)
		if err != nil {
			return nil, err
		}
		req.Header().Set("Authorization", "Bearer "+tok)
		return next(ctx, req)
	}
}

func (b bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		tok, err := b.token(ctx)
		if err != nil {
			return &failedConn{StreamingClientConn: conn, err: err}
		}
		conn.RequestHeader().Set("Authorization", "Bearer "+tok)
		return conn
	}
}

func (b bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// failedConn is a stream that fails every send and receive with err, for a
// token that could not be had.
type failedConn struct {
	connect.StreamingClientConn
	err error
}

func (c *failedConn) Send(any) error    { return c.err }
func (c *failedConn) Receive(any) error { return c.err }

// BearerInterceptor returns a Connect interceptor that adds
// "Authorization: Bearer <token>" from ts to every request of a client, for
// callers that make Connect clients of their own (package cloud does).
func BearerInterceptor(ts TokenSource) connect.Interceptor { return bearerInterceptor{ts} }

// ProfileTLS returns the TLS configurations a profile with a client
// certificate asks for: for the SPUs, the cluster CA as the only root; for
// the control plane, the root CA; the client certificate for both. It
// returns nil, nil, nil for a profile without a client certificate.
func ProfileTLS(p profile.Profile) (spu, controlPlane *tls.Config, err error) {
	if !p.HasTLS() {
		return nil, nil, nil
	}
	cert, err := tls.X509KeyPair(p.ClientCert.Bytes(), p.ClientKey.Bytes())
	if err != nil {
		return nil, nil, fmt.Errorf("client: profile's client certificate and key: %w", err)
	}
	spu = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	controlPlane = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if p.ClusterCA != "" {
		if spu.RootCAs, err = PoolFromPEM(p.ClusterCA.Bytes()); err != nil {
			return nil, nil, fmt.Errorf("client: profile's cluster CA: %w", err)
		}
	}
	if p.RootCA != "" {
		if controlPlane.RootCAs, err = PoolFromPEM(p.RootCA.Bytes()); err != nil {
			return nil, nil, fmt.Errorf("client: profile's root CA: %w", err)
		}
	}
	return spu, controlPlane, nil
}

// PoolFromPEM returns a pool of the PEM certificates in pemCerts, or an
// error if there are none.
func PoolFromPEM(pemCerts []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCerts) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}

// FromProfile returns a Client for the cluster of a profile: its control
// plane and, when the profile has a client certificate, TLS to the SPUs
// (trusting only the cluster CA) and to the control plane (trusting the
// root CA), presenting the certificate to both. A profile without a control
// plane but with SPUs talks to its first SPU directly. opts come after the
// profile's, so WithSPUTLS or WithControlPlaneTLS (from a
// cloud.CertRenewer, say) replace the profile's TLS.
//
// FromProfile does not renew the certificate: see cloud.RenewIfNeeded and
// cloud.CertRenewer.
func FromProfile(p profile.Profile, opts ...Option) (*Client, error) {
	spuTLS, cpTLS, err := ProfileTLS(p)
	if err != nil {
		return nil, err
	}
	var base []Option
	switch {
	case p.ControlPlane != "":
		base = append(base, WithControlPlane(p.ControlPlane))
	case len(p.SPUs) > 0:
		base = append(base, WithSPU(p.SPUs[0]))
	default:
		return nil, errors.New("client: profile has no control plane URL or SPU")
	}
	if spuTLS != nil {
		base = append(base, WithSPUTLS(spuTLS), WithControlPlaneTLS(cpTLS))
	}
	return New(append(base, opts...)...)
}
