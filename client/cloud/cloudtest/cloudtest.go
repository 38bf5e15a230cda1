// Package cloudtest is an in-process fake of a Spate control plane's
// account side, for tests of package cloud and the CLI: the OAuth endpoints
// (device flow, refresh, API keys, revoke) and the TenantService,
// ClusterService and AuthService, over real HTTPS (httptest.NewTLSServer).
// Client certificates are signed with package auth/ca.
//
// The fake keeps everything in memory and knows one tenant with one owner,
// ada@example.com. It is not the control plane: it checks tokens, not
// roles, and clusters become READY after a few GetCluster calls.
package cloudtest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
)

// Identities of the fake's tenant and owner.
const (
	TenantID   = "t-testtenant"
	TenantName = "acme"
	UserID     = "u-ada"
	UserEmail  = "ada@example.com"
	UserCode   = "BCDF-GHJK"
	DeviceCode = "device-code-1"
)

// Config sets the fake's behaviour. The zero value answers like a real
// control plane with a person who approves at once.
type Config struct {
	// DeviceAnswers are the errors the token endpoint answers to device
	// code polls, in order ("authorization_pending", "slow_down",
	// "access_denied", "expired_token"); after them the sign-in succeeds.
	DeviceAnswers []string
	// Interval is the device flow's interval in seconds (0: 5).
	Interval int
	// AccessTTL is how long access tokens live; 15 minutes by default.
	AccessTTL time.Duration
	// RefreshDelay delays every refresh, to make concurrent callers meet.
	RefreshDelay time.Duration
	// CertValidity is the validity of client certificates; 12 h by
	// default (auth/ca backdates them by a minute).
	CertValidity time.Duration
	// ReadyAfter is how many GetCluster calls a new cluster stays
	// PROVISIONING for; a cluster named "broken" becomes FAILED instead.
	ReadyAfter int
}

// Server is a running fake control plane.
type Server struct {
	// URL is the https:// URL of the fake.
	URL string
	// CAPEM is the certificate of the fake's TLS server, PEM: what a
	// client trusts (--ca-file).
	CAPEM []byte

	cfg  Config
	srv  *httptest.Server
	root *ca.Root

	mu             sync.Mutex // guards everything below
	polls          []time.Time
	deviceAnswered int
	access         map[string]time.Time // access token → expiry
	refresh        map[string]bool      // refresh token → still valid
	refreshes      int
	revoked        []string
	apiKeys        map[string]*controlplanev1.APIKey // secret → key
	clusters       map[string]*cluster               // by name
	members        map[string]*controlplanev1.Member // by email
	accounts       map[string]*controlplanev1.ServiceAccount
	issued         int
	seq            int
}

type cluster struct {
	pb    *controlplanev1.Cluster
	gets  int
	inter *ca.Intermediate
}

// Start starts a fake control plane, stopped when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.CertValidity == 0 {
		cfg.CertValidity = 12 * time.Hour
	}
	rootCert, rootKey, err := ca.NewRoot("cloudtest root")
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(rootCert, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		cfg: cfg, root: root,
		access:   map[string]time.Time{},
		refresh:  map[string]bool{},
		apiKeys:  map[string]*controlplanev1.APIKey{},
		clusters: map[string]*cluster{},
		members: map[string]*controlplanev1.Member{UserEmail: {
			Id: UserID, Email: UserEmail, Role: controlplanev1.Role_ROLE_OWNER, CreatedAt: timestamppb.Now()}},
		accounts: map[string]*controlplanev1.ServiceAccount{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/device/code", s.deviceCode)
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("POST /oauth/revoke", s.revoke)
	mux.Handle(controlplanev1connect.NewTenantServiceHandler(s))
	mux.Handle(controlplanev1connect.NewClusterServiceHandler(s))
	mux.Handle(controlplanev1connect.NewAuthServiceHandler(s))
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	s.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	return s
}

// RootCAPEM returns the root CA that the fake's cluster CAs chain to.
func (s *Server) RootCAPEM() []byte { return s.root.CertPEM() }

// Polls returns when the device code was polled.
func (s *Server) Polls() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.polls)
}

// Refreshes returns how many refresh grants succeeded.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// Revoked returns the tokens revoked through /oauth/revoke.
func (s *Server) Revoked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.revoked)
}

// Issued returns how many client certificates were issued.
func (s *Server) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// AddAPIKey makes secret a valid API key of the owner and returns it.
func (s *Server) AddAPIKey(secret string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKeys[secret] = &controlplanev1.APIKey{Id: s.nextID("k"), Principal: "user:" + UserEmail, CreatedAt: timestamppb.Now()}
	return secret
}

// ExpireAccessTokens makes every access token expired, as if time passed.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.access {
		s.access[k] = time.Now().Add(-time.Second)
	}
}

// RevokeAll invalidates every access and refresh token, as a removed
// member's.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
	clear(s.refresh)
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%010d", prefix, s.seq)
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
}

func (s *Server) deviceCode(w http.ResponseWriter, r *http.Request) {
	if r.PostFormValue("client_id") != "spate-cli" {
		oauthError(w, "invalid_client", "unknown client_id")
		return
	}
	interval := s.cfg.Interval
	if interval == 0 {
		interval = 5
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               DeviceCode,
		"user_code":                 UserCode,
		"verification_uri":          s.URL + "/device",
		"verification_uri_complete": s.URL + "/device?user_code=" + UserCode,
		"expires_in":                600,
		"interval":                  interval,
	})
}

// issue answers with new tokens; s.mu is held.
func (s *Server) issueLocked(w http.ResponseWriter) {
	at, rt := "at-"+randomHex(), "sprt_"+randomHex()+"_x"
	s.access[at] = time.Now().Add(s.cfg.AccessTTL)
	s.refresh[rt] = true
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": int(s.cfg.AccessTTL / time.Second), "refresh_token": rt,
	})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	switch r.PostFormValue("grant_type") {
	case "urn:ietf:params:oauth:grant-type:device_code":
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.PostFormValue("device_code") != DeviceCode || r.PostFormValue("client_id") != "spate-cli" {
			oauthError(w, "invalid_grant", "unknown device code")
			return
		}
		s.polls = append(s.polls, time.Now())
		if s.deviceAnswered < len(s.cfg.DeviceAnswers) {
			code := s.cfg.DeviceAnswers[s.deviceAnswered]
			s.deviceAnswered++
			oauthError(w, code, "")
			return
		}
		s.issueLocked(w)
	case "refresh_token":
		time.Sleep(s.cfg.RefreshDelay)
		s.mu.Lock()
		defer s.mu.Unlock()
		rt := r.PostFormValue("refresh_token")
		if !s.refresh[rt] {
			oauthError(w, "invalid_grant", "refresh token expired, revoked or already used")
			return
		}
		s.refresh[rt] = false
		s.refreshes++
		s.issueLocked(w)
	case "urn:spate:params:oauth:grant-type:api-key":
		s.mu.Lock()
		defer s.mu.Unlock()
		k, ok := s.apiKeys[r.PostFormValue("api_key")]
		if !ok || k.GetRevoked() {
			oauthError(w, "invalid_grant", "unknown or revoked API key")
			return
		}
		s.issueLocked(w)
	default:
		oauthError(w, "unsupported_grant_type", "")
	}
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := r.PostFormValue("token")
	s.revoked = append(s.revoked, tok)
	delete(s.refresh, tok)
	w.WriteHeader(http.StatusOK)
}

// authorize checks the bearer token of a call; s.mu is held.
func (s *Server) authorizeLocked(h http.Header) error {
	tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok {
		return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("no access token"))
	}
	exp, ok := s.access[tok]
	if !ok || time.Now().After(exp) {
		return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("access token expired or revoked"))
	}
	return nil
}

func notFound(kind, name string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s %q not found", kind, name))
}

// call runs fn with s.mu held after checking the token.
func call[Req, Resp any](s *Server, req *connect.Request[Req], fn func(*Req) (*Resp, error)) (*connect.Response[Resp], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.authorizeLocked(req.Header()); err != nil {
		return nil, err
	}
	resp, err := fn(req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

var (
	_ controlplanev1connect.TenantServiceHandler  = (*Server)(nil)
	_ controlplanev1connect.ClusterServiceHandler = (*Server)(nil)
	_ controlplanev1connect.AuthServiceHandler    = (*Server)(nil)
)

func (s *Server) WhoAmI(ctx context.Context, req *connect.Request[controlplanev1.WhoAmIRequest]) (*connect.Response[controlplanev1.WhoAmIResponse], error) {
	return call(s, req, func(*controlplanev1.WhoAmIRequest) (*controlplanev1.WhoAmIResponse, error) {
		tok := strings.TrimPrefix(req.Header().Get("Authorization"), "Bearer ")
		return &controlplanev1.WhoAmIResponse{
			Tenant: &controlplanev1.Tenant{Id: TenantID, Name: TenantName},
			Kind:   "user", Id: UserID, Name: UserEmail, Role: controlplanev1.Role_ROLE_OWNER,
			ExpiresAt: timestamppb.New(s.access[tok]),
		}, nil
	})
}

func (s *Server) CreateTenant(ctx context.Context, req *connect.Request[controlplanev1.CreateTenantRequest]) (*connect.Response[controlplanev1.CreateTenantResponse], error) {
	return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("only the operator creates tenants"))
}

func (s *Server) GetTenant(ctx context.Context, req *connect.Request[controlplanev1.GetTenantRequest]) (*connect.Response[controlplanev1.GetTenantResponse], error) {
	return call(s, req, func(*controlplanev1.GetTenantRequest) (*controlplanev1.GetTenantResponse, error) {
		return &controlplanev1.GetTenantResponse{Tenant: &controlplanev1.Tenant{Id: TenantID, Name: TenantName}}, nil
	})
}

func (s *Server) AddMember(ctx context.Context, req *connect.Request[controlplanev1.AddMemberRequest]) (*connect.Response[controlplanev1.AddMemberResponse], error) {
	return call(s, req, func(m *controlplanev1.AddMemberRequest) (*controlplanev1.AddMemberResponse, error) {
		if _, ok := s.members[m.GetEmail()]; ok {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("member %q exists", m.GetEmail()))
		}
		mem := &controlplanev1.Member{Id: s.nextID("u"), Email: m.GetEmail(), Role: m.GetRole(), CreatedAt: timestamppb.Now()}
		s.members[m.GetEmail()] = mem
		return &controlplanev1.AddMemberResponse{Member: mem, Password: "generated-password-1"}, nil
	})
}

func (s *Server) ListMembers(ctx context.Context, req *connect.Request[controlplanev1.ListMembersRequest]) (*connect.Response[controlplanev1.ListMembersResponse], error) {
	return call(s, req, func(*controlplanev1.ListMembersRequest) (*controlplanev1.ListMembersResponse, error) {
		resp := &controlplanev1.ListMembersResponse{}
		for _, e := range sortedKeys(s.members) {
			resp.Members = append(resp.Members, s.members[e])
		}
		return resp, nil
	})
}

func (s *Server) RemoveMember(ctx context.Context, req *connect.Request[controlplanev1.RemoveMemberRequest]) (*connect.Response[controlplanev1.RemoveMemberResponse], error) {
	return call(s, req, func(m *controlplanev1.RemoveMemberRequest) (*controlplanev1.RemoveMemberResponse, error) {
		if _, ok := s.members[m.GetEmail()]; !ok {
			return nil, notFound("member", m.GetEmail())
		}
		delete(s.members, m.GetEmail())
		return &controlplanev1.RemoveMemberResponse{}, nil
	})
}

func (s *Server) CreateServiceAccount(ctx context.Context, req *connect.Request[controlplanev1.CreateServiceAccountRequest]) (*connect.Response[controlplanev1.CreateServiceAccountResponse], error) {
	return call(s, req, func(m *controlplanev1.CreateServiceAccountRequest) (*controlplanev1.CreateServiceAccountResponse, error) {
		if _, ok := s.accounts[m.GetName()]; ok {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("service account %q exists", m.GetName()))
		}
		sa := &controlplanev1.ServiceAccount{Id: s.nextID("sa"), Name: m.GetName(), Grants: m.GetGrants(), CreatedAt: timestamppb.Now()}
		s.accounts[m.GetName()] = sa
		return &controlplanev1.CreateServiceAccountResponse{ServiceAccount: sa}, nil
	})
}

func (s *Server) ListServiceAccounts(ctx context.Context, req *connect.Request[controlplanev1.ListServiceAccountsRequest]) (*connect.Response[controlplanev1.ListServiceAccountsResponse], error) {
	return call(s, req, func(*controlplanev1.ListServiceAccountsRequest) (*controlplanev1.ListServiceAccountsResponse, error) {
		resp := &controlplanev1.ListServiceAccountsResponse{}
		for _, n := range sortedKeys(s.accounts) {
			resp.ServiceAccounts = append(resp.ServiceAccounts, s.accounts[n])
		}
		return resp, nil
	})
}

func (s *Server) UpdateServiceAccount(ctx context.Context, req *connect.Request[controlplanev1.UpdateServiceAccountRequest]) (*connect.Response[controlplanev1.UpdateServiceAccountResponse], error) {
	return call(s, req, func(m *controlplanev1.UpdateServiceAccountRequest) (*controlplanev1.UpdateServiceAccountResponse, error) {
		sa, ok := s.accounts[m.GetName()]
		if !ok {
			return nil, notFound("service account", m.GetName())
		}
		sa.Grants = m.GetGrants()
		return &controlplanev1.UpdateServiceAccountResponse{ServiceAccount: sa}, nil
	})
}

func (s *Server) DeleteServiceAccount(ctx context.Context, req *connect.Request[controlplanev1.DeleteServiceAccountRequest]) (*connect.Response[controlplanev1.DeleteServiceAccountResponse], error) {
	return call(s, req, func(m *controlplanev1.DeleteServiceAccountRequest) (*controlplanev1.DeleteServiceAccountResponse, error) {
		if _, ok := s.accounts[m.GetName()]; !ok {
			return nil, notFound("service account", m.GetName())
		}
		delete(s.accounts, m.GetName())
		return &controlplanev1.DeleteServiceAccountResponse{}, nil
	})
}

func (s *Server) CreateAPIKey(ctx context.Context, req *connect.Request[controlplanev1.CreateAPIKeyRequest]) (*connect.Response[controlplanev1.CreateAPIKeyResponse], error) {
	return call(s, req, func(m *controlplanev1.CreateAPIKeyRequest) (*controlplanev1.CreateAPIKeyResponse, error) {
		principal := "user:" + UserEmail
		if sa := m.GetServiceAccount(); sa != "" {
			if _, ok := s.accounts[sa]; !ok {
				return nil, notFound("service account", sa)
			}
			principal = "service-account:" + sa
		}
		ttl := time.Duration(m.GetTtlSeconds()) * time.Second
		if ttl == 0 {
			ttl = 90 * 24 * time.Hour
		}
		id := fmt.Sprintf("k%011d", len(s.apiKeys)+1)
		k := &controlplanev1.APIKey{Id: id, Principal: principal, Description: m.GetDescription(),
			CreatedAt: timestamppb.Now(), ExpiresAt: timestamppb.New(time.Now().Add(ttl))}
		secret := "spk_" + id + "_" + randomHex()
		s.apiKeys[secret] = k
		return &controlplanev1.CreateAPIKeyResponse{Key: k, Secret: secret}, nil
	})
}

func (s *Server) ListAPIKeys(ctx context.Context, req *connect.Request[controlplanev1.ListAPIKeysRequest]) (*connect.Response[controlplanev1.ListAPIKeysResponse], error) {
	return call(s, req, func(*controlplanev1.ListAPIKeysRequest) (*controlplanev1.ListAPIKeysResponse, error) {
		resp := &controlplanev1.ListAPIKeysResponse{}
		for _, k := range s.apiKeys {
			resp.Keys = append(resp.Keys, k)
		}
		slices.SortFunc(resp.Keys, func(a, b *controlplanev1.APIKey) int { return strings.Compare(a.GetId(), b.GetId()) })
		return resp, nil
	})
}

func (s *Server) RevokeAPIKey(ctx context.Context, req *connect.Request[controlplanev1.RevokeAPIKeyRequest]) (*connect.Response[controlplanev1.RevokeAPIKeyResponse], error) {
	return call(s, req, func(m *controlplanev1.RevokeAPIKeyRequest) (*controlplanev1.RevokeAPIKeyResponse, error) {
		for _, k := range s.apiKeys {
			if k.GetId() == m.GetId() {
				k.Revoked = true
				return &controlplanev1.RevokeAPIKeyResponse{}, nil
			}
		}
		return nil, notFound("API key", m.GetId())
	})
}

func (s *Server) CreateCluster(ctx context.Context, req *connect.Request[controlplanev1.CreateClusterRequest]) (*connect.Response[controlplanev1.CreateClusterResponse], error) {
	return call(s, req, func(m *controlplanev1.CreateClusterRequest) (*controlplanev1.CreateClusterResponse, error) {
		if _, ok := s.clusters[m.GetName()]; ok {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("cluster %q exists", m.GetName()))
		}
		spus := max(m.GetSpus(), 1)
		id := s.nextID("c")
		certPEM, keyPEM, err := s.root.NewIntermediate(TenantID, id)
		if err != nil {
			return nil, err
		}
		inter, err := ca.LoadIntermediate(certPEM, keyPEM, s.root)
		if err != nil {
			return nil, err
		}
		c := &controlplanev1.Cluster{Id: id, Name: m.GetName(), Spus: spus, Status: controlplanev1.ClusterStatus_CLUSTER_STATUS_PROVISIONING,
			Reason: "starting SPUs", CreatedAt: timestamppb.Now()}
		for i := range spus {
			c.SpuEndpoints = append(c.SpuEndpoints, fmt.Sprintf("https://127.0.0.1:%d", 19010+i))
		}
		s.clusters[m.GetName()] = &cluster{pb: c, inter: inter}
		s.advanceLocked(s.clusters[m.GetName()])
		return &controlplanev1.CreateClusterResponse{Cluster: c}, nil
	})
}

// advanceLocked moves a provisioning cluster on after ReadyAfter looks.
func (s *Server) advanceLocked(c *cluster) {
	if c.pb.GetStatus() != controlplanev1.ClusterStatus_CLUSTER_STATUS_PROVISIONING || c.gets < s.cfg.ReadyAfter {
		c.gets++
		return
	}
	if c.pb.GetName() == "broken" {
		c.pb.Status, c.pb.Reason = controlplanev1.ClusterStatus_CLUSTER_STATUS_FAILED, "no capacity for 3 SPUs"
		return
	}
	c.pb.Status, c.pb.Reason, c.pb.ReadyAt = controlplanev1.ClusterStatus_CLUSTER_STATUS_READY, "", timestamppb.Now()
}

func (s *Server) ListClusters(ctx context.Context, req *connect.Request[controlplanev1.ListClustersRequest]) (*connect.Response[controlplanev1.ListClustersResponse], error) {
	return call(s, req, func(*controlplanev1.ListClustersRequest) (*controlplanev1.ListClustersResponse, error) {
		resp := &controlplanev1.ListClustersResponse{}
		for _, n := range sortedKeys(s.clusters) {
			resp.Clusters = append(resp.Clusters, s.clusters[n].pb)
		}
		return resp, nil
	})
}

func (s *Server) GetCluster(ctx context.Context, req *connect.Request[controlplanev1.GetClusterRequest]) (*connect.Response[controlplanev1.GetClusterResponse], error) {
	return call(s, req, func(m *controlplanev1.GetClusterRequest) (*controlplanev1.GetClusterResponse, error) {
		c, ok := s.clusters[m.GetName()]
		if !ok {
			return nil, notFound("cluster", m.GetName())
		}
		s.advanceLocked(c)
		return &controlplanev1.GetClusterResponse{Cluster: c.pb}, nil
	})
}

func (s *Server) DeleteCluster(ctx context.Context, req *connect.Request[controlplanev1.DeleteClusterRequest]) (*connect.Response[controlplanev1.DeleteClusterResponse], error) {
	return call(s, req, func(m *controlplanev1.DeleteClusterRequest) (*controlplanev1.DeleteClusterResponse, error) {
		if _, ok := s.clusters[m.GetName()]; !ok {
			return nil, notFound("cluster", m.GetName())
		}
		delete(s.clusters, m.GetName())
		return &controlplanev1.DeleteClusterResponse{}, nil
	})
}

func (s *Server) IssueClientCertificate(ctx context.Context, req *connect.Request[controlplanev1.IssueClientCertificateRequest]) (*connect.Response[controlplanev1.IssueClientCertificateResponse], error) {
	return call(s, req, func(m *controlplanev1.IssueClientCertificateRequest) (*controlplanev1.IssueClientCertificateResponse, error) {
		c, ok := s.clusters[m.GetCluster()]
		if !ok {
			return nil, notFound("cluster", m.GetCluster())
		}
		id := identity.Identity{Tenant: TenantID, Cluster: c.pb.GetId(), Kind: identity.User, Principal: UserID}
		is, err := c.inter.IssueClient(id, m.GetCsrPem(), s.cfg.CertValidity)
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
		s.issued++
		return &controlplanev1.IssueClientCertificateResponse{
			Cluster:             c.pb,
			CertificateChainPem: is.ChainPEM,
			ExpiresAt:           timestamppb.New(is.NotAfter),
			ClusterCaPem:        c.inter.CertPEM(),
			RootCaPem:           s.root.CertPEM(),
		}, nil
	})
}

// ServeSPU starts an HTTPS server for h that stands for an SPU of the
// named cluster (which must exist): its certificate is issued by the
// cluster's CA for 127.0.0.1, it speaks HTTP/2 and HTTP/1.1, and it
// requires a client certificate of that CA. It returns the server's URL.
func (s *Server) ServeSPU(t testing.TB, clusterName string, h http.Handler) string {
	t.Helper()
	s.mu.Lock()
	c, ok := s.clusters[clusterName]
	s.mu.Unlock()
	if !ok {
		t.Fatalf("cloudtest: no cluster %q", clusterName)
	}
	is, err := c.inter.IssueServer(identity.Identity{Tenant: TenantID, Cluster: c.pb.GetId(), Kind: identity.SPU, Principal: "spu-1"}, nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return serveTLS(t, is, c.inter.Pool(), tls.RequireAndVerifyClientCert, h)
}

// ServeControlPlane starts an HTTPS server for h that stands for the
// control plane: its certificate is issued by the root for 127.0.0.1, and
// it verifies client certificates that chain to the root when given. It
// returns the server's URL.
func (s *Server) ServeControlPlane(t testing.TB, h http.Handler) string {
	t.Helper()
	is, err := s.root.IssueServer(identity.Identity{Tenant: "operator", Cluster: identity.NoCluster, Kind: identity.ControlPlane, Principal: "control-plane"},
		[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return serveTLS(t, is, s.root.Pool(), tls.VerifyClientCertIfGiven, h)
}

func serveTLS(t testing.TB, is *ca.Issued, clientCAs *x509.CertPool, auth tls.ClientAuthType, h http.Handler) string {
	t.Helper()
	cert, err := is.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: clientCAs, ClientAuth: auth, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
