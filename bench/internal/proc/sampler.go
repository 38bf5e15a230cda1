package proc

import (
	"sync"
	"time"
)

// Sampler records the peak resident memory of a process while it runs.
type Sampler struct {
	pid  int
	stop chan struct{}
	wg   sync.WaitGroup
	peak int64 // written by the sampling goroutine until it exits, then by Stop
}

// SampleRSS starts sampling the resident memory of pid every interval
// until Stop.
func SampleRSS(pid int, interval time.Duration) *Sampler {
	s := &Sampler{pid: pid, stop: make(chan struct{})}
	s.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	})
	return s
}

func (s *Sampler) sample() {
	if rss, err := RSS(s.pid); err == nil {
		s.peak = max(s.peak, rss)
	}
}

// Stop ends the sampling, takes a last sample and returns the peak seen, in
// bytes (0 if the process could not be read).
func (s *Sampler) Stop() int64 {
	close(s.stop)
	s.wg.Wait()
	s.sample()
	return s.peak
}
