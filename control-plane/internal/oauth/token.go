package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/auth/secret"
	"github.com/spatehq/spate/auth/token"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
)

// maxFormBytes bounds a form body.
const maxFormBytes = 16 << 10

// OAuth error codes (RFC 6749 §5.2, RFC 8628 §3.5).
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errInvalidGrant         = "invalid_grant"
	errUnsupportedGrantType = "unsupported_grant_type"
	errAuthorizationPending = "authorization_pending"
	errSlowDown             = "slow_down"
	errAccessDenied         = "access_denied"
	errExpiredToken         = "expired_token"
	errServerError          = "server_error"
	// errTooManyAttempts answers 429: not in the RFCs.
	errTooManyAttempts = "too_many_attempts"
)

// oauthError is an error answer of the token endpoint.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// token serves POST /oauth/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	if wait, blocked := s.limiter.blocked(ip); blocked {
		s.tooMany(w, r, wait)
		return
	}
	if err := parseForm(w, r); err != nil {
		s.badRequest(w, r, errInvalidRequest, "send a form-encoded POST body")
		return
	}
	grant := r.PostForm.Get("grant_type")
	switch grant {
	case GrantDeviceCode:
		s.deviceCodeGrant(w, r)
	case GrantRefreshToken:
		s.refreshGrant(w, r)
	case GrantAPIKey:
		s.apiKeyGrant(w, r)
	case "":
		s.badRequest(w, r, errInvalidRequest, "grant_type is required")
	default:
		s.badRequest(w, r, errUnsupportedGrantType, fmt.Sprintf("grant type %q is not supported", grant))
	}
}

// deviceCodeGrant answers a poll of the device authorization grant (RFC
// 8628 §3.4, §3.5).
func (s *Server) deviceCodeGrant(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	code, client := r.PostForm.Get("device_code"), r.PostForm.Get("client_id")
	if code == "" || client == "" {
		s.badRequest(w, r, errInvalidRequest, "device_code and client_id are required")
		return
	}
	hash := secret.HashDeviceCode(code)
	now := s.now()
	var answer string // an error code, or "" to issue tokens
	dc, err := s.store.UpdateDeviceCode(ctx, hash, func(dc *tenancy.DeviceCode) error {
		answer = ""
		switch {
		case dc.ClientID != client:
			answer = errInvalidGrant
			return errAbort
		case !now.Before(deviceExpiry(*dc)):
			answer = errExpiredToken
			return errAbort
		case dc.Status == deviceIssued:
			answer = errInvalidGrant
			return errAbort
		}
		if !dc.LastPoll.IsZero() && now.Sub(dc.LastPoll) < dc.Interval {
			dc.Interval += slowDownStep
			dc.LastPoll = now
			answer = errSlowDown
			return nil
		}
		dc.LastPoll = now
		switch dc.Status {
		case tenancy.DevicePending:
			answer = errAuthorizationPending
		case tenancy.DeviceDenied:
			answer = errAccessDenied
		case tenancy.DeviceApproved:
			dc.Status = deviceIssued // claimed by this poll alone
		default:
			answer = errInvalidGrant
			return errAbort
		}
		return nil
	})
	switch {
	case errors.Is(err, tenancy.ErrNotFound):
		s.fail(r, "unknown device code")
		s.writeError(w, http.StatusBadRequest, errInvalidGrant, "unknown device code: run spate login again")
		return
	case errors.Is(err, errAbort), err == nil:
	default:
		s.internalError(w, r, "poll device code", err)
		return
	}
	switch answer {
	case errInvalidGrant:
		s.fail(r, "device code not redeemable", "client_id", client)
		s.writeError(w, http.StatusBadRequest, errInvalidGrant, "this device code was already used or belongs to another client: run spate login again")
	case errExpiredToken:
		s.log.Info("oauth: refused", "reason", "expired device code", "remote", remoteIP(r))
		s.writeError(w, http.StatusBadRequest, errExpiredToken, "the device code expired: run spate login again")
	case errSlowDown:
		s.log.Info("oauth: device code polled too fast", "remote", remoteIP(r), "interval", dc.Interval)
		s.writeError(w, http.StatusBadRequest, errSlowDown, fmt.Sprintf("poll at most every %d seconds", seconds(dc.Interval)))
	case errAuthorizationPending:
		s.writeError(w, http.StatusBadRequest, errAuthorizationPending, "waiting for the user to approve the sign-in")
	case errAccessDenied:
		if err := s.store.DeleteDeviceCode(ctx, hash); err != nil {
			s.log.Warn("oauth: delete denied device code", "err", err)
		}
		s.log.Info("oauth: device sign-in denied", "remote", remoteIP(r), "tenant", dc.Tenant, "user", dc.Principal)
		s.writeError(w, http.StatusBadRequest, errAccessDenied, "the sign-in was denied")
	default: // approved, now claimed
		resp, err := s.redeem(ctx, dc)
		if delErr := s.store.DeleteDeviceCode(ctx, hash); delErr != nil {
			s.log.Warn("oauth: delete redeemed device code", "err", delErr)
		}
		if errors.Is(err, ErrPrincipalGone) {
			s.fail(r, "device code approved by a removed user", "tenant", dc.Tenant, "user", dc.Principal)
			s.writeError(w, http.StatusBadRequest, errInvalidGrant, "the approving user no longer exists")
			return
		}
		if err != nil {
			s.internalError(w, r, "issue tokens for device code", err)
			return
		}
		s.log.Info("oauth: device sign-in", "remote", remoteIP(r), "tenant", dc.Tenant, "user", dc.Principal)
		s.writeJSON(w, http.StatusOK, resp)
	}
}

// errAbort ends an UpdateDeviceCode without writing.
var errAbort = errors.New("oauth: abort update")

// redeem issues the tokens of an approved device code for its approving
// user.
func (s *Server) redeem(ctx context.Context, dc tenancy.DeviceCode) (TokenResponse, error) {
	name, err := s.principalName(ctx, dc.Tenant, identity.User, dc.Principal)
	if err != nil {
		return TokenResponse{}, err
	}
	return s.IssueTokens(ctx, Subject{Tenant: dc.Tenant, Kind: identity.User, ID: dc.Principal, Name: name})
}

// refreshGrant rotates a refresh token (RFC 6749 §6).
func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	raw := r.PostForm.Get("refresh_token")
	if raw == "" {
		s.badRequest(w, r, errInvalidRequest, "refresh_token is required")
		return
	}
	id, hash, err := secret.ParseRefreshToken(raw)
	if err != nil {
		s.fail(r, "malformed refresh token")
		s.writeError(w, http.StatusBadRequest, errInvalidGrant, "malformed refresh token: sign in again")
		return
	}
	nextID, nextFull, nextHash := secret.NewRefreshToken()
	now := s.now()
	used, err := s.store.RotateRefreshToken(ctx, id, hash, tenancy.RefreshToken{
		ID: nextID, Hash: nextHash, CreatedAt: now.UTC(), ExpiresAt: now.Add(s.cfg.RefreshTTL).UTC(),
	})
	switch {
	case errors.Is(err, tenancy.ErrReused):
		s.fail(r, "refresh token reuse: family revoked", "refresh_token_id", id)
		s.writeError(w, http.StatusBadRequest, errInvalidGrant, "refresh token already used; for safety every session it belongs to was ended: sign in again")
		return
	case errors.Is(err, tenancy.ErrNotFound):
		s.fail(r, "unknown, expired or orphaned refresh token", "refresh_token_id", id)
		s.writeError(w, http.StatusBadRequest, errInvalidGrant, "refresh token unknown or expired: sign in again")
		return
	case err != nil:
		s.internalError(w, r, "rotate refresh token", err)
		return
	}
	if keyID, ok := apiKeyOfFamily(used.Family); ok {
		// A login with an API key lasts as long as the key.
		k, err := s.store.GetAPIKey(ctx, keyID)
		if err == nil {
			_, err = s.apiKeySubject(ctx, k, remoteIP(r))
		} else if errors.Is(err, tenancy.ErrNotFound) {
			err = fmt.Errorf("%w: key %s deleted", ErrRevokedAPIKey, keyID)
		}
		if desc, ok := apiKeyErrorDescription(err); ok {
			s.fail(r, "refresh token of a dead API key", "api_key_id", keyID, "err", err)
			if err := s.store.RevokeRefreshFamily(ctx, used.Family); err != nil {
				s.log.Warn("oauth: revoke refresh family", "err", err)
			}
			s.writeError(w, http.StatusBadRequest, errInvalidGrant, desc)
			return
		}
		if err != nil {
			s.internalError(w, r, "look up API key", err)
			return
		}
	}
	name, err := s.principalName(ctx, used.Tenant, used.Kind, used.Principal)
	if errors.Is(err, ErrPrincipalGone) {
		s.fail(r, "refresh token of a removed principal", "tenant", used.Tenant, "principal", used.Principal)
		if err := s.store.RevokeRefreshFamily(ctx, used.Family); err != nil {
			s.log.Warn("oauth: revoke refresh family", "err", err)
		}
		s.writeError(w, http.StatusBadRequest, errInvalidGrant, "this account no longer exists")
		return
	}
	if err != nil {
		s.internalError(w, r, "look up principal", err)
		return
	}
	access, err := s.accessToken(Subject{Tenant: used.Tenant, Kind: used.Kind, ID: used.Principal, Name: name})
	if err != nil {
		s.internalError(w, r, "sign access token", err)
		return
	}
	s.log.Info("oauth: refreshed", "remote", remoteIP(r), "tenant", used.Tenant, "principal", used.Principal, "refresh_token_id", nextID)
	s.writeJSON(w, http.StatusOK, TokenResponse{
		AccessToken:  access,
		TokenType:    "Bearer",
		RefreshToken: nextFull,
		ExpiresIn:    seconds(s.cfg.AccessTTL),
	})
}

// apiKeyGrant exchanges an API key for an access token and a refresh
// token whose family names the key (see apiKeyFamily), so that refreshing
// stops working when the key is revoked or expires.
func (s *Server) apiKeyGrant(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	key := r.PostForm.Get("api_key")
	if key == "" {
		s.badRequest(w, r, errInvalidRequest, "api_key is required")
		return
	}
	sub, k, err := s.authenticateAPIKey(ctx, key, remoteIP(r))
	if err != nil {
		desc, ok := apiKeyErrorDescription(err)
		if !ok {
			s.internalError(w, r, "authenticate API key", err)
			return
		}
		s.limiter.fail(remoteIP(r))
		s.writeError(w, http.StatusBadRequest, errInvalidGrant, desc)
		return
	}
	resp, err := s.issueTokens(ctx, sub, secret.NewID(apiKeyFamilyPrefix+k.ID))
	if err != nil {
		s.internalError(w, r, "issue tokens for API key", err)
		return
	}
	s.log.Info("oauth: API key exchanged", "remote", remoteIP(r), "tenant", sub.Tenant, "principal", sub.ID, "api_key_id", k.ID)
	s.writeJSON(w, http.StatusOK, resp)
}

// apiKeyFamilyPrefix starts the refresh token families of API-key logins:
// "ak-<key id>-<random>".
const apiKeyFamilyPrefix = "ak-"

// apiKeyOfFamily returns the id of the API key a refresh token family
// was started with, if any.
func apiKeyOfFamily(family string) (string, bool) {
	rest, ok := strings.CutPrefix(family, apiKeyFamilyPrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "-")
	return id, ok && id != ""
}

// apiKeyErrorDescription tells the client what to do about an error of
// authenticateAPIKey; false for errors that are not the key's fault.
func apiKeyErrorDescription(err error) (string, bool) {
	switch {
	case errors.Is(err, ErrRevokedAPIKey):
		return "API key revoked: create a new one", true
	case errors.Is(err, ErrExpiredAPIKey):
		return "API key expired: create a new one", true
	case errors.Is(err, ErrPrincipalGone):
		return "the API key's user or service account no longer exists", true
	case errors.Is(err, ErrMalformedAPIKey), errors.Is(err, ErrUnknownAPIKey):
		return "invalid API key: check that you copied all of it (spk_...)", true
	}
	return "", false
}

// AuthenticateAPIKey returns the principal an API key belongs to. The
// key must be well formed (ErrMalformedAPIKey), known with a matching
// secret (ErrUnknownAPIKey; compared in constant time), not revoked
// (ErrRevokedAPIKey), not expired (ErrExpiredAPIKey), and its principal
// must still exist (ErrPrincipalGone). Refusals are logged, without the
// key's secret. Other errors are the store's.
func (s *Server) AuthenticateAPIKey(ctx context.Context, key string) (Subject, error) {
	sub, _, err := s.authenticateAPIKey(ctx, key, "")
	return sub, err
}

func (s *Server) authenticateAPIKey(ctx context.Context, key, ip string) (Subject, tenancy.APIKey, error) {
	k, err := s.lookupAPIKey(ctx, key, ip)
	if err != nil {
		return Subject{}, tenancy.APIKey{}, err
	}
	sub, err := s.apiKeySubject(ctx, k, ip)
	if err != nil {
		return Subject{}, tenancy.APIKey{}, err
	}
	return sub, k, nil
}

// VerifyAPIKey checks an API key presented directly as a bearer token:
// well formed, known, the right secret, not revoked, not expired. It does
// not look the principal up (the caller resolves it, operator included).
// Refusals are logged, as for the API-key grant. A known key that is
// revoked or expired is returned with the error, so callers can say when
// it expired.
func (s *Server) VerifyAPIKey(ctx context.Context, key, ip string) (tenancy.APIKey, error) {
	k, err := s.lookupAPIKey(ctx, key, ip)
	if err != nil {
		return tenancy.APIKey{}, err
	}
	attrs := []any{"api_key_id", k.ID, "tenant", k.Tenant, "principal", k.Principal}
	return k, s.checkAPIKeyValid(k, ip, attrs)
}

// lookupAPIKey parses an API key and finds it, comparing its secret in
// constant time.
func (s *Server) lookupAPIKey(ctx context.Context, key, ip string) (tenancy.APIKey, error) {
	id, hash, err := secret.ParseAPIKey(key)
	if err != nil {
		return tenancy.APIKey{}, s.refuseAPIKey(ip, fmt.Errorf("%w: %v", ErrMalformedAPIKey, err))
	}
	k, err := s.store.GetAPIKey(ctx, id)
	if errors.Is(err, tenancy.ErrNotFound) {
		return tenancy.APIKey{}, s.refuseAPIKey(ip, fmt.Errorf("%w: no key %s", ErrUnknownAPIKey, id), "api_key_id", id)
	}
	if err != nil {
		return tenancy.APIKey{}, fmt.Errorf("oauth: get API key %s: %w", id, err)
	}
	if !secret.Equal(hash, k.Hash) {
		return tenancy.APIKey{}, s.refuseAPIKey(ip, fmt.Errorf("%w: key %s: secret does not match", ErrUnknownAPIKey, id), "api_key_id", id, "tenant", k.Tenant)
	}
	return k, nil
}

// checkAPIKeyValid refuses a revoked or expired key.
func (s *Server) checkAPIKeyValid(k tenancy.APIKey, ip string, attrs []any) error {
	if k.Revoked {
		return s.refuseAPIKey(ip, fmt.Errorf("%w: key %s", ErrRevokedAPIKey, k.ID), attrs...)
	}
	if !k.ExpiresAt.IsZero() && !s.now().Before(k.ExpiresAt) {
		return s.refuseAPIKey(ip, fmt.Errorf("%w: key %s expired at %s", ErrExpiredAPIKey, k.ID, k.ExpiresAt.UTC().Format(time.RFC3339)), attrs...)
	}
	return nil
}

// apiKeySubject checks that a known API key still grants access (not
// revoked, not expired, its principal exists) and returns its principal.
// Refusals are logged with ip, if known.
func (s *Server) apiKeySubject(ctx context.Context, k tenancy.APIKey, ip string) (Subject, error) {
	attrs := []any{"api_key_id", k.ID, "tenant", k.Tenant, "principal", k.Principal}
	if err := s.checkAPIKeyValid(k, ip, attrs); err != nil {
		return Subject{}, err
	}
	name, err := s.principalName(ctx, k.Tenant, k.Kind, k.Principal)
	if errors.Is(err, ErrPrincipalGone) {
		return Subject{}, s.refuseAPIKey(ip, err, attrs...)
	}
	if err != nil {
		return Subject{}, fmt.Errorf("oauth: API key %s: %w", k.ID, err)
	}
	return Subject{Tenant: k.Tenant, Kind: k.Kind, ID: k.Principal, Name: name}, nil
}

// refuseAPIKey logs a refused API key (never its secret) and returns err.
func (s *Server) refuseAPIKey(ip string, err error, attrs ...any) error {
	attrs = append(attrs, "reason", err.Error())
	if ip != "" {
		attrs = append(attrs, "remote", ip)
	}
	s.log.Warn("oauth: API key refused", attrs...)
	return err
}

// IssueTokens signs an access token for sub and starts a new refresh
// token family for it. The principal must exist in the store (otherwise
// the error wraps tenancy.ErrNotFound).
func (s *Server) IssueTokens(ctx context.Context, sub Subject) (TokenResponse, error) {
	return s.issueTokens(ctx, sub, "")
}

// issueTokens is IssueTokens with the new family's id ("": the first
// refresh token's id).
func (s *Server) issueTokens(ctx context.Context, sub Subject, family string) (TokenResponse, error) {
	access, err := s.accessToken(sub)
	if err != nil {
		return TokenResponse{}, err
	}
	id, full, hash := secret.NewRefreshToken()
	if family == "" {
		family = id
	}
	now := s.now()
	if err := s.store.CreateRefreshToken(ctx, tenancy.RefreshToken{
		ID: id, Family: family, Tenant: sub.Tenant, Kind: sub.Kind, Principal: sub.ID, Hash: hash,
		CreatedAt: now.UTC(), ExpiresAt: now.Add(s.cfg.RefreshTTL).UTC(),
	}); err != nil {
		return TokenResponse{}, fmt.Errorf("oauth: issue tokens: %w", err)
	}
	return TokenResponse{AccessToken: access, TokenType: "Bearer", RefreshToken: full, ExpiresIn: seconds(s.cfg.AccessTTL)}, nil
}

// accessToken signs an access token for sub.
func (s *Server) accessToken(sub Subject) (string, error) {
	if err := identity.ValidID(sub.Tenant); err != nil {
		return "", fmt.Errorf("oauth: access token: tenant: %w", err)
	}
	if err := identity.ValidID(sub.ID); err != nil {
		return "", fmt.Errorf("oauth: access token: principal: %w", err)
	}
	if !sub.Kind.Valid() {
		return "", fmt.Errorf("oauth: access token: unknown kind %q", sub.Kind)
	}
	now := s.now()
	t, err := s.keys.Sign(token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   sub.ID,
			Audience:  jwt.ClaimStrings{token.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)),
			ID:        secret.NewID("at"),
		},
		Tenant: sub.Tenant,
		Kind:   string(sub.Kind),
		Name:   sub.Name,
	})
	if err != nil {
		return "", fmt.Errorf("oauth: access token: %w", err)
	}
	return t, nil
}

// revoke serves POST /oauth/revoke (RFC 7009): a refresh token ends its
// whole family. It answers 200 whatever the token, as the RFC asks.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		s.badRequest(w, r, errInvalidRequest, "send a form-encoded POST body")
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		s.badRequest(w, r, errInvalidRequest, "token is required")
		return
	}
	if hint := r.PostForm.Get("token_type_hint"); hint != "" && hint != "refresh_token" && hint != "access_token" {
		s.badRequest(w, r, "unsupported_token_type", fmt.Sprintf("token type %q cannot be revoked", hint))
		return
	}
	if id, hash, err := secret.ParseRefreshToken(raw); err == nil {
		// Using it is how the store finds the family and checks the
		// secret; the family goes right after.
		rt, err := s.store.UseRefreshToken(r.Context(), id, hash)
		switch {
		case err == nil:
			if err := s.store.RevokeRefreshFamily(r.Context(), rt.Family); err != nil {
				s.internalError(w, r, "revoke refresh family", err)
				return
			}
			s.log.Info("oauth: refresh token revoked", "remote", remoteIP(r), "tenant", rt.Tenant, "principal", rt.Principal, "refresh_token_id", id)
		case errors.Is(err, tenancy.ErrNotFound), errors.Is(err, tenancy.ErrReused):
			// Unknown, expired or already revoked: nothing to do.
		default:
			s.internalError(w, r, "revoke refresh token", err)
			return
		}
	}
	// Access tokens are short-lived and cannot be revoked; the RFC answers
	// 200 for them too.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// parseForm reads a bounded form body.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	return r.ParseForm()
}

// fail logs a refused attempt and counts it against the client's IP.
func (s *Server) fail(r *http.Request, reason string, attrs ...any) {
	ip := remoteIP(r)
	s.limiter.fail(ip)
	s.log.Warn("oauth: refused", append([]any{"reason", reason, "remote", ip, "path", r.URL.Path}, attrs...)...)
}

// badRequest logs and answers a malformed request (not counted as a
// failed attempt: it carries no credential).
func (s *Server) badRequest(w http.ResponseWriter, r *http.Request, code, desc string) {
	s.log.Info("oauth: refused", "reason", code+": "+desc, "remote", remoteIP(r), "path", r.URL.Path)
	s.writeError(w, http.StatusBadRequest, code, desc)
}

// tooMany answers 429 on the token endpoint.
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	s.log.Warn("oauth: refused", "reason", "too many failed attempts", "remote", remoteIP(r), "path", r.URL.Path, "retry_after", wait)
	w.Header().Set("Retry-After", strconv.FormatInt(seconds(wait), 10))
	s.writeError(w, http.StatusTooManyRequests, errTooManyAttempts, fmt.Sprintf("too many failed attempts from your address: try again in %d seconds", seconds(wait)))
}

// internalError logs err and answers 500 without its details.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, op string, err error) {
	s.log.Error("oauth: "+op, "err", err, "remote", remoteIP(r), "path", r.URL.Path)
	s.writeError(w, http.StatusInternalServerError, errServerError, "internal error: try again later")
}

func (s *Server) writeError(w http.ResponseWriter, status int, code, desc string) {
	s.writeJSON(w, status, oauthError{Error: code, Description: desc})
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Debug("oauth: write answer", "err", err)
	}
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
