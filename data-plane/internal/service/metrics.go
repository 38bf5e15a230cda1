package service

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the request metrics of the SPU's services.
type Metrics struct {
	produceLatency prometheus.Observer
	produceErrors  *prometheus.CounterVec
	consumeStreams prometheus.Gauge
}

// NewMetrics registers the service metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "spate_spu_request_duration_seconds",
		Help:    "Time from receiving a request to answering it, per method (produce: until acknowledged).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
	}, []string{"method"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spate_spu_produce_errors_total",
		Help: "Produce requests refused, per Connect code.",
	}, []string{"code"})
	streams := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "spate_spu_consume_streams",
		Help: "Consume streams open now.",
	})
	reg.MustRegister(latency, errs, streams)
	return &Metrics{
		produceLatency: latency.WithLabelValues("produce"),
		produceErrors:  errs,
		consumeStreams: streams,
	}
}
