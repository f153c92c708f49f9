//! The part of the `/ws` protocol a load client speaks: the `subscribe`
//! request, and the server messages it reads (`subscribed`, `window`,
//! `lagged`, `error`), parsed without building the window's key and values.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The request that subscribes to closed windows matching `filter`.
pub fn subscribe_request(filter: &Map<String, Value>) -> String {
    json!({"type": "subscribe", "topic": "windows", "filter": filter}).to_string()
}

/// A message from the server, as far as the load client cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerMessage {
    /// A closed window, stamped with the hub's publication time (Unix µs).
    Window {
        /// When the hub published it; `None` if the server did not stamp it.
        published_at_us: Option<u64>,
    },
    /// The client's queue overflowed and `dropped` window messages were lost.
    Lagged {
        /// How many were dropped since the last notice.
        dropped: u64,
    },
    /// A subscription was accepted.
    Subscribed,
    /// A request was refused.
    Error {
        /// The server's code and message.
        description: String,
    },
    /// Anything else (`pong`, `unsubscribed`, future types).
    Other,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    published_at_us: Option<u64>,
    #[serde(default)]
    dropped: Option<u64>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

impl ServerMessage {
    /// Parses a text frame; `Err` for text that is not a message object.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_loadtest::ws::message::ServerMessage;
    ///
    /// let text = r#"{"type":"window","operator":"w","key":{"metric":"cpu"},"values":{"count":3},"published_at_us":17}"#;
    /// assert_eq!(ServerMessage::parse(text).unwrap(), ServerMessage::Window { published_at_us: Some(17) });
    /// assert_eq!(ServerMessage::parse(r#"{"type":"lagged","dropped":4}"#).unwrap(), ServerMessage::Lagged { dropped: 4 });
    /// ```
    pub fn parse(text: &str) -> serde_json::Result<Self> {
        let wire: Wire<'_> = serde_json::from_str(text)?;
        Ok(match wire.kind.as_ref() {
            "window" => ServerMessage::Window {
                published_at_us: wire.published_at_us,
            },
            "lagged" => ServerMessage::Lagged {
                dropped: wire.dropped.unwrap_or(0),
            },
            "subscribed" => ServerMessage::Subscribed,
            "error" => ServerMessage::Error {
                description: format!(
                    "{}: {}",
                    wire.code.as_deref().unwrap_or("error"),
                    wire.message.as_deref().unwrap_or("")
                ),
            },
            _ => ServerMessage::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_message_kind_the_client_acts_on() {
        let subscribed = r#"{"type":"subscribed","topic":"windows","filter":{"metric":"cpu"}}"#;
        assert_eq!(ServerMessage::parse(subscribed).unwrap(), ServerMessage::Subscribed);
        let refused = r#"{"type":"error","code":"bad_filter","message":"a \"filter\" must be an object"}"#;
        assert_eq!(
            ServerMessage::parse(refused).unwrap(),
            ServerMessage::Error {
                description: r#"bad_filter: a "filter" must be an object"#.into()
            }
        );
        let unstamped = r#"{"type":"window","window_start":0,"window_end":1000}"#;
        assert_eq!(
            ServerMessage::parse(unstamped).unwrap(),
            ServerMessage::Window { published_at_us: None }
        );
        assert_eq!(
            ServerMessage::parse(r#"{"type":"pong"}"#).unwrap(),
            ServerMessage::Other
        );
        assert!(ServerMessage::parse("not json").is_err());
        assert!(ServerMessage::parse(r#"{"kind":"window"}"#).is_err());
    }

    #[test]
    fn the_subscribe_request_carries_the_filter() {
        let filter = json!({"metric": "cpu"}).as_object().unwrap().clone();
        let request: Value = serde_json::from_str(&subscribe_request(&filter)).unwrap();
        assert_eq!(
            request,
            json!({"type": "subscribe", "topic": "windows", "filter": {"metric": "cpu"}})
        );
    }
}
