// Package h2c builds the HTTP servers and internal clients that speak
// Connect over HTTP/2 without TLS (h2c, prior knowledge) and HTTP/1.1 on one
// port, so that the control plane, the SPU and their tests share one set of
// settings. TLS comes with issue 4 and will be added here.
package h2c

import (
	"context"
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
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 10 * time.Second,
			PingTimeout:     5 * time.Second,
		},
	}}
}
