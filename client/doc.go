// Package client is the Go SDK of Spate: it produces records to topics,
// consumes them, and runs admin calls.
//
// Make one Client per cluster and share it. With the control plane, the
// client learns where each partition lives from a stream of metadata and
// follows leaders as they move:
//
//	c, err := client.New(client.WithControlPlane("http://127.0.0.1:9000"))
//
// Without one, it talks to a single SPU that holds every partition:
//
//	c, err := client.New(client.WithSPU("http://localhost:9010"))
//
// # Topics
//
// With a control plane, programs manage topics with CreateTopic,
// ListTopics, DescribeTopic, UpdateTopic, AddPartitions and DeleteTopic,
// and list the SPUs with ListSPUs:
//
//	_, err := c.CreateTopic(ctx, client.TopicSpec{Name: "events", Partitions: 6, ReplicationFactor: 1,
//		Settings: client.TopicSettings{Retention: 7 * 24 * time.Hour}})
//	if client.IsAlreadyExists(err) { ... }
//
// Producers and consumers wait, within their ctx, for the leaders of a
// topic that is not placed yet.
//
// # Producing
//
// A Producer batches records per partition and pipelines the batches to
// the SPUs. Produce is asynchronous and reports each record's offset, or
// its error, to a callback; ProduceSync waits; Flush waits for everything
// produced so far:
//
//	p, err := c.NewProducer(ctx, "events")
//	p.Produce(ctx, client.Record{Key: k, Value: v}, func(r client.Record, err error) { ... })
//	err = p.Flush(ctx)
//
// Records with the same key go to the same partition (see
// HashPartitioner). A broken connection fails the records in flight with
// ErrConnectionLost rather than sending them twice; IsRetriable tells the
// errors worth a retry.
//
// # Consuming
//
// A Consumer streams records pushed by the SPUs, from a start Offset,
// and resumes by itself after a broken connection without losing or
// repeating records:
//
//	cons, err := c.Consume(ctx, "events", client.WithStart(client.Beginning()))
//	for {
//		r, err := cons.Next(ctx)
//		...
//	}
//
// # Errors
//
// Errors are *connect.Error values (connectrpc.com/connect) wrapping the
// cause; connect.CodeOf gives the code, and the sentinels of this package
// (ErrRecordTooLarge, ErrConnectionLost, ...) work with errors.Is.
// IsNotFound, IsAlreadyExists, IsInvalidArgument, IsUnavailable and
// IsRetriable test the common cases.
//
// # Transport and security
//
// The client speaks Connect over HTTP/2: h2c (HTTP/2 without TLS) for
// http:// URLs, which is the insecure development mode of the SPU, and
// HTTP/2 over TLS for https:// URLs, with the same large flow-control
// windows. A cloud cluster requires TLS with a client certificate: the SPUs
// trust only the cluster's CA (WithSPUTLS), the control plane its root CA
// (WithControlPlaneTLS), and control-plane calls may carry an access token
// (WithToken). FromProfile sets all of this from a profile written by
// `spate cloud cluster use` or cloud.UseCluster:
//
//	cfg, err := profile.Load(path)
//	_, p, err := cfg.Current()
//	c, err := client.FromProfile(p)
//
// Package cloud signs in, gets and renews client certificates (see
// cloud.CertRenewer for long-running programs).
package client
