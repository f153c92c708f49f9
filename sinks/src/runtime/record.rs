//! What leaves the dataflow into a sink: typed records, not JSON text.

use pulse_core::{DeadLetter, Event, Row};
use serde::{Serialize, Serializer};

/// One record for a sink, as the dataflow produced it.
///
/// Rows carry their schema ([`Row::schema`]), so a sink can map them to its
/// format (JSON, database columns, Redis fields) without knowing which
/// operator made them.
#[derive(Clone, Debug, PartialEq)]
pub enum SinkRecord {
    /// An operator's output row.
    Row(Row),
    /// An event read by a source (a sink reading a source, or its `.late` output).
    Event(Event),
    /// Input a source could not decode (a source's `.dead_letter` output).
    DeadLetter(DeadLetter),
}

impl SinkRecord {
    /// The record as one line of JSON (without the newline).
    pub fn to_json_line(&self) -> String {
        match self {
            SinkRecord::Event(event) => event.to_json(),
            // Rows and dead letters hold nothing that JSON cannot say.
            other => serde_json::to_string(other).unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}")),
        }
    }

    /// The tenant the record belongs to, if it names one.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            SinkRecord::Row(row) => row.get("tenant").and_then(|value| value.as_str()),
            SinkRecord::Event(event) => Some(&event.tenant),
            SinkRecord::DeadLetter(_) => None,
        }
    }
}

impl Serialize for SinkRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SinkRecord::Row(row) => row.serialize(serializer),
            SinkRecord::Event(event) => event.serialize(serializer),
            SinkRecord::DeadLetter(letter) => letter.serialize(serializer),
        }
    }
}

impl From<Row> for SinkRecord {
    fn from(row: Row) -> Self {
        SinkRecord::Row(row)
    }
}

impl From<Event> for SinkRecord {
    fn from(event: Event) -> Self {
        SinkRecord::Event(event)
    }
}

impl From<DeadLetter> for SinkRecord {
    fn from(letter: DeadLetter) -> Self {
        SinkRecord::DeadLetter(letter)
    }
}
