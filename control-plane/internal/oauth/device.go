package oauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/auth/secret"
	"github.com/spatehq/spate/auth/token"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
)

// DeviceAuthorization is the answer of /oauth/device/code (RFC 8628 §3.2).
type DeviceAuthorization struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	// ExpiresIn and Interval are in seconds.
	ExpiresIn int64 `json:"expires_in"`
	Interval  int64 `json:"interval"`
}

// deviceExpiry is when a device code really expires (see expiredGrace).
func deviceExpiry(dc tenancy.DeviceCode) time.Time { return dc.ExpiresAt.Add(-expiredGrace) }

// deviceAuthorization serves POST /oauth/device/code.
func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	if wait, blocked := s.limiter.blocked(remoteIP(r)); blocked {
		s.tooMany(w, r, wait)
		return
	}
	if err := parseForm(w, r); err != nil {
		s.badRequest(w, r, errInvalidRequest, "send a form-encoded POST body")
		return
	}
	client := r.PostForm.Get("client_id")
	if client != ClientID {
		s.badRequest(w, r, errInvalidClient, fmt.Sprintf("unknown client_id %q", client))
		return
	}
	now := s.now()
	code, hash := secret.NewDeviceCode()
	dc := tenancy.DeviceCode{
		Hash:      hash,
		ClientID:  client,
		CreatedAt: now.UTC(),
		ExpiresAt: now.Add(s.cfg.DeviceCodeTTL + expiredGrace).UTC(),
		Interval:  s.cfg.PollInterval,
		Status:    tenancy.DevicePending,
	}
	var err error
	for range 5 { // user codes collide rarely; draw again
		dc.UserCode = secret.NewUserCode()
		if err = s.store.CreateDeviceCode(r.Context(), dc); !errors.Is(err, tenancy.ErrExists) {
			break
		}
	}
	if err != nil {
		s.internalError(w, r, "create device code", err)
		return
	}
	verify := s.cfg.Issuer + "/device"
	s.writeJSON(w, http.StatusOK, DeviceAuthorization{
		DeviceCode:              code,
		UserCode:                dc.UserCode,
		VerificationURI:         verify,
		VerificationURIComplete: verify + "?" + url.Values{"user_code": {dc.UserCode}}.Encode(),
		ExpiresIn:               seconds(s.cfg.DeviceCodeTTL),
		Interval:                max(seconds(s.cfg.PollInterval), 1),
	})
}

// Messages of the page.
const (
	msgBadCredentials = "Wrong email or password."
	msgBadCode        = "This code is unknown or has expired. Run spate login again to get a new one."
	msgUsedCode       = "This code was already approved or denied. Run spate login again to get a new one."
	msgTooManyForCode = "Wrong email or password, too many times for this code. Run spate login again to get a new one."
	msgTicketExpired  = "This approval page expired. Sign in again."
	msgInternal       = "Something went wrong on our side. Try again in a moment."
)

// devicePage serves GET /device[?user_code=]: the sign-in form.
func (s *Server) devicePage(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("user_code")
	if c, err := secret.NormalizeUserCode(code); err == nil {
		code = c
	}
	if wait, blocked := s.limiter.blocked(remoteIP(r)); blocked {
		s.pageTooMany(w, r, wait, signInView{UserCode: code})
		return
	}
	s.render(w, http.StatusOK, page{SignIn: &signInView{UserCode: code}})
}

// signInView is what the sign-in form shows.
type signInView struct {
	Email, UserCode, Error string
}

// signIn serves POST /device/sign-in: it checks the password and the code
// and shows the approval page.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ip := remoteIP(r)
	if err := parseForm(w, r); err != nil {
		s.render(w, http.StatusBadRequest, page{SignIn: &signInView{Error: "The form could not be read. Try again."}})
		return
	}
	view := signInView{Email: r.PostForm.Get("email"), UserCode: r.PostForm.Get("user_code")}
	if wait, blocked := s.limiter.blocked(ip); blocked {
		s.pageTooMany(w, r, wait, view)
		return
	}
	password := r.PostForm.Get("password")
	refuse := func(msg, reason string, attrs ...any) {
		s.fail(r, reason, attrs...)
		view.Error = msg
		s.render(w, http.StatusUnauthorized, page{SignIn: &view})
	}

	code, err := secret.NormalizeUserCode(view.UserCode)
	if err != nil {
		refuse(msgBadCode, "malformed user code")
		return
	}
	view.UserCode = code
	dc, err := s.store.DeviceCodeByUserCode(ctx, code)
	switch {
	case errors.Is(err, tenancy.ErrNotFound):
		refuse(msgBadCode, "unknown user code")
		return
	case err != nil:
		s.pageError(w, r, "look up user code", err)
		return
	case !s.now().Before(deviceExpiry(dc)):
		refuse(msgBadCode, "expired user code")
		return
	case dc.Status != tenancy.DevicePending:
		refuse(msgUsedCode, "user code not pending", "status", dc.Status)
		return
	}

	u, err := s.store.UserByEmail(ctx, view.Email)
	switch {
	case errors.Is(err, tenancy.ErrNotFound):
		secret.CheckPassword(s.dummyPasswordHash(), password) // same time as a wrong password
		refuse(msgBadCredentials, "unknown email")
		return
	case err != nil:
		s.pageError(w, r, "look up user", err)
		return
	case u.PasswordHash == "" || !secret.CheckPassword(u.PasswordHash, password):
		msg := msgBadCredentials
		if s.countFailedSignIn(r, dc) {
			msg = msgTooManyForCode
		}
		refuse(msg, "wrong password", "tenant", u.Tenant, "user", u.ID)
		return
	}
	t, err := s.store.GetTenant(ctx, u.Tenant)
	if err != nil {
		s.pageError(w, r, "look up tenant", err)
		return
	}
	ticket, err := s.signTicket(u, dc.Hash)
	if err != nil {
		s.pageError(w, r, "sign approval ticket", err)
		return
	}
	s.render(w, http.StatusOK, page{Approve: &approveView{
		Email: u.Email, TenantName: t.Name, UserCode: dc.UserCode, Ticket: ticket,
	}})
}

// maxFailedSignIns is how many wrong passwords one device code survives:
// then it is denied, and its client learns access_denied.
const maxFailedSignIns = 5

// countFailedSignIn records a wrong password against the device code,
// and reports whether that denied the code.
func (s *Server) countFailedSignIn(r *http.Request, dc tenancy.DeviceCode) (denied bool) {
	_, err := s.store.UpdateDeviceCode(r.Context(), dc.Hash, func(dc *tenancy.DeviceCode) error {
		if dc.Status != tenancy.DevicePending {
			return errAbort
		}
		dc.FailedAttempts++
		denied = dc.FailedAttempts >= maxFailedSignIns
		if denied {
			dc.Status = tenancy.DeviceDenied
		}
		return nil
	})
	switch {
	case err == nil && denied:
		s.log.Warn("oauth: device code denied after failed sign-ins", "remote", remoteIP(r), "attempts", maxFailedSignIns)
		return true
	case err != nil && !errors.Is(err, errAbort) && !errors.Is(err, tenancy.ErrNotFound):
		s.log.Warn("oauth: count failed sign-in", "err", err)
	}
	return false
}

// approveView is what the approval page shows.
type approveView struct {
	Email, TenantName, UserCode, Ticket string
}

// resultView is what the last page shows.
type resultView struct {
	Approved bool
}

// approve serves POST /device/approve: it approves or denies the code
// named by the ticket.
func (s *Server) approve(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseForm(w, r); err != nil {
		s.render(w, http.StatusBadRequest, page{SignIn: &signInView{Error: "The form could not be read. Try again."}})
		return
	}
	if wait, blocked := s.limiter.blocked(remoteIP(r)); blocked {
		s.pageTooMany(w, r, wait, signInView{})
		return
	}
	refuse := func(status int, msg, reason string, attrs ...any) {
		s.fail(r, reason, attrs...)
		s.render(w, status, page{SignIn: &signInView{Error: msg}})
	}
	tc, err := s.verifyTicket(ctx, r.PostForm.Get("ticket"))
	if err != nil {
		refuse(http.StatusUnauthorized, msgTicketExpired, "bad approval ticket", "err", err)
		return
	}
	var status tenancy.DeviceStatus
	switch r.PostForm.Get("action") {
	case "approve":
		status = tenancy.DeviceApproved
	case "deny":
		status = tenancy.DeviceDenied
	default:
		s.render(w, http.StatusBadRequest, page{SignIn: &signInView{Error: "Choose Approve or Deny."}})
		return
	}
	hash, err := base64.RawURLEncoding.DecodeString(tc.CodeHash)
	if err != nil {
		refuse(http.StatusUnauthorized, msgTicketExpired, "approval ticket names no code")
		return
	}
	// The user must still exist (and be the one the ticket names).
	if _, err := s.store.GetUser(ctx, tc.Tenant, tc.Subject); err != nil {
		if errors.Is(err, tenancy.ErrNotFound) {
			refuse(http.StatusUnauthorized, msgBadCredentials, "approval by a removed user", "tenant", tc.Tenant, "user", tc.Subject)
			return
		}
		s.pageError(w, r, "look up user", err)
		return
	}
	now := s.now()
	_, err = s.store.UpdateDeviceCode(ctx, hash, func(dc *tenancy.DeviceCode) error {
		if !now.Before(deviceExpiry(*dc)) {
			return tenancy.ErrNotFound
		}
		if dc.Status != tenancy.DevicePending {
			return errNotPending
		}
		dc.Status, dc.Tenant, dc.Principal = status, tc.Tenant, tc.Subject
		return nil
	})
	switch {
	case errors.Is(err, tenancy.ErrNotFound):
		refuse(http.StatusGone, msgBadCode, "approval of an unknown or expired code")
		return
	case errors.Is(err, errNotPending):
		refuse(http.StatusConflict, msgUsedCode, "approval of a code not pending")
		return
	case err != nil:
		s.pageError(w, r, "update device code", err)
		return
	}
	s.log.Info("oauth: device code "+string(status), "remote", remoteIP(r), "tenant", tc.Tenant, "user", tc.Subject)
	s.render(w, http.StatusOK, page{Result: &resultView{Approved: status == tenancy.DeviceApproved}})
}

var errNotPending = errors.New("oauth: device code not pending")

// ticketClaims are the claims of the approval page's ticket: the user who
// signed in (Subject, Tenant) and the hash of the device code (base64url)
// they may approve.
type ticketClaims struct {
	jwt.RegisteredClaims
	Tenant   string `json:"tnt"`
	CodeHash string `json:"dch"`
}

// signTicket returns a ticket for u to approve or deny the device code
// with hash.
func (s *Server) signTicket(u tenancy.User, hash []byte) (string, error) {
	key := s.keys.Signer()
	if key.Private == nil {
		return "", token.ErrNoSigningKey
	}
	now := s.now()
	t := jwt.NewWithClaims(jwt.SigningMethodES256, ticketClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{ApprovalAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ticketTTL)),
			ID:        secret.NewID("tk"),
		},
		Tenant:   u.Tenant,
		CodeHash: base64.RawURLEncoding.EncodeToString(hash),
	})
	t.Header["kid"] = key.KID
	return t.SignedString(key.Private)
}

// verifyTicket checks a ticket's signature, issuer, audience and expiry.
func (s *Server) verifyTicket(ctx context.Context, raw string) (*ticketClaims, error) {
	var c ticketClaims
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(ApprovalAudience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(token.Leeway),
		jwt.WithTimeFunc(s.now),
	).ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return s.keys.Key(ctx, kid)
	})
	if err != nil {
		return nil, err
	}
	if identity.ValidID(c.Subject) != nil || identity.ValidID(c.Tenant) != nil {
		return nil, errors.New("oauth: ticket names no user")
	}
	return &c, nil
}
