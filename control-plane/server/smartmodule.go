package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
)

// Limits of the SmartModule registry.
const (
	// MaxSmartModuleBytes is the largest module the registry accepts.
	MaxSmartModuleBytes = 32 << 20
	// SmartModuleReadMaxBytes is the read limit of the SmartModuleService
	// handler: a largest module and the rest of its request.
	SmartModuleReadMaxBytes = MaxSmartModuleBytes + 1<<20
	// maxSmartModuleDescription bounds a description, in bytes.
	maxSmartModuleDescription = 1024
	// smartModuleUploadTTL bounds an upload of a blob: past it, a delete
	// may remove the blob the upload wrote.
	smartModuleUploadTTL = 10 * time.Minute
	// smartModuleDeleteTTL bounds a delete of a blob: past it, uploads of
	// the same bytes go on.
	smartModuleDeleteTTL = time.Minute
)

// LocalTenant is the tenant of an insecure control plane's SmartModules:
// it has no tenants, and every caller shares one registry.
const LocalTenant = "local"

// blobDir is where the control plane keeps blobs: BlobDir, or
// DataDir/blobs, or "" without either.
func (c Config) blobDir() string {
	if c.BlobDir != "" {
		return c.BlobDir
	}
	if c.DataDir != "" {
		return filepath.Join(c.DataDir, "blobs")
	}
	return ""
}

// smartModuleService implements SmartModuleService: metadata in etcd
// (package tenancy), bytes in the control plane's blob store under
// smartmodules/<tenant>/<sha256 hex>.wasm, written before the metadata.
//
// Who may do what: a tenant's people (owners, admins, members) list,
// describe, download, create and delete its modules; its service accounts
// list, describe and download them; its SPUs, with their certificates,
// describe and download them. The operator and the control planes' own
// certificates have no modules. On an insecure control plane everyone
// shares LocalTenant's. Another tenant's modules answer exactly as
// missing ones: every key is the caller's tenant's.
type smartModuleService struct {
	s    *Server
	meta *tenancy.Store

	blobsOnce sync.Once
	blobs     objstore.Store
	blobsErr  error
}

var _ controlplanev1connect.SmartModuleServiceHandler = (*smartModuleService)(nil)

// newSmartModuleService returns the service of s; the blob store opens on
// first use.
func newSmartModuleService(s *Server) *smartModuleService {
	meta := s.tenancy
	if meta == nil {
		meta = tenancy.New(s.client)
	}
	return &smartModuleService{s: s, meta: meta}
}

// store returns the blob store, opened on first use.
func (ss *smartModuleService) store() (objstore.Store, error) {
	ss.blobsOnce.Do(func() {
		dir := ss.s.cfg.blobDir()
		if dir == "" {
			ss.blobsErr = connect.NewError(connect.CodeFailedPrecondition, errors.New("this control plane has no blob store for SmartModules: start it with a data directory or a blob directory"))
			return
		}
		st, err := local.New(dir)
		if err != nil {
			ss.s.logger.Error("open blob store", "dir", dir, "err", err)
			ss.blobsErr = connect.NewError(connect.CodeUnavailable, errors.New("the control plane's blob store is unavailable"))
			return
		}
		ss.blobs = st
	})
	return ss.blobs, ss.blobsErr
}

// smartModuleHandler returns the path and handler of the
// SmartModuleService. Its read limit admits the largest module, and its
// answers are never compressed: modules are downloaded by SPUs close to
// the control plane, where gzip costs far more time (0.8 s for a 3 MiB
// module on a loaded core) than the bytes it saves; requests compressed
// by the client are still read.
func (s *Server) smartModuleHandler() (string, http.Handler) {
	return controlplanev1connect.NewSmartModuleServiceHandler(newSmartModuleService(s),
		connect.WithReadMaxBytes(SmartModuleReadMaxBytes),
		connect.WithCompressMinBytes(math.MaxInt))
}

// smOp is what a call does to the registry, for authorization.
type smOp int

const (
	smList smOp = iota
	smRead
	smWrite
)

// scope authorizes a call and returns the tenant it acts on and who the
// caller is, as CreatedBy says.
func (ss *smartModuleService) scope(ctx context.Context, procedure string, op smOp) (tenant, who string, err error) {
	s := ss.s
	if s.cfg.Insecure {
		return LocalTenant, "", nil
	}
	c, err := s.caller(ctx, procedure)
	if err != nil {
		return "", "", err
	}
	deny := func(msg string) error {
		return s.denied(c, procedure, connect.NewError(connect.CodePermissionDenied, errors.New(msg)))
	}
	switch c.Kind {
	case identity.User:
		return c.Tenant, "user:" + c.Name, nil
	case identity.ServiceAccount:
		if op == smWrite {
			return "", "", deny("service accounts may list, describe and download SmartModules, not create or delete them: ask a member of the tenant")
		}
		return c.Tenant, "service-account:" + c.Name, nil
	case identity.SPU:
		if op != smRead {
			return "", "", deny("SPUs may only describe and download SmartModules")
		}
		return c.Tenant, "", nil
	}
	return "", "", deny(fmt.Sprintf("credentials of kind %q have no SmartModules", c.Kind))
}

// blobKey is where a tenant's module bytes live in the blob store.
func blobKey(tenant, hexDigest string) string {
	return "smartmodules/" + tenant + "/" + hexDigest + ".wasm"
}

func smartModuleView(m tenancy.SmartModule) *controlplanev1.SmartModule {
	return &controlplanev1.SmartModule{
		Name:        m.Name,
		Version:     m.Version,
		Kind:        m.Kind,
		Digest:      m.Digest,
		SizeBytes:   m.SizeBytes,
		AbiVersion:  int32(m.ABIVersion),
		Description: m.Description,
		CreatedAt:   ts(m.CreatedAt),
		CreatedBy:   m.CreatedBy,
	}
}

// smartModuleNotFound is the one answer for a module that does not exist
// or is another tenant's.
func smartModuleNotFound(ref string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("SmartModule %q not found; `spate smartmodule list` shows yours", ref))
}

// CreateSmartModule implements SmartModuleService.
func (ss *smartModuleService) CreateSmartModule(ctx context.Context, req *connect.Request[controlplanev1.CreateSmartModuleRequest]) (*connect.Response[controlplanev1.CreateSmartModuleResponse], error) {
	s := ss.s
	tenant, who, err := ss.scope(ctx, req.Spec().Procedure, smWrite)
	if err != nil {
		return nil, err
	}
	msg := req.Msg
	name, version := msg.Name, msg.Version
	if n, v, ok := strings.Cut(name, "@"); ok {
		if version != "" && version != v {
			return nil, invalidArg(fmt.Errorf("the name %q and the version %q disagree: give the version once", name, version))
		}
		name, version = n, v
	}
	if version == "" {
		version = DefaultSmartModuleVersion
	}
	if err := checkSmartModuleName(name); err != nil {
		return nil, invalidArg(err)
	}
	if err := checkVersion(version); err != nil {
		return nil, invalidArg(err)
	}
	if len(msg.Description) > maxSmartModuleDescription || !utf8.ValidString(msg.Description) {
		return nil, invalidArg(fmt.Errorf("description: at most %d bytes of UTF-8", maxSmartModuleDescription))
	}
	ref := name + "@" + version
	switch {
	case len(msg.Wasm) == 0:
		return nil, invalidArg(fmt.Errorf("SmartModule %s: the module is empty", ref))
	case len(msg.Wasm) > MaxSmartModuleBytes:
		return nil, invalidArg(fmt.Errorf("SmartModule %s: the module is %d bytes; at most %d (32 MiB) are accepted", ref, len(msg.Wasm), MaxSmartModuleBytes))
	}
	info, err := abi.Inspect(msg.Wasm)
	if err != nil {
		return nil, invalidArg(fmt.Errorf("SmartModule %s is refused: %s", ref, strings.TrimPrefix(err.Error(), "abi: ")))
	}
	exists := func() error {
		return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("SmartModule %s exists already and versions never change: create another version (--version)", ref))
	}
	switch _, err := ss.meta.GetSmartModule(ctx, tenant, name, version); {
	case err == nil:
		return nil, exists()
	case !errors.Is(err, tenancy.ErrNotFound):
		return nil, s.internal(ctx, "read SmartModule", err)
	}
	blobs, err := ss.store()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(msg.Wasm)
	hexDigest := hex.EncodeToString(sum[:])
	m := tenancy.SmartModule{
		Tenant:      tenant,
		Name:        name,
		Version:     version,
		Kind:        info.Kind.String(),
		Digest:      "sha256:" + hexDigest,
		SizeBytes:   int64(len(msg.Wasm)),
		ABIVersion:  info.Version,
		CreatedAt:   time.Now().UTC().Truncate(time.Millisecond),
		CreatedBy:   who,
		Description: msg.Description,
	}
	up, err := ss.beginUpload(ctx, tenant, hexDigest)
	if err != nil {
		return nil, err
	}
	// The blob first, then the version that refers to it. Blobs are named
	// by their digest: one already there of the right size is this one.
	key := blobKey(tenant, hexDigest)
	if oi, err := blobs.Head(ctx, key); err != nil || oi.Size != m.SizeBytes {
		if err := blobs.Put(ctx, key, bytes.NewReader(msg.Wasm), m.SizeBytes); err != nil {
			ss.meta.EndSmartModuleUpload(up)
			return nil, ss.blobError(ctx, "store SmartModule", err)
		}
	}
	switch err := ss.meta.CreateSmartModule(ctx, m, up); {
	case errors.Is(err, tenancy.ErrExists):
		// Another create of the same version won the race: drop the blob
		// unless a version uses it.
		ss.releaseBlob(tenant, hexDigest)
		return nil, exists()
	case err != nil:
		ss.releaseBlob(tenant, hexDigest)
		return nil, s.internal(ctx, "create SmartModule", err)
	}
	s.logger.Info("smartmodule created", "tenant", tenant, "smartmodule", ref, "kind", m.Kind, "digest", m.Digest, "bytes", m.SizeBytes, "by", who)
	return connect.NewResponse(&controlplanev1.CreateSmartModuleResponse{Smartmodule: smartModuleView(m)}), nil
}

// beginUpload marks an upload of a blob, waiting a little for a delete of
// the same blob to end.
func (ss *smartModuleService) beginUpload(ctx context.Context, tenant, hexDigest string) (*tenancy.Upload, error) {
	for delay := 20 * time.Millisecond; ; delay *= 2 {
		up, err := ss.meta.BeginSmartModuleUpload(ctx, tenant, hexDigest, smartModuleUploadTTL)
		if err == nil {
			return up, nil
		}
		if !errors.Is(err, tenancy.ErrBlobBusy) {
			return nil, ss.s.internal(ctx, "begin SmartModule upload", err)
		}
		if delay > 2*time.Second {
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("the same module is being deleted; try again in a moment"))
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ss.s.internal(ctx, "begin SmartModule upload", ctx.Err())
		}
	}
}

// releaseBlob deletes a tenant's blob if no version and no upload refers
// to it any more. It runs to its end even if the caller's context ends:
// the metadata is gone already. Failures leave the blob (logged).
func (ss *smartModuleService) releaseBlob(tenant, hexDigest string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := ss.s.logger.With("tenant", tenant, "digest", "sha256:"+hexDigest)
	d, err := ss.meta.BeginBlobDelete(ctx, tenant, hexDigest, smartModuleDeleteTTL)
	if errors.Is(err, tenancy.ErrBlobBusy) {
		return // still used, or another delete runs
	}
	if err != nil {
		log.Warn("smartmodule blob kept", "err", err)
		return
	}
	defer ss.meta.EndBlobDelete(d)
	blobs, err := ss.store()
	if err == nil {
		err = blobs.Delete(ctx, blobKey(tenant, hexDigest))
	}
	if err != nil {
		log.Warn("smartmodule blob kept", "err", err)
		return
	}
	log.Info("smartmodule blob deleted")
}

// blobError is the answer to a failure of the blob store.
func (ss *smartModuleService) blobError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ss.s.internal(ctx, op, err)
	}
	ss.s.logger.Error(op, "err", err)
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: the control plane's blob store is unavailable; try again", op))
}

// sortModules orders modules by name, then by version precedence.
func sortModules(ms []tenancy.SmartModule) {
	slices.SortFunc(ms, func(a, b tenancy.SmartModule) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return compareSemver(a.Version, b.Version)
	})
}

// resolve returns the module a reference names: that version, or the
// highest version of the name by semantic-version precedence.
func (ss *smartModuleService) resolve(ctx context.Context, tenant, ref string) (tenancy.SmartModule, error) {
	r, err := parseSmartModuleRef(ref)
	if err != nil {
		return tenancy.SmartModule{}, invalidArg(err)
	}
	if r.version != "" {
		m, err := ss.meta.GetSmartModule(ctx, tenant, r.name, r.version)
		if errors.Is(err, tenancy.ErrNotFound) {
			return m, smartModuleNotFound(ref)
		}
		if err != nil {
			return m, ss.s.internal(ctx, "read SmartModule", err)
		}
		return m, nil
	}
	all, err := ss.meta.SmartModuleVersions(ctx, tenant, r.name)
	if err != nil {
		return tenancy.SmartModule{}, ss.s.internal(ctx, "read SmartModule", err)
	}
	if len(all) == 0 {
		return tenancy.SmartModule{}, smartModuleNotFound(ref)
	}
	sortModules(all)
	return all[len(all)-1], nil
}

// ListSmartModules implements SmartModuleService.
func (ss *smartModuleService) ListSmartModules(ctx context.Context, req *connect.Request[controlplanev1.ListSmartModulesRequest]) (*connect.Response[controlplanev1.ListSmartModulesResponse], error) {
	tenant, _, err := ss.scope(ctx, req.Spec().Procedure, smList)
	if err != nil {
		return nil, err
	}
	all, err := ss.meta.ListSmartModules(ctx, tenant)
	if err != nil {
		return nil, ss.s.internal(ctx, "list SmartModules", err)
	}
	sortModules(all)
	out := &controlplanev1.ListSmartModulesResponse{}
	for _, m := range all {
		out.Smartmodules = append(out.Smartmodules, smartModuleView(m))
	}
	return connect.NewResponse(out), nil
}

// GetSmartModule implements SmartModuleService.
func (ss *smartModuleService) GetSmartModule(ctx context.Context, req *connect.Request[controlplanev1.GetSmartModuleRequest]) (*connect.Response[controlplanev1.GetSmartModuleResponse], error) {
	tenant, _, err := ss.scope(ctx, req.Spec().Procedure, smRead)
	if err != nil {
		return nil, err
	}
	m, err := ss.resolve(ctx, tenant, req.Msg.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlplanev1.GetSmartModuleResponse{Smartmodule: smartModuleView(m)}), nil
}

// DeleteSmartModule implements SmartModuleService.
func (ss *smartModuleService) DeleteSmartModule(ctx context.Context, req *connect.Request[controlplanev1.DeleteSmartModuleRequest]) (*connect.Response[controlplanev1.DeleteSmartModuleResponse], error) {
	s := ss.s
	tenant, who, err := ss.scope(ctx, req.Spec().Procedure, smWrite)
	if err != nil {
		return nil, err
	}
	ref := req.Msg.Name
	r, err := parseSmartModuleRef(ref)
	if err != nil {
		return nil, invalidArg(err)
	}
	var victims []tenancy.SmartModule
	if r.version != "" {
		m, err := ss.resolve(ctx, tenant, ref)
		if err != nil {
			return nil, err
		}
		victims = append(victims, m)
	} else {
		if victims, err = ss.meta.SmartModuleVersions(ctx, tenant, r.name); err != nil {
			return nil, s.internal(ctx, "read SmartModule", err)
		}
		sortModules(victims)
	}
	out := &controlplanev1.DeleteSmartModuleResponse{}
	digests := map[string]bool{}
	for _, m := range victims {
		ok, err := ss.meta.DeleteSmartModule(ctx, m)
		if err != nil {
			return nil, s.internal(ctx, "delete SmartModule", err)
		}
		if ok { // else another call deleted it meanwhile
			out.Deleted = append(out.Deleted, smartModuleView(m))
			digests[m.DigestHex()] = true
			s.logger.Info("smartmodule deleted", "tenant", tenant, "smartmodule", m.Ref(), "digest", m.Digest, "by", who)
		}
	}
	if len(out.Deleted) == 0 {
		return nil, smartModuleNotFound(ref)
	}
	for d := range digests {
		ss.releaseBlob(tenant, d)
	}
	return connect.NewResponse(out), nil
}

// DownloadSmartModule implements SmartModuleService.
func (ss *smartModuleService) DownloadSmartModule(ctx context.Context, req *connect.Request[controlplanev1.DownloadSmartModuleRequest]) (*connect.Response[controlplanev1.DownloadSmartModuleResponse], error) {
	s := ss.s
	tenant, _, err := ss.scope(ctx, req.Spec().Procedure, smRead)
	if err != nil {
		return nil, err
	}
	var m tenancy.SmartModule
	switch ref := req.Msg.Ref.(type) {
	case *controlplanev1.DownloadSmartModuleRequest_Name:
		if m, err = ss.resolve(ctx, tenant, ref.Name); err != nil {
			return nil, err
		}
	case *controlplanev1.DownloadSmartModuleRequest_Digest:
		h, ok := strings.CutPrefix(ref.Digest, "sha256:")
		if !ok || tenancy.CheckDigestHex(h) != nil {
			return nil, invalidArg(fmt.Errorf("digest %q: use sha256: and 64 lower-case hex digits", ref.Digest))
		}
		m, err = ss.meta.SmartModuleByDigest(ctx, tenant, h)
		if errors.Is(err, tenancy.ErrNotFound) {
			return nil, smartModuleNotFound(ref.Digest)
		}
		if err != nil {
			return nil, s.internal(ctx, "read SmartModule", err)
		}
	default:
		return nil, invalidArg(errors.New("name the module (group/name[@version]) or give its digest (sha256:...)"))
	}
	blobs, err := ss.store()
	if err != nil {
		return nil, err
	}
	rc, err := blobs.Get(ctx, blobKey(tenant, m.DigestHex()), 0, -1)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			s.logger.Error("smartmodule blob missing", "tenant", tenant, "smartmodule", m.Ref(), "digest", m.Digest)
			return nil, connect.NewError(connect.CodeDataLoss, fmt.Errorf("the bytes of SmartModule %s are missing from the control plane's blob store; create the module again under a new version", m.Ref()))
		}
		return nil, ss.blobError(ctx, "read SmartModule", err)
	}
	defer rc.Close()
	wasm, err := io.ReadAll(io.LimitReader(rc, MaxSmartModuleBytes+1))
	if err != nil {
		return nil, ss.blobError(ctx, "read SmartModule", err)
	}
	if sum := sha256.Sum256(wasm); "sha256:"+hex.EncodeToString(sum[:]) != m.Digest {
		s.logger.Error("smartmodule blob corrupt", "tenant", tenant, "smartmodule", m.Ref(), "digest", m.Digest, "bytes", len(wasm))
		return nil, connect.NewError(connect.CodeDataLoss, fmt.Errorf("the bytes of SmartModule %s in the control plane's blob store do not match its digest", m.Ref()))
	}
	return connect.NewResponse(&controlplanev1.DownloadSmartModuleResponse{Smartmodule: smartModuleView(m), Wasm: wasm}), nil
}
