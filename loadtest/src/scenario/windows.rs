//! A subscriber of closed windows on `/ws` that times what it receives: the
//! end-to-end latency of a window (`events.window_e2e`: receipt minus the
//! window's end in event time — the earliest instant its result could be
//! known) and the hub's delivery latency (`ws.delivery`: receipt minus the
//! hub's `published_at_us`).

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::http::Credential;
use crate::record::Recorder;

/// The series of end-to-end window latency.
pub const WINDOW_E2E: &str = "events.window_e2e";

/// The series of hub-to-client delivery latency.
pub const WS_DELIVERY: &str = "ws.delivery";

/// What a window message says about its timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowTiming {
    /// Start of the window, epoch ms.
    pub window_start: u64,
    /// End of the window, epoch ms.
    pub window_end: u64,
    /// When the hub published it, Unix µs.
    pub published_at_us: Option<u64>,
}

/// The timing of a `window` message; `None` for any other message.
///
/// # Examples
///
/// ```
/// use pulse_loadtest::scenario::windows::window_timing;
///
/// let text = r#"{"type":"window","window_start":1000,"window_end":2000,"key":{},"values":{},"published_at_us":2100000}"#;
/// let timing = window_timing(text).unwrap();
/// assert_eq!((timing.window_end, timing.published_at_us), (2000, Some(2_100_000)));
/// assert!(window_timing(r#"{"type":"subscribed"}"#).is_none());
/// ```
pub fn window_timing(text: &str) -> Option<WindowTiming> {
    let message: Value = serde_json::from_str(text).ok()?;
    if message["type"] != "window" {
        return None;
    }
    Some(WindowTiming {
        window_start: message["window_start"].as_u64()?,
        window_end: message["window_end"].as_u64()?,
        published_at_us: message["published_at_us"].as_u64(),
    })
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A connected, subscribed socket.
pub type Subscription = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `url` with `credential` and subscribes to every window of the credential's tenant.
pub async fn subscribe(url: &str, credential: &Credential, timeout: Duration) -> anyhow::Result<Subscription> {
    subscribe_to(url, credential, timeout, "windows").await
}

/// Connects to `url` with `credential` and subscribes to everything of `topic` for the credential's tenant.
pub async fn subscribe_to(
    url: &str,
    credential: &Credential,
    timeout: Duration,
    topic: &str,
) -> anyhow::Result<Subscription> {
    let mut request = url.into_client_request().context("the /ws URL")?;
    let (name, value) = match credential {
        Credential::Bearer(token) => ("authorization", format!("Bearer {token}")),
        Credential::ApiKey(key) => ("x-api-key", key.clone()),
    };
    request.headers_mut().insert(
        name,
        HeaderValue::from_str(&value).context("the credential cannot be sent in a header")?,
    );
    let connect = async {
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        socket
            .send(Message::text(
                serde_json::json!({"type": "subscribe", "topic": topic, "filter": {}}).to_string(),
            ))
            .await
            .context("sending the subscription")?;
        while let Some(frame) = socket.next().await {
            if let Message::Text(text) = frame.context("before the subscription was confirmed")? {
                let message: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                match message["type"].as_str() {
                    Some("subscribed") => return Ok(socket),
                    Some("error") => anyhow::bail!("the subscription was refused: {}", message["message"]),
                    _ => {}
                }
            }
        }
        anyhow::bail!("{url} closed before confirming the subscription")
    };
    tokio::time::timeout(timeout, connect)
        .await
        .with_context(|| format!("{url}: no subscription within {timeout:?}"))?
}

/// Reads `socket` until `stop` turns true, timing windows that start at or
/// after `since_ms` (older ones are from before the run).
pub async fn listen(mut socket: Subscription, since_ms: u64, recorder: Recorder, mut stop: watch::Receiver<bool>) {
    let (e2e, delivery) = (recorder.series(WINDOW_E2E), recorder.series(WS_DELIVERY));
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            frame = socket.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                let received_us = unix_micros();
                let Some(timing) = window_timing(text.as_str()) else {
                    continue;
                };
                if timing.window_start < since_ms {
                    continue;
                }
                e2e.record_ok(Duration::from_micros(
                    received_us.saturating_sub(timing.window_end.saturating_mul(1000)),
                ));
                if let Some(published) = timing.published_at_us {
                    delivery.record_ok(Duration::from_micros(received_us.saturating_sub(published)));
                }
            }
            Some(Ok(Message::Close(_))) | None => {
                delivery.record_error("closed_by_server");
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                delivery.record_error("read_error");
                break;
            }
        }
    }
    let _ = socket.close(None).await;
}
