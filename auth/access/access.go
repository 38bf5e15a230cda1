// Package access decides what a principal of a tenant may do: manage the
// tenant (its clusters, members, service accounts and keys) and produce to,
// consume from and administer topics. The control plane and the SPUs ask
// the same questions of the same Principal, so a rule holds everywhere.
//
// People have a role in their tenant:
//
//	owner   everything, including the tenant's owners
//	admin   clusters, members (not owners), service accounts, API keys,
//	        and every topic operation
//	member  every topic operation on the tenant's clusters; no management
//
// Service accounts have no role; they hold grants, each a topic pattern and
// the operations allowed on matching topics. A pattern is a topic name, a
// prefix followed by '*', or "*" for every topic.
package access

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spatehq/spate/auth/identity"
)

// Role is a person's role in a tenant.
type Role string

// The roles, from most to least powerful.
const (
	Owner  Role = "owner"
	Admin  Role = "admin"
	Member Role = "member"
)

// ParseRole reads a role by name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(s)); r {
	case Owner, Admin, Member:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q: use owner, admin or member", s)
}

// Op is an operation on a topic.
type Op string

// The topic operations.
const (
	Produce Op = "produce"
	Consume Op = "consume"
	// Administer is creating, changing and deleting topics.
	Administer Op = "admin"
)

// ParseOp reads an operation by name.
func ParseOp(s string) (Op, error) {
	switch o := Op(strings.ToLower(s)); o {
	case Produce, Consume, Administer:
		return o, nil
	}
	return "", fmt.Errorf("unknown operation %q: use produce, consume or admin", s)
}

// Grant allows Ops on the topics that Topic matches.
type Grant struct {
	Topic string `json:"topic"`
	Ops   []Op   `json:"ops"`
}

// Validate reports a malformed grant.
func (g Grant) Validate() error {
	p := strings.TrimSuffix(g.Topic, "*")
	if g.Topic == "" || strings.Contains(p, "*") {
		return fmt.Errorf("grant topic %q: use a topic name, a prefix followed by '*', or '*'", g.Topic)
	}
	if len(g.Ops) == 0 {
		return fmt.Errorf("grant on %q: name at least one operation", g.Topic)
	}
	for _, o := range g.Ops {
		if _, err := ParseOp(string(o)); err != nil {
			return fmt.Errorf("grant on %q: %w", g.Topic, err)
		}
	}
	return nil
}

// Matches reports whether the grant's pattern matches topic.
func (g Grant) Matches(topic string) bool {
	if p, ok := strings.CutSuffix(g.Topic, "*"); ok {
		return strings.HasPrefix(topic, p)
	}
	return g.Topic == topic
}

// Principal is a caller with what it may do.
type Principal struct {
	identity.Identity
	// Role is a user's role; empty for other kinds.
	Role Role
	// Grants are a service account's grants; unused for other kinds.
	Grants []Grant
}

// Allows reports whether p may perform op on topic.
func (p Principal) Allows(op Op, topic string) bool {
	switch p.Kind {
	case identity.User:
		return p.Role == Owner || p.Role == Admin || p.Role == Member
	case identity.ServiceAccount:
		for _, g := range p.Grants {
			if g.Matches(topic) && slices.Contains(g.Ops, op) {
				return true
			}
		}
	}
	return false
}

// Sees reports whether p may learn that topic exists: it may perform some
// operation on it.
func (p Principal) Sees(topic string) bool {
	return p.Allows(Produce, topic) || p.Allows(Consume, topic) || p.Allows(Administer, topic)
}

// ManagesTenant reports whether p may manage its tenant's clusters,
// members, service accounts and API keys.
func (p Principal) ManagesTenant() bool {
	return p.Kind == identity.User && (p.Role == Owner || p.Role == Admin)
}

// Internal reports whether p is part of Spate itself (an SPU or the
// control plane), allowed on internal services of its cluster.
func (p Principal) Internal() bool {
	return p.Kind == identity.SPU || p.Kind == identity.ControlPlane
}
