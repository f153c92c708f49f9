//! The pulse event model, shared by every crate of the engine.
//!
//! Deliberately small: the [`Event`] envelope and its JSON codec, event time and
//! durations ([`time`]), dead-letter records ([`DeadLetter`]) and the shutdown
//! signal that sources and operators watch ([`Shutdown`]).

pub mod dead_letter;
pub mod event;
pub mod shutdown;
pub mod time;

pub use dead_letter::DeadLetter;
pub use event::{Event, EventBody, EventKind, K8sEvent, LogRecord, Metric, ResourceRef, TopologyChange, TopologyOp};
pub use shutdown::Shutdown;
pub use time::{DurationSpec, EventTime};
