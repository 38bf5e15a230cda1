package cloud

import "time"

// SetPollUnit makes the device flow count its intervals in d instead of
// seconds, and returns a function that restores it.
func SetPollUnit(d time.Duration) (restore func()) {
	old := pollUnit
	pollUnit = d
	return func() { pollUnit = old }
}

// SetMinRenewWait changes the shortest wait between a CertRenewer's
// renewals, and returns a function that restores it.
func SetMinRenewWait(d time.Duration) (restore func()) {
	old := minRenewWait
	minRenewWait = d
	return func() { minRenewWait = old }
}
