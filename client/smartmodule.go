package client

import (
	"context"
	"strings"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
)

// SmartModule describes one version of a SmartModule in the registry of
// the caller's tenant: a WebAssembly module that filters, maps or
// aggregates records inline in a stream. Versions never change.
type SmartModule struct {
	// Name is "group/name".
	Name    string `json:"name" yaml:"name"`
	Version string `json:"version" yaml:"version"`
	// Kind is "filter", "map", "filter-map", "array-map" or "aggregate".
	Kind string `json:"kind" yaml:"kind"`
	// Digest is "sha256:" and the hex SHA-256 of the module's bytes.
	Digest    string `json:"digest" yaml:"digest"`
	SizeBytes int64  `json:"size_bytes" yaml:"size_bytes"`
	// ABIVersion is the SmartModule ABI version the module was built for.
	ABIVersion  int32     `json:"abi_version" yaml:"abi_version"`
	Description string    `json:"description,omitempty" yaml:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero" yaml:"created_at,omitempty"`
	// CreatedBy is "user:<email>", "service-account:<name>", or empty on
	// an insecure control plane.
	CreatedBy string `json:"created_by,omitempty" yaml:"created_by,omitempty"`
}

// Ref returns "group/name@version", which names this version.
func (m SmartModule) Ref() string { return m.Name + "@" + m.Version }

// SmartModuleSpec is a module to create.
type SmartModuleSpec struct {
	// Name is "group/name" (lower-case letters, digits and '-', each
	// starting with a letter), or "group/name@version".
	Name string
	// Version is a semantic version such as "1.2.0"; empty takes the
	// version in Name, or else "0.1.0".
	Version string
	// Wasm is the module, at most 32 MiB, as `spate smartmodule build`
	// or `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared` makes it.
	Wasm        []byte
	Description string
}

// smartModules returns the control plane's SmartModuleService, or nil
// without a control plane.
func (c *Client) smartModules() controlplanev1connect.SmartModuleServiceClient {
	if c.controlPlane == "" {
		return nil
	}
	return controlplanev1connect.NewSmartModuleServiceClient(c.cpHTTP, c.controlPlane, c.cpOps...)
}

// CreateSmartModule uploads a module to the registry of the caller's
// tenant. The control plane validates it first: an error for which
// IsInvalidArgument is true says why it is not a SmartModule of a
// supported ABI version, or what is wrong with the name or version;
// IsAlreadyExists is true when the version exists (versions never
// change: create another).
func (c *Client) CreateSmartModule(ctx context.Context, spec SmartModuleSpec) (SmartModule, error) {
	sm := c.smartModules()
	if sm == nil {
		return SmartModule{}, ErrNoControlPlane
	}
	resp, err := sm.CreateSmartModule(ctx, connect.NewRequest(&controlplanev1.CreateSmartModuleRequest{
		Name: spec.Name, Version: spec.Version, Wasm: spec.Wasm, Description: spec.Description,
	}))
	if err != nil {
		return SmartModule{}, c.adminError("create SmartModule", spec.Name, err)
	}
	return smartModuleFromProto(resp.Msg.GetSmartmodule()), nil
}

// ListSmartModules lists every version of the tenant's modules, by name,
// then by version (semantic-version order).
func (c *Client) ListSmartModules(ctx context.Context) ([]SmartModule, error) {
	sm := c.smartModules()
	if sm == nil {
		return nil, ErrNoControlPlane
	}
	resp, err := sm.ListSmartModules(ctx, connect.NewRequest(&controlplanev1.ListSmartModulesRequest{}))
	if err != nil {
		return nil, c.adminError("list SmartModules", "", err)
	}
	out := make([]SmartModule, 0, len(resp.Msg.GetSmartmodules()))
	for _, m := range resp.Msg.GetSmartmodules() {
		out = append(out, smartModuleFromProto(m))
	}
	return out, nil
}

// DescribeSmartModule describes the module ref names: "group/name@version",
// or "group/name" for its highest version. IsNotFound is true of the error
// when there is none (also when another tenant has one of that name).
func (c *Client) DescribeSmartModule(ctx context.Context, ref string) (SmartModule, error) {
	sm := c.smartModules()
	if sm == nil {
		return SmartModule{}, ErrNoControlPlane
	}
	resp, err := sm.GetSmartModule(ctx, connect.NewRequest(&controlplanev1.GetSmartModuleRequest{Name: ref}))
	if err != nil {
		return SmartModule{}, c.adminError("describe SmartModule", ref, err)
	}
	return smartModuleFromProto(resp.Msg.GetSmartmodule()), nil
}

// DeleteSmartModule deletes one version ("group/name@version"), or every
// version of a name ("group/name"), and returns the versions deleted.
// Streams already running a deleted module go on with it.
func (c *Client) DeleteSmartModule(ctx context.Context, ref string) ([]SmartModule, error) {
	sm := c.smartModules()
	if sm == nil {
		return nil, ErrNoControlPlane
	}
	resp, err := sm.DeleteSmartModule(ctx, connect.NewRequest(&controlplanev1.DeleteSmartModuleRequest{Name: ref}))
	if err != nil {
		return nil, c.adminError("delete SmartModule", ref, err)
	}
	out := make([]SmartModule, 0, len(resp.Msg.GetDeleted()))
	for _, m := range resp.Msg.GetDeleted() {
		out = append(out, smartModuleFromProto(m))
	}
	return out, nil
}

// DownloadSmartModule returns a module and its WebAssembly bytes. ref is
// "group/name@version", "group/name" (the highest version), or a digest
// "sha256:<hex>" of one of the tenant's modules.
func (c *Client) DownloadSmartModule(ctx context.Context, ref string) (SmartModule, []byte, error) {
	sm := c.smartModules()
	if sm == nil {
		return SmartModule{}, nil, ErrNoControlPlane
	}
	req := &controlplanev1.DownloadSmartModuleRequest{}
	if strings.HasPrefix(ref, "sha256:") {
		req.Ref = &controlplanev1.DownloadSmartModuleRequest_Digest{Digest: ref}
	} else {
		req.Ref = &controlplanev1.DownloadSmartModuleRequest_Name{Name: ref}
	}
	resp, err := sm.DownloadSmartModule(ctx, connect.NewRequest(req))
	if err != nil {
		return SmartModule{}, nil, c.adminError("download SmartModule", ref, err)
	}
	return smartModuleFromProto(resp.Msg.GetSmartmodule()), resp.Msg.GetWasm(), nil
}

func smartModuleFromProto(m *controlplanev1.SmartModule) SmartModule {
	out := SmartModule{
		Name:        m.GetName(),
		Version:     m.GetVersion(),
		Kind:        m.GetKind(),
		Digest:      m.GetDigest(),
		SizeBytes:   m.GetSizeBytes(),
		ABIVersion:  m.GetAbiVersion(),
		Description: m.GetDescription(),
		CreatedBy:   m.GetCreatedBy(),
	}
	if m.GetCreatedAt() != nil {
		out.CreatedAt = m.GetCreatedAt().AsTime()
	}
	return out
}
