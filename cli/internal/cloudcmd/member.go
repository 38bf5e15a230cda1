package cloudcmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/auth/access"
	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
)

func newCmdMember(o *opts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Add, list and remove the people of your tenant",
		Long: `Members are the people of a tenant. Owners and admins manage members,
service accounts and clusters; members use clusters. Adding a person prints a
one-time password for the control plane's sign-in page.`,
		Example: `  spate cloud member add bob@example.com --role member
  spate cloud member list
  spate cloud member remove bob@example.com`,
	}
	cmd.AddCommand(newCmdMemberAdd(o), newCmdMemberList(o), newCmdMemberRemove(o))
	return cmd
}

func roleName(r controlplanev1.Role) string {
	if r == controlplanev1.Role_ROLE_UNSPECIFIED {
		return "-"
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

func parseRole(s string) (controlplanev1.Role, error) {
	r, err := access.ParseRole(strings.ToLower(s))
	if err != nil {
		return 0, cmdutil.Usagef("--role %q: use owner, admin or member", s)
	}
	switch r {
	case access.Owner:
		return controlplanev1.Role_ROLE_OWNER, nil
	case access.Admin:
		return controlplanev1.Role_ROLE_ADMIN, nil
	}
	return controlplanev1.Role_ROLE_MEMBER, nil
}

func memberNotFound(email string) string {
	return fmt.Sprintf("No member %q in your tenant: see `spate cloud member list`.", email)
}

func newCmdMemberAdd(o *opts) *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "add EMAIL --role ROLE",
		Short: "Add a person to your tenant",
		Long: `Add adds a person with a role (owner, admin or member) and prints a one-time
password for the control plane's sign-in page, to standard output, once.`,
		Example: "  spate cloud member add bob@example.com --role member\n  spate cloud member add carol@example.com --role admin",
		Args:    oneName("email address"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return cmdutil.Usagef("--role is required: owner, admin or member")
			}
			r, err := parseRole(role)
			if err != nil {
				return err
			}
			if !strings.Contains(args[0], "@") {
				return cmdutil.Usagef("%q is not an email address", args[0])
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			resp, err := s.Tenants().AddMember(cmd.Context(), connect.NewRequest(&controlplanev1.AddMemberRequest{Email: args[0], Role: r}))
			if err != nil {
				return explain(err, "")
			}
			m := resp.Msg.GetMember()
			fmt.Fprintf(o.f.IO.ErrOut, "Added %s as %s. Give them this one-time password for the sign-in page; it is not shown again:\n", m.GetEmail(), roleName(m.GetRole()))
			fmt.Fprintln(o.f.IO.Out, resp.Msg.GetPassword())
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "owner, admin or member")
	return cmd
}

type memberView struct {
	ID        string    `json:"id" yaml:"id"`
	Email     string    `json:"email" yaml:"email"`
	Role      string    `json:"role" yaml:"role"`
	CreatedAt time.Time `json:"created_at,omitzero" yaml:"created_at,omitempty"`
}

func newCmdMemberList(o *opts) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the people of your tenant",
		Example: "  spate cloud member list\n  spate cloud member list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			resp, err := s.Tenants().ListMembers(cmd.Context(), connect.NewRequest(&controlplanev1.ListMembersRequest{}))
			if err != nil {
				return explain(err, "")
			}
			views := []memberView{}
			for _, m := range resp.Msg.GetMembers() {
				v := memberView{ID: m.GetId(), Email: m.GetEmail(), Role: roleName(m.GetRole())}
				if m.GetCreatedAt() != nil {
					v.CreatedAt = m.GetCreatedAt().AsTime()
				}
				views = append(views, v)
			}
			return out.Write(o.f.IO.Out, views, func() error {
				rows := make([][]string, 0, len(views))
				for _, v := range views {
					rows = append(rows, []string{v.Email, v.Role, v.ID, when(v.CreatedAt)})
				}
				return format.WriteTable(o.f.IO.Out, []string{"EMAIL", "ROLE", "ID", "ADDED"}, rows)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func newCmdMemberRemove(o *opts) *cobra.Command {
	return &cobra.Command{
		Use:     "remove EMAIL",
		Aliases: []string{"rm"},
		Short:   "Remove a person; their logins, keys and certificates stop working",
		Example: "  spate cloud member remove bob@example.com",
		Args:    oneName("email address"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.session()
			if err != nil {
				return err
			}
			if _, err := s.Tenants().RemoveMember(cmd.Context(), connect.NewRequest(&controlplanev1.RemoveMemberRequest{Email: args[0]})); err != nil {
				return explain(err, memberNotFound(args[0]))
			}
			fmt.Fprintf(o.f.IO.Out, "member %s removed\n", args[0])
			return nil
		},
	}
}

// parseGrant reads TOPIC-PATTERN:OP[,OP...], for example
// "orders*:produce,consume".
func parseGrant(s string) (*controlplanev1.Grant, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return nil, cmdutil.Usagef("--grant %q: use TOPIC:OPS, such as 'orders*:produce,consume' or '*:consume'", s)
	}
	g := access.Grant{Topic: s[:i]}
	pb := &controlplanev1.Grant{Topic: s[:i]}
	for _, op := range strings.Split(s[i+1:], ",") {
		parsed, err := access.ParseOp(strings.TrimSpace(op))
		if err != nil {
			return nil, cmdutil.Usagef("--grant %q: operation %q: use produce, consume or admin", s, op)
		}
		g.Ops = append(g.Ops, parsed)
		switch parsed {
		case access.Produce:
			pb.Ops = append(pb.Ops, controlplanev1.TopicOp_TOPIC_OP_PRODUCE)
		case access.Consume:
			pb.Ops = append(pb.Ops, controlplanev1.TopicOp_TOPIC_OP_CONSUME)
		case access.Administer:
			pb.Ops = append(pb.Ops, controlplanev1.TopicOp_TOPIC_OP_ADMIN)
		}
	}
	if err := g.Validate(); err != nil {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("--grant %q: %w", s, err)}
	}
	return pb, nil
}

func grantString(g *controlplanev1.Grant) string {
	ops := make([]string, 0, len(g.GetOps()))
	for _, op := range g.GetOps() {
		ops = append(ops, strings.ToLower(strings.TrimPrefix(op.String(), "TOPIC_OP_")))
	}
	return g.GetTopic() + ":" + strings.Join(ops, ",")
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeCanceled
}
