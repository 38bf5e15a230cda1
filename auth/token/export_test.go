package token

import "time"

// SetClock makes s read the time from now.
func (s *JWKSSource) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetClock makes v read the time from now.
func (v *Verifier) SetClock(now func() time.Time) { v.now = now }
