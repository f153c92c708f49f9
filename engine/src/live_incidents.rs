//! The live answer of an `incidents` operator in a pipeline with a gateway
//! (whatever sinks read the operator): every version of every incident
//! (opened, joined, re-ranked by a late cause, closed) published on the
//! WebSocket topic `incidents` and kept in the gateway's [`IncidentViews`];
//! and the events the operator reads, kept in its [`ResourceViews`] for the
//! resource API.
//!
//! The operator's collection changes by retraction and insertion; each
//! inserted report is the incident's new state, so only insertions are
//! published (a retraction alone means the operator has forgotten an old
//! incident, which the view keeps until its bound pushes it out). As for
//! windows, reports and events are gathered on worker 0, which records and
//! publishes each batch as it arrives, under short in-memory locks only.

use std::sync::Arc;

use pulse_core::row::RowSchema;
use pulse_core::{Event, EventTime};
use pulse_gateway::live::incidents::{IncidentRecord, IncidentViews};
use pulse_gateway::live::resources::ResourceViews;
use pulse_live::{LiveHub, LiveSource, Topic};
use pulse_operators::incidents::IncidentReport;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;

use crate::operators::incidents::report_row;

/// Where the live answer of incidents operators goes.
#[derive(Clone, Default)]
pub struct IncidentOutputs {
    /// Incidents for the incident and RCA APIs.
    pub incidents: IncidentViews,
    /// Resources for the resource API.
    pub resources: ResourceViews,
}

/// Publishes the inserted reports of `updates` as coming from `source`, and
/// keeps `events` (the operator's input, already routed to worker 0 by
/// [`to_worker_zero`](crate::cluster::gather::to_worker_zero)) as the
/// tenants' resources.
pub fn publish_incidents<'scope>(
    updates: Stream<'scope, EventTime, Vec<IncidentReport>>,
    events: Stream<'scope, EventTime, Vec<Event>>,
    source: LiveSource,
    schema: Arc<RowSchema>,
    hub: LiveHub,
    outputs: IncidentOutputs,
) {
    let name = format!("{}/{}", source.pipeline, source.operator);
    let labels = [("component", name.clone())];
    let errors = metrics::counter!("pulse_sink_errors_total", &labels);
    let received = metrics::counter!("pulse_component_received_events_total", &labels);
    let worker = updates.scope().index();
    let mut reports: Vec<IncidentReport> = Vec::new();
    let views = outputs.incidents.clone();
    updates.sink(
        Exchange::new(|_: &IncidentReport| 0),
        &name,
        move |(input, _frontier)| {
            input.for_each_stamp(|_, data| {
                for batch in data {
                    reports.append(batch);
                }
            });
            if worker != 0 || reports.is_empty() {
                return;
            }
            received.increment(reports.len() as u64);
            let records: Vec<IncidentRecord> = reports
                .drain(..)
                .filter_map(|report| {
                    let row = serde_json::to_value(report_row(&report, &schema));
                    match row
                        .map_err(|e| e.to_string())
                        .and_then(|row| IncidentRecord::from_row(&row).map_err(|e| e.to_string()))
                    {
                        Ok(record) => Some(record),
                        Err(error) => {
                            errors.increment(1);
                            tracing::error!(%error, "an incident could not be published");
                            None
                        }
                    }
                })
                .collect();
            let published = views.record(records);
            hub.publish_to(Topic::Incidents, &source, &published);
        },
    );
    let mut batch: Vec<Event> = Vec::new();
    let resources = outputs.resources;
    events.sink(Pipeline, &format!("{name}.resources"), move |(input, _frontier)| {
        input.for_each_stamp(|_, data| {
            for events in data {
                batch.append(events);
            }
        });
        if worker != 0 || batch.is_empty() {
            return;
        }
        resources.record(&batch);
        batch.clear();
    });
}
