package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's counters, per module name and kind. With no
// registerer they are kept but not exported.
type metrics struct {
	recordsIn  *prometheus.CounterVec
	recordsOut *prometheus.CounterVec
	seconds    *prometheus.CounterVec
	errors     *prometheus.CounterVec
	instances  prometheus.Gauge
	compiles   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"module", "kind"}
	m := &metrics{
		recordsIn:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_smartmodule_records_in_total", Help: "Records passed into SmartModules, per module and kind."}, labels),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_smartmodule_records_out_total", Help: "Records SmartModules emitted, per module and kind."}, labels),
		seconds:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_smartmodule_seconds_total", Help: "Time spent in calls into SmartModules (instantiation and init included), per module and kind."}, labels),
		errors:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_smartmodule_errors_total", Help: "Streams a SmartModule failed (its own error, trap, time or memory limit, malformed result), per module and kind."}, labels),
		instances:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "spate_smartmodule_instances", Help: "SmartModule instances alive (one per module of each open chain)."}),
		compiles:   prometheus.NewCounter(prometheus.CounterOpts{Name: "spate_smartmodule_compiles_total", Help: "SmartModules compiled (cache misses of Compile; the disk cache may still have spared the compiler)."}),
	}
	if reg != nil {
		reg.MustRegister(m.recordsIn, m.recordsOut, m.seconds, m.errors, m.instances, m.compiles)
	}
	return m
}

// stageMetrics are a chain stage's counters, resolved once per chain.
type stageMetrics struct {
	in, out, seconds, errors prometheus.Counter
}

func (m *metrics) forStage(module, kind string) stageMetrics {
	return stageMetrics{
		in:      m.recordsIn.WithLabelValues(module, kind),
		out:     m.recordsOut.WithLabelValues(module, kind),
		seconds: m.seconds.WithLabelValues(module, kind),
		errors:  m.errors.WithLabelValues(module, kind),
	}
}
