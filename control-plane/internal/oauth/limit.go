package oauth

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxTracked bounds how many client IPs the limiter remembers; beyond it,
// IPs with a full budget are forgotten first, then the oldest.
const maxTracked = 100_000

// limiter counts failed attempts per client IP in a token bucket of
// burst tokens refilled over per: an IP that failed burst times within
// per is blocked until a token comes back.
type limiter struct {
	burst int
	every rate.Limit
	now   func() time.Time

	mu        sync.Mutex // guards ips and lastSweep
	ips       map[string]*rate.Limiter
	lastSweep time.Time
}

func newLimiter(burst int, per time.Duration, now func() time.Time) *limiter {
	return &limiter{
		burst: burst,
		every: rate.Limit(float64(burst) / per.Seconds()),
		now:   now,
		ips:   make(map[string]*rate.Limiter),
	}
}

// blocked reports whether ip has no failures left, and if so after how
// long it may try again (at least one second, whole seconds).
func (l *limiter) blocked(ip string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.ips[ip]
	if !ok {
		return 0, false
	}
	now := l.now()
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	wait := (1 - tokens) / float64(l.every)
	return time.Duration(math.Ceil(max(wait, 1))) * time.Second, true
}

// fail records a failed attempt of ip.
func (l *limiter) fail(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	lim, ok := l.ips[ip]
	if !ok {
		lim = rate.NewLimiter(l.every, l.burst)
		l.ips[ip] = lim
	}
	lim.AllowN(now, 1)
}

// sweep forgets IPs whose budget is full again, at most once a minute or
// when too many are tracked. l.mu is held.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute && len(l.ips) < maxTracked {
		return
	}
	l.lastSweep = now
	for ip, lim := range l.ips {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.ips, ip)
		}
	}
	// Still too many: forget arbitrary ones (map order), which only
	// gives them their budget back early.
	for ip := range l.ips {
		if len(l.ips) < maxTracked {
			break
		}
		delete(l.ips, ip)
	}
}
