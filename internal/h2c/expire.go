package h2c

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// handshakeTimeout bounds the handshake that closeAtCertExpiry waits for
// before it knows a connection's certificate.
const handshakeTimeout = 10 * time.Second

// certExpiry closes each TLS connection of a server when the client
// certificate it was opened with expires.
//
// A server verifies a client certificate once, in the handshake, and an
// HTTP/2 connection may then carry requests for days; without this a
// connection would outlive its certificate. Clients reconnect, presenting
// their renewed certificate.
type certExpiry struct {
	mu     sync.Mutex
	timers map[net.Conn]*time.Timer
}

// hook is an http.Server ConnState hook.
func (e *certExpiry) hook(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		if tc, ok := c.(*tls.Conn); ok {
			go e.watch(tc)
		}
	case http.StateClosed, http.StateHijacked:
		e.mu.Lock()
		if t, ok := e.timers[c]; ok {
			t.Stop()
			delete(e.timers, c)
		}
		e.mu.Unlock()
	}
}

// watch waits for the handshake (the server waits for the same one) and
// arms a timer at the earliest expiry in the verified client chain.
func (e *certExpiry) watch(c *tls.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if c.HandshakeContext(ctx) != nil {
		return // the server's own handshake fails too and closes it
	}
	st := c.ConnectionState()
	if len(st.VerifiedChains) == 0 {
		return
	}
	notAfter := st.VerifiedChains[0][0].NotAfter
	for _, cert := range st.VerifiedChains[0] {
		if cert.NotAfter.Before(notAfter) {
			notAfter = cert.NotAfter
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.timers[c] = time.AfterFunc(time.Until(notAfter), func() {
		e.mu.Lock()
		delete(e.timers, c)
		e.mu.Unlock()
		c.Close()
	})
}
