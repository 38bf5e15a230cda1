// Package provision starts and keeps the SPUs of a cluster running. The
// control plane asks a Provisioner for a cluster of N SPUs and reads back
// their state; how they run (local processes here, a StatefulSet on
// Kubernetes later) is the Provisioner's business.
package provision

import "context"

// ClusterSpec is what the control plane wants running.
type ClusterSpec struct {
	// Name identifies the cluster; it names folders and log files.
	Name string
	// SPUs is how many SPUs to run, with ids 0..SPUs-1.
	SPUs int
	// ControlPlane is the URL the SPUs register with.
	ControlPlane string
	// Credentials, when set, returns the certificates SPU id serves and
	// authenticates with; the provisioner calls it each time it starts
	// the SPU, so a restarted SPU has a fresh certificate. Nil runs the
	// SPUs without TLS (development only).
	Credentials func(id int32) (Credentials, error)
	// Tier is the cluster's object store of tiered storage. The zero
	// value leaves the choice to the provisioner (Local: a folder per
	// cluster).
	Tier Tier
}

// Tier is where a cluster's SPUs keep tiered storage: a folder (Dir) or
// an S3 bucket (S3Bucket), not both.
type Tier struct {
	// Dir is the folder of a local object store holding the cluster's
	// objects.
	Dir string
	// S3Endpoint, S3Region, S3Bucket, S3Prefix and S3PathStyle are the
	// SPUs' --tier-s3-* flags; S3Prefix is the cluster's own key prefix.
	S3Endpoint  string
	S3Region    string
	S3Bucket    string
	S3Prefix    string
	S3PathStyle bool
	// S3AccessKey and S3SecretKey, when set, are the only credentials the
	// SPUs get (in their environment, never on a command line); empty,
	// the SPUs use the AWS default chain of their own environment.
	S3AccessKey string
	S3SecretKey string
}

// IsZero reports whether t names no store.
func (t Tier) IsZero() bool { return t.Dir == "" && t.S3Bucket == "" }

// Credentials are an SPU's certificates, in PEM.
type Credentials struct {
	// CertPEM is the SPU's certificate chain (leaf, then the cluster CA)
	// and KeyPEM its private key.
	CertPEM, KeyPEM []byte
	// ClusterCAPEM is the cluster CA, the only one the SPU trusts for
	// clients and peer SPUs.
	ClusterCAPEM []byte
	// ControlPlaneCAPEM is the CA the control plane's certificate chains
	// to.
	ControlPlaneCAPEM []byte
}

// SPUState is one provisioned SPU as the provisioner sees it.
type SPUState struct {
	ID int32
	// Address is the URL clients use to reach the SPU.
	Address string
	// Running is false while the SPU is being (re)started.
	Running bool
	// Restarts counts how often the SPU was restarted after dying.
	Restarts int
	// LastError says why the SPU last failed to start or died, if it did.
	LastError string
}

// Provisioner runs the SPUs of clusters. Implementations are safe for
// concurrent use.
type Provisioner interface {
	// Ensure makes the cluster match spec: starts missing SPUs, stops
	// surplus ones. It is idempotent and returns once the SPUs were
	// started (not necessarily registered). An SPU that dies later is
	// restarted by the provisioner on its own.
	Ensure(ctx context.Context, spec ClusterSpec) error
	// State returns the SPUs of a cluster, ordered by id.
	State(cluster string) []SPUState
	// Delete stops a cluster's SPUs; with deleteData it removes their data.
	Delete(ctx context.Context, cluster string, deleteData bool) error
	// Close stops every SPU it started and waits for them.
	Close() error
}
