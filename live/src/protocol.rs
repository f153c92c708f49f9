//! The messages a WebSocket client sends (`subscribe`, `unsubscribe`, `ping`)
//! and the small replies the server sends back; window messages themselves are
//! rendered by [`LiveRow::to_message`](crate::LiveRow::to_message), and
//! `stats` messages (the pipeline's counters, to subscribers of the `stats`
//! topic) by [`stats_message`].

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::row::{LiveSource, Publishable};

/// Most entries one filter may have.
pub const MAX_FILTER_ENTRIES: usize = 16;

/// What a subscription listens to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Closed windows of window operators.
    Windows,
    /// The pipeline's counters, pushed every few seconds (what `GET /api/v1/stats` answers).
    Stats,
    /// Scored points of anomaly operators.
    Anomalies,
    /// Forecasts of forecast operators, one message per step ahead.
    Forecasts,
    /// Scored rows of onnx operators.
    Predictions,
    /// Incidents of incidents operators, each time one opens or changes (re-ranked causes, closing).
    Incidents,
}

impl Topic {
    /// The topic's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Windows => "windows",
            Topic::Stats => "stats",
            Topic::Anomalies => "anomalies",
            Topic::Forecasts => "forecasts",
            Topic::Predictions => "predictions",
            Topic::Incidents => "incidents",
        }
    }
}

/// Equality conditions on a row: key fields (`metric`, `labels.region`, ...)
/// and the special names `pipeline` and `operator`. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filter(BTreeMap<String, String>);

impl Filter {
    /// A filter of these `(field, value)` conditions.
    pub fn new<K: Into<String>, V: Into<String>>(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(entries.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// Whether a row of `source` satisfies every condition.
    pub fn matches<R: Publishable + ?Sized>(&self, source: &LiveSource, row: &R) -> bool {
        self.0.iter().all(|(field, wanted)| match field.as_str() {
            "pipeline" => source.pipeline == *wanted,
            "operator" => source.operator == *wanted,
            _ => row.key_str(field) == Some(wanted.as_str()),
        })
    }

    fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
}

/// One subscription of a client: a topic and a filter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subscription {
    /// What it listens to.
    pub topic: Topic,
    /// Which rows of the topic.
    pub filter: Filter,
}

impl Subscription {
    /// A subscription to closed windows matching `filter`.
    pub fn windows(filter: Filter) -> Self {
        Self {
            topic: Topic::Windows,
            filter,
        }
    }
}

/// A request of a client, parsed and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// Start receiving rows of a subscription.
    Subscribe(Subscription),
    /// Stop receiving them.
    Unsubscribe(Subscription),
    /// Application-level ping; answered with `{"type":"pong"}`.
    Ping,
}

/// Why a client message was refused; sent back as `{"type":"error","code","message"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, or not an object with a known `type`.
    #[error("{0}")]
    Malformed(String),
    /// An unknown topic.
    #[error("unknown topic {0:?}; the topics are: windows, stats, anomalies, forecasts, predictions, incidents")]
    UnknownTopic(String),
    /// A filter that is not an object of scalar values, or too large.
    #[error("{0}")]
    BadFilter(String),
    /// A filter naming another tenant.
    #[error("a subscription can only name its own tenant")]
    OtherTenant,
}

impl ProtocolError {
    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::Malformed(_) => "malformed_message",
            ProtocolError::UnknownTopic(_) => "unknown_topic",
            ProtocolError::BadFilter(_) => "bad_filter",
            ProtocolError::OtherTenant => "forbidden",
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum RawMessage {
    Subscribe {
        topic: String,
        #[serde(default)]
        filter: Option<Map<String, Value>>,
    },
    Unsubscribe {
        topic: String,
        #[serde(default)]
        filter: Option<Map<String, Value>>,
    },
    Ping,
}

/// Parses a client's text message for a connection of `tenant`. A `tenant`
/// filter equal to the caller's own is accepted (and dropped: every
/// subscription is scoped to it anyway); any other tenant is refused.
pub fn parse_client_message(text: &str, tenant: &str) -> Result<ClientCommand, ProtocolError> {
    let raw: RawMessage = serde_json::from_str(text).map_err(|e| {
        ProtocolError::Malformed(format!(
            "{e}; expected {{\"type\":\"subscribe\"|\"unsubscribe\",\"topic\":\"windows\"|\"stats\"|\"anomalies\"|\"forecasts\"|\"predictions\"|\"incidents\",\"filter\":{{..}}}} or {{\"type\":\"ping\"}}"
        ))
    })?;
    let subscription = |topic: String, filter: Option<Map<String, Value>>| {
        let topic = match topic.as_str() {
            "windows" => Topic::Windows,
            "stats" => Topic::Stats,
            "anomalies" => Topic::Anomalies,
            "forecasts" => Topic::Forecasts,
            "predictions" => Topic::Predictions,
            "incidents" => Topic::Incidents,
            _ => return Err(ProtocolError::UnknownTopic(topic)),
        };
        let filter = parse_filter(filter.unwrap_or_default(), tenant)?;
        if topic == Topic::Stats && filter != Filter::default() {
            return Err(ProtocolError::BadFilter(
                "the stats topic takes no filter: it reports the whole pipeline".into(),
            ));
        }
        Ok(Subscription { topic, filter })
    };
    Ok(match raw {
        RawMessage::Subscribe { topic, filter } => ClientCommand::Subscribe(subscription(topic, filter)?),
        RawMessage::Unsubscribe { topic, filter } => ClientCommand::Unsubscribe(subscription(topic, filter)?),
        RawMessage::Ping => ClientCommand::Ping,
    })
}

fn parse_filter(fields: Map<String, Value>, tenant: &str) -> Result<Filter, ProtocolError> {
    if fields.len() > MAX_FILTER_ENTRIES {
        return Err(ProtocolError::BadFilter(format!(
            "a filter may have at most {MAX_FILTER_ENTRIES} entries"
        )));
    }
    let mut filter = BTreeMap::new();
    for (field, value) in fields {
        let value = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(ProtocolError::BadFilter(format!(
                    "filter.{field} must be a string, number or boolean, not {other}"
                )));
            }
        };
        if field == "tenant" {
            if value != tenant {
                return Err(ProtocolError::OtherTenant);
            }
            continue;
        }
        filter.insert(field, value);
    }
    Ok(Filter(filter))
}

/// `{"type":"error","code","message"}`.
pub fn error_reply(code: &str, message: &str) -> Bytes {
    Bytes::from(json!({"type": "error", "code": code, "message": message}).to_string())
}

/// `{"type":"subscribed"|"unsubscribed","topic","filter"}`.
pub fn subscription_reply(kind: &str, subscription: &Subscription) -> Bytes {
    Bytes::from(
        json!({"type": kind, "topic": subscription.topic.as_str(), "filter": subscription.filter.to_json()})
            .to_string(),
    )
}

/// `{"type":"pong"}`.
pub fn pong_reply() -> Bytes {
    Bytes::from_static(br#"{"type":"pong"}"#)
}

/// `{"type":"stats","at":MS,"pipeline":{..},"live":{..},"views":{..}}`: the
/// counters of `GET /api/v1/stats` (`stats`, an object) tagged with their
/// type and the epoch milliseconds they were read at.
pub fn stats_message(stats: Value, at_ms: u64) -> Bytes {
    let mut message = Map::new();
    message.insert("type".into(), Value::from("stats"));
    message.insert("at".into(), Value::from(at_ms));
    if let Value::Object(fields) = stats {
        message.extend(fields.into_iter().filter(|(name, _)| name != "type" && name != "at"));
    }
    Bytes::from(Value::Object(message).to_string())
}

/// `{"type":"lagged","dropped":N}`.
pub fn lagged_reply(dropped: u64) -> Bytes {
    Bytes::from(json!({"type": "lagged", "dropped": dropped}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        let command = parse_client_message(
            r#"{"type":"subscribe","topic":"windows","filter":{"metric":"cpu","n":3}}"#,
            "t1",
        )
        .unwrap();
        assert_eq!(
            command,
            ClientCommand::Subscribe(Subscription {
                topic: Topic::Windows,
                filter: Filter::new([("metric", "cpu"), ("n", "3")]),
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"ping"}"#, "t1").unwrap(),
            ClientCommand::Ping
        );
        let own_tenant = parse_client_message(
            r#"{"type":"unsubscribe","topic":"windows","filter":{"tenant":"t1"}}"#,
            "t1",
        )
        .unwrap();
        assert_eq!(
            own_tenant,
            ClientCommand::Unsubscribe(Subscription {
                topic: Topic::Windows,
                filter: Filter::default()
            })
        );
    }

    #[test]
    fn parses_a_stats_subscription_and_refuses_a_filter_on_it() {
        let command = parse_client_message(r#"{"type":"subscribe","topic":"stats"}"#, "t1").unwrap();
        assert_eq!(
            command,
            ClientCommand::Subscribe(Subscription {
                topic: Topic::Stats,
                filter: Filter::default(),
            })
        );
        let error = parse_client_message(
            r#"{"type":"subscribe","topic":"stats","filter":{"metric":"cpu"}}"#,
            "t1",
        )
        .unwrap_err();
        assert_eq!(error.code(), "bad_filter", "{error}");
    }

    #[test]
    fn a_stats_message_carries_its_type_time_and_counters() {
        let message = stats_message(
            json!({"pipeline": {"events_in_total": 5}, "type": "x"}),
            1_700_000_000_000,
        );
        let parsed: Value = serde_json::from_slice(&message).unwrap();
        assert_eq!(
            parsed,
            json!({"type": "stats", "at": 1_700_000_000_000_u64, "pipeline": {"events_in_total": 5}})
        );
    }

    #[test]
    fn refuses_bad_messages_with_a_code() {
        let cases = [
            ("not json", "malformed_message"),
            (r#"{"type":"dance"}"#, "malformed_message"),
            (r#"{"type":"subscribe"}"#, "malformed_message"),
            (r#"{"type":"subscribe","topic":"alerts"}"#, "unknown_topic"),
            (
                r#"{"type":"subscribe","topic":"windows","filter":{"a":[1]}}"#,
                "bad_filter",
            ),
            (
                r#"{"type":"subscribe","topic":"windows","filter":{"tenant":"t2"}}"#,
                "forbidden",
            ),
            (
                r#"{"type":"subscribe","topic":"windows","filter":5}"#,
                "malformed_message",
            ),
        ];
        for (text, code) in cases {
            let error = parse_client_message(text, "t1").unwrap_err();
            assert_eq!(error.code(), code, "{text}: {error}");
        }
    }

    #[test]
    fn filters_match_key_fields_and_the_source() {
        let source = LiveSource::new("demo", "cpu_10s");
        let row = crate::row::LiveRow::from_flat(
            json!({"window_start": 0, "window_end": 10, "tenant": "t", "metric": "cpu"}),
            &["tenant".into(), "metric".into()],
        )
        .unwrap();
        assert!(Filter::default().matches(&source, &row));
        assert!(Filter::new([("metric", "cpu"), ("operator", "cpu_10s")]).matches(&source, &row));
        assert!(!Filter::new([("metric", "mem")]).matches(&source, &row));
        assert!(!Filter::new([("labels.region", "eu")]).matches(&source, &row));
        assert!(!Filter::new([("pipeline", "other")]).matches(&source, &row));
    }
}
