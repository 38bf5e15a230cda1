package oauth

import "time"

// SetClock replaces the server's clock; call it before serving.
func SetClock(s *Server, now func() time.Time) { s.now = now }
