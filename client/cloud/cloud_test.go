package cloud_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/client/cloud/cloudtest"
	"github.com/spatehq/spate/client/profile"
)

const unit = 20 * time.Millisecond

func httpClient(t *testing.T, s *cloudtest.Server) *http.Client {
	t.Helper()
	hc, err := cloud.NewHTTPClient(s.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

func TestDeviceLogin(t *testing.T) {
	defer cloud.SetPollUnit(unit)()
	tests := []struct {
		name    string
		answers []string
		wantErr error
	}{
		{name: "approved after pending, pending, slow_down", answers: []string{"authorization_pending", "authorization_pending", "slow_down"}},
		{name: "denied", answers: []string{"authorization_pending", "access_denied"}, wantErr: cloud.ErrAccessDenied},
		{name: "expired", answers: []string{"expired_token"}, wantErr: cloud.ErrExpiredToken},
		{name: "unexpected error", answers: []string{"invalid_grant"}, wantErr: cloud.ErrInvalidGrant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := cloudtest.Start(t, cloudtest.Config{DeviceAnswers: tt.answers, Interval: 1})
			var shown cloud.DeviceAuthorization
			tokens, err := cloud.DeviceLogin(context.Background(), s.URL, httpClient(t, s), func(da cloud.DeviceAuthorization) { shown = da })
			if shown.UserCode != cloudtest.UserCode || shown.VerificationURI != s.URL+"/device" ||
				shown.VerificationURIComplete != s.URL+"/device?user_code="+cloudtest.UserCode || shown.Interval != unit {
				t.Errorf("shown %+v", shown)
			}
			polls := s.Polls()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if len(polls) != len(tt.answers) {
					t.Errorf("%d polls, want %d: it must stop at the first final error", len(polls), len(tt.answers))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tokens.AccessToken == "" || tokens.RefreshToken == "" || time.Until(tokens.Expires) < 14*time.Minute {
				t.Errorf("tokens %+v", tokens)
			}
			if len(polls) != 4 {
				t.Fatalf("%d polls, want 4", len(polls))
			}
			// The interval is 1 unit; slow_down makes it 6.
			for i := 1; i < 3; i++ {
				if gap := polls[i].Sub(polls[i-1]); gap < unit {
					t.Errorf("poll %d came %v after the previous one, before the interval %v", i, gap, unit)
				}
			}
			if gap := polls[3].Sub(polls[2]); gap < 6*unit {
				t.Errorf("after slow_down the poll came %v later, want at least %v", gap, 6*unit)
			}
		})
	}
}

func TestDeviceLoginStopsWhenContextEnds(t *testing.T) {
	defer cloud.SetPollUnit(unit)()
	answers := make([]string, 1000)
	for i := range answers {
		answers[i] = "authorization_pending"
	}
	s := cloudtest.Start(t, cloudtest.Config{DeviceAnswers: answers, Interval: 1})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(s.Polls()) < 2 {
			time.Sleep(unit / 4)
		}
		cancel()
	}()
	start := time.Now()
	_, err := cloud.DeviceLogin(ctx, s.URL, httpClient(t, s), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to stop", d)
	}
}

func TestAPIKeyLoginAndRevoke(t *testing.T) {
	s := cloudtest.Start(t, cloudtest.Config{})
	hc := httpClient(t, s)
	key := s.AddAPIKey("spk_abcdefghijkl_secret")
	tokens, err := cloud.APIKeyLogin(context.Background(), s.URL, hc, key+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if tokens.AccessToken == "" || tokens.RefreshToken == "" {
		t.Fatalf("tokens %+v", tokens)
	}
	if _, err := cloud.APIKeyLogin(context.Background(), s.URL, hc, "spk_nope_nope"); !errors.Is(err, cloud.ErrInvalidGrant) {
		t.Fatalf("bad key: %v", err)
	}
	if err := cloud.Revoke(context.Background(), s.URL, hc, tokens.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.Refresh(context.Background(), s.URL, hc, tokens.RefreshToken); !errors.Is(err, cloud.ErrInvalidGrant) {
		t.Fatalf("refresh after revoke: %v", err)
	}
}

func TestUntrustedControlPlaneFails(t *testing.T) {
	s := cloudtest.Start(t, cloudtest.Config{})
	hc, _ := cloud.NewHTTPClient(nil) // system roots only
	_, err := cloud.APIKeyLogin(context.Background(), s.URL, hc, "spk_a_b")
	var ue x509.UnknownAuthorityError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want an unknown authority error", err)
	}
}

func login(t *testing.T, s *cloudtest.Server, opts ...cloud.SessionOption) *cloud.Session {
	t.Helper()
	hc := httpClient(t, s)
	tokens, err := cloud.APIKeyLogin(context.Background(), s.URL, hc, s.AddAPIKey("spk_test_key"))
	if err != nil {
		t.Fatal(err)
	}
	return cloud.NewSession(s.URL, hc, tokens, opts...)
}

func TestSessionRefreshesOnceForConcurrentCallers(t *testing.T) {
	s := cloudtest.Start(t, cloudtest.Config{AccessTTL: 30 * time.Second, RefreshDelay: 100 * time.Millisecond})
	var mu sync.Mutex
	var saved []cloud.Tokens
	sess := login(t, s, cloud.OnRefresh(func(tk cloud.Tokens) {
		mu.Lock()
		defer mu.Unlock()
		saved = append(saved, tk)
	}))
	// 30 s tokens are inside the 1 minute margin: the first use refreshes.
	old := sess.Tokens()
	var wg sync.WaitGroup
	var got sync.Map
	var failures atomic.Int32
	for i := range 20 {
		wg.Go(func() {
			tok, err := sess.Token(context.Background())
			if err != nil {
				failures.Add(1)
				t.Error(err)
			}
			got.Store(i, tok)
		})
	}
	wg.Wait()
	if n := s.Refreshes(); n != 1 {
		t.Fatalf("%d refreshes for 20 concurrent callers, want 1", n)
	}
	now := sess.Tokens()
	got.Range(func(_, v any) bool {
		if v.(string) != now.AccessToken {
			t.Errorf("a caller got %q, not the refreshed token", v)
		}
		return true
	})
	if now.RefreshToken == old.RefreshToken || now.AccessToken == old.AccessToken {
		t.Error("tokens not rotated")
	}
	mu.Lock()
	if len(saved) != 1 || saved[0] != now {
		t.Errorf("OnRefresh got %+v, want once %+v", saved, now)
	}
	mu.Unlock()

	// The Connect clients carry the token.
	who, err := sess.Auth().WhoAmI(context.Background(), connect.NewRequest(&controlplanev1.WhoAmIRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if who.Msg.GetName() != cloudtest.UserEmail {
		t.Fatalf("whoami %v", who.Msg)
	}
}

func TestSessionWithARevokedLoginSaysToLogIn(t *testing.T) {
	s := cloudtest.Start(t, cloudtest.Config{})
	sess := login(t, s)
	s.RevokeAll()
	_, err := sess.Auth().WhoAmI(context.Background(), connect.NewRequest(&controlplanev1.WhoAmIRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("err = %v, want Unauthenticated", err)
	}
	// An expired access token is refreshed, but the refresh token is dead.
	expired := cloud.NewSession(s.URL, httpClient(t, s), cloud.Tokens{AccessToken: "old", RefreshToken: sess.Tokens().RefreshToken, Expires: time.Now().Add(-time.Minute)})
	_, err = expired.Clusters().ListClusters(context.Background(), connect.NewRequest(&controlplanev1.ListClustersRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !errors.Is(err, cloud.ErrLoginRequired) {
		t.Fatalf("err = %v, want Unauthenticated wrapping ErrLoginRequired", err)
	}
}

func createCluster(t *testing.T, sess *cloud.Session, name string) {
	t.Helper()
	if _, err := sess.Clusters().CreateCluster(context.Background(), connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: name, Spus: 2})); err != nil {
		t.Fatal(err)
	}
}

func TestUseClusterMakesAProfileThatConnects(t *testing.T) {
	s := cloudtest.Start(t, cloudtest.Config{})
	sess := login(t, s)
	createCluster(t, sess, "orders")
	p, err := cloud.UseCluster(context.Background(), sess, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if p.ControlPlane != s.URL || p.Cluster != "orders" || p.ClusterID == "" || p.Tenant != cloudtest.TenantID || len(p.SPUs) != 2 {
		t.Fatalf("profile %+v", p)
	}
	if d := time.Until(p.ClientCertExpires); d < 11*time.Hour || d > 13*time.Hour {
		t.Errorf("expires in %v", d)
	}
	if string(p.RootCA) != string(s.RootCAPEM()) {
		t.Error("root CA not in the profile")
	}
	// The certificate verifies against the cluster CA as a client
	// certificate, and FromProfile builds TLS with it.
	spuTLS, cpTLS, err := client.ProfileTLS(p)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(spuTLS.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := client.PoolFromPEM(p.ClusterCA.Bytes())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify against the cluster CA: %v", err)
	}
	if cpTLS.RootCAs == nil || spuTLS.RootCAs == nil {
		t.Fatal("RootCAs not set")
	}
	if cloud.NeedsRenewal(p, time.Now()) {
		t.Error("a fresh certificate needs renewal")
	}
	if !cloud.NeedsRenewal(p, p.ClientCertExpires.Add(-3*time.Hour)) {
		t.Error("a certificate with a quarter of its life left does not need renewal")
	}
	renewed, err := cloud.RenewIfNeeded(context.Background(), sess, &p)
	if err != nil || renewed {
		t.Fatalf("RenewIfNeeded on a fresh certificate = %v, %v", renewed, err)
	}

	if _, err := cloud.UseCluster(context.Background(), sess, "nope"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown cluster: %v", err)
	}
}

func TestRenewIfNeededRenewsAShortLivedCertificate(t *testing.T) {
	// auth/ca backdates by a minute: a 10 s certificate has 10 s of 70 left.
	s := cloudtest.Start(t, cloudtest.Config{CertValidity: 10 * time.Second})
	sess := login(t, s)
	createCluster(t, sess, "orders")
	p, err := cloud.UseCluster(context.Background(), sess, "orders")
	if err != nil {
		t.Fatal(err)
	}
	old := p.ClientCert
	renewed, err := cloud.RenewIfNeeded(context.Background(), sess, &p)
	if err != nil || !renewed {
		t.Fatalf("RenewIfNeeded = %v, %v", renewed, err)
	}
	if p.ClientCert == old || p.ControlPlane != s.URL || s.Issued() != 2 {
		t.Fatal("certificate not replaced")
	}
	// A profile without a certificate (after logout) gets one.
	p.ClientCert, p.ClientKey = "", ""
	if renewed, err := cloud.RenewIfNeeded(context.Background(), sess, &p); err != nil || !renewed || !p.HasTLS() {
		t.Fatalf("RenewIfNeeded without a certificate = %v, %v", renewed, err)
	}
}

func TestCertRenewer(t *testing.T) {
	defer cloud.SetMinRenewWait(50 * time.Millisecond)()
	s := cloudtest.Start(t, cloudtest.Config{CertValidity: time.Second})
	sess := login(t, s)
	createCluster(t, sess, "orders")
	p, err := cloud.UseCluster(context.Background(), sess, "orders")
	if err != nil {
		t.Fatal(err)
	}
	renewals := make(chan profile.Profile, 100)
	r, err := cloud.NewCertRenewer(sess, p, func(np profile.Profile, err error) {
		if err != nil {
			t.Error(err)
			return
		}
		renewals <- np
	})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.GetClientCertificate(&tls.CertificateRequestInfo{})
	var np profile.Profile
	select {
	case np = <-renewals:
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal")
	}
	second, _ := r.GetClientCertificate(&tls.CertificateRequestInfo{})
	if string(first.Certificate[0]) == string(second.Certificate[0]) {
		t.Fatal("GetClientCertificate still returns the old certificate")
	}
	if np.ControlPlane != s.URL || !np.HasTLS() {
		t.Fatalf("renewed profile %+v", np)
	}
	if tc := r.SPUTLS(); tc.GetClientCertificate == nil || tc.RootCAs == nil || len(tc.Certificates) != 0 {
		t.Fatal("SPUTLS does not hand out the renewed certificate")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	n := s.Issued()
	time.Sleep(200 * time.Millisecond)
	if s.Issued() != n {
		t.Fatal("renewals go on after Close")
	}
	if opts := r.ClientOptions(); len(opts) != 2 {
		t.Fatal("ClientOptions")
	}
}

// memStore is a TokenStore shared by sessions, standing for the CLI's
// config file shared by processes.
type memStore struct {
	mu     sync.Mutex // the store's lock, held between Lock and unlock
	tokens cloud.Tokens
}

func (m *memStore) Lock(ctx context.Context) (cloud.Tokens, func(), error) {
	m.mu.Lock()
	return m.tokens, m.mu.Unlock, nil
}

func (m *memStore) Save(t cloud.Tokens) error { m.tokens = t; return nil }

// TestSessionsSharingAStoreNeverReuseARefreshToken: two processes with the
// same stale login refresh one after the other; the second takes the
// first's tokens instead of spending the used refresh token (which would
// revoke the login).
func TestSessionsSharingAStoreNeverReuseARefreshToken(t *testing.T) {
	s := cloudtest.Start(t, cloudtest.Config{})
	hc := httpClient(t, s)
	tokens, err := cloud.APIKeyLogin(context.Background(), s.URL, hc, s.AddAPIKey("spk_store_key"))
	if err != nil {
		t.Fatal(err)
	}
	tokens.Expires = time.Now() // stale: both must refresh
	store := &memStore{tokens: tokens}
	a := cloud.NewSession(s.URL, hc, tokens, cloud.WithStore(store))
	b := cloud.NewSession(s.URL, hc, tokens, cloud.WithStore(store))
	ta, err := a.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Token(context.Background())
	if err != nil {
		t.Fatalf("second process: %v", err)
	}
	if ta != tb || s.Refreshes() != 1 || store.tokens.AccessToken != ta {
		t.Fatalf("a=%q b=%q refreshes=%d stored=%q", ta, tb, s.Refreshes(), store.tokens.AccessToken)
	}
}
