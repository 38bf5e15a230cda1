// Package spucmd implements `spate spu`: running a Streaming Processing Unit.
package spucmd

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/data-plane/spu"
)

// NewCmdSPU returns `spate spu`.
func NewCmdSPU(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spu",
		Short: "Run a Streaming Processing Unit (SPU)",
	}
	cmd.AddCommand(newCmdServe(f))
	return cmd
}

// ServeOptions are the flags of `spate spu serve`.
type ServeOptions struct {
	IO        *cmdutil.IOStreams
	Config    spu.Config
	LogLevel  string
	LogFormat string
}

func newCmdServe(f *cmdutil.Factory) *cobra.Command {
	opts := &ServeOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve produce and consume for the partitions stored in a data directory",
		Long: `Serve runs an SPU in the foreground until interrupted (SIGINT or SIGTERM).

The SPU keeps its partition replicas under --data-dir and recovers them at
start: a batch torn by a crash is cut, never served. It serves Connect, gRPC
and gRPC-Web on one port (HTTP/1.1 and unencrypted HTTP/2), and Prometheus
metrics at /metrics.

With --tls-cert, --tls-key, --cluster-ca and --control-plane-ca (all four or
none) it serves HTTPS instead and every RPC needs a client certificate
issued by the cluster's CA for the SPU's own tenant and cluster; produce
and consume are then allowed by the access list the control plane sends
(--control-plane must be https://). /healthz needs no client certificate;
/metrics (which names topics) takes any certificate of the cluster, e.g. a
monitoring service account's. Without them anyone who reaches the port may do anything: use
that for development on one machine only.

Storage flags set the defaults of partitions whose own settings leave them
unset.

Tiered storage: the leader of a partition whose settings turn tiering on
uploads its closed segments to an object store, and local retention
(local.retention.*) deletes a segment only once it is uploaded. The store is
a folder (--tier-dir) or an S3 bucket (--tier-s3-bucket and the other
--tier-s3-* flags); there is none by default. S3 credentials come from the
AWS default chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, shared
files, instance roles), never from flags. With TLS the S3 prefix defaults to
<tenant>/<cluster> from the SPU's certificate.`,
		Example: `  # an SPU on the default address with data in ./spu-data
  spate spu serve --data-dir ./spu-data

  # acknowledge produces only after fsync, keep data for 30 days
  spate spu serve --data-dir /var/lib/spate --fsync --retention-time 720h

  # SPU 1 of a cluster, holding the replicas its control plane assigns
  spate spu serve --id 1 --addr 127.0.0.1:9011 --data-dir ./spu-1 \
    --control-plane http://127.0.0.1:9000

  # the same SPU with TLS and client certificates
  spate spu serve --id 1 --addr 10.0.0.2:9011 --data-dir ./spu-1 \
    --control-plane https://cp.example:9000 \
    --tls-cert spu-1.pem --tls-key spu-1.key \
    --cluster-ca cluster-ca.pem --control-plane-ca root-ca.pem

  # tiered storage in a local folder
  spate spu serve --data-dir ./spu-data --tier-dir ./tier

  # tiered storage in S3 (credentials from the environment)
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... spate spu serve --data-dir ./spu-data \
    --tier-s3-bucket spate-tier --tier-s3-prefix acme/prod --tier-upload-bytes-per-second 100000000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveRun(cmd, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Config.Addr, "addr", spu.DefaultAddr, "address to listen on")
	fl.StringVar(&opts.Config.DataDir, "data-dir", "", "directory of the partition replicas (required)")
	fl.Int32Var(&opts.Config.ID, "id", 0, "the SPU's id in its cluster")
	fl.StringVar(&opts.Config.ControlPlane, "control-plane", "", "URL of the control plane to join (empty runs standalone)")
	fl.StringVar(&opts.Config.PublicAddr, "public-addr", "", "URL clients use to reach this SPU (default http:// and --addr, https:// with TLS)")
	fl.StringVar(&opts.Config.TLS.CertFile, "tls-cert", "", "PEM certificate chain of this SPU (leaf, then the cluster CA); its URI SAN must be spate://<tenant>/<cluster>/spu/spu-<id>. Reloaded when the file changes")
	fl.StringVar(&opts.Config.TLS.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fl.StringVar(&opts.Config.TLS.ClusterCAFile, "cluster-ca", "", "PEM CA certificate of the cluster: the only CA trusted for client certificates and peer SPUs")
	fl.StringVar(&opts.Config.TLS.ControlPlaneCAFile, "control-plane-ca", "", "PEM root CA certificate that the control plane's server certificate chains to")
	fl.Int64Var(&opts.Config.SegmentBytes, "segment-bytes", 0, "roll segments at this size (default 1 GiB)")
	fl.DurationVar(&opts.Config.SegmentAge, "segment-age", 0, "roll segments at this age (default 168h)")
	fl.DurationVar(&opts.Config.RetentionTime, "retention-time", 0, "delete data older than this (default 168h; negative keeps forever)")
	fl.Int64Var(&opts.Config.RetentionBytes, "retention-bytes", 0, "keep at most this many bytes per partition (default unlimited)")
	fl.IntVar(&opts.Config.MaxBatchBytes, "max-batch-bytes", 0, "largest batch accepted (default 8 MiB)")
	fl.BoolVar(&opts.Config.Fsync, "fsync", false, "acknowledge produces after fsync by default (grouped across producers)")
	fl.DurationVar(&opts.Config.RetentionCheckInterval, "retention-check-interval", time.Minute, "how often retention runs")
	fl.StringVar(&opts.Config.Tier.Dir, "tier-dir", "", "folder of the object store of tiered storage (one cluster's; default none)")
	fl.StringVar(&opts.Config.Tier.S3Endpoint, "tier-s3-endpoint", "", "URL of the S3-compatible server of tiered storage (default AWS S3)")
	fl.StringVar(&opts.Config.Tier.S3Region, "tier-s3-region", "", "region of the S3 bucket (default us-east-1)")
	fl.StringVar(&opts.Config.Tier.S3Bucket, "tier-s3-bucket", "", "S3 bucket of tiered storage; credentials come from the AWS default chain")
	fl.StringVar(&opts.Config.Tier.S3Prefix, "tier-s3-prefix", "", "key prefix of this cluster in the bucket (default <tenant>/<cluster> from the TLS certificate; required without TLS)")
	fl.BoolVar(&opts.Config.Tier.S3PathStyle, "tier-s3-path-style", false, "address the bucket in the URL path (most S3-compatible servers need it)")
	fl.IntVar(&opts.Config.Tier.UploadConcurrency, "tier-upload-concurrency", 2, "segments uploaded at once over all partitions")
	fl.Int64Var(&opts.Config.Tier.UploadBytesPerSecond, "tier-upload-bytes-per-second", 0, "upload bandwidth limit over all partitions (0: none)")
	fl.Int64Var(&opts.Config.SmartModules.MemoryLimitBytes, "smartmodule-memory-limit", 0, "largest linear memory of one SmartModule instance, in bytes (default 64 MiB)")
	fl.DurationVar(&opts.Config.SmartModules.CallTimeout, "smartmodule-call-timeout", 0, "longest call into a SmartModule, one batch of records (default 5s)")
	fl.BoolVar(&opts.Config.Pprof, "pprof", false, "serve Go's profiler at /debug/pprof/")
	fl.StringVar(&opts.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&opts.LogFormat, "log-format", "text", "log format: text or json")
	cmdutil.Must(cmd.MarkFlagRequired("data-dir"))
	return cmd
}

func serveRun(cmd *cobra.Command, opts *ServeOptions) error {
	logger, err := cmdutil.NewLogger(opts.IO.ErrOut, opts.LogLevel, opts.LogFormat)
	if err != nil {
		return err
	}
	if err := opts.Config.Validate(); err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	return spu.Run(cmd.Context(), opts.Config, logger)
}
