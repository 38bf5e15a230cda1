package server

import (
	"context"
	"sort"
	"sync"

	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/auth/identity"
)

// principalCache keeps, per tenant, the principals pushed to the SPUs of
// the tenant's clusters, and tells waiters when they change (a member
// removed, a grant changed), so SPUs enforce the change within moments.
type principalCache struct {
	mu      sync.Mutex
	lists   map[string][]*internalv1.Principal
	changed map[string]chan struct{}
}

// tenantPrincipals returns the principals of a tenant and a channel closed
// when they change.
func (s *Server) tenantPrincipals(ctx context.Context, tenant string) ([]*internalv1.Principal, <-chan struct{}, error) {
	pc := &s.principals
	pc.mu.Lock()
	if pc.lists == nil {
		pc.lists, pc.changed = map[string][]*internalv1.Principal{}, map[string]chan struct{}{}
	}
	ch, ok := pc.changed[tenant]
	if !ok {
		ch = make(chan struct{})
		pc.changed[tenant] = ch
	}
	list, ok := pc.lists[tenant]
	pc.mu.Unlock()
	if ok {
		return list, ch, nil
	}
	users, err := s.tenancy.ListUsers(ctx, tenant)
	if err != nil {
		return nil, nil, err
	}
	sas, err := s.tenancy.ListServiceAccounts(ctx, tenant)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range users {
		list = append(list, &internalv1.Principal{Kind: string(identity.User), Id: u.ID, Role: string(u.Role)})
	}
	for _, sa := range sas {
		p := &internalv1.Principal{Kind: string(identity.ServiceAccount), Id: sa.ID}
		for _, g := range sa.Grants {
			pg := &internalv1.Grant{Topic: g.Topic}
			for _, op := range g.Ops {
				pg.Ops = append(pg.Ops, string(op))
			}
			p.Grants = append(p.Grants, pg)
		}
		list = append(list, p)
	}
	sort.Slice(list, func(a, b int) bool { return list[a].Id < list[b].Id })
	pc.mu.Lock()
	// Cache only if nothing changed meanwhile.
	if pc.changed[tenant] == ch {
		pc.lists[tenant] = list
	}
	pc.mu.Unlock()
	return list, ch, nil
}

// followPrincipals invalidates cached principals as the store changes,
// until ctx ends.
func (s *Server) followPrincipals(ctx context.Context) {
	for tenant := range s.tenancy.WatchTenants(ctx) {
		pc := &s.principals
		pc.mu.Lock()
		delete(pc.lists, tenant)
		if ch, ok := pc.changed[tenant]; ok {
			close(ch)
			delete(pc.changed, tenant)
		}
		pc.mu.Unlock()
	}
}
