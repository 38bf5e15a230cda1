package commitlog

// EvictIdle exposes evictIdle, which the background loop runs, to tests.
func (l *Log) EvictIdle() { l.evictIdle() }
