package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/control-plane/server"
)

// TestTenantIsolation is the specification of what one tenant can learn
// of another: nothing. Tenant B, owner of its own tenant, calls every RPC
// of the control plane naming tenant A's objects, with its access token
// and with its client certificate, and every SPU service of A's cluster.
// Each call is refused exactly as the same call naming an object that
// exists nowhere (same code, same message but for the name B supplied),
// and no answer, not even a list, carries a name or id of A's. Within
// tenant A, a service account sees only the topics its grants match, and
// a member cannot manage the tenant.
func TestTenantIsolation(t *testing.T) {
	w := newWorld(t, true)
	ctx := context.Background()
	b := w.b.owner

	// crossTenant is a call by B naming an object: one of A's, or one
	// that does not exist.
	type crossTenant struct {
		name    string
		a       string // how B names A's object
		missing string // the same kind of name, of no object
		call    func(name string) (proto.Message, error)
	}
	refused := func(t *testing.T, tc crossTenant) {
		t.Helper()
		msgA, errA := tc.call(tc.a)
		msgMissing, errMissing := tc.call(tc.missing)
		if errA == nil {
			t.Fatalf("B's call naming A's %q succeeded: %v", tc.a, answerText(msgA, nil))
		}
		if errMissing == nil {
			t.Fatalf("the call naming %q, which does not exist, succeeded: %v", tc.missing, answerText(msgMissing, nil))
		}
		sameRefusal(t, errA, errMissing, tc.a, tc.missing)
		t.Logf("naming %q: %v", tc.a, errA)
		if leaks := w.aSecretsNames.leaks(answerText(msgA, errA), tc.a); len(leaks) > 0 {
			t.Errorf("the answer %q reveals %q of tenant A", answerText(msgA, errA), leaks)
		}
	}
	csr := func() []byte {
		_, csr, err := ca.NewKeyAndCSR()
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}()
	produceOrders := []*controlplanev1.Grant{{Topic: "orders*", Ops: []controlplanev1.TopicOp{controlplanev1.TopicOp_TOPIC_OP_PRODUCE}}}

	// B calls with its access token, and with its client certificate of
	// its own cluster.
	type bClients struct {
		via      string
		tenants  controlplanev1connect.TenantServiceClient
		clusters controlplanev1connect.ClusterServiceClient
	}
	bVia := []bClients{
		{via: "token", tenants: b.tenants(), clusters: b.clusters()},
		{via: "certificate", tenants: w.bOwner.tenants(), clusters: w.bOwner.clusters()},
	}

	for _, via := range bVia {
		tenants := via.tenants
		t.Run("TenantService/"+via.via, func(t *testing.T) {
			for _, tc := range []crossTenant{
				{name: "CreateTenant", a: aTenantName, missing: "no-such-tenant", call: func(n string) (proto.Message, error) {
					return msgOf(tenants.CreateTenant(ctx, connect.NewRequest(&controlplanev1.CreateTenantRequest{Name: n, OwnerEmail: "new@bravo.example"})))
				}},
				{name: "RemoveMember", a: aMemberEmail, missing: missingEmail, call: func(n string) (proto.Message, error) {
					return msgOf(tenants.RemoveMember(ctx, connect.NewRequest(&controlplanev1.RemoveMemberRequest{Email: n})))
				}},
				{name: "RemoveMember/owner", a: aOwnerEmail, missing: missingEmail, call: func(n string) (proto.Message, error) {
					return msgOf(tenants.RemoveMember(ctx, connect.NewRequest(&controlplanev1.RemoveMemberRequest{Email: n})))
				}},
				{name: "UpdateServiceAccount", a: aSAName, missing: missingSA, call: func(n string) (proto.Message, error) {
					return msgOf(tenants.UpdateServiceAccount(ctx, connect.NewRequest(&controlplanev1.UpdateServiceAccountRequest{Name: n, Grants: produceOrders})))
				}},
				{name: "DeleteServiceAccount", a: aSAName, missing: missingSA, call: func(n string) (proto.Message, error) {
					return msgOf(tenants.DeleteServiceAccount(ctx, connect.NewRequest(&controlplanev1.DeleteServiceAccountRequest{Name: n})))
				}},
				{name: "CreateAPIKey", a: aSAName, missing: missingSA, call: func(n string) (proto.Message, error) {
					return msgOf(tenants.CreateAPIKey(ctx, connect.NewRequest(&controlplanev1.CreateAPIKeyRequest{ServiceAccount: n})))
				}},
				{name: "RevokeAPIKey", a: w.aOwnerKeyID, missing: missingKeyID, call: func(n string) (proto.Message, error) {
					return msgOf(tenants.RevokeAPIKey(ctx, connect.NewRequest(&controlplanev1.RevokeAPIKeyRequest{Id: n})))
				}},
			} {
				t.Run(tc.name, func(t *testing.T) { refused(t, tc) })
			}
		})
	}
	t.Run("TenantService", func(t *testing.T) {
		tenants := b.tenants()

		// Emails are unique across the service (people sign in by email),
		// so B cannot add A's member; the answer is the one for an email
		// taken in B's own tenant and says nothing of A.
		t.Run("AddMember", func(t *testing.T) {
			add := func(email string) (proto.Message, error) {
				return msgOf(tenants.AddMember(ctx, connect.NewRequest(&controlplanev1.AddMemberRequest{Email: email})))
			}
			msgA, errA := add(aMemberEmail)
			_, errB := add(bOwnerEmail)
			wantConnectCode(t, errA, connect.CodeAlreadyExists)
			sameRefusal(t, errA, errB, aMemberEmail, bOwnerEmail)
			if leaks := w.aSecretsNames.leaks(answerText(msgA, errA), aMemberEmail); len(leaks) > 0 {
				t.Errorf("the answer %q reveals %q", answerText(msgA, errA), leaks)
			}
		})

		// A's objects are untouched by all of the above.
		t.Run("A unchanged", func(t *testing.T) {
			a := w.a.owner.tenants()
			members, err := a.ListMembers(ctx, connect.NewRequest(&controlplanev1.ListMembersRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			if len(members.Msg.Members) != 2 {
				t.Errorf("A has members %v, want its owner and member", members.Msg.Members)
			}
			sas, err := a.ListServiceAccounts(ctx, connect.NewRequest(&controlplanev1.ListServiceAccountsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			if len(sas.Msg.ServiceAccounts) != 1 || !proto.Equal(sas.Msg.ServiceAccounts[0], w.aSA) {
				t.Errorf("A's service accounts are %v, want %v", sas.Msg.ServiceAccounts, w.aSA)
			}
			keys, err := a.ListAPIKeys(ctx, connect.NewRequest(&controlplanev1.ListAPIKeysRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys.Msg.Keys {
				if k.Revoked {
					t.Errorf("A's key %s is revoked", k.Id)
				}
			}
		})
	})

	for _, via := range bVia {
		clusters := via.clusters
		t.Run("ClusterService/"+via.via, func(t *testing.T) {
			for _, tc := range []crossTenant{
				{name: "GetCluster", a: aSecretClust, missing: missingClust, call: func(n string) (proto.Message, error) {
					return msgOf(clusters.GetCluster(ctx, connect.NewRequest(&controlplanev1.GetClusterRequest{Name: n})))
				}},
				{name: "GetCluster/by id", a: w.aProd.Id, missing: missingClusID, call: func(n string) (proto.Message, error) {
					return msgOf(clusters.GetCluster(ctx, connect.NewRequest(&controlplanev1.GetClusterRequest{Name: n})))
				}},
				{name: "DeleteCluster", a: aSecretClust, missing: missingClust, call: func(n string) (proto.Message, error) {
					return msgOf(clusters.DeleteCluster(ctx, connect.NewRequest(&controlplanev1.DeleteClusterRequest{Name: n})))
				}},
				{name: "DeleteCluster/by id", a: w.aProd.Id, missing: missingClusID, call: func(n string) (proto.Message, error) {
					return msgOf(clusters.DeleteCluster(ctx, connect.NewRequest(&controlplanev1.DeleteClusterRequest{Name: n})))
				}},
				{name: "IssueClientCertificate", a: aSecretClust, missing: missingClust, call: func(n string) (proto.Message, error) {
					return msgOf(clusters.IssueClientCertificate(ctx, connect.NewRequest(&controlplanev1.IssueClientCertificateRequest{Cluster: n, CsrPem: csr})))
				}},
				{name: "IssueClientCertificate/by id", a: w.aProd.Id, missing: missingClusID, call: func(n string) (proto.Message, error) {
					return msgOf(clusters.IssueClientCertificate(ctx, connect.NewRequest(&controlplanev1.IssueClientCertificateRequest{Cluster: n, CsrPem: csr})))
				}},
				// A cluster name of A's does not stop B from creating its own
				// (the request here is refused for its size, before any look-up:
				// a fourth cluster would only slow the suite).
				{name: "CreateCluster", a: aSecretClust, missing: missingClust, call: func(n string) (proto.Message, error) {
					return msgOf(clusters.CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: n, Spus: 1000})))
				}},
			} {
				t.Run(tc.name, func(t *testing.T) { refused(t, tc) })
			}
		})
	}
	t.Run("ClusterService", func(t *testing.T) {
		t.Run("A unchanged", func(t *testing.T) {
			for _, name := range []string{prodCluster, aSecretClust} {
				c := w.a.owner.waitReady(t, name)
				if c.Status != controlplanev1.ClusterStatus_CLUSTER_STATUS_READY {
					t.Errorf("A's cluster %s is %v", name, c.Status)
				}
			}
		})
	})

	// Calls of cluster-scoped services with B's token name A's cluster in
	// the Spate-Cluster header, by name or by id.
	for _, header := range []struct{ name, a, missing string }{
		{name: "by name", a: aSecretClust, missing: missingClust},
		{name: "by id", a: w.aProd.Id, missing: missingClusID},
	} {
		t.Run("TopicService/token/"+header.name, func(t *testing.T) {
			for _, tc := range topicCalls(ctx, aSecretTopic) {
				t.Run(tc.name, func(t *testing.T) {
					refused(t, crossTenant{a: header.a, missing: header.missing, call: func(cluster string) (proto.Message, error) {
						return tc.call(b.topics(cluster))
					}})
				})
			}
		})
		t.Run("MetadataService/token/"+header.name, func(t *testing.T) {
			t.Run("ListSPUs", func(t *testing.T) {
				refused(t, crossTenant{a: header.a, missing: header.missing, call: func(cluster string) (proto.Message, error) {
					return msgOf(b.meta(cluster).ListSPUs(ctx, connect.NewRequest(&controlplanev1.ListSPUsRequest{})))
				}})
			})
			t.Run("WatchMetadata", func(t *testing.T) {
				refused(t, crossTenant{a: header.a, missing: header.missing, call: func(cluster string) (proto.Message, error) {
					msg, err := firstMetadata(ctx, b.meta(cluster))
					if msg == nil {
						return nil, err
					}
					return msg, err
				}})
			})
		})
	}

	// With its client certificate B acts on its own cluster, where A's
	// topic is as absent as any other.
	t.Run("TopicService/certificate", func(t *testing.T) {
		for _, name := range []string{"DescribeTopic", "UpdateTopic", "AddPartitions", "DeleteTopic"} {
			t.Run(name, func(t *testing.T) {
				refused(t, crossTenant{a: aSecretTopic, missing: missingTopic, call: func(topic string) (proto.Message, error) {
					return topicCallNamed(ctx, topic, name).call(w.bOwner.topics())
				}})
			})
		}
	})

	// Every list B gets holds B's objects only.
	t.Run("lists", func(t *testing.T) {
		tenants, clusters := b.tenants(), b.clusters()
		for _, tc := range []struct {
			name string
			call func() (proto.Message, error)
			// want is a name of B's the answer must hold.
			want string
		}{
			{name: "GetTenant", want: w.b.id, call: func() (proto.Message, error) {
				return msgOf(tenants.GetTenant(ctx, connect.NewRequest(&controlplanev1.GetTenantRequest{})))
			}},
			{name: "ListMembers", want: bOwnerEmail, call: func() (proto.Message, error) {
				return msgOf(tenants.ListMembers(ctx, connect.NewRequest(&controlplanev1.ListMembersRequest{})))
			}},
			{name: "ListServiceAccounts", want: bSAName, call: func() (proto.Message, error) {
				return msgOf(tenants.ListServiceAccounts(ctx, connect.NewRequest(&controlplanev1.ListServiceAccountsRequest{})))
			}},
			{name: "ListAPIKeys", want: "service-account:" + bSAName, call: func() (proto.Message, error) {
				return msgOf(tenants.ListAPIKeys(ctx, connect.NewRequest(&controlplanev1.ListAPIKeysRequest{})))
			}},
			{name: "ListClusters", want: w.bProd.Id, call: func() (proto.Message, error) {
				return msgOf(clusters.ListClusters(ctx, connect.NewRequest(&controlplanev1.ListClustersRequest{})))
			}},
			{name: "WhoAmI", want: bOwnerEmail, call: func() (proto.Message, error) {
				return msgOf(b.auth().WhoAmI(ctx, connect.NewRequest(&controlplanev1.WhoAmIRequest{})))
			}},
			{name: "WhoAmI/certificate", want: bOwnerEmail, call: func() (proto.Message, error) {
				return msgOf(w.bOwner.auth().WhoAmI(ctx, connect.NewRequest(&controlplanev1.WhoAmIRequest{})))
			}},
			{name: "ListTopics/token", want: bTopic, call: func() (proto.Message, error) {
				return msgOf(b.topics(prodCluster).ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{})))
			}},
			{name: "ListTopics/certificate", want: bTopic, call: func() (proto.Message, error) {
				return msgOf(w.bOwner.topics().ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{})))
			}},
			{name: "ListTopics/certificate with A's cluster in the header", want: bTopic, call: func() (proto.Message, error) {
				topics := controlplanev1connect.NewTopicServiceClient(w.bOwner.cpClient(), w.cp.url, connect.WithInterceptors(headerInterceptor{server.ClusterHeader, aSecretClust}))
				return msgOf(topics.ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{})))
			}},
			{name: "ListSPUs/token", want: w.bProd.SpuEndpoints[0], call: func() (proto.Message, error) {
				return msgOf(b.meta(prodCluster).ListSPUs(ctx, connect.NewRequest(&controlplanev1.ListSPUsRequest{})))
			}},
			{name: "ListSPUs/certificate", want: w.bProd.SpuEndpoints[0], call: func() (proto.Message, error) {
				return msgOf(w.bOwner.meta().ListSPUs(ctx, connect.NewRequest(&controlplanev1.ListSPUsRequest{})))
			}},
			{name: "WatchMetadata/token", want: bTopic, call: func() (proto.Message, error) {
				return firstMetadata(ctx, b.meta(prodCluster))
			}},
			{name: "WatchMetadata/certificate", want: bTopic, call: func() (proto.Message, error) {
				return firstMetadata(ctx, w.bOwner.meta())
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				msg, err := tc.call()
				if err != nil {
					t.Fatal(err)
				}
				text := answerText(msg, nil)
				if leaks := w.aSecretsNames.leaks(text); len(leaks) > 0 {
					t.Errorf("B's answer %s reveals %q of tenant A", text, leaks)
				}
				if tc.want != "" && !strings.Contains(text, tc.want) {
					t.Errorf("B's answer %s lacks B's %q", text, tc.want)
				}
			})
		}
	})

	// The registry is for SPUs, with their certificates.
	t.Run("RegistryService", func(t *testing.T) {
		addr := w.aSPU()
		for _, c := range []struct {
			name   string
			client func() internalv1connect.RegistryServiceClient
		}{
			{name: "certificate", client: func() internalv1connect.RegistryServiceClient { return w.bOwner.registry() }},
			{name: "token", client: func() internalv1connect.RegistryServiceClient { return b.registry() }},
		} {
			t.Run(c.name+"/Heartbeat", func(t *testing.T) {
				msg, err := msgOf(c.client().Heartbeat(ctx, connect.NewRequest(&internalv1.HeartbeatRequest{SpuId: 0, Address: addr})))
				wantConnectCode(t, err, connect.CodePermissionDenied)
				if leaks := w.aSecretsNames.leaks(answerText(msg, err), addr); len(leaks) > 0 {
					t.Errorf("answer %q reveals %q", answerText(msg, err), leaks)
				}
			})
			t.Run(c.name+"/WatchReplicas", func(t *testing.T) {
				cctx, cancel := context.WithCancel(ctx)
				defer cancel()
				stream, err := c.client().WatchReplicas(cctx, connect.NewRequest(&internalv1.WatchReplicasRequest{SpuId: 0, Address: addr}))
				if err == nil {
					if stream.Receive() {
						t.Fatalf("B received A's desired replicas: %v", stream.Msg())
					}
					err = stream.Err()
					stream.Close()
				}
				wantConnectCode(t, err, connect.CodePermissionDenied)
				if leaks := w.aSecretsNames.leaks(answerText(nil, err), addr); len(leaks) > 0 {
					t.Errorf("answer %q reveals %q", answerText(nil, err), leaks)
				}
			})
		}
	})

	// A's SPU admits only certificates of A's cluster. A client that
	// presents B's certificate anyway (as cloud.CertRenewer's
	// GetClientCertificate does) fails the handshake, whatever the call; B
	// trusts the root CA here, so the failure is the SPU refusing B, not B
	// distrusting the SPU. A plain crypto/tls client does not even offer
	// B's certificate, since the SPU asks for one of its cluster's CA: it
	// is refused as a caller without a certificate.
	t.Run("SPU", func(t *testing.T) {
		tc := w.bOwner.spuTLS.Clone()
		tc.RootCAs = w.cp.rootPool(t)
		forced := w.bOwner.spu(w.aSPU(), alwaysPresent(tc))
		plain := w.bOwner.spu(w.aSPU(), tc)
		t.Run("handshake", func(t *testing.T) {
			t.Logf("A's SPU answers B's certificate with %q", handshakeAlert(t, w.aSPU(), alwaysPresent(tc)))
		})
		for _, call := range spuCalls(ctx, forced, aSecretTopic) {
			t.Run(call.name, func(t *testing.T) {
				_, err := call.call()
				wantHandshakeRefused(t, err)
			})
		}
		for _, call := range spuCalls(ctx, plain, aSecretTopic) {
			t.Run(call.name+"/not offered", func(t *testing.T) {
				_, err := call.call()
				wantConnectCode(t, err, connect.CodeUnauthenticated)
				if leaks := w.aSecretsNames.leaks(answerText(nil, err), aSecretTopic); len(leaks) > 0 {
					t.Errorf("answer %q reveals %q", answerText(nil, err), leaks)
				}
			})
		}
	})

	// What the control plane and A's SPU serve to anyone, without
	// credentials, names none of A's objects, even once A's topics carry
	// data.
	t.Run("unauthenticated endpoints", func(t *testing.T) {
		c, err := client.FromProfile(w.aOwnerProd.profile)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p, err := c.NewProducer(ctx, aSecretTopic)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.ProduceSync(ctx, client.Record{Value: []byte("secret")}); err != nil {
			t.Fatalf("A produces to %s: %v", aSecretTopic, err)
		}
		p.Close()
		anonymous := tlsHTTPClient(&tls.Config{RootCAs: w.cp.rootPool(t)})
		for _, u := range []string{
			w.cp.url + "/metrics", w.cp.url + "/healthz", w.cp.url + "/readyz", w.cp.url + "/.well-known/jwks.json",
			w.aSPU() + "/metrics", w.aSPU() + "/healthz",
		} {
			t.Run(u, func(t *testing.T) {
				resp, err := anonymous.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				var leaked []string
				for _, l := range strings.Split(string(body), "\n") {
					if leaks := w.aSecretsNames.leaks(l); len(leaks) > 0 {
						leaked = append(leaked, l)
					}
				}
				if len(leaked) > 0 {
					t.Errorf("GET %s without credentials (%s) names A's objects in %d lines, such as:\n%s", u, resp.Status, len(leaked), strings.Join(leaked[:min(len(leaked), 5)], "\n"))
				}
			})
		}
	})

	// Within tenant A, a service account granted consume on "orders*"
	// sees orders-eu but not a-secret-topic, which answers everywhere as
	// a topic that does not exist.
	t.Run("service account", func(t *testing.T) {
		sa := w.aSALogin
		topics := sa.topics(prodCluster)
		t.Run("DescribeTopic", func(t *testing.T) {
			_, errSecret := topics.DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: aSecretTopic}))
			_, errMissing := topics.DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: "orders-missing"}))
			wantConnectCode(t, errSecret, connect.CodeNotFound)
			sameRefusal(t, errSecret, errMissing, aSecretTopic, "orders-missing")
			if _, err := topics.DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: aOrdersTopic})); err != nil {
				t.Errorf("describe %s: %v", aOrdersTopic, err)
			}
		})
		t.Run("ListTopics", func(t *testing.T) {
			resp, err := topics.ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tp := range resp.Msg.Topics {
				names = append(names, tp.Spec.Name)
			}
			if !slices.Equal(names, []string{aOrdersTopic}) {
				t.Errorf("the service account lists %v, want [%s]", names, aOrdersTopic)
			}
		})
		t.Run("WatchMetadata", func(t *testing.T) {
			msg, err := firstMetadata(ctx, sa.meta(prodCluster))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tp := range msg.Topics {
				names = append(names, tp.Name)
			}
			if !slices.Equal(names, []string{aOrdersTopic}) {
				t.Errorf("the service account's metadata has topics %v, want [%s]", names, aOrdersTopic)
			}
		})

		owner := w.aOwnerProd.spu(w.aSPU(), nil)
		cert := sa.useCluster(t, prodCluster)
		spu := cert.spu(w.aSPU(), nil)
		// Once the SPU knows both (it learns principals from the control
		// plane), the owner sees both topics there, the account one.
		ownerParts, saParts := partitionTopics(owner.listPartitions(t)), partitionTopics(spu.listPartitions(t))
		t.Run("ListPartitions", func(t *testing.T) {
			if !slices.Contains(ownerParts, aSecretTopic) || !slices.Contains(ownerParts, aOrdersTopic) {
				t.Fatalf("the owner sees partitions of %v on the SPU, want both topics", ownerParts)
			}
			if !slices.Equal(saParts, []string{aOrdersTopic}) {
				t.Errorf("the service account sees partitions of %v on the SPU, want [%s]", saParts, aOrdersTopic)
			}
		})
		t.Run("ListPartitions/of the topic", func(t *testing.T) {
			list := func(topic string) (proto.Message, error) {
				return msgOf(spu.partitions.ListPartitions(ctx, connect.NewRequest(&dataplanev1.ListPartitionsRequest{Topic: topic})))
			}
			msgSecret, errSecret := list(aSecretTopic)
			msgMissing, errMissing := list("orders-missing")
			if errSecret != nil || errMissing != nil {
				sameRefusal(t, errSecret, errMissing, aSecretTopic, "orders-missing")
				return
			}
			if got, want := answerText(msgSecret, nil), strings.ReplaceAll(answerText(msgMissing, nil), "orders-missing", aSecretTopic); got != want {
				t.Errorf("ListPartitions of %s answers %s, of a missing topic %s", aSecretTopic, got, want)
			}
		})
		t.Run("CreateTopic", func(t *testing.T) {
			// Creating a topic it may not see says nothing of whether it
			// exists: the answer for a-secret-topic is the one for a name
			// no topic has.
			create := func(name string) error {
				_, err := topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{Spec: &controlplanev1.TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1}}))
				return err
			}
			errSecret, errMissing := create(aSecretTopic), create("zz-unseen")
			if errSecret == nil || errMissing == nil {
				t.Fatalf("the service account created a topic it may not administer: %v, %v", errSecret, errMissing)
			}
			sameRefusal(t, errSecret, errMissing, aSecretTopic, "zz-unseen")
		})
		t.Run("Produce", func(t *testing.T) {
			// Nobody may produce to a-secret-topic as far as the
			// service account can tell: it is missing, as for the owner a
			// topic that is.
			_, errSecret := spu.produce.ProduceOne(ctx, connect.NewRequest(&dataplanev1.ProduceOneRequest{Topic: aSecretTopic, Batches: []byte("x")}))
			_, errMissing := owner.produce.ProduceOne(ctx, connect.NewRequest(&dataplanev1.ProduceOneRequest{Topic: missingTopic, Batches: []byte("x")}))
			wantConnectCode(t, errSecret, connect.CodeNotFound)
			sameRefusal(t, errSecret, errMissing, aSecretTopic, missingTopic)

			got, err := produceOnce(ctx, spu, aSecretTopic)
			if err != nil {
				t.Fatal(err)
			}
			want, err := produceOnce(ctx, owner, missingTopic)
			if err != nil {
				t.Fatal(err)
			}
			if want = strings.ReplaceAll(want, missingTopic, aSecretTopic); got != want {
				t.Errorf("Produce stream to %s answers %q, to a missing topic %q", aSecretTopic, got, want)
			}
		})
		t.Run("Consume", func(t *testing.T) {
			errSecret := consumeOnce(ctx, spu, aSecretTopic)
			errMissing := consumeOnce(ctx, spu, "orders-missing")
			wantConnectCode(t, errSecret, connect.CodeNotFound)
			sameRefusal(t, errSecret, errMissing, aSecretTopic, "orders-missing")
		})
		t.Run("Offsets", func(t *testing.T) {
			_, errSecret := spu.consume.Offsets(ctx, connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: aSecretTopic}))
			_, errMissing := spu.consume.Offsets(ctx, connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: "orders-missing"}))
			wantConnectCode(t, errSecret, connect.CodeNotFound)
			sameRefusal(t, errSecret, errMissing, aSecretTopic, "orders-missing")
		})

		// On a topic it sees but lacks the operation for: PermissionDenied.
		t.Run("denied/ProduceOne", func(t *testing.T) {
			_, err := spu.produce.ProduceOne(ctx, connect.NewRequest(&dataplanev1.ProduceOneRequest{Topic: aOrdersTopic, Batches: []byte("x")}))
			wantConnectCode(t, err, connect.CodePermissionDenied)
		})
		t.Run("denied/Produce", func(t *testing.T) {
			got, err := produceOnce(ctx, spu, aOrdersTopic)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, "PermissionDenied") && !strings.Contains(got, "may not produce") {
				t.Errorf("Produce stream to %s answers %q, want a refusal to produce", aOrdersTopic, got)
			}
		})
		t.Run("denied/CreateTopic", func(t *testing.T) {
			_, err := topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{Spec: &controlplanev1.TopicSpec{Name: "orders-new", Partitions: 1, ReplicationFactor: 1}}))
			wantConnectCode(t, err, connect.CodePermissionDenied)
		})
		t.Run("denied/UpdateTopic", func(t *testing.T) {
			_, err := topics.UpdateTopic(ctx, connect.NewRequest(&controlplanev1.UpdateTopicRequest{Name: aOrdersTopic, Settings: &controlplanev1.TopicSettings{RetentionMs: ptr(int64(3600000))}}))
			wantConnectCode(t, err, connect.CodePermissionDenied)
		})
		t.Run("denied/DeleteTopic", func(t *testing.T) {
			_, err := topics.DeleteTopic(ctx, connect.NewRequest(&controlplanev1.DeleteTopicRequest{Name: aOrdersTopic}))
			wantConnectCode(t, err, connect.CodePermissionDenied)
		})
		t.Run("denied/manage tenant", func(t *testing.T) {
			_, err := sa.clusters().CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: "sa-cluster"}))
			wantConnectCode(t, err, connect.CodePermissionDenied)
		})
	})

	// The SPU's ReplicaService is for the cluster's SPUs and control plane:
	// not even A's owner may call it.
	t.Run("owner/ReplicaService", func(t *testing.T) {
		spu := w.aOwnerProd.spu(w.aSPU(), nil)
		_, err := spu.replicas.EnsureReplica(ctx, connect.NewRequest(&internalv1.EnsureReplicaRequest{Topic: aSecretTopic, Partition: 0, LeaderEpoch: 99}))
		wantConnectCode(t, err, connect.CodePermissionDenied)
		_, err = spu.replicas.RemoveReplica(ctx, connect.NewRequest(&internalv1.RemoveReplicaRequest{Topic: aSecretTopic, Partition: 0}))
		wantConnectCode(t, err, connect.CodePermissionDenied)
	})

	// A member (not an admin) of A uses topics but cannot manage the
	// tenant. (Members sign in on the /device page; the test signs the
	// member's token with the control plane's key instead.)
	t.Run("member", func(t *testing.T) {
		forger := w.cp.tokenForger(t)
		m := w.cp.bearer(aMemberEmail, forger.sign(t, forger.claims(w.a.id, identity.User, w.aMemberID)))
		if _, err := m.topics(prodCluster).DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: aSecretTopic})); err != nil {
			t.Fatalf("a member describes a topic: %v", err)
		}
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{name: "CreateCluster", call: func() error {
				_, err := m.clusters().CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: "member-cluster"}))
				return err
			}},
			{name: "DeleteCluster", call: func() error {
				_, err := m.clusters().DeleteCluster(ctx, connect.NewRequest(&controlplanev1.DeleteClusterRequest{Name: aSecretClust}))
				return err
			}},
			{name: "AddMember", call: func() error {
				_, err := m.tenants().AddMember(ctx, connect.NewRequest(&controlplanev1.AddMemberRequest{Email: "friend@alpha.example"}))
				return err
			}},
			{name: "RemoveMember", call: func() error {
				_, err := m.tenants().RemoveMember(ctx, connect.NewRequest(&controlplanev1.RemoveMemberRequest{Email: aOwnerEmail}))
				return err
			}},
			{name: "CreateServiceAccount", call: func() error {
				_, err := m.tenants().CreateServiceAccount(ctx, connect.NewRequest(&controlplanev1.CreateServiceAccountRequest{Name: "member-sa", Grants: produceOrders}))
				return err
			}},
			{name: "UpdateServiceAccount", call: func() error {
				_, err := m.tenants().UpdateServiceAccount(ctx, connect.NewRequest(&controlplanev1.UpdateServiceAccountRequest{Name: aSAName, Grants: produceOrders}))
				return err
			}},
			{name: "CreateAPIKey/service account", call: func() error {
				_, err := m.tenants().CreateAPIKey(ctx, connect.NewRequest(&controlplanev1.CreateAPIKeyRequest{ServiceAccount: aSAName}))
				return err
			}},
		} {
			t.Run(tc.name, func(t *testing.T) { wantConnectCode(t, tc.call(), connect.CodePermissionDenied) })
		}
	})

	// A service account's grants are checked again on a live metadata
	// stream: when its grant is narrowed, the topics it no longer sees are
	// reported deleted, and later calls treat them as missing. (Near the
	// end: it changes the account's grants.)
	t.Run("service account/grant narrowed", func(t *testing.T) {
		events := watchMetadata(t, w.aSALogin.meta(prodCluster))
		first, ok := <-events
		if !ok || first.err != nil {
			t.Fatalf("metadata stream: %v", first.err)
		}
		if _, err := w.a.owner.tenants().UpdateServiceAccount(ctx, connect.NewRequest(&controlplanev1.UpdateServiceAccountRequest{
			Name:   aSAName,
			Grants: []*controlplanev1.Grant{{Topic: "invoices*", Ops: []controlplanev1.TopicOp{controlplanev1.TopicOp_TOPIC_OP_CONSUME}}},
		})); err != nil {
			t.Fatal(err)
		}
		for deleted := false; !deleted; {
			select {
			case ev, ok := <-events:
				if !ok || ev.err != nil {
					t.Fatalf("the stream ended (%v); want %s reported deleted", ev.err, aOrdersTopic)
				}
				deleted = slices.Contains(ev.msg.DeletedTopics, aOrdersTopic)
			case <-time.After(setupTimeout):
				t.Fatalf("after %v, the stream still has not reported %s deleted", setupTimeout, aOrdersTopic)
			}
		}
		_, err := w.aSALogin.topics(prodCluster).DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: aOrdersTopic}))
		wantConnectCode(t, err, connect.CodeNotFound)
	})

	// Names are per tenant: B may give its own objects A's names, and A's
	// are untouched. (Last: it creates objects the cases above name.)
	t.Run("names are per tenant", func(t *testing.T) {
		sa, err := b.tenants().CreateServiceAccount(ctx, connect.NewRequest(&controlplanev1.CreateServiceAccountRequest{Name: aSAName, Grants: produceOrders}))
		if err != nil {
			t.Fatalf("B creates a service account named like A's: %v", err)
		}
		if sa.Msg.ServiceAccount.Id == w.aSA.Id {
			t.Errorf("B's service account has A's id %s", w.aSA.Id)
		}
		if _, err := w.bOwner.topics().CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{Spec: &controlplanev1.TopicSpec{Name: aSecretTopic, Partitions: 1, ReplicationFactor: 1}})); err != nil {
			t.Fatalf("B creates a topic named like A's: %v", err)
		}
		resp, err := w.aOwnerProd.topics().DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: aSecretTopic}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Msg.Topic.State != controlplanev1.TopicState_TOPIC_STATE_READY {
			t.Errorf("A's topic is %v", resp.Msg.Topic.State)
		}
		sas, err := w.a.owner.tenants().ListServiceAccounts(ctx, connect.NewRequest(&controlplanev1.ListServiceAccountsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if len(sas.Msg.ServiceAccounts) != 1 || sas.Msg.ServiceAccounts[0].Id != w.aSA.Id {
			t.Errorf("A's service accounts are %v, want only %s (%s)", sas.Msg.ServiceAccounts, aSAName, w.aSA.Id)
		}
	})
}

// topicCall is one call of TopicService naming a topic.
type topicCall struct {
	name string
	call func(controlplanev1connect.TopicServiceClient) (proto.Message, error)
}

// topicCalls are calls of every TopicService RPC naming topic.
func topicCalls(ctx context.Context, topic string) []topicCall {
	return []topicCall{
		{name: "CreateTopic", call: func(c controlplanev1connect.TopicServiceClient) (proto.Message, error) {
			return msgOf(c.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{Spec: &controlplanev1.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 1}})))
		}},
		{name: "ListTopics", call: func(c controlplanev1connect.TopicServiceClient) (proto.Message, error) {
			return msgOf(c.ListTopics(ctx, connect.NewRequest(&controlplanev1.ListTopicsRequest{})))
		}},
		{name: "DescribeTopic", call: func(c controlplanev1connect.TopicServiceClient) (proto.Message, error) {
			return msgOf(c.DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: topic})))
		}},
		{name: "UpdateTopic", call: func(c controlplanev1connect.TopicServiceClient) (proto.Message, error) {
			return msgOf(c.UpdateTopic(ctx, connect.NewRequest(&controlplanev1.UpdateTopicRequest{Name: topic, Settings: &controlplanev1.TopicSettings{RetentionMs: ptr(int64(3600000))}})))
		}},
		{name: "AddPartitions", call: func(c controlplanev1connect.TopicServiceClient) (proto.Message, error) {
			return msgOf(c.AddPartitions(ctx, connect.NewRequest(&controlplanev1.AddPartitionsRequest{Name: topic, Partitions: 2})))
		}},
		{name: "DeleteTopic", call: func(c controlplanev1connect.TopicServiceClient) (proto.Message, error) {
			return msgOf(c.DeleteTopic(ctx, connect.NewRequest(&controlplanev1.DeleteTopicRequest{Name: topic})))
		}},
	}
}

// topicCallNamed is the call of topicCalls named name.
func topicCallNamed(ctx context.Context, topic, name string) topicCall {
	calls := topicCalls(ctx, topic)
	return calls[slices.IndexFunc(calls, func(c topicCall) bool { return c.name == name })]
}

// spuCall is one call of an SPU service.
type spuCall struct {
	name string
	call func() (string, error)
}

// spuCalls are calls of every RPC of the SPU's services naming topic.
func spuCalls(ctx context.Context, spu spuClients, topic string) []spuCall {
	return []spuCall{
		{name: "ProduceOne", call: func() (string, error) {
			_, err := spu.produce.ProduceOne(ctx, connect.NewRequest(&dataplanev1.ProduceOneRequest{Topic: topic, Batches: []byte("x")}))
			return "", err
		}},
		{name: "Produce", call: func() (string, error) { return produceOnce(ctx, spu, topic) }},
		{name: "Consume", call: func() (string, error) { return "", consumeOnce(ctx, spu, topic) }},
		{name: "Offsets", call: func() (string, error) {
			_, err := spu.consume.Offsets(ctx, connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: topic}))
			return "", err
		}},
		{name: "ListPartitions", call: func() (string, error) {
			_, err := spu.partitions.ListPartitions(ctx, connect.NewRequest(&dataplanev1.ListPartitionsRequest{}))
			return "", err
		}},
		{name: "EnsureReplica", call: func() (string, error) {
			_, err := spu.replicas.EnsureReplica(ctx, connect.NewRequest(&internalv1.EnsureReplicaRequest{Topic: topic, Partition: 0, LeaderEpoch: 99}))
			return "", err
		}},
		{name: "RemoveReplica", call: func() (string, error) {
			_, err := spu.replicas.RemoveReplica(ctx, connect.NewRequest(&internalv1.RemoveReplicaRequest{Topic: topic, Partition: 0}))
			return "", err
		}},
	}
}

// produceOnce sends one request on a Produce stream and returns the
// answer to it as text ("code: message" of a refused request), or the
// error that ended the stream.
func produceOnce(ctx context.Context, spu spuClients, topic string) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream := spu.produce.Produce(ctx)
	if err := stream.Send(&dataplanev1.ProduceRequest{RequestId: 1, Topic: topic, Batches: []byte("x")}); err != nil && err != io.EOF {
		return "", err
	}
	resp, err := stream.Receive()
	stream.CloseRequest()
	stream.CloseResponse()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %s", connect.Code(resp.ErrorCode), resp.ErrorMessage), nil
}

// consumeOnce starts a Consume stream of partition 0 of topic and returns
// the error that ends it, or nil if it delivers a message.
func consumeOnce(ctx context.Context, spu spuClients, topic string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := spu.consume.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{Topic: topic, Partitions: []*dataplanev1.PartitionConsume{{Partition: 0}}}))
	if err != nil {
		return err
	}
	defer stream.Close()
	if stream.Receive() {
		return nil
	}
	return stream.Err()
}

func partitionTopics(parts []*dataplanev1.PartitionStatus) []string {
	var out []string
	for _, p := range parts {
		if !slices.Contains(out, p.Topic) {
			out = append(out, p.Topic)
		}
	}
	slices.Sort(out)
	return out
}
