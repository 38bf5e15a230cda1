// Package h2c builds the HTTP servers and internal clients that speak
// Connect over HTTP/2 and HTTP/1.1 on one port, so that the control plane,
// the SPU and their tests share one set of settings: without TLS (h2c,
// prior knowledge; NewServer, NewClient) for development, and over TLS
// (HTTP/2 negotiated with ALPN; NewTLSServer, NewTLSClient).
package h2c

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// NewServer returns an HTTP server for handler that accepts HTTP/1.1 and
// h2c. Request contexts derive from base, so cancelling base ends every
// stream. h2 tunes HTTP/2 (nil: at most 1000 concurrent streams per
// connection and Go's default windows).
func NewServer(handler http.Handler, base context.Context, logger *slog.Logger, h2 *http.HTTP2Config) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	if h2 == nil {
		h2 = &http.HTTP2Config{MaxConcurrentStreams: 1000}
	}
	return &http.Server{
		Handler:           handler,
		Protocols:         &p,
		ReadHeaderTimeout: 10 * time.Second,
		HTTP2:             h2,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// NewTLSServer is NewServer over TLS: HTTP/2 (ALPN "h2") and HTTP/1.1,
// closing each connection when the client certificate it was opened with
// expires (clients reconnect with their renewed one),
// with TLS 1.3 at least. tc must provide a certificate (Certificates or
// GetCertificate); serve with ServeTLS(l, "", "").
func NewTLSServer(handler http.Handler, base context.Context, logger *slog.Logger, h2 *http.HTTP2Config, tc *tls.Config) *http.Server {
	hs := NewServer(handler, base, logger, h2)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	hs.Protocols = &p
	tc = tc.Clone()
	tc.MinVersion = max(tc.MinVersion, tls.VersionTLS13)
	hs.TLSConfig = tc
	exp := &certExpiry{timers: map[net.Conn]*time.Timer{}}
	hs.ConnState = exp.hook
	return hs
}

// Shutdown stops hs gracefully, giving calls in flight up to timeout, then
// closes every connection that is left (which also ends streams waiting
// for their next message).
func Shutdown(hs *http.Server, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		hs.Close()
	}
}

// NewClient returns the HTTP client one server uses to reach another (an
// SPU its control plane or its leader): h2c to http:// URLs, with pings
// that notice a dead peer within seconds so a stream breaks and reconnects
// instead of hanging.
func NewClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{
		Protocols: &p,
		HTTP2:     clientHTTP2(),
	}}
}

// NewTLSClient is NewClient for https:// URLs: HTTP/2 over TLS (1.3 at
// least) with tc's trust anchors and client certificate, and the same
// pings.
func NewTLSClient(tc *tls.Config) *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	tc = tc.Clone()
	tc.MinVersion = max(tc.MinVersion, tls.VersionTLS13)
	return &http.Client{Transport: &http.Transport{
		Protocols:           &p,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		HTTP2:               clientHTTP2(),
	}}
}

// clientHTTP2 notices a dead peer within seconds.
func clientHTTP2() *http.HTTP2Config {
	return &http.HTTP2Config{
		SendPingTimeout: 10 * time.Second,
		PingTimeout:     5 * time.Second,
	}
}
