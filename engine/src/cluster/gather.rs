//! Records routed to global worker 0, across processes.
//!
//! Files, stdout and Kafka topics have one ordered writer, and the gateway's
//! live views live in process 0; in a cluster their inputs are exchanged to
//! worker 0 first. Timely serialises what crosses processes with bincode,
//! which cannot read back the JSON-shaped forms of rows and dead letters
//! (self-describing maps, tagged enums). So they cross in a wire form of
//! their own: a row as its values (the receiving worker knows each input's
//! schema from the plan), a dead letter as its JSON; an event in its own
//! binary form (`pulse_core::Event` writes one for binary formats).

use std::sync::Arc;

use pulse_core::row::Value;
use pulse_core::{DeadLetter, Event, EventTime, Row, RowSchema};
use pulse_sinks::SinkRecord;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;
use timely::dataflow::{Scope, Stream};

/// A value of a row, as it crosses processes.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum WireValue {
    Null,
    Time(EventTime),
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<&Value> for WireValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => WireValue::Null,
            Value::Time(t) => WireValue::Time(*t),
            Value::Str(s) => WireValue::Str(s.clone()),
            Value::Int(n) => WireValue::Int(*n),
            Value::Float(x) => WireValue::Float(*x),
            Value::Bool(b) => WireValue::Bool(*b),
        }
    }
}

impl From<WireValue> for Value {
    fn from(value: WireValue) -> Self {
        match value {
            WireValue::Null => Value::Null,
            WireValue::Time(t) => Value::Time(t),
            WireValue::Str(s) => Value::Str(s),
            WireValue::Int(n) => Value::Int(n),
            WireValue::Float(x) => Value::Float(x),
            WireValue::Bool(b) => Value::Bool(b),
        }
    }
}

/// A sink record as it crosses processes.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum WireRecord {
    /// A row of the input at this position of the gathered inputs.
    Row(u16, Vec<WireValue>),
    /// An event (in its binary form).
    Event(Event),
    /// A dead letter, as JSON.
    DeadLetter(String),
}

/// What the receiving worker needs to rebuild records: each input's row
/// schema (`None` for inputs of events or dead letters).
#[derive(Clone)]
pub(crate) struct GatheredInputs {
    schemas: Arc<Vec<Option<Arc<RowSchema>>>>,
}

impl GatheredInputs {
    /// The schemas of the inputs, in the order their streams are given to [`gather`].
    pub(crate) fn new(schemas: Vec<Option<Arc<RowSchema>>>) -> Self {
        Self {
            schemas: Arc::new(schemas),
        }
    }
}

/// Routes `inputs` (each a stream of records; rows of input `i` of schema
/// `schemas[i]`) to global worker 0, merged into one stream there; other
/// workers' output stays empty.
pub(crate) fn gather<'scope>(
    scope: Scope<'scope, EventTime>,
    inputs: Vec<Stream<'scope, EventTime, Vec<SinkRecord>>>,
    schemas: &GatheredInputs,
    name: &str,
) -> Stream<'scope, EventTime, Vec<SinkRecord>> {
    use timely::dataflow::operators::Concatenate;
    use timely::dataflow::operators::vec::Map;

    let wires: Vec<_> = inputs
        .into_iter()
        .enumerate()
        .map(|(input, stream)| {
            let input = u16::try_from(input).expect("fewer than 65536 inputs");
            stream.map(move |record| match record {
                SinkRecord::Row(row) => WireRecord::Row(input, row.values().iter().map(WireValue::from).collect()),
                SinkRecord::Event(event) => WireRecord::Event(event),
                SinkRecord::DeadLetter(letter) => {
                    WireRecord::DeadLetter(serde_json::to_string(&letter).unwrap_or_default())
                }
            })
        })
        .collect();
    let schemas = schemas.clone();
    let name = name.to_owned();
    scope.concatenate(wires).unary(
        Exchange::new(|_: &WireRecord| 0),
        &format!("{name}.gather"),
        move |_capability, _info| {
            move |input, output| {
                input.for_each(|time, data| {
                    let records: Vec<SinkRecord> = data
                        .drain(..)
                        .filter_map(|wire| rebuild(wire, &schemas, &name))
                        .collect();
                    output.session(&time).give_iterator(records.into_iter());
                });
            }
        },
    )
}

/// [`gather`] for one operator's rows (of `schema`).
pub(crate) fn gather_rows<'scope>(
    scope: Scope<'scope, EventTime>,
    rows: Stream<'scope, EventTime, Vec<Row>>,
    schema: &Arc<RowSchema>,
    name: &str,
) -> Stream<'scope, EventTime, Vec<Row>> {
    use timely::dataflow::operators::vec::Map;

    let inputs = GatheredInputs::new(vec![Some(Arc::clone(schema))]);
    gather(scope, vec![rows.map(SinkRecord::Row)], &inputs, name).flat_map(|record| match record {
        SinkRecord::Row(row) => Some(row),
        _ => None,
    })
}

/// `events` routed to global worker 0 (in one process, to its first
/// worker): the input of a view that only worker 0 keeps, such as the
/// resource view of an incidents operator. A pass-through, so a probe on its
/// output sees what is still on its way to worker 0.
pub(crate) fn to_worker_zero<'scope>(
    events: Stream<'scope, EventTime, Vec<Event>>,
    name: &str,
) -> Stream<'scope, EventTime, Vec<Event>> {
    events.unary(
        Exchange::new(|_: &Event| 0),
        &format!("{name}.to_worker_zero"),
        |_capability, _info| {
            |input, output| {
                input.for_each(|time, data| {
                    output.session(&time).give_container(data);
                });
            }
        },
    )
}

/// The record `wire` stood for; `None` (logged and counted) for what cannot
/// come back, which only a bug on the sending side makes.
fn rebuild(wire: WireRecord, inputs: &GatheredInputs, name: &str) -> Option<SinkRecord> {
    let rebuilt = match wire {
        WireRecord::Row(input, values) => match inputs.schemas.get(usize::from(input)) {
            Some(Some(schema)) if schema.len() == values.len() => Ok(SinkRecord::Row(Row::new(
                Arc::clone(schema),
                values.into_iter().map(Value::from).collect(),
            ))),
            _ => Err(format!("a row of input {input} does not fit its schema")),
        },
        WireRecord::Event(event) => Ok(SinkRecord::Event(event)),
        WireRecord::DeadLetter(json) => serde_json::from_str::<DeadLetter>(&json)
            .map(SinkRecord::DeadLetter)
            .map_err(|error| error.to_string()),
    };
    rebuilt
        .map_err(|error| {
            metrics::counter!("pulse_sink_errors_total", "component" => name.to_owned()).increment(1);
            tracing::error!(component = %name, %error, "a record routed to process 0 could not be read back; not written");
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use pulse_core::{Column, ColumnType};
    use timely::dataflow::operators::Inspect;
    use timely::dataflow::operators::vec::ToStream;

    /// Through timely's serialising channels (`ProcessBinary`: bincode between
    /// threads, as between processes), rows and events of both workers come
    /// back equal on worker 0.
    #[test]
    fn records_of_every_worker_reach_worker_0_through_bincode() {
        let schema = Arc::new(
            RowSchema::new(vec![
                Column::new("window_end", ColumnType::Time),
                Column::new("tenant", ColumnType::Key),
                Column::new("avg", ColumnType::Float).nullable(),
            ])
            .unwrap(),
        );
        let received: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let seen = Arc::clone(&received);
        let (builders, others) = timely::CommunicationConfig::ProcessBinary(2).try_build().unwrap();
        timely::execute::execute_from(builders, others, timely::WorkerConfig::default(), move |worker| {
            let index = worker.index();
            let (schema, seen) = (Arc::clone(&schema), Arc::clone(&seen));
            worker.dataflow::<EventTime, _, _>(move |scope| {
                let row = Row::new(
                    Arc::clone(&schema),
                    vec![
                        Value::Time(10_000),
                        Value::from("acme"),
                        Value::Float(index as f64 + 0.5),
                    ],
                );
                let line = format!(
                    r#"{{"ts":{index},"tenant":"acme","source":"h","kind":"metric","metric":"cpu","value":0.25}}"#
                );
                let event = Event::from_json(line.as_bytes()).unwrap();
                let rows = vec![SinkRecord::Row(row)].to_stream(scope);
                let events = vec![SinkRecord::Event(event)].to_stream(scope);
                let inputs = GatheredInputs::new(vec![Some(Arc::clone(&schema)), None]);
                gather(scope, vec![rows, events], &inputs, "test").inspect(move |record| {
                    seen.lock().unwrap().push((index, record.to_json_line()));
                });
            });
        })
        .unwrap()
        .join();
        let mut received = received.lock().unwrap().clone();
        received.sort();
        let lines: Vec<&str> = received
            .iter()
            .map(|(worker, line)| {
                assert_eq!(*worker, 0, "everything lands on worker 0");
                line.as_str()
            })
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines.contains(&r#"{"window_end":10000,"tenant":"acme","avg":1.5}"#),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains(r#""ts":1"#) && l.contains(r#""metric":"cpu""#)),
            "{lines:?}"
        );
    }
}
