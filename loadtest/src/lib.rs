//! Load generators for a running pulse, behind the `pulse-loadtest` binary.
//!
//! Scenarios ([`scenario`]): `events` (sensor events into Kafka, timed to
//! their window results on `/ws`), `api` (KV and analytics requests), `mixed`
//! (both at once), and [`ws`] (thousands of `/ws` subscribers). Each sends on
//! a schedule ([`pace`]: open loop at a target rate, latency from the intended
//! send time), records into HdrHistogram series ([`record`]), shows a live
//! progress line ([`progress`]) and writes a [`report`]: `report.json` and SVG
//! charts, which `compare` diffs. Targets must be loopback unless allowed
//! ([`target`]).

pub mod http;
pub mod pace;
pub mod process;
pub mod progress;
pub mod record;
pub mod report;
pub mod scenario;
pub mod target;
pub mod ws;
