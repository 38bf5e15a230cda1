package oauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/spatehq/spate/auth/access"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/auth/secret"
	"github.com/spatehq/spate/auth/token"
	"github.com/spatehq/spate/control-plane/internal/embedetcd"
	"github.com/spatehq/spate/control-plane/internal/oauth"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
)

// etcdEndpoint is the embedded etcd that all tests of the package share;
// each test makes its own tenants, so they do not see each other.
var etcdEndpoint string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oauth-test-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e, err := embedetcd.Start(context.Background(), embedetcd.Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	etcdEndpoint = e.Endpoint()
	code := m.Run()
	e.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// clock is a settable clock for the server under test.
type clock struct {
	mu     sync.Mutex // guards offset
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a control plane's OAuth endpoints on a test HTTP server.
type env struct {
	t      *testing.T
	srv    *oauth.Server
	store  *tenancy.Store
	keys   *token.Keyring
	url    string
	clock  *clock
	logs   *logBuffer
	client *http.Client
}

func newEnv(t *testing.T, configure ...func(*oauth.Config)) *env {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdEndpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	key, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	e := &env{
		t:      t,
		store:  tenancy.New(c),
		keys:   token.NewKeyring(key),
		url:    "http://" + ts.Listener.Addr().String(),
		clock:  &clock{},
		logs:   &logBuffer{},
		client: &http.Client{Timeout: 30 * time.Second},
	}
	cfg := oauth.Config{
		Issuer: e.url,
		Store:  e.store,
		Keys:   e.keys,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range configure {
		f(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.srv = oauth.New(cfg)
	oauth.SetClock(e.srv, e.clock.now)
	ts.Config.Handler = e.srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

// person is a user of a new tenant.
type person struct {
	tenancy.User
	Password   string
	TenantName string
}

func (e *env) newUser() person {
	e.t.Helper()
	pw := secret.NewPassword()
	hash, err := secret.HashPassword(pw)
	if err != nil {
		e.t.Fatal(err)
	}
	tid := secret.NewID("t")
	u := tenancy.User{ID: secret.NewID("u"), Tenant: tid, Email: strings.ToLower(secret.NewID("ada")) + "@example.com", Role: access.Owner, PasswordHash: hash}
	name := "acme-" + tid
	if err := e.store.CreateTenant(context.Background(), tenancy.Tenant{ID: tid, Name: name}, u); err != nil {
		e.t.Fatal(err)
	}
	return person{User: u, Password: pw, TenantName: name}
}

// post sends a form and returns the status, headers and body.
func (e *env) post(path string, form url.Values) (int, http.Header, string) {
	e.t.Helper()
	resp, err := e.client.PostForm(e.url+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (e *env) get(path string) (int, http.Header, string) {
	e.t.Helper()
	resp, err := e.client.Get(e.url + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (e *env) deviceCode() oauth.DeviceAuthorization {
	e.t.Helper()
	status, _, body := e.post("/oauth/device/code", url.Values{"client_id": {oauth.ClientID}})
	if status != http.StatusOK {
		e.t.Fatalf("device/code: %d %s", status, body)
	}
	var da oauth.DeviceAuthorization
	if err := json.Unmarshal([]byte(body), &da); err != nil {
		e.t.Fatal(err)
	}
	return da
}

// tokenAnswer is any answer of the token endpoint.
type tokenAnswer struct {
	status int
	header http.Header
	oauth.TokenResponse
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func (e *env) token(form url.Values) tokenAnswer {
	e.t.Helper()
	status, header, body := e.post("/oauth/token", form)
	a := tokenAnswer{status: status, header: header}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		e.t.Fatalf("token answer %d %q: %v", status, body, err)
	}
	if header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("token answer without Cache-Control: no-store")
	}
	return a
}

func (e *env) poll(deviceCode string) tokenAnswer {
	e.t.Helper()
	return e.token(url.Values{"grant_type": {oauth.GrantDeviceCode}, "device_code": {deviceCode}, "client_id": {oauth.ClientID}})
}

func (e *env) wantError(a tokenAnswer, status int, code string) {
	e.t.Helper()
	if a.status != status || a.Error != code {
		e.t.Fatalf("token answer %d %q (%s), want %d %q", a.status, a.Error, a.Description, status, code)
	}
}

var ticketRE = regexp.MustCompile(`name="ticket" value="([^"]+)"`)

// signIn posts the sign-in form and returns the status, the page and the
// approval ticket ("" if none).
func (e *env) signIn(email, password, userCode string) (int, string, string) {
	e.t.Helper()
	status, _, body := e.post("/device/sign-in", url.Values{"email": {email}, "password": {password}, "user_code": {userCode}})
	var ticket string
	if m := ticketRE.FindStringSubmatch(body); m != nil {
		ticket = m[1]
	}
	return status, body, ticket
}

func (e *env) approve(ticket, action string) (int, string) {
	e.t.Helper()
	status, _, body := e.post("/device/approve", url.Values{"ticket": {ticket}, "action": {action}})
	return status, body
}

// verify checks an access token as an SPU or the control plane would.
func (e *env) verify(access string) *token.Claims {
	e.t.Helper()
	c, err := token.NewVerifier(e.url, e.keys).Verify(context.Background(), access)
	if err != nil {
		e.t.Fatalf("verify access token: %v", err)
	}
	return c
}

func TestDeviceFlow(t *testing.T) {
	e := newEnv(t)
	ada := e.newUser()

	da := e.deviceCode()
	if da.VerificationURI != e.url+"/device" {
		t.Errorf("verification_uri %q, want %q", da.VerificationURI, e.url+"/device")
	}
	if want := e.url + "/device?user_code=" + da.UserCode; da.VerificationURIComplete != want {
		t.Errorf("verification_uri_complete %q, want %q", da.VerificationURIComplete, want)
	}
	if da.ExpiresIn != 600 || da.Interval != 5 {
		t.Errorf("expires_in %d, interval %d; want 600, 5", da.ExpiresIn, da.Interval)
	}
	if _, err := secret.NormalizeUserCode(da.UserCode); err != nil || len(da.DeviceCode) < 40 {
		t.Errorf("user code %q, device code %q", da.UserCode, da.DeviceCode)
	}
	// Only a hash of the device code is stored.
	dc, err := e.store.DeviceCodeByHash(context.Background(), secret.HashDeviceCode(da.DeviceCode))
	if err != nil {
		t.Fatal(err)
	}
	if dc.Status != tenancy.DevicePending || dc.UserCode != da.UserCode {
		t.Fatalf("stored device code %+v", dc)
	}

	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "authorization_pending")

	// The person opens verification_uri_complete: the code is filled in.
	status, header, body := e.get(strings.TrimPrefix(da.VerificationURIComplete, e.url))
	if status != http.StatusOK || !strings.Contains(body, `value="`+da.UserCode+`"`) {
		t.Fatalf("GET /device: %d, code not prefilled:\n%s", status, body)
	}
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	} {
		if !strings.HasPrefix(header.Get(h), want) {
			t.Errorf("%s: %q, want %q", h, header.Get(h), want)
		}
	}

	// Sign in (the email in another case, the code in lower case and
	// without its dash, as people type them).
	status, body, ticket := e.signIn(strings.ToUpper(ada.Email), ada.Password, strings.ToLower(strings.ReplaceAll(da.UserCode, "-", "")))
	if status != http.StatusOK || ticket == "" {
		t.Fatalf("sign-in: %d\n%s", status, body)
	}
	for _, want := range []string{"Approve sign-in of the Spate CLI as", ada.Email, ada.TenantName, da.UserCode, `id="approve"`, `id="deny"`} {
		if !strings.Contains(body, want) {
			t.Errorf("approval page lacks %q:\n%s", want, body)
		}
	}
	// Signing in alone approves nothing.
	e.clock.advance(6 * time.Second)
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "authorization_pending")

	status, body = e.approve(ticket, "approve")
	if status != http.StatusOK || !strings.Contains(body, "Device approved. You can close this window and return to your terminal.") {
		t.Fatalf("approve: %d\n%s", status, body)
	}
	// The ticket is spent with the code's approval.
	if status, _ := e.approve(ticket, "deny"); status == http.StatusOK {
		t.Fatalf("second use of the ticket: %d", status)
	}

	e.clock.advance(6 * time.Second)
	a := e.poll(da.DeviceCode)
	if a.status != http.StatusOK || a.TokenType != "Bearer" || a.RefreshToken == "" || a.ExpiresIn != 900 {
		t.Fatalf("token after approval: %+v", a)
	}
	c := e.verify(a.AccessToken)
	if c.Subject != ada.ID || c.Tenant != ada.Tenant || c.Kind != string(identity.User) || c.Name != ada.Email || c.Issuer != e.url {
		t.Errorf("claims %+v", c)
	}
	if len(c.Audience) != 1 || c.Audience[0] != token.Audience {
		t.Errorf("audience %v", c.Audience)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(a.AccessToken, &token.Claims{})
	if err != nil || parsed.Header["kid"] != e.keys.Signer().KID {
		t.Errorf("kid %v, want %s (%v)", parsed.Header["kid"], e.keys.Signer().KID, err)
	}

	// The code is gone: replaying it is an invalid grant.
	e.clock.advance(6 * time.Second)
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "invalid_grant")
	if _, err := e.store.DeviceCodeByHash(context.Background(), secret.HashDeviceCode(da.DeviceCode)); err == nil {
		t.Error("device code still stored after its tokens were issued")
	}

	// The refresh token works.
	r := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.RefreshToken}})
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %+v", r)
	}
}

func TestDeviceSlowDown(t *testing.T) {
	e := newEnv(t)
	da := e.deviceCode()
	hash := secret.HashDeviceCode(da.DeviceCode)
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "authorization_pending")
	for _, want := range []time.Duration{10 * time.Second, 15 * time.Second} {
		e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "slow_down")
		dc, err := e.store.DeviceCodeByHash(context.Background(), hash)
		if err != nil {
			t.Fatal(err)
		}
		if dc.Interval != want {
			t.Fatalf("interval after slow_down %v, want %v", dc.Interval, want)
		}
	}
	// Waiting less than the new interval is still too fast; waiting it out
	// is fine.
	e.clock.advance(10 * time.Second)
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "slow_down")
	e.clock.advance(21 * time.Second)
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "authorization_pending")
}

func TestDeviceDeny(t *testing.T) {
	e := newEnv(t)
	ada := e.newUser()
	da := e.deviceCode()
	_, body, ticket := e.signIn(ada.Email, ada.Password, da.UserCode)
	if ticket == "" {
		t.Fatalf("sign-in:\n%s", body)
	}
	status, body := e.approve(ticket, "deny")
	if status != http.StatusOK || !strings.Contains(body, `id="result"`) || !strings.Contains(body, "denied") {
		t.Fatalf("deny: %d\n%s", status, body)
	}
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "access_denied")
	e.clock.advance(6 * time.Second)
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "invalid_grant")
}

func TestDeviceExpiry(t *testing.T) {
	e := newEnv(t, func(c *oauth.Config) { c.DeviceCodeTTL = time.Minute })
	ada := e.newUser()
	da := e.deviceCode()
	if da.ExpiresIn != 60 {
		t.Fatalf("expires_in %d, want 60", da.ExpiresIn)
	}
	_, _, ticket := e.signIn(ada.Email, ada.Password, da.UserCode)
	e.clock.advance(61 * time.Second)
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "expired_token")

	status, body, _ := e.signIn(ada.Email, ada.Password, da.UserCode)
	if status == http.StatusOK || !strings.Contains(body, "unknown or has expired") {
		t.Fatalf("sign-in with an expired code: %d\n%s", status, body)
	}
	if status, body := e.approve(ticket, "approve"); status == http.StatusOK {
		t.Fatalf("approval of an expired code: %d\n%s", status, body)
	}
}

func TestWrongPassword(t *testing.T) {
	e := newEnv(t)
	ada := e.newUser()
	da := e.deviceCode()
	var pages []string
	for _, tt := range []struct{ name, email, password string }{
		{"wrong password", ada.Email, ada.Password + "x"},
		{"unknown email", "nobody@example.com", ada.Password},
		{"empty password", ada.Email, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body, ticket := e.signIn(tt.email, tt.password, da.UserCode)
			if status != http.StatusUnauthorized || ticket != "" || !strings.Contains(body, "Wrong email or password.") {
				t.Fatalf("%d, ticket %q:\n%s", status, ticket, body)
			}
			if !strings.Contains(body, `id="email"`) || !strings.Contains(body, `value="`+tt.email+`"`) || !strings.Contains(body, `id="password"`) {
				t.Fatalf("form not shown again with the email:\n%s", body)
			}
			// The error names neither the email nor the password as wrong.
			pages = append(pages, strings.ReplaceAll(body, tt.email, "EMAIL"))
		})
	}
	if len(pages) == 3 && pages[0] != pages[1] {
		t.Errorf("a wrong password and an unknown email give different pages")
	}
	if strings.Contains(e.logs.String(), ada.Password) {
		t.Error("the password was logged")
	}
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "authorization_pending")
	// The right password still works.
	if _, body, ticket := e.signIn(ada.Email, ada.Password, da.UserCode); ticket == "" {
		t.Fatalf("sign-in after failures:\n%s", body)
	}
}

func TestWrongPasswordsDenyTheCode(t *testing.T) {
	e := newEnv(t)
	ada := e.newUser()
	da := e.deviceCode()
	for i := range 5 {
		status, body, _ := e.signIn(ada.Email, "guess", da.UserCode)
		want := "Wrong email or password."
		if i == 4 {
			want = "too many times for this code"
		}
		if status != http.StatusUnauthorized || !strings.Contains(body, want) {
			t.Fatalf("attempt %d: %d, want %q\n%s", i, status, want, body)
		}
	}
	if _, body, ticket := e.signIn(ada.Email, ada.Password, da.UserCode); ticket != "" || !strings.Contains(body, "already approved or denied") {
		t.Fatalf("sign-in with a denied code:\n%s", body)
	}
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "access_denied")
}

func TestGuessedUserCodesRateLimited(t *testing.T) {
	e := newEnv(t)
	ada := e.newUser()
	da := e.deviceCode()
	for i := range oauth.MaxFailures {
		status, body, _ := e.signIn(ada.Email, ada.Password, secret.NewUserCode())
		if status != http.StatusUnauthorized || !strings.Contains(body, "unknown or has expired") {
			t.Fatalf("guess %d: %d\n%s", i, status, body)
		}
	}
	status, header, body := e.post("/device/sign-in", url.Values{"email": {ada.Email}, "password": {ada.Password}, "user_code": {da.UserCode}})
	if status != http.StatusTooManyRequests || header.Get("Retry-After") == "" || !strings.Contains(body, "Too many attempts") {
		t.Fatalf("sign-in after %d failures: %d, Retry-After %q\n%s", oauth.MaxFailures, status, header.Get("Retry-After"), body)
	}
	if status, _, _ := e.get("/device?user_code=" + da.UserCode); status != http.StatusTooManyRequests {
		t.Fatalf("GET /device while blocked: %d", status)
	}
	a := e.poll(da.DeviceCode)
	e.wantError(a, http.StatusTooManyRequests, "too_many_attempts")
	if a.header.Get("Retry-After") == "" {
		t.Fatal("token endpoint 429 without Retry-After")
	}
	if !strings.Contains(e.logs.String(), "reason=\"unknown user code\" remote=127.0.0.1") {
		t.Errorf("refusals not logged with reason and remote IP:\n%s", e.logs.String())
	}

	// A minute later the budget is back.
	e.clock.advance(61 * time.Second)
	if _, body, ticket := e.signIn(ada.Email, ada.Password, da.UserCode); ticket == "" {
		t.Fatalf("sign-in a minute later:\n%s", body)
	}
}

func TestInvalidGrantsRateLimited(t *testing.T) {
	e := newEnv(t)
	for range oauth.MaxFailures {
		e.wantError(e.token(url.Values{"grant_type": {oauth.GrantAPIKey}, "api_key": {"spk_nope"}}), http.StatusBadRequest, "invalid_grant")
	}
	a := e.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {"sprt_nope"}})
	e.wantError(a, http.StatusTooManyRequests, "too_many_attempts")
}

func TestAPIKeyGrant(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ada := e.newUser()
	sa := tenancy.ServiceAccount{ID: secret.NewID("sa"), Tenant: ada.Tenant, Name: "ingest", Grants: []access.Grant{{Topic: "*", Ops: []access.Op{access.Produce}}}}
	if err := e.store.CreateServiceAccount(ctx, sa); err != nil {
		t.Fatal(err)
	}
	newKey := func(kind identity.Kind, principal string, edit func(*tenancy.APIKey)) string {
		id, full, hash := secret.NewAPIKey()
		k := tenancy.APIKey{ID: id, Tenant: ada.Tenant, Kind: kind, Principal: principal, Hash: hash}
		if edit != nil {
			edit(&k)
		}
		if err := e.store.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		return full
	}
	good := newKey(identity.ServiceAccount, sa.ID, nil)
	user := newKey(identity.User, ada.ID, func(k *tenancy.APIKey) { k.ExpiresAt = time.Now().Add(time.Hour) })
	revoked := newKey(identity.ServiceAccount, sa.ID, nil)
	if err := e.store.RevokeAPIKey(ctx, ada.Tenant, revoked[4:16]); err != nil {
		t.Fatal(err)
	}
	expired := newKey(identity.ServiceAccount, sa.ID, func(k *tenancy.APIKey) { k.ExpiresAt = time.Now().Add(-time.Minute) })
	_, unknown, _ := secret.NewAPIKey()
	otherSecret := good[:len(good)-43] + unknown[len(unknown)-43:] // good's id, another secret

	tests := []struct {
		name     string
		key      string
		want     error // of AuthenticateAPIKey
		wantSub  oauth.Subject
		wantDesc string
	}{
		{name: "service account", key: good, wantSub: oauth.Subject{Tenant: ada.Tenant, Kind: identity.ServiceAccount, ID: sa.ID, Name: "ingest"}},
		{name: "user", key: user, wantSub: oauth.Subject{Tenant: ada.Tenant, Kind: identity.User, ID: ada.ID, Name: ada.Email}},
		{name: "revoked", key: revoked, want: oauth.ErrRevokedAPIKey, wantDesc: "revoked"},
		{name: "expired", key: expired, want: oauth.ErrExpiredAPIKey, wantDesc: "expired"},
		{name: "malformed", key: "spk_short", want: oauth.ErrMalformedAPIKey, wantDesc: "invalid API key"},
		{name: "not a key", key: "hunter2", want: oauth.ErrMalformedAPIKey, wantDesc: "invalid API key"},
		{name: "wrong secret", key: otherSecret, want: oauth.ErrUnknownAPIKey, wantDesc: "invalid API key"},
		{name: "unknown", key: unknown, want: oauth.ErrUnknownAPIKey, wantDesc: "invalid API key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := e.srv.AuthenticateAPIKey(ctx, tt.key)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("AuthenticateAPIKey: %v, want %v", err, tt.want)
				}
				a := e.token(url.Values{"grant_type": {oauth.GrantAPIKey}, "api_key": {tt.key}})
				e.wantError(a, http.StatusBadRequest, "invalid_grant")
				if !strings.Contains(a.Description, tt.wantDesc) {
					t.Errorf("error_description %q, want it to say %q", a.Description, tt.wantDesc)
				}
				return
			}
			if err != nil || sub != tt.wantSub {
				t.Fatalf("AuthenticateAPIKey: %+v, %v; want %+v", sub, err, tt.wantSub)
			}
			a := e.token(url.Values{"grant_type": {oauth.GrantAPIKey}, "api_key": {tt.key}})
			if a.status != http.StatusOK || a.RefreshToken == "" {
				t.Fatalf("token: %+v", a)
			}
			c := e.verify(a.AccessToken)
			if c.Subject != tt.wantSub.ID || c.Kind != string(tt.wantSub.Kind) || c.Name != tt.wantSub.Name || c.Tenant != ada.Tenant {
				t.Errorf("claims %+v", c)
			}
		})
	}
	if logs := e.logs.String(); strings.Contains(logs, good) || strings.Contains(logs, revoked[len(revoked)-43:]) {
		t.Error("an API key's secret was logged")
	}
	e.wantError(e.token(url.Values{"grant_type": {oauth.GrantAPIKey}}), http.StatusBadRequest, "invalid_request")
	e.wantError(e.token(url.Values{"grant_type": {"password"}}), http.StatusBadRequest, "unsupported_grant_type")
}

func TestAPIKeyLoginEndsWithTheKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ada := e.newUser()
	id, full, hash := secret.NewAPIKey()
	if err := e.store.CreateAPIKey(ctx, tenancy.APIKey{ID: id, Tenant: ada.Tenant, Kind: identity.User, Principal: ada.ID, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	refresh := func(rt string) tokenAnswer {
		return e.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {rt}})
	}
	first := e.token(url.Values{"grant_type": {oauth.GrantAPIKey}, "api_key": {full}})
	if first.status != http.StatusOK || first.RefreshToken == "" {
		t.Fatalf("API key grant: %+v", first)
	}
	second := refresh(first.RefreshToken)
	if second.status != http.StatusOK {
		t.Fatalf("refresh of an API-key login: %+v", second)
	}
	if c := e.verify(second.AccessToken); c.Subject != ada.ID || c.Name != ada.Email {
		t.Fatalf("claims %+v", c)
	}
	if err := e.store.RevokeAPIKey(ctx, ada.Tenant, id); err != nil {
		t.Fatal(err)
	}
	a := refresh(second.RefreshToken)
	e.wantError(a, http.StatusBadRequest, "invalid_grant")
	if !strings.Contains(a.Description, "revoked") {
		t.Errorf("error_description %q, want it to say the key was revoked", a.Description)
	}
}

func TestRefreshRotation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ada := e.newUser()
	first, err := e.srv.IssueTokens(ctx, oauth.Subject{Tenant: ada.Tenant, Kind: identity.User, ID: ada.ID, Name: ada.Email})
	if err != nil {
		t.Fatal(err)
	}
	e.verify(first.AccessToken)
	refresh := func(rt string) tokenAnswer {
		return e.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {rt}})
	}
	second := refresh(first.RefreshToken)
	if second.status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh: %+v", second)
	}
	if c := e.verify(second.AccessToken); c.Subject != ada.ID || c.Name != ada.Email {
		t.Fatalf("claims after refresh %+v", c)
	}
	third := refresh(second.RefreshToken)
	if third.status != http.StatusOK {
		t.Fatalf("second refresh: %+v", third)
	}

	// Someone replays an old token: the whole family ends, the newest
	// token included.
	e.wantError(refresh(second.RefreshToken), http.StatusBadRequest, "invalid_grant")
	if !strings.Contains(e.logs.String(), "refresh token reuse: family revoked") {
		t.Errorf("reuse not logged:\n%s", e.logs.String())
	}
	e.wantError(refresh(third.RefreshToken), http.StatusBadRequest, "invalid_grant")

	// Another sign-in is another family, untouched; it ends when its user
	// is removed.
	other, err := e.srv.IssueTokens(ctx, oauth.Subject{Tenant: ada.Tenant, Kind: identity.User, ID: ada.ID, Name: ada.Email})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.RemoveUser(ctx, ada.Tenant, ada.ID); err != nil {
		t.Fatal(err)
	}
	e.wantError(refresh(other.RefreshToken), http.StatusBadRequest, "invalid_grant")

	e.wantError(refresh("sprt_garbage"), http.StatusBadRequest, "invalid_grant")
	e.wantError(refresh(""), http.StatusBadRequest, "invalid_request")
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ada := e.newUser()
	tr, err := e.srv.IssueTokens(ctx, oauth.Subject{Tenant: ada.Tenant, Kind: identity.User, ID: ada.ID, Name: ada.Email})
	if err != nil {
		t.Fatal(err)
	}
	next := e.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {tr.RefreshToken}})
	if next.status != http.StatusOK {
		t.Fatalf("refresh: %+v", next)
	}
	for _, tok := range []string{next.RefreshToken, next.RefreshToken, "sprt_garbage", next.AccessToken, "anything"} {
		if status, _, body := e.post("/oauth/revoke", url.Values{"token": {tok}}); status != http.StatusOK {
			t.Fatalf("revoke: %d %s", status, body)
		}
	}
	e.wantError(e.token(url.Values{"grant_type": {oauth.GrantRefreshToken}, "refresh_token": {next.RefreshToken}}), http.StatusBadRequest, "invalid_grant")
	if status, _, _ := e.post("/oauth/revoke", url.Values{}); status != http.StatusBadRequest {
		t.Fatalf("revoke without a token: %d", status)
	}
}

func TestForgedTickets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ada := e.newUser()
	da := e.deviceCode()
	_, _, ticket := e.signIn(ada.Email, ada.Password, da.UserCode)
	if ticket == "" {
		t.Fatal("no ticket")
	}
	// An access token is no ticket.
	tr, err := e.srv.IssueTokens(ctx, oauth.Subject{Tenant: ada.Tenant, Kind: identity.User, ID: ada.ID, Name: ada.Email})
	if err != nil {
		t.Fatal(err)
	}
	// A ticket signed by another key is no ticket.
	otherKey, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	other := newEnv(t)
	other.keys.Set(otherKey)
	bob := other.newUser()
	oda := other.deviceCode()
	_, _, foreign := other.signIn(bob.Email, bob.Password, oda.UserCode)

	for name, tk := range map[string]string{"access token": tr.AccessToken, "other key": foreign, "garbage": "x.y.z", "tampered": ticket[:len(ticket)-4] + "AAAA"} {
		if status, body := e.approve(tk, "approve"); status != http.StatusUnauthorized || !strings.Contains(body, "expired") {
			t.Errorf("%s: %d\n%s", name, status, body)
		}
	}
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "authorization_pending")
}

func TestDeviceCodeClient(t *testing.T) {
	e := newEnv(t)
	if status, _, body := e.post("/oauth/device/code", url.Values{"client_id": {"evil"}}); status != http.StatusBadRequest || !strings.Contains(body, "invalid_client") {
		t.Fatalf("unknown client: %d %s", status, body)
	}
	da := e.deviceCode()
	a := e.token(url.Values{"grant_type": {oauth.GrantDeviceCode}, "device_code": {da.DeviceCode}, "client_id": {"evil"}})
	e.wantError(a, http.StatusBadRequest, "invalid_grant")
	a = e.token(url.Values{"grant_type": {oauth.GrantDeviceCode}, "device_code": {da.DeviceCode}})
	e.wantError(a, http.StatusBadRequest, "invalid_request")
}

func TestJWKS(t *testing.T) {
	e := newEnv(t)
	status, _, body := e.get("/.well-known/jwks.json")
	if status != http.StatusOK || !strings.Contains(body, e.keys.Signer().KID) {
		t.Fatalf("jwks: %d %s", status, body)
	}
}
