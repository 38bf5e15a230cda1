package server_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/auth/token"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/control-plane/server"
)

// TestBadCredentialsAreRefused is the specification of what the control
// plane and the SPUs do with credentials that are not good: every one is
// refused with Unauthenticated and a message that says what is wrong (or,
// for a certificate, the TLS handshake fails), and the control plane logs
// the refusal with its reason.
func TestBadCredentialsAreRefused(t *testing.T) {
	w := newWorld(t, false)
	ctx := context.Background()
	cp := w.cp
	forger := cp.tokenForger(t)
	owner := func() token.Claims { return forger.claims(w.a.id, identity.User, w.a.ownerID) }
	realKey := forger.keys.Signer()

	// A person about to leave the tenant, with an API key and a login.
	const leaverEmail = "leaver@alpha.example"
	leaverResp, err := w.a.owner.tenants().AddMember(ctx, connect.NewRequest(&controlplanev1.AddMemberRequest{Email: leaverEmail, Role: controlplanev1.Role_ROLE_ADMIN}))
	if err != nil {
		t.Fatal(err)
	}
	leaverID := leaverResp.Msg.Member.Id
	// People sign in on the /device page; the test signs the leaver's
	// first access token with the control plane's key instead.
	leaverToken := cp.bearer(leaverEmail, forger.sign(t, forger.claims(w.a.id, identity.User, leaverID)))
	leaverKey := leaverToken.createAPIKey(t, "", 0).Secret
	leaver := cp.apiKeyLogin(t, leaverEmail, leaverKey)
	leaverAccess := mustToken(t, leaver.tokens)
	leaverCert := leaverToken.useCluster(t, prodCluster)
	leaverSPU := leaverCert.spu(w.aSPU(), nil)
	leaverSPU.listPartitions(t) // the SPU knows the leaver
	// A metadata stream the leaver opened while still a member.
	leaverWatch := watchMetadata(t, cp.bearer(leaverEmail, leaverAccess).meta(prodCluster))
	if _, ok := <-leaverWatch; !ok {
		t.Fatal("the leaver's metadata stream ended before the first message")
	}
	if _, err := w.a.owner.tenants().RemoveMember(ctx, connect.NewRequest(&controlplanev1.RemoveMemberRequest{Email: leaverEmail})); err != nil {
		t.Fatal(err)
	}

	// A revoked key, with a login made before it was revoked, and one
	// that expires a second after it is made.
	revoked := w.a.owner.createAPIKey(t, "", 0)
	revokedLogin := cp.apiKeyLogin(t, "revoked key", revoked.Secret)
	if _, err := w.a.owner.tenants().RevokeAPIKey(ctx, connect.NewRequest(&controlplanev1.RevokeAPIKeyRequest{Id: revoked.Key.Id})); err != nil {
		t.Fatal(err)
	}
	expiring := w.a.owner.createAPIKey(t, "", time.Second)
	time.Sleep(time.Until(expiring.Key.ExpiresAt.AsTime().Add(10 * time.Millisecond)))

	otherKey, err := token.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&realKey.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	// signWith signs claims with any method and key, naming kid.
	signWith := func(method jwt.SigningMethod, key any, kid string, c token.Claims) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		raw, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	with := func(change func(*token.Claims)) token.Claims {
		c := owner()
		change(&c)
		return c
	}
	// Every credential below is someone's attempt to call as A's owner
	// (or as a principal of A).
	tests := []struct {
		name string
		// raw is the bearer token.
		raw string
		// reason is in the error's message and in the log line.
		reason string
	}{
		{name: "expired access token", reason: "token: expired", raw: forger.sign(t, with(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2*time.Hour)), jwt.NewNumericDate(time.Now().Add(-2*time.Hour)), jwt.NewNumericDate(time.Now().Add(-time.Hour))
		}))},
		{name: "not yet valid access token", reason: "token: not valid yet", raw: forger.sign(t, with(func(c *token.Claims) {
			c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour)), jwt.NewNumericDate(time.Now().Add(2*time.Hour))
		}))},
		{name: "access token issued in the future", reason: "token: not valid yet", raw: forger.sign(t, with(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour)), jwt.NewNumericDate(time.Now().Add(time.Hour)), jwt.NewNumericDate(time.Now().Add(2*time.Hour))
		}))},
		{name: "forged access token", reason: "token: bad signature", raw: signWith(jwt.SigningMethodES256, otherKey.Private, realKey.KID, owner())},
		{name: "alg none", reason: "algorithm not accepted", raw: signWith(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, realKey.KID, owner())},
		{name: "HS256 with the public key as secret", reason: "algorithm not accepted", raw: signWith(jwt.SigningMethodHS256, pubPEM, realKey.KID, owner())},
		{name: "HS256 with the public key's DER as secret", reason: "algorithm not accepted", raw: signWith(jwt.SigningMethodHS256, pubDER, realKey.KID, owner())},
		{name: "unknown kid", reason: "token: unknown signing key", raw: signWith(jwt.SigningMethodES256, realKey.Private, "no-such-kid", owner())},
		{name: "no kid", reason: "token: unknown signing key", raw: signWith(jwt.SigningMethodES256, realKey.Private, "", owner())},
		{name: "another issuer", reason: "token: wrong issuer", raw: forger.sign(t, with(func(c *token.Claims) { c.Issuer = "https://control-plane.evil.example" }))},
		{name: "another audience", reason: "token: wrong audience", raw: forger.sign(t, with(func(c *token.Claims) { c.Audience = []string{"someone-else"} }))},
		{name: "no expiry", reason: "token: malformed", raw: signWith(jwt.SigningMethodES256, realKey.Private, realKey.KID, with(func(c *token.Claims) { c.ExpiresAt = nil }))},
		{name: "not a JWT", reason: "token: malformed", raw: "not-a-jwt"},
		{name: "access token of a removed member", reason: "no longer exists", raw: leaverAccess},
		{name: "access token of a principal that never was", reason: "no longer exists", raw: forger.sign(t, forger.claims(w.a.id, identity.User, "u-nobody"))},
		{name: "access token of a principal of another tenant", reason: "no longer exists", raw: forger.sign(t, forger.claims("t-nobody", identity.User, w.a.ownerID))},
		{name: "access token of an SPU", reason: "cannot call this API", raw: forger.sign(t, forger.claims(w.a.id, identity.SPU, "spu-0"))},
		{name: "revoked API key", reason: "API key: revoked", raw: revoked.Secret},
		{name: "expired API key", reason: "API key: expired", raw: expiring.Secret},
		{name: "malformed API key", reason: "API key: malformed: want spk_<id>_<secret>", raw: "spk_0123_notakey"},
		{name: "unknown API key", reason: "API key: unknown key", raw: "spk_" + missingKeyID + "_" + strings.Repeat("A", 43)},
		{name: "API key with a wrong secret", reason: "API key: unknown key", raw: "spk_" + revoked.Key.Id + "_" + strings.Repeat("A", 43)},
		{name: "API key of a removed member", reason: "API key: unknown key", raw: leaverKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := cp.bearer(tc.name, tc.raw)
			for _, call := range []struct {
				procedure string
				call      func() error
			}{
				{procedure: controlplanev1connect.AuthServiceWhoAmIProcedure, call: func() error {
					_, err := l.auth().WhoAmI(ctx, connect.NewRequest(&controlplanev1.WhoAmIRequest{}))
					return err
				}},
				{procedure: controlplanev1connect.TopicServiceListTopicsProcedure, call: func() error {
					_, err := l.topics(prodCluster).ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{}))
					return err
				}},
				{procedure: controlplanev1connect.ClusterServiceIssueClientCertificateProcedure, call: func() error {
					_, err := l.clusters().IssueClientCertificate(ctx, connect.NewRequest(&controlplanev1.IssueClientCertificateRequest{Cluster: prodCluster}))
					return err
				}},
			} {
				wantUnauthenticated(t, cp, call.procedure, call.call(), tc.reason)
			}
		})
	}

	t.Run("no credentials", func(t *testing.T) {
		tenants := controlplanev1connect.NewTenantServiceClient(cp.hc, cp.url)
		_, err := tenants.ListMembers(ctx, connect.NewRequest(&controlplanev1.ListMembersRequest{}))
		wantUnauthenticated(t, cp, controlplanev1connect.TenantServiceListMembersProcedure, err, "no credentials")
	})
	t.Run("not a bearer token", func(t *testing.T) {
		tenants := controlplanev1connect.NewTenantServiceClient(cp.hc, cp.url, connect.WithInterceptors(headerInterceptor{"Authorization", "Basic b3duZXI6cGFzc3dvcmQ="}))
		_, err := tenants.ListMembers(ctx, connect.NewRequest(&controlplanev1.ListMembersRequest{}))
		wantUnauthenticated(t, cp, controlplanev1connect.TenantServiceListMembersProcedure, err, `use "Bearer <token>"`)
	})

	// The token endpoint refuses the same keys, and logs why.
	t.Run("API key login", func(t *testing.T) {
		for _, tc := range []struct{ name, key, reason string }{
			{name: "revoked", key: revoked.Secret, reason: "revoked"},
			{name: "expired", key: expiring.Secret, reason: "expired"},
			{name: "malformed", key: "spk_0123_notakey", reason: "malformed"},
			{name: "removed member", key: leaverKey, reason: "no key"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := cloud.APIKeyLogin(ctx, cp.url, cp.hc, tc.key)
				if !errors.Is(err, cloud.ErrInvalidGrant) {
					t.Fatalf("login with a %s API key: %v, want invalid_grant", tc.name, err)
				}
				if len(cp.logs.lines("API key refused", tc.reason)) == 0 {
					t.Errorf("no log line \"API key refused\" with %q", tc.reason)
				}
			})
		}
	})

	// A stream opened before the member was removed ends: it does not go
	// on telling a former member about the tenant's topics.
	t.Run("metadata stream of a removed member", func(t *testing.T) {
		const after = "orders-after-removal"
		w.a.owner.createTopic(t, prodCluster, after)
		for {
			select {
			case ev, ok := <-leaverWatch:
				if !ok {
					t.Fatal("the stream of a removed member ended without an error")
				}
				if ev.err != nil {
					wantConnectCode(t, ev.err, connect.CodeUnauthenticated)
					return
				}
				for _, tp := range ev.msg.Topics {
					if tp.Name == after {
						t.Fatalf("the metadata stream of removed member %s announced topic %s, created after the removal", leaverEmail, after)
					}
				}
			case <-time.After(setupTimeout):
				t.Fatalf("after %v, the stream of a removed member still runs", setupTimeout)
			}
		}
	})
	t.Run("refresh token of a revoked API key", func(t *testing.T) {
		_, err := cloud.Refresh(ctx, cp.url, cp.hc, revokedLogin.sess.Tokens().RefreshToken)
		if !errors.Is(err, cloud.ErrInvalidGrant) || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("refresh: %v, want invalid_grant: API key revoked", err)
		}
	})
	// The certificate of a removed member still verifies (it chains to the
	// cluster's CA until it expires), but the principal is gone: the
	// control plane refuses it at once, the SPU as soon as it has the new
	// access list.
	t.Run("certificate of a removed member", func(t *testing.T) {
		_, err := leaverCert.topics().ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{}))
		wantUnauthenticated(t, cp, controlplanev1connect.TopicServiceListTopicsProcedure, err, "no longer exists")
		eventually(t, setupTimeout, func() error {
			_, err := leaverSPU.partitions.ListPartitions(ctx, connect.NewRequest(&dataplanev1.ListPartitionsRequest{}))
			if connect.CodeOf(err) != connect.CodePermissionDenied {
				return fmt.Errorf("ListPartitions with a removed member's certificate: %v, want PermissionDenied", err)
			}
			return nil
		})
		_, err = leaverSPU.consume.Offsets(ctx, connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: aSecretTopic}))
		wantConnectCode(t, err, connect.CodePermissionDenied)
	})
	t.Run("refresh token of a removed member", func(t *testing.T) {
		_, err := cloud.Refresh(ctx, cp.url, cp.hc, leaver.sess.Tokens().RefreshToken)
		if !errors.Is(err, cloud.ErrInvalidGrant) {
			t.Fatalf("refresh: %v, want invalid_grant", err)
		}
	})

	// A refresh token is single use: using one twice ends the whole login,
	// including the token that replaced it.
	t.Run("refresh token reused", func(t *testing.T) {
		first, err := cloud.APIKeyLogin(ctx, cp.url, cp.hc, w.a.owner.apiKey)
		if err != nil {
			t.Fatal(err)
		}
		second, err := cloud.Refresh(ctx, cp.url, cp.hc, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cloud.Refresh(ctx, cp.url, cp.hc, first.RefreshToken)
		if !errors.Is(err, cloud.ErrInvalidGrant) || !strings.Contains(err.Error(), "already used") {
			t.Fatalf("refresh with a used token: %v, want invalid_grant: already used", err)
		}
		if _, err = cloud.Refresh(ctx, cp.url, cp.hc, second.RefreshToken); !errors.Is(err, cloud.ErrInvalidGrant) {
			t.Fatalf("refresh with the token that replaced the reused one: %v, want invalid_grant", err)
		}
		if len(cp.logs.lines("refused", "refresh token reuse: family revoked")) == 0 {
			t.Error("no log line of the reuse")
		}
		// The session built on the dead login says to sign in again.
		sess := cloud.NewSession(cp.url, cp.hc, cloud.Tokens{RefreshToken: second.RefreshToken})
		if _, err := sess.Token(ctx); !errors.Is(err, cloud.ErrLoginRequired) || connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("session token: %v, want Unauthenticated: login required", err)
		}
	})

	// Certificates: the control plane trusts certificates that chain to
	// its root, the SPUs only those of their cluster's CA.
	prodCA, prodCAKey := cp.clusterCA(t, w.aProd.Id)
	ownerInProd := identity.Identity{Tenant: w.a.id, Cluster: w.aProd.Id, Kind: identity.User, Principal: w.a.ownerID}
	now := time.Now()
	expiredChain, expiredKey := forgeLeafCert(t, ownerInProd, prodCA, prodCAKey, now.Add(-2*time.Hour), now.Add(-time.Hour))
	expired := cp.withCert(t, "expired certificate", expiredChain, expiredKey)
	selfChain, selfKey := forgeLeafCert(t, ownerInProd, nil, nil, now.Add(-time.Minute), now.Add(time.Hour))
	selfSigned := cp.withCert(t, "self-signed certificate", selfChain, selfKey)
	// The control check: a certificate forged the same way but valid now
	// is accepted, so the refusals below are for the reasons they name.
	validChain, validKey := forgeLeafCert(t, ownerInProd, prodCA, prodCAKey, now.Add(-time.Minute), now.Add(time.Hour))
	valid := cp.withCert(t, "valid certificate", validChain, validKey)

	t.Run("certificate/control check", func(t *testing.T) {
		who, err := valid.auth().WhoAmI(ctx, connect.NewRequest(&controlplanev1.WhoAmIRequest{}))
		if err != nil {
			t.Fatalf("a valid certificate of A's prod: %v", err)
		}
		if who.Msg.Cluster != prodCluster || who.Msg.Name != aOwnerEmail {
			t.Errorf("WhoAmI = %v, want A's owner on prod", who.Msg)
		}
		spu := valid.spu(w.aSPU(), alwaysPresent(valid.spuTLS))
		if parts := spu.listPartitions(t); !slices.Contains(partitionTopics(parts), aSecretTopic) {
			t.Errorf("the owner with a valid certificate sees %v on the SPU", partitionTopics(parts))
		}
	})

	for _, tc := range []struct {
		name string
		cl   *certLogin
		// logged is in the control plane's log line of the handshake.
		logged string
	}{
		{name: "expired", cl: expired, logged: "expired"},
		{name: "self-signed", cl: selfSigned, logged: "unknown authority"},
	} {
		t.Run("certificate/"+tc.name+"/control plane", func(t *testing.T) {
			t.Logf("the control plane answers with %q", handshakeAlert(t, cp.url, alwaysPresent(tc.cl.cpTLS)))
			forced := tc.cl.alwaysPresent()
			_, err := forced.auth().WhoAmI(ctx, connect.NewRequest(&controlplanev1.WhoAmIRequest{}))
			wantHandshakeRefused(t, err)
			_, err = forced.topics().ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{}))
			wantHandshakeRefused(t, err)
			if len(cp.logs.lines("TLS handshake error", tc.logged)) == 0 {
				t.Errorf("no log line \"TLS handshake error\" with %q", tc.logged)
			}
		})
		t.Run("certificate/"+tc.name+"/SPU", func(t *testing.T) {
			t.Logf("the SPU answers with %q", handshakeAlert(t, w.aSPU(), alwaysPresent(tc.cl.spuTLS)))
			spu := tc.cl.spu(w.aSPU(), alwaysPresent(tc.cl.spuTLS))
			for _, call := range spuCalls(ctx, spu, aSecretTopic) {
				_, err := call.call()
				wantHandshakeRefused(t, err)
			}
			eventually(t, 10*time.Second, func() error {
				if !strings.Contains(cp.spuLog(t, w.aProd.Id), "TLS handshake error") {
					return errors.New("the SPU logged no TLS handshake error")
				}
				return nil
			})
		})
	}

	// A certificate of A's other cluster: the SPU of prod refuses it in
	// the handshake; the control plane accepts it for that other cluster
	// only, where prod's topics do not exist, whatever header is sent.
	t.Run("certificate/another cluster/SPU", func(t *testing.T) {
		other := w.aOwnerSecret
		tc := other.spuTLS.Clone()
		tc.RootCAs = cp.rootPool(t) // to trust prod's SPU
		t.Logf("the SPU answers with %q", handshakeAlert(t, w.aSPU(), alwaysPresent(tc)))
		spu := other.spu(w.aSPU(), alwaysPresent(tc))
		for _, call := range spuCalls(ctx, spu, aSecretTopic) {
			_, err := call.call()
			wantHandshakeRefused(t, err)
		}
		// Not offered (crypto/tls offers only certificates of the CA the
		// SPU asks for): refused as a call without a certificate.
		_, err := other.spu(w.aSPU(), tc).partitions.ListPartitions(ctx, connect.NewRequest(&dataplanev1.ListPartitionsRequest{}))
		wantConnectCode(t, err, connect.CodeUnauthenticated)
	})
	t.Run("certificate/another cluster/control plane", func(t *testing.T) {
		other := w.aOwnerSecret
		for _, topics := range []controlplanev1connect.TopicServiceClient{
			other.topics(),
			controlplanev1connect.NewTopicServiceClient(other.cpClient(), cp.url, connect.WithInterceptors(headerInterceptor{server.ClusterHeader, prodCluster})),
		} {
			list, err := topics.ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Msg.Topics) != 0 {
				t.Errorf("with a certificate of %s, ListTopics shows %v", aSecretClust, list.Msg.Topics)
			}
			_, err = topics.DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: aSecretTopic}))
			wantConnectCode(t, err, connect.CodeNotFound)
			_, err = topics.DeleteTopic(ctx, connect.NewRequest(&controlplanev1.DeleteTopicRequest{Name: aSecretTopic}))
			wantConnectCode(t, err, connect.CodeNotFound)
		}
		resp, err := w.aOwnerProd.topics().DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: aSecretTopic}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Msg.Topic.State != controlplanev1.TopicState_TOPIC_STATE_READY {
			t.Errorf("%s is %v after calls with another cluster's certificate", aSecretTopic, resp.Msg.Topic.State)
		}
	})
}

// metadataEvent is a message of a metadata stream, or the error that
// ended it.
type metadataEvent struct {
	msg *controlplanev1.WatchMetadataResponse
	err error
}

// watchMetadata opens a WatchMetadata stream and returns its messages,
// then the error that ends it; the channel closes when the stream ends
// (at the latest when the test does).
func watchMetadata(t testing.TB, meta controlplanev1connect.MetadataServiceClient) <-chan metadataEvent {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan metadataEvent, 100)
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		defer close(ch)
		stream, err := meta.WatchMetadata(ctx, connect.NewRequest(&controlplanev1.WatchMetadataRequest{}))
		if err != nil {
			ch <- metadataEvent{err: err}
			return
		}
		defer stream.Close()
		for stream.Receive() {
			select {
			case ch <- metadataEvent{msg: stream.Msg()}:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() == nil {
			ch <- metadataEvent{err: stream.Err()}
		}
	}()
	return ch
}

// wantUnauthenticated checks a refused call: code Unauthenticated, a
// message with reason, and a "request refused" log line of the procedure
// with the reason.
func wantUnauthenticated(t testing.TB, cp *cloudCP, procedure string, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want Unauthenticated: %s", procedure, reason)
		return
	}
	if c := connect.CodeOf(err); c != connect.CodeUnauthenticated {
		t.Errorf("%s: code %v (%v), want Unauthenticated", procedure, c, err)
	}
	if !strings.Contains(errMessage(err), reason) {
		t.Errorf("%s: message %q, want it to say %q", procedure, errMessage(err), reason)
	}
	// slog's text handler quotes values, escaping their quotes.
	if len(cp.logs.lines("request refused", "procedure="+procedure, strings.ReplaceAll(reason, `"`, `\"`))) == 0 {
		t.Errorf("no log line \"request refused\" of %s with reason %q", procedure, reason)
	}
}
