package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/auth/access"
	authca "github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/auth/secret"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
	"github.com/spatehq/spate/internal/names"
)

// Limits of the cloud API.
const (
	// DefaultAPIKeyTTL is an API key's life unless asked otherwise.
	DefaultAPIKeyTTL = 90 * 24 * time.Hour
	// MaxAPIKeyTTL is the longest life an API key may have.
	MaxAPIKeyTTL = 2 * 365 * 24 * time.Hour
	// MaxClusterSPUs bounds a cluster's size.
	MaxClusterSPUs = 64
)

// tenantService implements TenantService.
type tenantService struct{ s *Server }

// clusterService implements ClusterService.
type clusterService struct{ s *Server }

// authService implements AuthService.
type authService struct{ s *Server }

var (
	_ controlplanev1connect.TenantServiceHandler  = (*tenantService)(nil)
	_ controlplanev1connect.ClusterServiceHandler = (*clusterService)(nil)
	_ controlplanev1connect.AuthServiceHandler    = (*authService)(nil)
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func roleToProto(r access.Role) controlplanev1.Role {
	switch r {
	case access.Owner:
		return controlplanev1.Role_ROLE_OWNER
	case access.Admin:
		return controlplanev1.Role_ROLE_ADMIN
	case access.Member:
		return controlplanev1.Role_ROLE_MEMBER
	}
	return controlplanev1.Role_ROLE_UNSPECIFIED
}

func roleFromProto(r controlplanev1.Role) (access.Role, error) {
	switch r {
	case controlplanev1.Role_ROLE_OWNER:
		return access.Owner, nil
	case controlplanev1.Role_ROLE_ADMIN:
		return access.Admin, nil
	case controlplanev1.Role_ROLE_MEMBER, controlplanev1.Role_ROLE_UNSPECIFIED:
		return access.Member, nil
	}
	return "", fmt.Errorf("unknown role %v", r)
}

func grantsFromProto(in []*controlplanev1.Grant) ([]access.Grant, error) {
	out := make([]access.Grant, 0, len(in))
	for _, g := range in {
		ag := access.Grant{Topic: g.Topic}
		for _, op := range g.Ops {
			switch op {
			case controlplanev1.TopicOp_TOPIC_OP_PRODUCE:
				ag.Ops = append(ag.Ops, access.Produce)
			case controlplanev1.TopicOp_TOPIC_OP_CONSUME:
				ag.Ops = append(ag.Ops, access.Consume)
			case controlplanev1.TopicOp_TOPIC_OP_ADMIN:
				ag.Ops = append(ag.Ops, access.Administer)
			default:
				return nil, fmt.Errorf("grant on %q: unknown operation %v", g.Topic, op)
			}
		}
		if err := ag.Validate(); err != nil {
			return nil, err
		}
		out = append(out, ag)
	}
	return out, nil
}

func grantsToProto(in []access.Grant) []*controlplanev1.Grant {
	out := make([]*controlplanev1.Grant, 0, len(in))
	for _, g := range in {
		pg := &controlplanev1.Grant{Topic: g.Topic}
		for _, op := range g.Ops {
			switch op {
			case access.Produce:
				pg.Ops = append(pg.Ops, controlplanev1.TopicOp_TOPIC_OP_PRODUCE)
			case access.Consume:
				pg.Ops = append(pg.Ops, controlplanev1.TopicOp_TOPIC_OP_CONSUME)
			case access.Administer:
				pg.Ops = append(pg.Ops, controlplanev1.TopicOp_TOPIC_OP_ADMIN)
			}
		}
		out = append(out, pg)
	}
	return out
}

func memberView(u tenancy.User) *controlplanev1.Member {
	return &controlplanev1.Member{Id: u.ID, Email: u.Email, Role: roleToProto(u.Role), CreatedAt: ts(u.CreatedAt)}
}

func serviceAccountView(sa tenancy.ServiceAccount) *controlplanev1.ServiceAccount {
	return &controlplanev1.ServiceAccount{Id: sa.ID, Name: sa.Name, Grants: grantsToProto(sa.Grants), CreatedAt: ts(sa.CreatedAt)}
}

func tenantView(t tenancy.Tenant) *controlplanev1.Tenant {
	return &controlplanev1.Tenant{Id: t.ID, Name: t.Name, CreatedAt: ts(t.CreatedAt)}
}

func invalidArg(err error) error { return connect.NewError(connect.CodeInvalidArgument, err) }

// CreateTenant implements TenantService: operator only.
func (t *tenantService) CreateTenant(ctx context.Context, req *connect.Request[controlplanev1.CreateTenantRequest]) (*connect.Response[controlplanev1.CreateTenantResponse], error) {
	s := t.s
	c, err := s.caller(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	if c.Kind != identity.Operator {
		return nil, s.denied(c, req.Spec().Procedure, connect.NewError(connect.CodePermissionDenied, errors.New("only the operator of the service may create tenants")))
	}
	if err := names.Topic(req.Msg.Name); err != nil {
		return nil, invalidArg(fmt.Errorf("tenant name: %w", err))
	}
	email := tenancy.NormalizeEmail(req.Msg.OwnerEmail)
	if !strings.Contains(email, "@") {
		return nil, invalidArg(fmt.Errorf("owner email %q: not an email address", req.Msg.OwnerEmail))
	}
	password := req.Msg.OwnerPassword
	if password == "" {
		password = secret.NewPassword()
	} else if len(password) < 12 {
		return nil, invalidArg(errors.New("owner password: use at least 12 characters"))
	}
	hash, err := secret.HashPassword(password)
	if err != nil {
		return nil, s.internal(ctx, "hash password", err)
	}
	now := time.Now()
	tenant := tenancy.Tenant{ID: secret.NewID("t"), Name: req.Msg.Name, CreatedAt: now}
	owner := tenancy.User{ID: secret.NewID("u"), Tenant: tenant.ID, Email: email, Role: access.Owner, PasswordHash: hash, CreatedAt: now}
	switch err := s.tenancy.CreateTenant(ctx, tenant, owner); {
	case errors.Is(err, tenancy.ErrExists):
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("a tenant named %q or a person with email %q exists already", req.Msg.Name, email))
	case err != nil:
		return nil, s.internal(ctx, "create tenant", err)
	}
	s.logger.Info("tenant created", "tenant", tenant.ID, "name", tenant.Name, "owner", email)
	out := &controlplanev1.CreateTenantResponse{Tenant: tenantView(tenant), Owner: memberView(owner)}
	if req.Msg.OwnerPassword == "" {
		out.OwnerPassword = password
	}
	if req.Msg.OwnerApiKey {
		id, full, hash := secret.NewAPIKey()
		k := tenancy.APIKey{ID: id, Tenant: tenant.ID, Kind: identity.User, Principal: owner.ID, Hash: hash, Description: "created with the tenant", CreatedAt: now, ExpiresAt: now.Add(DefaultAPIKeyTTL)}
		if err := s.tenancy.CreateAPIKey(ctx, k); err != nil {
			return nil, s.internal(ctx, "create owner API key", err)
		}
		out.OwnerApiKey = full
	}
	return connect.NewResponse(out), nil
}

// GetTenant implements TenantService.
func (t *tenantService) GetTenant(ctx context.Context, req *connect.Request[controlplanev1.GetTenantRequest]) (*connect.Response[controlplanev1.GetTenantResponse], error) {
	c, err := t.s.requireTenantPrincipal(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	tn, err := t.s.tenancy.GetTenant(ctx, c.Tenant)
	if err != nil {
		return nil, t.s.internal(ctx, "read tenant", err)
	}
	return connect.NewResponse(&controlplanev1.GetTenantResponse{Tenant: tenantView(tn)}), nil
}

// AddMember implements TenantService.
func (t *tenantService) AddMember(ctx context.Context, req *connect.Request[controlplanev1.AddMemberRequest]) (*connect.Response[controlplanev1.AddMemberResponse], error) {
	s := t.s
	c, err := s.requireManager(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	role, err := roleFromProto(req.Msg.Role)
	if err != nil {
		return nil, invalidArg(err)
	}
	if role == access.Owner && c.Role != access.Owner {
		return nil, s.denied(c, req.Spec().Procedure, connect.NewError(connect.CodePermissionDenied, errors.New("only owners may add owners")))
	}
	email := tenancy.NormalizeEmail(req.Msg.Email)
	if !strings.Contains(email, "@") {
		return nil, invalidArg(fmt.Errorf("email %q: not an email address", req.Msg.Email))
	}
	password := secret.NewPassword()
	hash, err := secret.HashPassword(password)
	if err != nil {
		return nil, s.internal(ctx, "hash password", err)
	}
	u := tenancy.User{ID: secret.NewID("u"), Tenant: c.Tenant, Email: email, Role: role, PasswordHash: hash, CreatedAt: time.Now()}
	switch err := s.tenancy.AddUser(ctx, u); {
	case errors.Is(err, tenancy.ErrExists):
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("a person with email %q has an account already", email))
	case err != nil:
		return nil, s.internal(ctx, "add member", err)
	}
	s.logger.Info("member added", "tenant", c.Tenant, "email", email, "role", role, "by", c.Name)
	return connect.NewResponse(&controlplanev1.AddMemberResponse{Member: memberView(u), Password: password}), nil
}

// ListMembers implements TenantService.
func (t *tenantService) ListMembers(ctx context.Context, req *connect.Request[controlplanev1.ListMembersRequest]) (*connect.Response[controlplanev1.ListMembersResponse], error) {
	c, err := t.s.requireTenantPrincipal(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	users, err := t.s.tenancy.ListUsers(ctx, c.Tenant)
	if err != nil {
		return nil, t.s.internal(ctx, "list members", err)
	}
	out := &controlplanev1.ListMembersResponse{}
	for _, u := range users {
		out.Members = append(out.Members, memberView(u))
	}
	return connect.NewResponse(out), nil
}

// RemoveMember implements TenantService.
func (t *tenantService) RemoveMember(ctx context.Context, req *connect.Request[controlplanev1.RemoveMemberRequest]) (*connect.Response[controlplanev1.RemoveMemberResponse], error) {
	s := t.s
	c, err := s.requireManager(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	u, err := s.tenancy.UserByEmail(ctx, req.Msg.Email)
	if errors.Is(err, tenancy.ErrNotFound) || (err == nil && u.Tenant != c.Tenant) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("member %q not found", req.Msg.Email))
	}
	if err != nil {
		return nil, s.internal(ctx, "remove member", err)
	}
	if u.Role == access.Owner && c.Role != access.Owner {
		return nil, s.denied(c, req.Spec().Procedure, connect.NewError(connect.CodePermissionDenied, errors.New("only owners may remove owners")))
	}
	if u.ID == c.Principal.Principal {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("you cannot remove yourself; ask another owner or admin"))
	}
	if err := s.tenancy.RemoveUser(ctx, c.Tenant, u.ID); err != nil {
		return nil, s.internal(ctx, "remove member", err)
	}
	s.logger.Info("member removed", "tenant", c.Tenant, "email", u.Email, "by", c.Name)
	return connect.NewResponse(&controlplanev1.RemoveMemberResponse{}), nil
}

// CreateServiceAccount implements TenantService.
func (t *tenantService) CreateServiceAccount(ctx context.Context, req *connect.Request[controlplanev1.CreateServiceAccountRequest]) (*connect.Response[controlplanev1.CreateServiceAccountResponse], error) {
	s := t.s
	c, err := s.requireManager(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	if err := names.Topic(req.Msg.Name); err != nil {
		return nil, invalidArg(fmt.Errorf("service account name: %w", err))
	}
	grants, err := grantsFromProto(req.Msg.Grants)
	if err != nil {
		return nil, invalidArg(err)
	}
	sa := tenancy.ServiceAccount{ID: secret.NewID("sa"), Tenant: c.Tenant, Name: req.Msg.Name, Grants: grants, CreatedAt: time.Now()}
	switch err := s.tenancy.CreateServiceAccount(ctx, sa); {
	case errors.Is(err, tenancy.ErrExists):
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("service account %q exists already", sa.Name))
	case err != nil:
		return nil, s.internal(ctx, "create service account", err)
	}
	s.logger.Info("service account created", "tenant", c.Tenant, "name", sa.Name, "by", c.Name)
	return connect.NewResponse(&controlplanev1.CreateServiceAccountResponse{ServiceAccount: serviceAccountView(sa)}), nil
}

// ListServiceAccounts implements TenantService.
func (t *tenantService) ListServiceAccounts(ctx context.Context, req *connect.Request[controlplanev1.ListServiceAccountsRequest]) (*connect.Response[controlplanev1.ListServiceAccountsResponse], error) {
	c, err := t.s.requireTenantPrincipal(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	all, err := t.s.tenancy.ListServiceAccounts(ctx, c.Tenant)
	if err != nil {
		return nil, t.s.internal(ctx, "list service accounts", err)
	}
	out := &controlplanev1.ListServiceAccountsResponse{}
	for _, sa := range all {
		out.ServiceAccounts = append(out.ServiceAccounts, serviceAccountView(sa))
	}
	return connect.NewResponse(out), nil
}

// UpdateServiceAccount implements TenantService.
func (t *tenantService) UpdateServiceAccount(ctx context.Context, req *connect.Request[controlplanev1.UpdateServiceAccountRequest]) (*connect.Response[controlplanev1.UpdateServiceAccountResponse], error) {
	s := t.s
	c, err := s.requireManager(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	grants, err := grantsFromProto(req.Msg.Grants)
	if err != nil {
		return nil, invalidArg(err)
	}
	sa, err := s.tenancy.UpdateServiceAccount(ctx, c.Tenant, req.Msg.Name, grants)
	if errors.Is(err, tenancy.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("service account %q not found", req.Msg.Name))
	}
	if err != nil {
		return nil, s.internal(ctx, "update service account", err)
	}
	s.logger.Info("service account updated", "tenant", c.Tenant, "name", sa.Name, "by", c.Name)
	return connect.NewResponse(&controlplanev1.UpdateServiceAccountResponse{ServiceAccount: serviceAccountView(sa)}), nil
}

// DeleteServiceAccount implements TenantService.
func (t *tenantService) DeleteServiceAccount(ctx context.Context, req *connect.Request[controlplanev1.DeleteServiceAccountRequest]) (*connect.Response[controlplanev1.DeleteServiceAccountResponse], error) {
	s := t.s
	c, err := s.requireManager(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	err = s.tenancy.DeleteServiceAccount(ctx, c.Tenant, req.Msg.Name)
	if errors.Is(err, tenancy.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("service account %q not found", req.Msg.Name))
	}
	if err != nil {
		return nil, s.internal(ctx, "delete service account", err)
	}
	s.logger.Info("service account deleted", "tenant", c.Tenant, "name", req.Msg.Name, "by", c.Name)
	return connect.NewResponse(&controlplanev1.DeleteServiceAccountResponse{}), nil
}

// apiKeyView describes a stored key; names come from the principals.
func (t *tenantService) apiKeyView(ctx context.Context, k tenancy.APIKey) *controlplanev1.APIKey {
	who := string(k.Kind) + ":" + k.Principal
	switch k.Kind {
	case identity.User:
		if u, err := t.s.tenancy.GetUser(ctx, k.Tenant, k.Principal); err == nil {
			who = "user:" + u.Email
		}
	case identity.ServiceAccount:
		if sa, err := t.s.tenancy.GetServiceAccount(ctx, k.Tenant, k.Principal); err == nil {
			who = "service-account:" + sa.Name
		}
	}
	return &controlplanev1.APIKey{Id: k.ID, Principal: who, Description: k.Description, CreatedAt: ts(k.CreatedAt), ExpiresAt: ts(k.ExpiresAt), Revoked: k.Revoked}
}

// CreateAPIKey implements TenantService.
func (t *tenantService) CreateAPIKey(ctx context.Context, req *connect.Request[controlplanev1.CreateAPIKeyRequest]) (*connect.Response[controlplanev1.CreateAPIKeyResponse], error) {
	s := t.s
	proc := req.Spec().Procedure
	c, err := s.requireTenantPrincipal(ctx, proc)
	if err != nil {
		return nil, err
	}
	ttl := time.Duration(req.Msg.TtlSeconds) * time.Second
	switch {
	case req.Msg.TtlSeconds < 0:
		return nil, invalidArg(errors.New("ttl_seconds: must not be negative"))
	case ttl == 0:
		ttl = DefaultAPIKeyTTL
	case ttl > MaxAPIKeyTTL:
		return nil, invalidArg(fmt.Errorf("ttl: at most %v", MaxAPIKeyTTL))
	}
	k := tenancy.APIKey{Tenant: c.Tenant, Kind: c.Kind, Principal: c.Principal.Principal, Description: req.Msg.Description, CreatedAt: time.Now()}
	if name := req.Msg.ServiceAccount; name != "" {
		if !c.ManagesTenant() {
			return nil, s.denied(c, proc, connect.NewError(connect.CodePermissionDenied, errors.New("only owners and admins may create keys for service accounts")))
		}
		sa, err := s.tenancy.ServiceAccountByName(ctx, c.Tenant, name)
		if errors.Is(err, tenancy.ErrNotFound) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("service account %q not found", name))
		}
		if err != nil {
			return nil, s.internal(ctx, "create API key", err)
		}
		k.Kind, k.Principal = identity.ServiceAccount, sa.ID
	}
	k.ExpiresAt = k.CreatedAt.Add(ttl)
	id, full, hash := secret.NewAPIKey()
	k.ID, k.Hash = id, hash
	if err := s.tenancy.CreateAPIKey(ctx, k); err != nil {
		return nil, s.internal(ctx, "create API key", err)
	}
	s.logger.Info("API key created", "tenant", c.Tenant, "key", k.ID, "principal", k.Principal, "by", c.Name)
	return connect.NewResponse(&controlplanev1.CreateAPIKeyResponse{Key: t.apiKeyView(ctx, k), Secret: full}), nil
}

// ListAPIKeys implements TenantService: managers see every key of the
// tenant, others their own.
func (t *tenantService) ListAPIKeys(ctx context.Context, req *connect.Request[controlplanev1.ListAPIKeysRequest]) (*connect.Response[controlplanev1.ListAPIKeysResponse], error) {
	c, err := t.s.requireTenantPrincipal(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	keys, err := t.s.tenancy.ListAPIKeys(ctx, c.Tenant)
	if err != nil {
		return nil, t.s.internal(ctx, "list API keys", err)
	}
	out := &controlplanev1.ListAPIKeysResponse{}
	for _, k := range keys {
		if c.ManagesTenant() || k.Principal == c.Principal.Principal {
			out.Keys = append(out.Keys, t.apiKeyView(ctx, k))
		}
	}
	return connect.NewResponse(out), nil
}

// RevokeAPIKey implements TenantService.
func (t *tenantService) RevokeAPIKey(ctx context.Context, req *connect.Request[controlplanev1.RevokeAPIKeyRequest]) (*connect.Response[controlplanev1.RevokeAPIKeyResponse], error) {
	s := t.s
	c, err := s.requireTenantPrincipal(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	k, err := s.tenancy.GetAPIKey(ctx, req.Msg.Id)
	if err != nil || k.Tenant != c.Tenant || (!c.ManagesTenant() && k.Principal != c.Principal.Principal) {
		if err == nil || errors.Is(err, tenancy.ErrNotFound) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("API key %q not found", req.Msg.Id))
		}
		return nil, s.internal(ctx, "revoke API key", err)
	}
	if err := s.tenancy.RevokeAPIKey(ctx, c.Tenant, k.ID); err != nil {
		return nil, s.internal(ctx, "revoke API key", err)
	}
	s.logger.Info("API key revoked", "tenant", c.Tenant, "key", k.ID, "by", c.Name)
	return connect.NewResponse(&controlplanev1.RevokeAPIKeyResponse{}), nil
}

func clusterStatusToProto(st tenancy.ClusterStatus) controlplanev1.ClusterStatus {
	switch st {
	case tenancy.ClusterProvisioning:
		return controlplanev1.ClusterStatus_CLUSTER_STATUS_PROVISIONING
	case tenancy.ClusterReady:
		return controlplanev1.ClusterStatus_CLUSTER_STATUS_READY
	case tenancy.ClusterFailed:
		return controlplanev1.ClusterStatus_CLUSTER_STATUS_FAILED
	case tenancy.ClusterDeleting:
		return controlplanev1.ClusterStatus_CLUSTER_STATUS_DELETING
	}
	return controlplanev1.ClusterStatus_CLUSTER_STATUS_UNSPECIFIED
}

func clusterView(c tenancy.Cluster) *controlplanev1.Cluster {
	return &controlplanev1.Cluster{
		Id: c.ID, Name: c.Name, Spus: c.SPUs, Status: clusterStatusToProto(c.Status), Reason: c.Reason,
		CreatedAt: ts(c.CreatedAt), ReadyAt: ts(c.ReadyAt), SpuEndpoints: c.Endpoints,
	}
}

// CreateCluster implements ClusterService.
func (cs *clusterService) CreateCluster(ctx context.Context, req *connect.Request[controlplanev1.CreateClusterRequest]) (*connect.Response[controlplanev1.CreateClusterResponse], error) {
	s := cs.s
	c, err := s.requireManager(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	if err := names.Topic(req.Msg.Name); err != nil {
		return nil, invalidArg(fmt.Errorf("cluster name: %w", err))
	}
	spus := req.Msg.Spus
	switch {
	case spus == 0:
		spus = 1
	case spus < 0 || spus > MaxClusterSPUs:
		return nil, invalidArg(fmt.Errorf("spus %d: choose 1 to %d", spus, MaxClusterSPUs))
	}
	if s.cfg.Provisioner == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("this control plane has no provisioner and cannot run clusters"))
	}
	cl := tenancy.Cluster{ID: secret.NewID("c"), Tenant: c.Tenant, Name: req.Msg.Name, SPUs: spus, Status: tenancy.ClusterProvisioning, CreatedAt: time.Now()}
	cl.CACertPEM, cl.CAKeyPEM, err = s.pki.root.NewIntermediate(c.Tenant, cl.ID)
	if err != nil {
		return nil, s.internal(ctx, "create cluster CA", err)
	}
	switch err := s.tenancy.CreateCluster(ctx, cl); {
	case errors.Is(err, tenancy.ErrExists):
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("cluster %q exists already", cl.Name))
	case err != nil:
		return nil, s.internal(ctx, "create cluster", err)
	}
	s.logger.Info("cluster created", "tenant", c.Tenant, "cluster", cl.ID, "name", cl.Name, "spus", spus, "by", c.Name)
	return connect.NewResponse(&controlplanev1.CreateClusterResponse{Cluster: clusterView(cl)}), nil
}

// ListClusters implements ClusterService.
func (cs *clusterService) ListClusters(ctx context.Context, req *connect.Request[controlplanev1.ListClustersRequest]) (*connect.Response[controlplanev1.ListClustersResponse], error) {
	c, err := cs.s.requireTenantPrincipal(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	all, err := cs.s.tenancy.ListClusters(ctx, c.Tenant)
	if err != nil {
		return nil, cs.s.internal(ctx, "list clusters", err)
	}
	out := &controlplanev1.ListClustersResponse{}
	for _, cl := range all {
		out.Clusters = append(out.Clusters, clusterView(cl))
	}
	return connect.NewResponse(out), nil
}

// byName returns the caller's cluster of that name.
func (cs *clusterService) byName(ctx context.Context, c *caller, name string) (tenancy.Cluster, error) {
	cl, err := cs.s.tenancy.ClusterByName(ctx, c.Tenant, name)
	if errors.Is(err, tenancy.ErrNotFound) {
		return cl, clusterNotFound(name)
	}
	if err != nil {
		return cl, cs.s.internal(ctx, "read cluster", err)
	}
	return cl, nil
}

// GetCluster implements ClusterService.
func (cs *clusterService) GetCluster(ctx context.Context, req *connect.Request[controlplanev1.GetClusterRequest]) (*connect.Response[controlplanev1.GetClusterResponse], error) {
	c, err := cs.s.requireTenantPrincipal(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	cl, err := cs.byName(ctx, c, req.Msg.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlplanev1.GetClusterResponse{Cluster: clusterView(cl)}), nil
}

// DeleteCluster implements ClusterService.
func (cs *clusterService) DeleteCluster(ctx context.Context, req *connect.Request[controlplanev1.DeleteClusterRequest]) (*connect.Response[controlplanev1.DeleteClusterResponse], error) {
	s := cs.s
	c, err := s.requireManager(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	cl, err := cs.byName(ctx, c, req.Msg.Name)
	if err != nil {
		return nil, err
	}
	if _, err := s.tenancy.UpdateCluster(ctx, cl.ID, func(x *tenancy.Cluster) error {
		x.Status, x.Reason = tenancy.ClusterDeleting, ""
		return nil
	}); err != nil {
		return nil, s.internal(ctx, "delete cluster", err)
	}
	s.logger.Info("cluster deleting", "tenant", c.Tenant, "cluster", cl.ID, "name", cl.Name, "by", c.Name)
	return connect.NewResponse(&controlplanev1.DeleteClusterResponse{}), nil
}

// IssueClientCertificate implements ClusterService.
func (cs *clusterService) IssueClientCertificate(ctx context.Context, req *connect.Request[controlplanev1.IssueClientCertificateRequest]) (*connect.Response[controlplanev1.IssueClientCertificateResponse], error) {
	s := cs.s
	c, err := s.requireTenantPrincipal(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	if c.Via == "certificate" {
		// A stolen certificate must not renew itself for ever: renewing
		// takes a login, which logout and revocation end.
		return nil, s.denied(c, req.Spec().Procedure, connect.NewError(connect.CodePermissionDenied, errors.New("client certificates are issued to a login (token or API key), not to another certificate: run `spate cloud login`")))
	}
	cl, err := cs.byName(ctx, c, req.Msg.Cluster)
	if err != nil {
		return nil, err
	}
	if cl.Status == tenancy.ClusterDeleting {
		return nil, clusterNotFound(req.Msg.Cluster)
	}
	ca, err := s.pki.intermediate(cl)
	if err != nil {
		return nil, s.internal(ctx, "load cluster CA", err)
	}
	who := identity.Identity{Tenant: c.Tenant, Cluster: cl.ID, Kind: c.Kind, Principal: c.Principal.Principal}
	is, err := ca.IssueClient(who, req.Msg.CsrPem, s.cfg.ClientCertValidity)
	if errors.Is(err, authca.ErrInvalidCSR) || errors.Is(err, authca.ErrUnsupportedKey) {
		return nil, invalidArg(fmt.Errorf("certificate request: %w", err))
	}
	if err != nil {
		return nil, s.internal(ctx, "issue client certificate", err)
	}
	s.logger.Info("client certificate issued", "tenant", c.Tenant, "cluster", cl.ID, "principal", c.Name, "expires", is.NotAfter)
	return connect.NewResponse(&controlplanev1.IssueClientCertificateResponse{
		Cluster:             clusterView(cl),
		CertificateChainPem: is.ChainPEM,
		ExpiresAt:           ts(is.NotAfter),
		ClusterCaPem:        ca.CertPEM(),
		RootCaPem:           s.pki.root.CertPEM(),
	}), nil
}

// WhoAmI implements AuthService.
func (as *authService) WhoAmI(ctx context.Context, req *connect.Request[controlplanev1.WhoAmIRequest]) (*connect.Response[controlplanev1.WhoAmIResponse], error) {
	c, err := as.s.caller(ctx, req.Spec().Procedure)
	if err != nil {
		return nil, err
	}
	out := &controlplanev1.WhoAmIResponse{Kind: string(c.Kind), Id: c.Principal.Principal, Name: c.Name, Role: roleToProto(c.Role), ExpiresAt: ts(c.Expires)}
	if c.Kind == identity.User || c.Kind == identity.ServiceAccount {
		if tn, err := as.s.tenancy.GetTenant(ctx, c.Tenant); err == nil {
			out.Tenant = tenantView(tn)
		}
	}
	if c.Cluster != "" && c.Cluster != identity.NoCluster {
		if cl, err := as.s.clusterOf(ctx, c.Tenant, c.Cluster); err == nil {
			out.Cluster = cl.Name
		}
	}
	return connect.NewResponse(out), nil
}
