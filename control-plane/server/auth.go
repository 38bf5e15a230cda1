package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/auth/access"
	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/control-plane/internal/oauth"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
)

// ClusterHeader names, for a caller authenticated with a token, the
// cluster (by name, within the caller's tenant) that a cluster-scoped call
// acts on. A caller with a client certificate acts on the certificate's
// cluster and needs no header.
const ClusterHeader = "Spate-Cluster"

// OperatorTenant is the pseudo-tenant of the service's operator.
const OperatorTenant = "operator"

// caller is who made a request, with what it may do.
type caller struct {
	access.Principal
	// Name is a person's email or a service account's name.
	Name string
	// Cluster is the cluster of the client certificate, or empty.
	Cluster string
	// Expires is when the credential expires.
	Expires time.Time
	// Via says how the caller authenticated: "certificate", "token" or
	// "api-key".
	Via string
}

type authKey struct{}

// authResult is what the authentication middleware found: a caller or why
// there is none.
type authResult struct {
	caller *caller
	err    error
}

// authenticate is HTTP middleware: it identifies the caller from the
// verified client certificate or the Authorization header and puts the
// result in the request context, where handlers find it with s.caller.
// Refusals are decided, logged and answered by the handlers, so that every
// RPC answers in its own protocol.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.identify(r)
		ctx := context.WithValue(r.Context(), authKey{}, authResult{caller: c, err: err})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// errUnauthenticated is the answer to a request without credentials.
var errUnauthenticated = errors.New("no credentials: run `spate cloud login`, or use a profile with a client certificate (`spate cloud cluster use NAME`)")

func (s *Server) identify(r *http.Request) (*caller, error) {
	ctx := r.Context()
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		id, err := ca.PeerIdentity(*r.TLS)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c := &caller{Principal: access.Principal{Identity: id}, Cluster: id.Cluster, Expires: r.TLS.VerifiedChains[0][0].NotAfter, Via: "certificate"}
		if id.Kind == identity.SPU || id.Kind == identity.ControlPlane {
			if _, err := s.clusterOf(ctx, id.Tenant, id.Cluster); err != nil {
				return nil, errors.New("client certificate: the cluster no longer exists")
			}
			return c, nil
		}
		if err := s.resolve(ctx, c); err != nil {
			return nil, err
		}
		return c, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errUnauthenticated
	}
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, errors.New("authorization header: use \"Bearer <token>\"")
	}
	raw = strings.TrimSpace(raw)
	if strings.HasPrefix(raw, "spk_") {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		return s.apiKeyCaller(ctx, raw, ip)
	}
	claims, err := s.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("access token: %w", err)
	}
	c := &caller{
		Principal: access.Principal{Identity: identity.Identity{Tenant: claims.Tenant, Cluster: identity.NoCluster, Kind: identity.Kind(claims.Kind), Principal: claims.Subject}},
		Via:       "token",
	}
	if claims.ExpiresAt != nil {
		c.Expires = claims.ExpiresAt.Time
	}
	if err := s.resolve(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// apiKeyCaller authenticates an API key used directly as a bearer token,
// checked by the same code as the OAuth API-key grant.
func (s *Server) apiKeyCaller(ctx context.Context, raw, ip string) (*caller, error) {
	k, err := s.oauthServer.VerifyAPIKey(ctx, raw, ip)
	// The client learns what it can act on, not whether a key id exists:
	// the details are in the log line VerifyAPIKey wrote.
	switch {
	case errors.Is(err, oauth.ErrMalformedAPIKey):
		return nil, errors.New("API key: malformed: want spk_<id>_<secret>")
	case errors.Is(err, oauth.ErrUnknownAPIKey):
		return nil, errors.New("API key: unknown key")
	case errors.Is(err, oauth.ErrRevokedAPIKey):
		return nil, errors.New("API key: revoked")
	case errors.Is(err, oauth.ErrExpiredAPIKey):
		return nil, fmt.Errorf("API key: expired at %s", k.ExpiresAt.UTC().Format(time.RFC3339))
	case err != nil:
		return nil, fmt.Errorf("API key: %w", err)
	}
	c := &caller{
		Principal: access.Principal{Identity: identity.Identity{Tenant: k.Tenant, Cluster: identity.NoCluster, Kind: k.Kind, Principal: k.Principal}},
		Expires:   k.ExpiresAt,
		Via:       "api-key",
	}
	if err := s.resolve(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// resolve fills a person's role or a service account's grants, as they are
// now; a principal that no longer exists is refused.
func (s *Server) resolve(ctx context.Context, c *caller) error {
	switch c.Kind {
	case identity.Operator:
		if c.Tenant != OperatorTenant {
			return errors.New("credentials name an unknown principal")
		}
		c.Name = "operator"
		return nil
	case identity.User:
		u, err := s.tenancy.GetUser(ctx, c.Tenant, c.Principal.Principal)
		if err != nil {
			return s.lookupError(err)
		}
		c.Role, c.Name = u.Role, u.Email
		return nil
	case identity.ServiceAccount:
		sa, err := s.tenancy.GetServiceAccount(ctx, c.Tenant, c.Principal.Principal)
		if err != nil {
			return s.lookupError(err)
		}
		c.Grants, c.Name = sa.Grants, sa.Name
		return nil
	}
	return fmt.Errorf("credentials of kind %q cannot call this API", c.Kind)
}

func (s *Server) lookupError(err error) error {
	if errors.Is(err, tenancy.ErrNotFound) {
		return errors.New("the principal of these credentials no longer exists")
	}
	return fmt.Errorf("look up principal: %w", err)
}

// caller returns the authenticated caller of a request, or the
// Unauthenticated error to answer, logged.
func (s *Server) caller(ctx context.Context, procedure string) (*caller, error) {
	res, _ := ctx.Value(authKey{}).(authResult)
	if res.caller != nil {
		return res.caller, nil
	}
	err := res.err
	if err == nil {
		err = errUnauthenticated
	}
	s.logger.Info("request refused", "procedure", procedure, "reason", err.Error())
	s.metrics.refused.WithLabelValues("unauthenticated").Inc()
	return nil, connect.NewError(connect.CodeUnauthenticated, err)
}

// denied logs a refused request and returns the error to answer.
func (s *Server) denied(c *caller, procedure string, err *connect.Error) error {
	s.logger.Info("request refused", "procedure", procedure, "principal", c.Identity.String(), "reason", err.Message())
	s.metrics.refused.WithLabelValues(strings.ToLower(err.Code().String())).Inc()
	return err
}

// requireManager returns the caller if it may manage its tenant.
func (s *Server) requireManager(ctx context.Context, procedure string) (*caller, error) {
	c, err := s.caller(ctx, procedure)
	if err != nil {
		return nil, err
	}
	if !c.ManagesTenant() {
		return nil, s.denied(c, procedure, connect.NewError(connect.CodePermissionDenied, errors.New("only owners and admins of the tenant may do this")))
	}
	return c, nil
}

// requirePerson returns the caller if it is a person or service account of
// a tenant (not an SPU or the operator).
func (s *Server) requireTenantPrincipal(ctx context.Context, procedure string) (*caller, error) {
	c, err := s.caller(ctx, procedure)
	if err != nil {
		return nil, err
	}
	if c.Kind != identity.User && c.Kind != identity.ServiceAccount {
		return nil, s.denied(c, procedure, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("credentials of kind %q cannot call this API", c.Kind)))
	}
	return c, nil
}
