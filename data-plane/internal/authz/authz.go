// Package authz decides, for an SPU serving over TLS, who may call which
// RPC. The caller is the identity in its verified client certificate
// (package certs); what it may do is its entry in the access list the
// control plane pushes with every WatchReplicas message (the tenant's
// users and service accounts, package access).
//
// The rules, all in this file:
//
//   - Every RPC needs a verified client certificate naming the SPU's own
//     tenant and cluster: otherwise Unauthenticated.
//   - The cluster's SPUs and its control plane (internal principals) may do
//     everything. They need no entry in the access list.
//   - A user or service account must be in the access list: before the
//     first list arrives every such call is Unavailable; a principal not in
//     the list is PermissionDenied on everything.
//   - ProduceOne and each request of a Produce stream need access.Produce
//     on the topic, Consume needs access.Consume, Offsets needs the topic to
//     be seen (access.Principal.Sees); ListPartitions lists only the topics
//     the caller sees.
//   - A caller who does not see a topic gets exactly the NotFound error of
//     a topic this SPU does not hold; one who sees it but lacks the
//     operation gets PermissionDenied naming both.
//   - A Consume stream whose caller loses access (a new access list) ends
//     with the refusal; later requests of a Produce stream are refused.
//   - Every other procedure (ReplicaService, and any added later) is for
//     internal principals only.
package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/auth/access"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/data-plane/internal/certs"
	"github.com/spatehq/spate/data-plane/internal/replica"
)

// rule is what a procedure requires beyond a member of the tenant.
type rule struct {
	// internal admits internal principals only.
	internal bool
	// op, when set, is checked on the topic of the request message.
	op access.Op
	// sees requires the topic of the request message to be visible.
	sees bool
	// handler means the handler checks the topic itself (Allow, Sees): per
	// message of a bidirectional stream, or by filtering what it returns.
	handler bool
}

// rules maps each public procedure to its rule; any procedure not here is
// internal only.
var rules = map[string]rule{
	dataplanev1connect.ProduceServiceProduceProcedure:          {handler: true}, // Allow(Produce) per request
	dataplanev1connect.ProduceServiceProduceOneProcedure:       {op: access.Produce},
	dataplanev1connect.ConsumeServiceConsumeProcedure:          {op: access.Consume},
	dataplanev1connect.ConsumeServiceOffsetsProcedure:          {sees: true},
	dataplanev1connect.PartitionServiceListPartitionsProcedure: {handler: true}, // filters with Sees
}

func ruleFor(procedure string) rule {
	if r, ok := rules[procedure]; ok {
		return r
	}
	return rule{internal: true}
}

// Reasons for a refusal, the label of spate_spu_auth_refused_total.
const (
	reasonNoCert       = "no_certificate"
	reasonNoIdentity   = "no_identity"
	reasonOtherCluster = "other_cluster"
	reasonNoACL        = "acl_not_received"
	reasonNotMember    = "not_member"
	reasonInternal     = "internal_only"
	reasonHidden       = "topic_not_visible"
	reasonOp           = "operation_denied"
)

// Authorizer enforces the rules for one SPU. Build it with New, put
// Middleware around the HTTP handler and Interceptor on every Connect
// handler. It is safe for concurrent use. A nil *Authorizer allows
// everything (an SPU without TLS).
type Authorizer struct {
	self    identity.Identity
	logger  *slog.Logger
	refused *prometheus.CounterVec
	acl     atomic.Pointer[acl]
}

// acl is one access list; replaced whole, never changed.
type acl struct {
	received   bool
	principals map[principalKey]access.Principal
	// changed is closed when a newer list replaces this one.
	changed chan struct{}
}

type principalKey struct {
	kind identity.Kind
	id   string
}

// New returns an Authorizer for the SPU whose identity is self, with no
// access list yet. It registers spate_spu_auth_refused_total with reg.
func New(self identity.Identity, reg prometheus.Registerer, logger *slog.Logger) *Authorizer {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spate_spu_auth_refused_total",
		Help: "Requests refused by authentication or authorization, per reason.",
	}, []string{"reason"})
	reg.MustRegister(refused)
	for _, r := range []string{reasonNoCert, reasonNoIdentity, reasonOtherCluster, reasonNoACL, reasonNotMember, reasonInternal, reasonHidden, reasonOp} {
		refused.WithLabelValues(r)
	}
	a := &Authorizer{self: self, logger: logger, refused: refused}
	a.acl.Store(&acl{changed: make(chan struct{})})
	return a
}

// SetPrincipals replaces the access list with the principals of one
// WatchReplicas message. Entries that are malformed are logged and left
// out, which refuses them.
func (a *Authorizer) SetPrincipals(ps []*internalv1.Principal) {
	next := &acl{received: true, principals: make(map[principalKey]access.Principal, len(ps)), changed: make(chan struct{})}
	for _, p := range ps {
		ap, err := a.convert(p)
		if err != nil {
			a.logger.Warn("ignore a malformed principal in the access list", "kind", p.Kind, "principal", p.Id, "err", err)
			continue
		}
		next.principals[principalKey{ap.Kind, ap.Principal}] = ap
	}
	old := a.acl.Swap(next)
	close(old.changed)
	a.logger.Debug("access list updated", "principals", len(next.principals))
}

func (a *Authorizer) convert(p *internalv1.Principal) (access.Principal, error) {
	ap := access.Principal{Identity: identity.Identity{Tenant: a.self.Tenant, Cluster: a.self.Cluster, Kind: identity.Kind(p.Kind), Principal: p.Id}}
	switch ap.Kind {
	case identity.User:
		r, err := access.ParseRole(p.Role)
		if err != nil {
			return ap, err
		}
		ap.Role = r
	case identity.ServiceAccount:
		for _, g := range p.Grants {
			ag := access.Grant{Topic: g.Topic}
			for _, o := range g.Ops {
				op, err := access.ParseOp(o)
				if err != nil {
					return ap, err
				}
				ag.Ops = append(ag.Ops, op)
			}
			if err := ag.Validate(); err != nil {
				return ap, err
			}
			ap.Grants = append(ap.Grants, ag)
		}
	default:
		return ap, fmt.Errorf("kind %q cannot be in an access list", p.Kind)
	}
	return ap, identity.ValidID(p.Id)
}

// peer is what the TLS handshake told about the caller.
type peer struct {
	id  identity.Identity
	err error
}

type peerKey struct{}

// Middleware records the caller's verified client certificate in each
// request's context for the interceptor, which authorizes the RPCs.
// /healthz needs no certificate. /metrics and /debug/ name the topics and
// their traffic, so they need a certificate of this cluster (any principal
// of it: a monitoring service account, an SPU, a member).
func (a *Authorizer) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := certs.PeerIdentity(r.TLS)
		ctx := context.WithValue(r.Context(), peerKey{}, peer{id, err})
		if r.URL.Path == "/metrics" || strings.HasPrefix(r.URL.Path, "/debug/") {
			if _, ref := a.clusterPeer(ctx); ref != nil {
				ce := a.refuse(ctx, r.URL.Path, ref)
				http.Error(w, ce.Message(), http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// clusterPeer returns the verified identity of the caller of ctx if it
// belongs to this SPU's cluster.
func (a *Authorizer) clusterPeer(ctx context.Context) (identity.Identity, *refusal) {
	p, ok := ctx.Value(peerKey{}).(peer)
	switch {
	case !ok, errors.Is(p.err, certs.ErrNoClientCertificate):
		return identity.Identity{}, &refusal{connect.NewError(connect.CodeUnauthenticated, errors.New("client certificate required: connect with a certificate issued by this cluster's CA")), reasonNoCert}
	case p.err != nil:
		return identity.Identity{}, &refusal{connect.NewError(connect.CodeUnauthenticated, errors.New("the client certificate names no spate:// identity")), reasonNoIdentity}
	case p.id.Tenant != a.self.Tenant || p.id.Cluster != a.self.Cluster:
		return identity.Identity{}, &refusal{connect.NewError(connect.CodeUnauthenticated, errors.New("certificate is for another cluster: use the certificate issued for this cluster")), reasonOtherCluster}
	}
	return p.id, nil
}

// refusal is a refused call: what the client sees and why, for the log
// and the metric.
type refusal struct {
	err    *connect.Error
	reason string
}

func (a *Authorizer) refuse(ctx context.Context, procedure string, r *refusal, attrs ...any) *connect.Error {
	a.refused.WithLabelValues(r.reason).Inc()
	if p, ok := ctx.Value(peerKey{}).(peer); ok && p.err == nil {
		attrs = append(attrs, "identity", p.id.String())
	}
	if procedure != "" {
		attrs = append(attrs, "procedure", procedure)
	}
	a.logger.Info("request refused", append(attrs, "reason", r.reason, "err", r.err.Message())...)
	return r.err
}

// principal authenticates the caller of ctx and finds it in the access
// list l.
func (a *Authorizer) principal(ctx context.Context, l *acl) (access.Principal, *refusal) {
	id, ref := a.clusterPeer(ctx)
	if ref != nil {
		return access.Principal{}, ref
	}
	if pr := (access.Principal{Identity: id}); pr.Internal() {
		return pr, nil
	}
	if !l.received {
		return access.Principal{}, &refusal{connect.NewError(connect.CodeUnavailable, errors.New("the SPU has not received its access list from the control plane yet; retry shortly")), reasonNoACL}
	}
	pr, ok := l.principals[principalKey{id.Kind, id.Principal}]
	if !ok {
		return access.Principal{}, &refusal{connect.NewError(connect.CodePermissionDenied, fmt.Errorf("principal is not a member of tenant %s: %s %s was removed or never added", a.self.Tenant, id.Kind, id.Principal)), reasonNotMember}
	}
	return pr, nil
}

// check applies rule r, with the request's topic when the rule needs one.
func (a *Authorizer) check(ctx context.Context, l *acl, procedure string, r rule, topic string) *refusal {
	p, ref := a.principal(ctx, l)
	if ref != nil {
		return ref
	}
	if p.Internal() {
		return nil
	}
	if r.internal {
		return &refusal{connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s is for the cluster's SPUs and control plane only", procedure)), reasonInternal}
	}
	switch {
	case r.op != "":
		return topicRefusal(p, r.op, topic)
	case r.sees && !p.Sees(topic):
		return hidden(topic)
	}
	return nil
}

// topicRefusal checks op on topic for a member of the tenant.
func topicRefusal(p access.Principal, op access.Op, topic string) *refusal {
	switch {
	case !p.Sees(topic):
		return hidden(topic)
	case !p.Allows(op, topic):
		return &refusal{connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s %s may not %s topic %q: ask an admin for a %s grant", p.Kind, p.Principal, op, topic, op)), reasonOp}
	}
	return nil
}

// hidden is the refusal for a topic the caller does not see: the very
// error of a topic this SPU does not hold.
func hidden(topic string) *refusal {
	return &refusal{connect.NewError(connect.CodeNotFound, replica.UnknownTopicError(topic)), reasonHidden}
}

// Allow reports whether the caller of ctx may perform op on topic: nil, or
// the Connect error to return (logged and counted). Handlers call it for
// rules marked handler.
func (a *Authorizer) Allow(ctx context.Context, op access.Op, topic string) error {
	if a == nil {
		return nil
	}
	l := a.acl.Load()
	p, ref := a.principal(ctx, l)
	if ref == nil && !p.Internal() {
		ref = topicRefusal(p, op, topic)
	}
	if ref != nil {
		return a.refuse(ctx, "", ref, "topic", topic, "op", string(op))
	}
	return nil
}

// Sees reports whether the caller of ctx may learn that topic exists.
func (a *Authorizer) Sees(ctx context.Context, topic string) bool {
	if a == nil {
		return true
	}
	p, ref := a.principal(ctx, a.acl.Load())
	return ref == nil && (p.Internal() || p.Sees(topic))
}

// topicOf returns the topic a request message names.
func topicOf(msg any) string {
	if m, ok := msg.(interface{ GetTopic() string }); ok {
		return m.GetTopic()
	}
	return ""
}

// Interceptor returns the Connect interceptor that applies the rules to
// every call of the handlers it is given to.
func (a *Authorizer) Interceptor() connect.Interceptor { return interceptor{a} }

type interceptor struct{ a *Authorizer }

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		proc := req.Spec().Procedure
		topic := topicOf(req.Any())
		if ref := i.a.check(ctx, i.a.acl.Load(), proc, ruleFor(proc), topic); ref != nil {
			return nil, i.a.refuse(ctx, proc, ref, "topic", topic)
		}
		return next(ctx, req)
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler checks the caller at once, and the topic of the
// first request message when the rule names an operation. While the
// stream lasts it checks again with every new access list, and ends the
// stream with the refusal when access is lost.
func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	a := i.a
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		proc := conn.Spec().Procedure
		r := ruleFor(proc)
		if ref := a.check(ctx, a.acl.Load(), proc, rule{internal: r.internal}, ""); ref != nil {
			return a.refuse(ctx, proc, ref)
		}
		if r.op == "" && !r.sees {
			return next(ctx, conn)
		}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w := &checkedConn{StreamingHandlerConn: conn, a: a, ctx: ctx, proc: proc, rule: r, topic: make(chan string, 1)}
		stop, done := make(chan struct{}), make(chan struct{})
		var revoked *connect.Error // set by the watcher before done closes
		go func() {
			defer close(done)
			var topic string
			select {
			case topic = <-w.topic:
			case <-stop:
				return
			}
			for {
				l := a.acl.Load()
				if ref := a.check(ctx, l, proc, r, topic); ref != nil {
					revoked = a.refuse(ctx, proc, ref, "topic", topic, "during_stream", true)
					cancel()
					return
				}
				select {
				case <-l.changed:
				case <-stop:
					return
				}
			}
		}()
		err := next(sctx, w)
		close(stop)
		<-done
		if revoked != nil {
			return revoked
		}
		return err
	}
}

// checkedConn checks the topic of the first message received.
type checkedConn struct {
	connect.StreamingHandlerConn
	a     *Authorizer
	ctx   context.Context
	proc  string
	rule  rule
	topic chan string // the checked topic, for the watcher

	once sync.Once
}

func (c *checkedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	var err error
	c.once.Do(func() {
		topic := topicOf(msg)
		if ref := c.a.check(c.ctx, c.a.acl.Load(), c.proc, c.rule, topic); ref != nil {
			err = c.a.refuse(c.ctx, c.proc, ref, "topic", topic)
			return
		}
		c.topic <- topic
	})
	return err
}
