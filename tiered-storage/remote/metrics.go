package remote

import "github.com/prometheus/client_golang/prometheus"

// metrics are a Reader's counters. With no registerer they are kept but not
// exported.
type metrics struct {
	fetchedBytes prometheus.Counter     // bytes downloaded from the store
	servedBytes  prometheus.Counter     // bytes of batches returned by Read
	gets         *prometheus.CounterVec // GETs, per object kind and reason
	lists        prometheus.Counter     // List calls
	hits, misses prometheus.Counter     // cache lookups of the read path
	errors       *prometheus.CounterVec // failed reads, per kind
	skipped      prometheus.Counter     // read-aheads not started (too many in flight)
	cacheBytes   prometheus.GaugeFunc   // bytes in the cache
}

func newMetrics(reg prometheus.Registerer, c *cache) *metrics {
	m := &metrics{
		fetchedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "spate_remote_read_bytes_total", Help: "Bytes downloaded from the object store by remote reads (read-ahead included)."}),
		servedBytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "spate_remote_served_bytes_total", Help: "Bytes of batches served to consumers from the remote tier."}),
		gets:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_remote_gets_total", Help: "GETs sent to the object store by remote reads, per object (log, index, timeindex) and reason (read, readahead)."}, []string{"object", "reason"}),
		lists:        prometheus.NewCounter(prometheus.CounterOpts{Name: "spate_remote_lists_total", Help: "Listings of partitions' remote indexes."}),
		hits:         prometheus.NewCounter(prometheus.CounterOpts{Name: "spate_remote_cache_hits_total", Help: "Chunks and indexes of remote segments found in the cache (or already being fetched) by reads."}),
		misses:       prometheus.NewCounter(prometheus.CounterOpts{Name: "spate_remote_cache_misses_total", Help: "Chunks and indexes of remote segments that reads had to fetch."}),
		errors:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_remote_read_errors_total", Help: "Failed remote reads, per kind (unavailable, missing, corrupt, out_of_range, other)."}, []string{"kind"}),
		skipped:      prometheus.NewCounter(prometheus.CounterOpts{Name: "spate_remote_readahead_skipped_total", Help: "Read-aheads not started because too many were in flight."}),
		cacheBytes:   prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "spate_remote_cache_bytes", Help: "Bytes held by the remote read cache."}, func() float64 { return float64(c.bytes()) }),
	}
	if reg != nil {
		reg.MustRegister(m.fetchedBytes, m.servedBytes, m.gets, m.lists, m.hits, m.misses, m.errors, m.skipped, m.cacheBytes)
	}
	return m
}
