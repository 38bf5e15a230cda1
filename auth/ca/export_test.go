package ca

import "time"

// SetClock makes ca (a *Root or an *Intermediate) issue as if the time were
// now(). Tests only: call it before issuing, never concurrently.
func SetClock(ca any, now func() time.Time) {
	switch c := ca.(type) {
	case *Root:
		c.iss.now = now
	case *Intermediate:
		c.iss.now = now
	default:
		panic("SetClock: not a CA")
	}
}
