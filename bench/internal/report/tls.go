package report

import (
	"bytes"
	"fmt"

	"github.com/spatehq/spate/bench/internal/scenario"
)

// writeTLS writes the section that compares Spate over mTLS with plaintext
// Spate: the setup, the handshake scenario and the ratios of every figure
// measured in both.
func writeTLS(b *bytes.Buffer, run Run) {
	if !ran(run, mtlsName) && !ran(run, clusterName) {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Spate over mTLS\n\n")
	p("The `Spate mTLS` figures come from Spate set up as a tenant's cluster is in the service. ")
	p("A secure control plane (`spate control-plane serve`, TLS and authentication on) makes its root CA at its first start (auth/ca `NewRoot`); the benchmark creates a tenant with the operator's key, logs in as the tenant's owner with an API key and creates a cluster of one SPU, as `spate local up` does. ")
	p("The control plane gives the cluster an intermediate CA (`Root.NewIntermediate`) and runs its SPU as `spate spu serve --tls-cert --tls-key --cluster-ca --control-plane-ca`, with a leaf for `spate://TENANT/CLUSTER/spu/spu-0` that the intermediate issues (`Intermediate.IssueServer`). ")
	p("The benchmark then gets a client certificate for the owner, a user of the same tenant and cluster (`cloud.UseCluster`: a P-256 key and a CSR from `ca.NewKeyAndCSR`, signed by `Intermediate.IssueClient`), and the Go SDK connects with `client.FromProfile`, that is `client.WithSPUTLS`: TLS 1.3, the cluster's CA as the only root, the client certificate; all certificates are ECDSA P-256. ")
	p("The SPU verifies the client's chain in the handshake and authorizes every request against the access list its control plane pushes. ")
	p("It has to run under a control plane: with TLS, an SPU refuses every call of a user (Unavailable) until a control plane has sent it that list. ")
	p("So the mTLS figures differ from plaintext Spate (a standalone SPU over h2c) in two ways: TLS with authorization, and running as a cluster's SPU, with topics created through the control plane and leaders found through its metadata. ")
	if ran(run, clusterName) {
		p("The `Spate h2c cluster` figures are the same cluster under an insecure control plane (`--insecure --local-spus 1`), over h2c, without authorization: mTLS against them is the cost of TLS and authorization alone. ")
	} else {
		p("`-systems spate,spate-cluster,spate-mtls` adds the same cluster over h2c under an insecure control plane, which tells the two apart. ")
	}
	p("The setups with a control plane run in the write mode only.\n\n")

	if names := scenarioNames(run, scenario.Handshake); len(names) > 0 {
		p("### A new connection and one request\n\n")
		p("Connections opened one after another, each by a new HTTP client (no connection reuse, no TLS session resumption), each making one ProduceOne of a one-record batch and closing: ")
		p("the time is from the call to its response (TCP connect, the TLS handshake or none, the HTTP/2 preface, the request). ")
		p("CPU is user + system time per connection, of the benchmark's process (the client, from getrusage) and of the SPU (from /proc, 10 ms ticks over the whole run).\n\n")
		p("| scenario | system | connections | p50 ms | p99 ms | p99.9 ms | connections/s | client CPU ms per connection | SPU CPU ms per connection |\n")
		p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, n := range names {
			for _, sys := range allSystems {
				r, ok := find(run, n, sys)
				if !ok {
					if msg, bad := failed(run, n, sys); bad {
						p("| %s | %s | failed: %s | | | | | | |\n", n, sys, cell(msg))
					}
					continue
				}
				p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n, sys, num(float64(r.Records)),
					dec(r.P50Ms, 2), dec(r.P99Ms, 2), dec(r.P999Ms, 2), num(r.RecordsPerSec), dec(r.ClientCPUMs, 2), dec(r.ServerCPUMs, 2))
			}
		}
		p("\n")
	}

	p("### Against plaintext\n\n")
	p("Every figure measured both in plaintext and over mTLS, with the ratio mTLS / plaintext (throughput: below 1.0x is slower; latency and handshake: above 1.0x is slower).\n\n")
	cols := []string{spateName}
	if ran(run, clusterName) {
		cols = append(cols, clusterName)
	}
	cols = append(cols, mtlsName)
	p("| scenario | figure |")
	for _, c := range cols {
		p(" %s |", c)
	}
	p(" mTLS / plaintext |")
	if ran(run, clusterName) {
		p(" mTLS / h2c cluster |")
	}
	p("\n| --- | --- |")
	for range cols {
		p(" ---: |")
	}
	p(" ---: |")
	if ran(run, clusterName) {
		p(" ---: |")
	}
	p("\n")
	type figure struct {
		name  string
		value func(scenario.Result) float64
		fmt   func(float64) string
	}
	rate := figure{"records/s", func(r scenario.Result) float64 { return r.RecordsPerSec }, num}
	ms := func(name string, v func(scenario.Result) float64) figure {
		return figure{name, v, func(x float64) string { return dec(x, 2) }}
	}
	p50 := ms("p50 ms", func(r scenario.Result) float64 { return r.P50Ms })
	p99 := ms("p99 ms", func(r scenario.Result) float64 { return r.P99Ms })
	cpu := ms("client CPU ms", func(r scenario.Result) float64 { return r.ClientCPUMs })
	for _, n := range scenarioNames(run, scenario.Produce, scenario.Consume, scenario.Latency, scenario.Handshake) {
		m, ok := find(run, n, mtlsName)
		if !ok {
			continue
		}
		var figs []figure
		switch m.Kind {
		case scenario.Produce, scenario.Consume:
			figs = []figure{rate}
		case scenario.Latency:
			figs = []figure{p50, p99}
		case scenario.Handshake:
			figs = []figure{p50, p99, cpu}
		}
		for _, f := range figs {
			p("| %s | %s |", n, f.name)
			for _, c := range cols {
				r, ok := find(run, n, c)
				p(" %s |", pick(ok, f.fmt(f.value(r))))
			}
			ratio := func(base string) string {
				r, ok := find(run, n, base)
				if !ok || f.value(r) == 0 {
					return "-"
				}
				return fmt.Sprintf("%.2fx", f.value(m)/f.value(r))
			}
			p(" %s |", ratio(spateName))
			if ran(run, clusterName) {
				p(" %s |", ratio(clusterName))
			}
			p("\n")
		}
	}
	p("\n")
}

// writeTLSMethod adds the bullets about the setups with a control plane
// and the handshake scenario to the method.
func writeTLSMethod(b *bytes.Buffer) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("- **mTLS.** Spate over mTLS: a secure control plane and one cluster of one SPU, a user's client certificate, the same SDK producer and consumer with `client.FromProfile` (see [Spate over mTLS](#spate-over-mtls)); the SPU's command line is under Servers. It runs the write mode only. Plaintext Spate: a standalone SPU over h2c. Topics: declared partitions on the standalone SPU, `CreateTopic` (replication factor 1, kept forever) through the control plane otherwise; a scenario starts once the SPU answers the benchmark's user for the topic.\n")
	p("- **Handshake.** After 20 warm-up connections, connections one after another, each by a new HTTP client of the SPU (`h2c` or HTTP/2 over TLS 1.3 with the profile's TLS configuration, as `internal/h2c` builds them for servers), one ProduceOne of a one-record batch with acks after write, then the connection is closed; percentiles are nearest-rank over the measured connections. Go's TLS 1.3 client offers X25519MLKEM768 and X25519 key shares; both sides hold ECDSA P-256 keys and verify a two-certificate chain.\n")
}
