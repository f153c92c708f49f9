//! The pulse event model, shared by every crate of the engine.
//!
//! Deliberately small: the [`Event`] envelope and its JSON codec, event time and
//! durations ([`time`]), dead-letter records ([`DeadLetter`]), the shutdown
//! signal that sources and operators watch ([`Shutdown`]), the sinks'
//! delivered frontier that offset commits wait for ([`Delivered`]), the
//! back-pressure sources pause for ([`Backpressure`]), the typed rows
//! operators hand each other and sinks ([`row`]), and the queue between the
//! HTTP ingest endpoint and the `http` source ([`ingest`]), and Cypher
//! parameters as query text, for the graph sink and the gateway ([`cypher`]).

pub mod backpressure;
pub mod cypher;
pub mod dead_letter;
pub mod delivery;
pub mod event;
pub mod health;
pub mod ingest;
pub mod row;
pub mod session_progress;
pub mod shutdown;
pub mod time;

pub use backpressure::{Backpressure, Valve};
pub use dead_letter::DeadLetter;
pub use delivery::{Delivered, DeliveryTracker};
pub use event::{
    CompactString, Event, EventBody, EventKind, K8sEvent, LogRecord, Metric, Projection, ResourceRef, TopologyChange,
    TopologyOp,
};
pub use health::{ComponentHealth, HealthBoard, HealthReporter};
pub use row::{Column, ColumnType, Row, RowSchema};
pub use session_progress::{PeerSettled, SessionProgress, SessionReporter};
pub use shutdown::Shutdown;
pub use time::{DurationSpec, EventTime};
