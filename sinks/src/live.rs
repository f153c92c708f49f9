//! The `websocket` sink: hands closed windows to the live hub (WebSocket
//! subscribers) and to the retained views (the query API).
//!
//! Rows are split into key and values on the worker that produced them, then
//! gathered on worker 0, which publishes each batch as soon as it arrives —
//! a row reaching this sink means its window has closed, so waiting for the
//! frontier would only add latency. Publishing only takes short in-memory
//! locks and enqueues ([`LiveHub::publish`], [`WindowViews::record`]); clients
//! are served by the gateway's tokio tasks, never by the timely worker.

use std::sync::Arc;

use pulse_core::EventTime;
use pulse_live::{LiveHub, LiveRow, LiveSource, WindowViews};
use serde::Serialize;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

/// Where the `websocket` sink delivers: the hub and the views the gateway serves.
#[derive(Clone)]
pub struct LiveOutputs {
    /// Fan-out to WebSocket subscribers.
    pub hub: LiveHub,
    /// Retained windows for `POST /api/v1/analytics/query`.
    pub views: WindowViews,
}

/// Publishes every window row of `rows` (records that serialise flat, as
/// `WindowRow` does: `window_start`, `window_end`, the `key_fields`, then
/// aggregates) as coming from `source`. Records that do not serialise as a
/// window row are counted in `pulse_sink_errors_total` and logged, not published.
///
/// # Examples
///
/// ```
/// use pulse_live::{Filter, LiveHub, LiveLimits, LiveSource, RetentionConfig, Subscription, WindowViews};
/// use pulse_sinks::live::{LiveOutputs, publish_live};
/// use timely::dataflow::operators::ToStream;
///
/// let outputs = LiveOutputs {
///     hub: LiveHub::new(LiveLimits::default()),
///     views: WindowViews::new(&RetentionConfig::default()),
/// };
/// let client = outputs.hub.connect("acme").unwrap();
/// client.subscribe(Subscription::windows(Filter::default())).unwrap();
/// let rows = vec![serde_json::json!({"window_start": 0, "window_end": 10000, "tenant": "acme",
///                                    "metric": "cpu", "count": 3, "avg": 0.5})];
/// let sink_outputs = outputs.clone();
/// timely::example(move |scope| {
///     let source = LiveSource::new("demo", "cpu_10s");
///     publish_live(rows.to_stream(scope), source, vec!["tenant".into(), "metric".into()], sink_outputs);
/// });
/// assert_eq!(outputs.hub.stats().rows_published_total, 1);
/// assert_eq!(outputs.views.stats()[0].rows, 1);
/// assert!(client.try_next().is_some());
/// ```
pub fn publish_live<'scope, T: Serialize + Clone + 'static>(
    rows: Stream<'scope, EventTime, Vec<T>>,
    source: LiveSource,
    key_fields: Vec<String>,
    outputs: LiveOutputs,
) {
    let name = format!("{}/{}", source.pipeline, source.operator);
    let labels = [("component", name.clone())];
    let errors = metrics::counter!("pulse_sink_errors_total", &labels);
    let received = metrics::counter!("pulse_component_received_events_total", &labels);
    let error_name = name.clone();
    let live_rows = rows.flat_map(move |record| {
        match serde_json::to_value(&record)
            .map_err(|e| e.to_string())
            .and_then(|value| LiveRow::from_flat(value, &key_fields).map_err(|e| e.to_string()))
        {
            Ok(row) => Some(row),
            Err(error) => {
                errors.increment(1);
                tracing::error!(component = %error_name, %error, "a record is not a window row; not published");
                None
            }
        }
    });
    let worker = live_rows.scope().index();
    let mut batch: Vec<Arc<LiveRow>> = Vec::new();
    live_rows.sink(Exchange::new(|_row: &LiveRow| 0), &name, move |(input, _frontier)| {
        input.for_each_stamp(|_cap, data| {
            for rows in data {
                batch.extend(rows.drain(..).map(Arc::new));
            }
        });
        if worker != 0 || batch.is_empty() {
            return;
        }
        received.increment(batch.len() as u64);
        outputs.views.record(&source, &batch);
        outputs.hub.publish(&source, &batch);
        batch.clear();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_live::{Filter, LiveLimits, Outgoing, Subscription};
    use serde_json::json;
    use timely::dataflow::operators::ToStream;

    #[test]
    fn rows_of_every_worker_are_published_once_and_bad_records_skipped() {
        let outputs = LiveOutputs {
            hub: LiveHub::new(LiveLimits::default()),
            views: WindowViews::new(&pulse_live::RetentionConfig::default()),
        };
        let client = outputs.hub.connect("acme").unwrap();
        client.subscribe(Subscription::windows(Filter::default())).unwrap();
        let for_workers = outputs.clone();
        timely::execute(timely::Config::process(2), move |worker| {
            let index = worker.index() as u64;
            let outputs = for_workers.clone();
            worker.dataflow::<EventTime, _, _>(move |scope| {
                let rows = vec![
                    json!({"window_start": index * 10, "window_end": index * 10 + 10, "tenant": "acme", "count": 1}),
                    json!({"no_bounds": true}),
                ];
                publish_live(
                    rows.to_stream(scope),
                    LiveSource::new("p", "w"),
                    vec!["tenant".into()],
                    outputs,
                );
            });
        })
        .unwrap();
        assert_eq!(outputs.hub.stats().rows_published_total, 2);
        assert_eq!(outputs.views.stats()[0].rows, 2);
        let mut starts = Vec::new();
        while let Some(Outgoing::Window(text, _)) = client.try_next() {
            let message: serde_json::Value = serde_json::from_slice(&text).unwrap();
            starts.push(message["window_start"].as_u64().unwrap());
        }
        starts.sort_unstable();
        assert_eq!(starts, vec![0, 10]);
    }
}
