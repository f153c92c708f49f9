//! One simulated subscriber: connects (within the run's connect slots),
//! subscribes, then reads until the run stops it, recording the delivery
//! latency of every window message received while the run is measuring.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::message::ServerMessage;
use super::{Phase, RunState};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Window messages are a few hundred bytes: a small read buffer keeps
/// 10,000 clients' memory down (tungstenite allocates it eagerly, 128 KiB by default).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// How long a client waits for its close handshake once the run is over.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How a client connects and what it subscribes to; the same for every client of a run.
pub(crate) struct ClientSettings {
    /// The `/ws` URL.
    pub(crate) url: String,
    /// `Bearer <token>`, if a token was given.
    pub(crate) authorization: Option<HeaderValue>,
    /// The `subscribe` request text.
    pub(crate) subscribe: String,
    /// How long connecting and subscribing may take.
    pub(crate) connect_timeout: Duration,
}

/// What one client saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientOutcome {
    /// Why it could not connect and subscribe, if it could not.
    pub(crate) connect_error: Option<String>,
    /// Why its connection ended before the run stopped it, if it did.
    pub(crate) ended_early: Option<String>,
    /// Window messages received while measuring.
    pub(crate) received: u64,
    /// Window messages received while measuring without a `published_at_us` stamp.
    pub(crate) unstamped: u64,
    /// `lagged` notices received while measuring.
    pub(crate) lagged: u64,
    /// Window messages those notices said were dropped.
    pub(crate) dropped: u64,
}

/// Runs one client until `stop` turns true.
pub(crate) async fn run_client(run: Arc<RunState>, mut stop: watch::Receiver<bool>) -> ClientOutcome {
    let mut outcome = ClientOutcome::default();
    let slot = run.connect_slots.acquire().await;
    let connected = tokio::time::timeout(run.settings.connect_timeout, connect_and_subscribe(&run.settings)).await;
    drop(slot);
    let socket = match connected {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => {
            outcome.connect_error = Some(error);
            run.failed.fetch_add(1, Ordering::Relaxed);
            return outcome;
        }
        Err(_) => {
            let limit = run.settings.connect_timeout.as_secs();
            outcome.connect_error = Some(format!("connecting and subscribing took over {limit} s"));
            run.failed.fetch_add(1, Ordering::Relaxed);
            return outcome;
        }
    };
    run.connected.fetch_add(1, Ordering::Relaxed);
    outcome.ended_early = read_until_stopped(socket, &run, &mut stop, &mut outcome).await;
    outcome
}

async fn connect_and_subscribe(settings: &ClientSettings) -> Result<Socket, String> {
    let mut request = settings.url.as_str().into_client_request().map_err(|e| e.to_string())?;
    if let Some(authorization) = &settings.authorization {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, authorization.clone());
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(describe_connect_error)?;
    socket
        .send(Message::text(settings.subscribe.clone()))
        .await
        .map_err(|e| format!("sending subscribe: {e}"))?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => match ServerMessage::parse(text.as_str()) {
                Ok(ServerMessage::Subscribed) => return Ok(socket),
                Ok(ServerMessage::Error { description }) => {
                    return Err(format!("subscription refused: {description}"));
                }
                _ => continue,
            },
            Some(Ok(Message::Close(frame))) => return Err(format!("before subscribing: {}", describe_close(frame))),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(format!("before subscribing: {error}")),
            None => return Err("the connection closed before the subscription was confirmed".into()),
        }
    }
}

/// Reads until stopped; returns why the connection ended if it ended first.
async fn read_until_stopped(
    mut socket: Socket,
    run: &RunState,
    stop: &mut watch::Receiver<bool>,
    outcome: &mut ClientOutcome,
) -> Option<String> {
    // The guard `wait_for` returns is not `Send`: drop it inside the future.
    let stopped = async {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    tokio::pin!(stopped);
    loop {
        let frame = tokio::select! {
            biased;
            () = &mut stopped => break,
            frame = socket.next() => frame,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            // Pings are answered by tungstenite on the next read.
            Some(Ok(Message::Close(frame))) => return Some(describe_close(frame)),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Some(format!("read error: {error}")),
            None => return Some("the connection ended without a close frame".into()),
        };
        let received_at_us = unix_micros();
        if run.phase() != Phase::Measuring {
            continue;
        }
        match ServerMessage::parse(text.as_str()) {
            Ok(ServerMessage::Window {
                published_at_us: Some(published_at_us),
            }) => {
                outcome.received += 1;
                run.latencies
                    .record_ok(Duration::from_micros(received_at_us.saturating_sub(published_at_us)));
            }
            Ok(ServerMessage::Window { published_at_us: None }) => {
                outcome.received += 1;
                outcome.unstamped += 1;
            }
            Ok(ServerMessage::Lagged { dropped }) => {
                outcome.lagged += 1;
                outcome.dropped += dropped;
            }
            _ => {}
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(None)).await;
    None
}

/// An HTTP refusal as `HTTP <status> <code>: <message>` (the gateway's JSON error), else the error itself.
fn describe_connect_error(error: WsError) -> String {
    let WsError::Http(response) = error else {
        return error.to_string();
    };
    let status = response.status();
    let body = response.body().as_deref().unwrap_or_default();
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => format!(
            "HTTP {status} {}: {}",
            json["error"]["code"].as_str().unwrap_or("?"),
            json["error"]["message"].as_str().unwrap_or("?")
        ),
        Err(_) => format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
    }
}

fn describe_close(frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("closed by the server: {} {}", u16::from(frame.code), frame.reason),
        None => "closed by the server".into(),
    }
}

/// Microseconds since the Unix epoch, the clock `published_at_us` is stamped with.
fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
