//! A sink's metrics, created once per sink and counted per batch.

use metrics::{Counter, Gauge};

use super::BreakerState;

/// The `pulse_sink_*` series of one sink (label `component`).
pub(crate) struct SinkMetrics {
    pub(crate) written: Counter,
    pub(crate) retries: Counter,
    pub(crate) errors: Counter,
    pub(crate) dead_letters: Counter,
    pub(crate) buffer_fill: Gauge,
    breaker: Gauge,
    pub(crate) acknowledged: Gauge,
}

impl SinkMetrics {
    pub(crate) fn new(sink: &str) -> Self {
        let labels = [("component", sink.to_owned())];
        let metrics = Self {
            written: metrics::counter!("pulse_sink_written_records_total", &labels),
            retries: metrics::counter!("pulse_sink_retries_total", &labels),
            errors: metrics::counter!("pulse_sink_errors_total", &labels),
            dead_letters: metrics::counter!("pulse_dead_letters_total", &labels),
            buffer_fill: metrics::gauge!("pulse_sink_buffer_fill_ratio", &labels),
            breaker: metrics::gauge!("pulse_sink_breaker_state", &labels),
            acknowledged: metrics::gauge!("pulse_sink_acknowledged_ms", &labels),
        };
        metrics.breaker.set(0.0);
        metrics.buffer_fill.set(0.0);
        metrics
    }

    pub(crate) fn breaker(&self, state: BreakerState) {
        self.breaker.set(state.gauge());
    }
}
