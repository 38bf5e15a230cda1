package authz

import (
	"context"
	"log/slog"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/data-plane/internal/certs"
)

func id(kind identity.Kind, principal string) identity.Identity {
	return identity.Identity{Tenant: "t-acme", Cluster: "c-main", Kind: kind, Principal: principal}
}

// The rule table, call by call. Integration tests over real TLS are in
// package spu.
func TestRules(t *testing.T) {
	a := New(id(identity.SPU, "spu-1"), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	a.SetPrincipals([]*internalv1.Principal{
		{Kind: "service-account", Id: "sa-orders", Grants: []*internalv1.Grant{{Topic: "orders*", Ops: []string{"produce"}}, {Topic: "audit", Ops: []string{"consume"}}}},
		{Kind: "user", Id: "u-member", Role: "member"},
		{Kind: "user", Id: "u-bad", Role: "superuser"}, // malformed: left out
		{Kind: "spu", Id: "spu-9"},                     // not a tenant principal: left out
		{Kind: "service-account", Id: "sa-bad", Grants: []*internalv1.Grant{{Topic: "x", Ops: []string{"delete"}}}}, // malformed
	})
	var (
		produceOne = dataplanev1connect.ProduceServiceProduceOneProcedure
		consume    = dataplanev1connect.ConsumeServiceConsumeProcedure
		offsets    = dataplanev1connect.ConsumeServiceOffsetsProcedure
		list       = dataplanev1connect.PartitionServiceListPartitionsProcedure
		ensure     = internalv1connect.ReplicaServiceEnsureReplicaProcedure
	)
	otherCluster := id(identity.User, "u-member")
	otherCluster.Cluster = "c-other"
	otherTenant := id(identity.User, "u-member")
	otherTenant.Tenant = "t-other"
	for _, tc := range []struct {
		name      string
		peer      peer
		procedure string
		topic     string
		want      connect.Code // 0: allowed
		reason    string
	}{
		{"produce with grant", peer{id: id(identity.ServiceAccount, "sa-orders")}, produceOne, "orders-1", 0, ""},
		{"consume without grant", peer{id: id(identity.ServiceAccount, "sa-orders")}, consume, "orders-1", connect.CodePermissionDenied, reasonOp},
		{"produce to a hidden topic", peer{id: id(identity.ServiceAccount, "sa-orders")}, produceOne, "secrets", connect.CodeNotFound, reasonHidden},
		{"consume with grant", peer{id: id(identity.ServiceAccount, "sa-orders")}, consume, "audit", 0, ""},
		{"offsets of a seen topic", peer{id: id(identity.ServiceAccount, "sa-orders")}, offsets, "orders-1", 0, ""},
		{"offsets of a hidden topic", peer{id: id(identity.ServiceAccount, "sa-orders")}, offsets, "secrets", connect.CodeNotFound, reasonHidden},
		{"list", peer{id: id(identity.ServiceAccount, "sa-orders")}, list, "", 0, ""},
		{"internal service by a service account", peer{id: id(identity.ServiceAccount, "sa-orders")}, ensure, "x", connect.CodePermissionDenied, reasonInternal},
		{"member user consumes", peer{id: id(identity.User, "u-member")}, consume, "secrets", 0, ""},
		{"internal service by a member", peer{id: id(identity.User, "u-member")}, ensure, "x", connect.CodePermissionDenied, reasonInternal},
		{"malformed entry", peer{id: id(identity.User, "u-bad")}, produceOne, "orders-1", connect.CodePermissionDenied, reasonNotMember},
		{"malformed grant", peer{id: id(identity.ServiceAccount, "sa-bad")}, produceOne, "x", connect.CodePermissionDenied, reasonNotMember},
		{"not in the list", peer{id: id(identity.User, "u-gone")}, list, "", connect.CodePermissionDenied, reasonNotMember},
		{"peer SPU consumes", peer{id: id(identity.SPU, "spu-2")}, consume, "secrets", 0, ""},
		{"peer SPU on an internal service", peer{id: id(identity.SPU, "spu-2")}, ensure, "x", 0, ""},
		{"control plane on an internal service", peer{id: id(identity.ControlPlane, "control-plane")}, ensure, "x", 0, ""},
		{"unknown procedure", peer{id: id(identity.User, "u-member")}, "/spate.internal.v1.Future/Call", "", connect.CodePermissionDenied, reasonInternal},
		{"no certificate", peer{err: certs.ErrNoClientCertificate}, list, "", connect.CodeUnauthenticated, reasonNoCert},
		{"no identity", peer{err: identity.ErrNoIdentity}, list, "", connect.CodeUnauthenticated, reasonNoIdentity},
		{"another cluster", peer{id: otherCluster}, list, "", connect.CodeUnauthenticated, reasonOtherCluster},
		{"another tenant", peer{id: otherTenant}, list, "", connect.CodeUnauthenticated, reasonOtherCluster},
		{"an SPU of another cluster", peer{id: identity.Identity{Tenant: "t-acme", Cluster: "c-other", Kind: identity.SPU, Principal: "spu-2"}}, ensure, "", connect.CodeUnauthenticated, reasonOtherCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.WithValue(context.Background(), peerKey{}, tc.peer)
			ref := a.check(ctx, a.acl.Load(), tc.procedure, ruleFor(tc.procedure), tc.topic)
			switch {
			case tc.want == 0 && ref != nil:
				t.Fatalf("refused: %v (%s)", ref.err, ref.reason)
			case tc.want != 0 && ref == nil:
				t.Fatalf("allowed, want %v", tc.want)
			case ref != nil && (ref.err.Code() != tc.want || ref.reason != tc.reason):
				t.Fatalf("refused with %v (%s), want %v (%s)", ref.err, ref.reason, tc.want, tc.reason)
			}
		})
	}
}

func TestNothingButInternalBeforeTheFirstList(t *testing.T) {
	a := New(id(identity.SPU, "spu-1"), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	user := context.WithValue(context.Background(), peerKey{}, peer{id: id(identity.User, "u-member")})
	if ref := a.check(user, a.acl.Load(), dataplanev1connect.PartitionServiceListPartitionsProcedure, ruleFor(dataplanev1connect.PartitionServiceListPartitionsProcedure), ""); ref == nil || ref.err.Code() != connect.CodeUnavailable {
		t.Fatalf("user before the list: %v", ref)
	}
	peerSPU := context.WithValue(context.Background(), peerKey{}, peer{id: id(identity.SPU, "spu-2")})
	if err := a.Allow(peerSPU, "consume", "anything"); err != nil {
		t.Fatalf("peer SPU before the list: %v", err)
	}
	// An empty list is a list: members are then refused as non-members.
	a.SetPrincipals(nil)
	if err := a.Allow(user, "consume", "t"); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("user with an empty list: %v", err)
	}
	// No caller in the context: refused, never allowed.
	if err := a.Allow(context.Background(), "consume", "t"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("no caller: %v", err)
	}
	// A nil Authorizer (no TLS) allows everything.
	var none *Authorizer
	if err := none.Allow(context.Background(), "produce", "t"); err != nil || !none.Sees(context.Background(), "t") {
		t.Fatalf("nil authorizer: %v", err)
	}
}
