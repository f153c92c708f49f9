//! Live results of pulse: what the WebSocket gateway pushes and the query API reads.
//!
//! The dataflow hands every closed window ([`LiveRow`], tagged with the
//! [`LiveSource`] operator that produced it) to two things, neither of which
//! ever blocks the caller on I/O:
//!
//! - [`LiveHub`]: the fan-out hub. Subscriptions are grouped by
//!   (tenant, topic, filter); a row is serialised once and enqueued to every
//!   matching client's bounded queue, dropping the oldest message when a queue
//!   is full and telling the client how many it lost.
//! - [`WindowViews`]: the retained rows of each operator, bounded by count and
//!   age, answering series queries ([`SeriesQuery`]) per tenant.
//!
//! Anomaly and forecast operators publish [`AnalyticsRecord`]s the same way
//! (topics `anomalies` and `forecasts`), kept by [`AnalyticsViews`] for the
//! anomaly and forecast APIs.
//!
//! The crate knows neither timely nor HTTP: `pulse-sinks` attaches it to a
//! dataflow, `pulse-gateway` serves it over `/ws` and `/api/v1/analytics/query`.

pub mod analytics;
pub mod client;
pub mod config;
pub mod hub;
pub mod protocol;
pub mod query;
pub mod row;
pub mod view;

pub use analytics::{
    AnalyticsKind, AnalyticsRecord, AnalyticsViews, AnomalyPage, AnomalyQuery, ForecastStep, KeyForecast,
};
pub use client::{CloseReason, LiveClient, Outgoing};
pub use config::{LiveLimits, RetentionConfig};
pub use hub::{ConnectError, HubStats, LiveHub, SubscribeError};
pub use protocol::{ClientCommand, Filter, Subscription, Topic, parse_client_message};
pub use query::{Aggregation, QueryError, SeriesQuery, SeriesResult};
pub use row::{LiveRow, LiveSource, Publishable, RowError};
pub use view::{ViewShape, ViewStats, WindowViews};
