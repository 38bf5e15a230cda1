package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ClientID is the OAuth client id of the spate CLI and SDK.
const ClientID = "spate-cli"

// Grant types of the control plane's token endpoint.
const (
	GrantDeviceCode   = "urn:ietf:params:oauth:grant-type:device_code"
	GrantRefreshToken = "refresh_token"
	GrantAPIKey       = "urn:spate:params:oauth:grant-type:api-key"
)

// Tokens are what a login yields.
type Tokens struct {
	// AccessToken is a JWT for "Authorization: Bearer", valid until
	// Expires.
	AccessToken string
	// RefreshToken gets new tokens from Refresh; each use rotates it.
	RefreshToken string
	// Expires is when the access token expires.
	Expires time.Time
}

// DeviceAuthorization is what the person signing in must do: open
// VerificationURI and enter UserCode, or open VerificationURIComplete.
type DeviceAuthorization struct {
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	// Expires is when the code stops working.
	Expires time.Time
	// Interval is how long to wait between polls.
	Interval time.Duration

	deviceCode string
}

// Error is an OAuth error answer of the control plane (RFC 6749 §5.2,
// RFC 8628 §3.5). errors.Is matches it against the sentinels below by
// code.
type Error struct {
	// Code is the "error" field: invalid_grant, access_denied, ...
	Code string
	// Description is the "error_description" field.
	Description string
	// Status is the HTTP status.
	Status int
}

// Error returns the code and the description.
func (e *Error) Error() string {
	msg := "cloud: " + e.Code
	if hint, ok := hints[e.Code]; ok {
		msg = "cloud: " + hint
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Is reports whether target is an *Error with the same code and no
// description, as the sentinels are.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Description == "" && t.Code == e.Code
}

var hints = map[string]string{
	"access_denied":  "sign-in was denied",
	"expired_token":  "the sign-in code expired before it was approved; run the login again",
	"invalid_grant":  "the login, key or token is not valid (expired, revoked or unknown)",
	"slow_down":      "polling too fast",
	"rate_limited":   "too many failed attempts from this address; wait and try again",
	"invalid_client": "the client is not allowed",
}

// The OAuth errors worth telling apart, for errors.Is.
var (
	// ErrAccessDenied: the person denied the sign-in.
	ErrAccessDenied = &Error{Code: "access_denied"}
	// ErrExpiredToken: the device code expired before it was approved.
	ErrExpiredToken = &Error{Code: "expired_token"}
	// ErrInvalidGrant: the refresh token, API key or device code is
	// unknown, expired or revoked; sign in again.
	ErrInvalidGrant = &Error{Code: "invalid_grant"}
	// ErrRateLimited: the control plane answered 429.
	ErrRateLimited = &Error{Code: "rate_limited"}
)

// pollUnit is the unit of the device flow's interval and slow_down step
// (RFC 8628 counts in seconds); tests shorten it.
var pollUnit = time.Second

// DeviceLogin signs a person in with the device authorization grant
// (RFC 8628) at the control plane cpURL: it asks for a code, calls show so
// the person can approve it in a browser, and polls the token endpoint at
// the interval the control plane asks for (5 seconds more after each
// slow_down) until the sign-in is approved. It fails with an error matching
// ErrAccessDenied when the person denies it, ErrExpiredToken when the code
// expires, and ctx's error when ctx ends. hc must trust the control plane's
// certificate (see NewHTTPClient). It is StartDeviceLogin, show, then
// PollDevice.
func DeviceLogin(ctx context.Context, cpURL string, hc *http.Client, show func(DeviceAuthorization)) (Tokens, error) {
	da, err := StartDeviceLogin(ctx, cpURL, hc)
	if err != nil {
		return Tokens{}, err
	}
	if show != nil {
		show(da)
	}
	return PollDevice(ctx, cpURL, hc, da)
}

// StartDeviceLogin asks the control plane at cpURL for a device code: the
// first half of DeviceLogin.
func StartDeviceLogin(ctx context.Context, cpURL string, hc *http.Client) (DeviceAuthorization, error) {
	var resp struct {
		DeviceCode              string `json:"device_code"`
		UserCode                string `json:"user_code"`
		VerificationURI         string `json:"verification_uri"`
		VerificationURIComplete string `json:"verification_uri_complete"`
		ExpiresIn               int64  `json:"expires_in"`
		Interval                int64  `json:"interval"`
	}
	start := time.Now()
	if err := post(ctx, hc, cpURL, "/oauth/device/code", url.Values{"client_id": {ClientID}}, &resp); err != nil {
		return DeviceAuthorization{}, fmt.Errorf("cloud: start device sign-in at %s: %w", cpURL, err)
	}
	if resp.DeviceCode == "" || resp.UserCode == "" {
		return DeviceAuthorization{}, fmt.Errorf("cloud: start device sign-in at %s: answer without device_code or user_code", cpURL)
	}
	da := DeviceAuthorization{
		UserCode:                resp.UserCode,
		VerificationURI:         resp.VerificationURI,
		VerificationURIComplete: resp.VerificationURIComplete,
		Interval:                time.Duration(resp.Interval) * pollUnit,
		deviceCode:              resp.DeviceCode,
	}
	if resp.Interval <= 0 {
		da.Interval = 5 * pollUnit // RFC 8628 §3.2
	}
	if resp.ExpiresIn > 0 {
		da.Expires = start.Add(time.Duration(resp.ExpiresIn) * pollUnit)
	}
	return da, nil
}

// PollDevice is the second half of DeviceLogin: it polls the token endpoint
// for da (from StartDeviceLogin) until the sign-in is approved, denied or
// expired, or ctx ends.
func PollDevice(ctx context.Context, cpURL string, hc *http.Client, da DeviceAuthorization) (Tokens, error) {
	interval := da.Interval
	if interval <= 0 {
		interval = 5 * pollUnit
	}
	form := url.Values{"grant_type": {GrantDeviceCode}, "device_code": {da.deviceCode}, "client_id": {ClientID}}
	for {
		wait := interval
		if !da.Expires.IsZero() && time.Until(da.Expires) < wait {
			wait = max(time.Until(da.Expires), 0)
		}
		if err := sleep(ctx, wait); err != nil {
			return Tokens{}, err
		}
		tokens, err := token(ctx, hc, cpURL, form)
		var oe *Error
		switch {
		case err == nil:
			return tokens, nil
		case errors.As(err, &oe) && oe.Code == "authorization_pending":
		case errors.As(err, &oe) && oe.Code == "slow_down":
			interval += 5 * pollUnit
		case errors.As(err, &oe) && oe.Code == "rate_limited":
			interval = max(interval, retryAfter(oe))
		case ctx.Err() != nil:
			return Tokens{}, ctx.Err()
		default:
			return Tokens{}, err
		}
		if !da.Expires.IsZero() && !time.Now().Before(da.Expires) {
			return Tokens{}, fmt.Errorf("%w (after %s)", ErrExpiredToken, time.Until(da.Expires).Abs().Round(time.Second))
		}
	}
}

// APIKeyLogin exchanges an API key ("spk_...") for tokens.
func APIKeyLogin(ctx context.Context, cpURL string, hc *http.Client, key string) (Tokens, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return Tokens{}, errors.New("cloud: empty API key")
	}
	return token(ctx, hc, cpURL, url.Values{"grant_type": {GrantAPIKey}, "api_key": {key}})
}

// Refresh exchanges a refresh token for new tokens; the old refresh token
// stops working (using it again revokes the whole login). It fails with an
// error matching ErrInvalidGrant when the login expired or was revoked.
func Refresh(ctx context.Context, cpURL string, hc *http.Client, refreshToken string) (Tokens, error) {
	if refreshToken == "" {
		return Tokens{}, fmt.Errorf("%w: no refresh token", ErrInvalidGrant)
	}
	t, err := token(ctx, hc, cpURL, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {refreshToken}})
	if err == nil && t.RefreshToken == "" {
		t.RefreshToken = refreshToken
	}
	return t, err
}

// Revoke ends the login of a refresh token (RFC 7009). The control plane
// answers 200 even for an unknown token.
func Revoke(ctx context.Context, cpURL string, hc *http.Client, refreshToken string) error {
	if err := post(ctx, hc, cpURL, "/oauth/revoke", url.Values{"token": {refreshToken}}, nil); err != nil {
		return fmt.Errorf("cloud: revoke token at %s: %w", cpURL, err)
	}
	return nil
}

// token posts form to the token endpoint.
func token(ctx context.Context, hc *http.Client, cpURL string, form url.Values) (Tokens, error) {
	var resp struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	now := time.Now()
	if err := post(ctx, hc, cpURL, "/oauth/token", form, &resp); err != nil {
		return Tokens{}, err
	}
	if resp.AccessToken == "" {
		return Tokens{}, fmt.Errorf("cloud: token endpoint of %s answered without an access_token", cpURL)
	}
	if resp.TokenType != "" && !strings.EqualFold(resp.TokenType, "bearer") {
		return Tokens{}, fmt.Errorf("cloud: token endpoint of %s answered token_type %q, not Bearer", cpURL, resp.TokenType)
	}
	t := Tokens{AccessToken: resp.AccessToken, RefreshToken: resp.RefreshToken}
	if resp.ExpiresIn > 0 {
		t.Expires = now.Add(time.Duration(resp.ExpiresIn) * time.Second)
	}
	return t, nil
}

// post sends a form-encoded POST to cpURL+path and decodes a JSON answer
// into out (unless nil). Error answers become *Error.
func post(ctx context.Context, hc *http.Client, cpURL, path string, form url.Values, out any) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(cpURL, "/")+path, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("cloud: control plane URL %q: %w", cpURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("control plane at %s unreachable: %w", cpURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", req.URL, err)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		e := &Error{Code: "rate_limited", Status: resp.StatusCode}
		if s := resp.Header.Get("Retry-After"); s != "" {
			e.Description = "retry after " + s + " s"
		}
		return e
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return &Error{Code: e.Error, Description: e.Description, Status: resp.StatusCode}
		}
		return fmt.Errorf("%s answered %s: %s", req.URL, resp.Status, firstLine(body))
	}
	if out == nil {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "" && mt != "application/json" {
		return fmt.Errorf("%s answered %s, not JSON: is %s a Spate control plane?", req.URL, mt, cpURL)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode answer of %s: %w", req.URL, err)
	}
	return nil
}

// retryAfter returns the wait a rate-limit error asks for, 5 poll units
// when it says none.
func retryAfter(e *Error) time.Duration {
	if s, ok := strings.CutPrefix(e.Description, "retry after "); ok {
		if n, err := strconv.Atoi(strings.TrimSuffix(s, " s")); err == nil && n > 0 {
			return time.Duration(n) * pollUnit
		}
	}
	return 5 * pollUnit
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
