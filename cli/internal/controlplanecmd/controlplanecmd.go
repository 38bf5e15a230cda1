// Package controlplanecmd implements `spate control-plane`: running the
// control plane, with the SPUs of a local cluster when asked.
package controlplanecmd

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/control-plane/provisioner"
	"github.com/spatehq/spate/control-plane/server"
)

// NewCmdControlPlane returns `spate control-plane`.
func NewCmdControlPlane(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "control-plane",
		Aliases: []string{"cp"},
		Short:   "Run the control plane",
		Example: `  spate control-plane serve --data-dir ./spate-data`,
	}
	cmd.AddCommand(newCmdServe(f))
	return cmd
}

// ServeOptions are the flags of `spate control-plane serve`.
type ServeOptions struct {
	IO        *cmdutil.IOStreams
	Config    server.Config
	LogLevel  string
	LogFormat string
	// SPUBasePort gives local SPU i the port SPUBasePort+i (0: free ports).
	SPUBasePort int
	// SPUArgs are extra flags for every local `spate spu serve`.
	SPUArgs []string
	// TierS3KeyFile holds the S3 access key id and secret of tiered
	// storage, one a line.
	TierS3KeyFile string
}

func newCmdServe(f *cmdutil.Factory) *cobra.Command {
	opts := &ServeOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the topic, metadata and SPU registry APIs",
		Long: `Serve runs a control plane in the foreground until interrupted (SIGINT or
SIGTERM).

It serves HTTPS (TLS 1.3) with a certificate from its own root CA, kept in
etcd and created at the first start, and authenticates every call: people
sign in with ` + "`spate cloud login`" + ` (the OAuth device flow, approved on the
control plane's /device page) or an API key; clients of a cluster present
client certificates from the cluster's own CA. At the first start it also
writes the operator's API key to --operator-key-file (default
DATA-DIR/operator.key, mode 0600); only the operator may create tenants:

  curl --cacert ca.pem -H "Authorization: Bearer $(cat DATA-DIR/operator.key)" ...

or ` + "`spate local up`" + `, which does all of this for a development tenant.

Metadata lives in etcd: an embedded single member under --data-dir (or
--etcd-dir) by default, or an external cluster with --etcd-endpoints, which
several control-plane replicas may share. Clusters created by tenants run as
local SPU processes under DATA-DIR/clusters/<cluster-id>, each with its own
certificates, restarted when they die and stopped when the control plane
exits.

--insecure serves plaintext HTTP/2 without any authentication, with one
cluster named "local" (--local-spus N runs it): for development only.

Tiered storage: each cluster's SPUs upload closed segments of topics with
tiering on to the cluster's object store, by default a folder
DATA-DIR/tier/<cluster-id> (--tier-dir changes DATA-DIR/tier). With
--tier-s3-bucket, an S3 bucket instead, every cluster under its own prefix
<tier-s3-prefix>/<tenant-id>/<cluster-id>/, with the credentials of
--tier-s3-access-key-file (the access key id and the secret, one a line) or
the AWS default chain, which the SPUs then use too: prefixes alone keep
clusters apart. On a Versity S3 Gateway, --tier-s3-cluster-buckets creates
for each cluster a bucket <tier-s3-bucket>-<cluster-id> owned by an IAM user
of its own, and gives the SPUs only that user's keys, so an SPU of one
cluster cannot reach another cluster's objects; the key file must then hold
the gateway's admin keys. Deleting a topic deletes its objects once its
replicas are gone; deleting a cluster deletes its objects, bucket and user.

--tiering, --local-retention-time and --local-retention-bytes are the
defaults of topics created without these settings.`,
		Example: `  # a control plane with an embedded etcd
  spate control-plane serve --data-dir ./spate-data

  # one of several replicas sharing an external etcd cluster
  spate control-plane serve --addr 0.0.0.0:9000 --tls-host cp.example.com \
    --advertise-url https://cp.example.com:9000 \
    --etcd-endpoints http://etcd-0:2379,http://etcd-1:2379,http://etcd-2:2379

  # development without TLS or authentication, three local SPUs
  spate control-plane serve --insecure --data-dir ./spate-data --local-spus 3

  # tiered storage in S3, a bucket and IAM user per cluster on versitygw
  spate control-plane serve --data-dir ./spate-data --tiering --local-retention-time 1d \
    --tier-s3-endpoint http://127.0.0.1:7070 --tier-s3-path-style --tier-s3-bucket spate \
    --tier-s3-cluster-buckets --tier-s3-access-key-file ./versitygw-admin.keys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveRun(cmd, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Config.Addr, "addr", server.DefaultAddr, "address to listen on")
	fl.StringVar(&opts.Config.DataDir, "data-dir", "", "directory of the embedded etcd and the local SPUs")
	fl.StringVar(&opts.Config.EtcdDir, "etcd-dir", "", "directory of the embedded etcd (default DATA-DIR/etcd)")
	fl.StringVar(&opts.Config.BlobDir, "blob-dir", "", "folder of the control plane's blob store, which keeps the tenants' SmartModules (default DATA-DIR/blobs)")
	fl.StringSliceVar(&opts.Config.EtcdEndpoints, "etcd-endpoints", nil, "URLs of an external etcd cluster, comma-separated, instead of the embedded one")
	fl.IntVar(&opts.Config.LocalSPUs, "local-spus", 0, "with --insecure: run a local cluster of this many SPU processes")
	fl.BoolVar(&opts.Config.Insecure, "insecure", false, "serve plaintext HTTP/2 without authentication, for development only")
	fl.StringSliceVar(&opts.Config.TLSHosts, "tls-host", nil, "DNS names and IPs of the control plane's certificate, comma-separated (default localhost,127.0.0.1)")
	fl.StringVar(&opts.Config.OperatorKeyFile, "operator-key-file", "", "where to write the operator's API key at the first start (default DATA-DIR/operator.key)")
	fl.DurationVar(&opts.Config.ClientCertValidity, "client-cert-validity", 0, "life of issued client certificates (default 12h)")
	fl.IntVar(&opts.SPUBasePort, "spu-base-port", 0, "give local SPU i the port SPU-BASE-PORT+i (default: free ports, kept across restarts)")
	fl.StringSliceVar(&opts.SPUArgs, "spu-args", nil, "extra flags for every local `spate spu serve`, comma-separated")
	fl.StringVar(&opts.Config.AdvertiseURL, "advertise-url", "", "URL SPUs and clients use to reach this control plane (default https:// and the address listened on)")
	fl.DurationVar(&opts.Config.LivenessTimeout, "liveness-timeout", 0, "how long an SPU stays online without a heartbeat (default 5s)")
	d := &opts.Config.DefaultTopicSettings
	fl.BoolVar(&d.Tiering, "tiering", false, "turn tiering on for topics created without --tiering")
	fl.Var(&format.DurationValue{D: &d.LocalRetentionTime}, "local-retention-time", "default for tiered topics: keep uploaded segments on the SPU's disk this long: 7d, 36h; -1 for as long as the whole log (default: the SPUs')")
	fl.Int64Var(&d.LocalRetentionBytes, "local-retention-bytes", 0, "default for tiered topics: keep at most this many bytes per partition on the SPU's disk; -1 for no limit below the whole log's (default: the SPUs')")
	t := &opts.Config.Tier
	fl.StringVar(&t.Dir, "tier-dir", "", "folder of the clusters' object stores of tiered storage, one folder per cluster, without --tier-s3-bucket (default DATA-DIR/tier)")
	fl.StringVar(&t.S3Endpoint, "tier-s3-endpoint", "", "URL of the S3-compatible server of tiered storage (default AWS S3)")
	fl.StringVar(&t.S3Region, "tier-s3-region", "", "region of the S3 bucket (default us-east-1)")
	fl.StringVar(&t.S3Bucket, "tier-s3-bucket", "", "S3 bucket of tiered storage, shared by the clusters under their prefixes (with --tier-s3-cluster-buckets: the start of each cluster's bucket name)")
	fl.StringVar(&t.S3Prefix, "tier-s3-prefix", "", "key prefix before <tenant-id>/<cluster-id>/ (default none)")
	fl.BoolVar(&t.S3PathStyle, "tier-s3-path-style", false, "address the bucket in the URL path (most S3-compatible servers need it)")
	fl.StringVar(&opts.TierS3KeyFile, "tier-s3-access-key-file", "", "file of the S3 access key id and secret, one a line (default: the AWS default chain)")
	fl.BoolVar(&t.ClusterBuckets, "tier-s3-cluster-buckets", false, "on a Versity S3 Gateway: a bucket and IAM user per cluster, so clusters cannot reach each other's objects (the key file holds the gateway's admin keys)")
	fl.StringVar(&opts.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&opts.LogFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func serveRun(cmd *cobra.Command, opts *ServeOptions) error {
	logger, err := cmdutil.NewLogger(opts.IO.ErrOut, opts.LogLevel, opts.LogFormat)
	if err != nil {
		return err
	}
	cfg := opts.Config
	if opts.TierS3KeyFile != "" {
		if cfg.Tier.S3AccessKey, cfg.Tier.S3SecretKey, err = readKeyFile(opts.TierS3KeyFile, logger); err != nil {
			return cmdutil.Usagef("--tier-s3-access-key-file: %v", err)
		}
	}
	if cfg.LocalSPUs > 0 && cfg.DataDir == "" {
		return cmdutil.Usagef("--local-spus needs --data-dir for the SPUs' data and logs")
	}
	if cfg.DataDir != "" && (cfg.LocalSPUs > 0 || !cfg.Insecure) {
		if cfg.Provisioner == nil {
			cfg.Provisioner = provisioner.NewLocal(provisioner.LocalConfig{
				DataDir:     cfg.DataDir,
				BasePort:    opts.SPUBasePort,
				ExtraArgs:   localSPUArgs(opts),
				StopTimeout: 10 * time.Second,
			}, logger.With("component", "provisioner"))
		}
	}
	if err := cfg.Validate(); err != nil {
		closeProvisioner(cfg.Provisioner, logger)
		return &cmdutil.UsageError{Err: err}
	}
	// Serve closes the provisioner, and with it the SPUs, when it returns;
	// Run may fail before it serves.
	err = server.Run(cmd.Context(), cfg, logger)
	closeProvisioner(cfg.Provisioner, logger)
	return err
}

// localSPUArgs passes the log settings on to the SPUs, then the extra args.
func localSPUArgs(opts *ServeOptions) []string {
	args := []string{"--log-level", opts.LogLevel, "--log-format", opts.LogFormat}
	return append(args, opts.SPUArgs...)
}

func closeProvisioner(p provisioner.Provisioner, logger *slog.Logger) {
	if p == nil {
		return
	}
	if err := p.Close(); err != nil {
		logger.Error("close provisioner", "err", err)
	}
}

// readKeyFile reads an access key id and a secret, one a line, and warns
// when other users may read the file.
func readKeyFile(path string, logger *slog.Logger) (access, secret string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		logger.Warn("the S3 key file is readable by other users; chmod 600 it", "file", path, "mode", fi.Mode().Perm())
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		return "", "", fmt.Errorf("%s: want two lines, the access key id then the secret access key; found %d", path, len(lines))
	}
	return lines[0], lines[1], nil
}
