//! Rows of `anomaly`, `forecast` and `onnx` operators read by a `websocket` sink:
//! published to the gateway's WebSocket subscribers (topics `anomalies`,
//! `forecasts` and `predictions`) and, but for predictions, kept in its
//! [`AnalyticsViews`] for the anomaly and forecast APIs.
//!
//! Of an anomaly operator's rows only the anomalies (`is_anomaly`) are
//! published: every scored point would flood subscribers (one row per input
//! event), and the API keeps only anomalies.
//!
//! As for windows (`pulse_sinks::publish_live`), rows are split into key and
//! fields where they were produced and gathered on worker 0, which publishes
//! each batch as it arrives: publishing only takes short in-memory locks.

use std::sync::Arc;

use pulse_core::row::Value;
use pulse_core::{EventTime, Row};
use pulse_live::{AnalyticsKind, AnalyticsRecord, AnalyticsViews, LiveHub, LiveSource, Topic};
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

/// Publishes `rows` of an analytics operator (`kind`) as coming from `source`.
pub fn publish_analytics<'scope>(
    rows: Stream<'scope, EventTime, Vec<Row>>,
    kind: AnalyticsKind,
    source: LiveSource,
    hub: LiveHub,
    views: AnalyticsViews,
) {
    let name = format!("{}/{}", source.pipeline, source.operator);
    let labels = [("component", name.clone())];
    let errors = metrics::counter!("pulse_sink_errors_total", &labels);
    let received = metrics::counter!("pulse_component_received_events_total", &labels);
    let records = rows.flat_map(move |row| {
        if kind == AnalyticsKind::Anomaly && row.get("is_anomaly") != Some(&Value::Bool(true)) {
            return None;
        }
        let key: Vec<String> = row.schema().keys().map(|column| column.name.clone()).collect();
        let record = serde_json::to_value(&row)
            .map_err(|error| error.to_string())
            .and_then(|value| AnalyticsRecord::from_flat(kind, value, &key).map_err(|error| error.to_string()));
        match record {
            Ok(record) => Some(record),
            Err(error) => {
                errors.increment(1);
                tracing::error!(%error, "a row could not be published");
                None
            }
        }
    });
    let worker = records.scope().index();
    let topic = match kind {
        AnalyticsKind::Anomaly => Topic::Anomalies,
        AnalyticsKind::Forecast => Topic::Forecasts,
        AnalyticsKind::Prediction => Topic::Predictions,
    };
    let mut batch: Vec<Arc<AnalyticsRecord>> = Vec::new();
    records.sink(
        Exchange::new(|_: &AnalyticsRecord| 0),
        &name,
        move |(input, _frontier)| {
            input.for_each_stamp(|_, data| {
                for records in data {
                    batch.extend(records.drain(..).map(Arc::new));
                }
            });
            if worker != 0 || batch.is_empty() {
                return;
            }
            received.increment(batch.len() as u64);
            views.record(&source, &batch);
            hub.publish_to(topic, &source, &batch);
            batch.clear();
        },
    );
}
