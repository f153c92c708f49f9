//! `GET /ws`: an authenticated WebSocket of live window results.
//!
//! Authentication happens before the upgrade, with the same credentials as the
//! REST API (`Authorization: Bearer`, `X-API-Key`) plus `?token=` for browsers,
//! which cannot set headers on a WebSocket: a missing, bad or expired
//! credential is answered with **401** (and a JSON error), a credential without
//! the `read` scope with **403**, too many connections with **503** (all) or
//! **429** (the tenant's quota). Once connected, the server closes with
//! **4401** `token expired` when the access token expires, **4008** when the
//! client lagged longer than `live.max_lag_secs`, **4000** when it missed three
//! heartbeats, and **1009** (by the WebSocket layer) for a message over
//! `live.max_message_bytes`.
//!
//! Clients send `{"type":"subscribe"|"unsubscribe","topic":"windows","filter":{..}}`,
//! `{"type":"subscribe","topic":"stats"}` and `{"type":"ping"}`; they receive
//! `subscribed`/`unsubscribed`/`pong` replies, `window` messages, `lagged`
//! notices, for a bad message an `error` reply (the connection stays open),
//! and, while subscribed to `stats`, a `stats` message at once and then every
//! [`STATS_INTERVAL`] (the body of `GET /api/v1/stats` with `"type":"stats"`
//! and `"at"`): a dashboard gets its counters without polling the REST API,
//! whose requests count against the tenant's rate limit.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::SinkExt;
use pulse_live::protocol::{error_reply, pong_reply, stats_message, subscription_reply};
use pulse_live::{ClientCommand, CloseReason, ConnectError, LiveClient, Outgoing, Topic, parse_client_message};
use serde::Deserialize;

use crate::auth::jwt::TokenKind;
use crate::auth::{Credential, Scope, resolve};
use crate::error::AppError;
use crate::live::{LiveServices, services};
use crate::state::AppState;

/// How long a closing connection may take to flush its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How often a connection subscribed to `stats` receives the counters.
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// The query string of `/ws`.
#[derive(Debug, Default, Deserialize)]
pub struct WsParams {
    /// An access token, for browsers.
    #[serde(default)]
    pub token: Option<String>,
}

/// Live window results over a WebSocket (read scope); authenticated before the upgrade.
///
/// Credentials: `Authorization: Bearer <token>`, `X-API-Key`, or `?token=` (browsers).
/// A WebSocket client sends the upgrade headers itself.
///
/// **Client → server** (JSON text frames):
/// - `{"type":"subscribe","topic":"windows","filter":{"metric":"cpu","operator":"by_metric_5s"}}`:
///   the filter holds up to 16 equalities on key fields (`metric`, `source`, `labels.region`, …)
///   or on `pipeline` / `operator`; an empty filter gets all of the tenant's windows
/// - `{"type":"unsubscribe","topic":"windows","filter":{…}}` (the same filter as subscribed)
/// - `{"type":"subscribe"|"unsubscribe","topic":"stats"}` (no filter): the run's counters
/// - `{"type":"ping"}`
///
/// **Server → client**:
/// - `{"type":"subscribed"|"unsubscribed","topic":"windows","filter":{…}}` and `{"type":"pong"}`
/// - `{"type":"window","pipeline","operator","window_start","window_end","key":{…},"values":{…},"published_at_us"}`
///   for each closed window of the caller's tenant that a subscription matches
///   (`published_at_us`: when the hub published it, Unix µs)
/// - `{"type":"stats","at":MS,"pipeline":{…},"live":{…},"views":{…}}` while subscribed to
///   `stats`: at once, then every 2 s (the body of `GET /api/v1/stats`, with its time)
/// - `{"type":"lagged","dropped":N}` when a slow client's queue dropped its oldest messages
/// - `{"type":"error","code":"…","message":"…"}` for a bad message (the connection stays open)
///
/// **Close codes**: 4401 token expired, 4008 lagged longer than `live.max_lag_secs`,
/// 4000 three missed heartbeats, 1009 a message over `live.max_message_bytes`.
#[utoipa::path(get, path = "/ws", tag = "live", security(("bearer" = []), ("api_key" = [])),
    params(
        ("token" = Option<String>, Query, description = "an access token, for browsers (which cannot set headers on a WebSocket)"),
        ("Connection" = String, Header, description = "`Upgrade`"),
        ("Upgrade" = String, Header, description = "`websocket`"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, description = "a random base64 nonce"),
    ),
    responses(
        (status = 101, description = "switched to the WebSocket protocol described above"),
        (status = 400, description = "not a WebSocket upgrade request (`websocket_upgrade_required`)"),
        (status = 401, description = "missing, invalid or expired credentials"),
        (status = 403, description = "the credential lacks the read scope"),
        (status = 429, description = "the tenant's connection quota is used up (`connection_quota`)"),
        (status = 503, description = "too many connections, or no pipeline with live results runs here"),
    ))]
pub async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<WsParams>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match admit(&state, &headers, params.map(|q| q.0).unwrap_or_default(), upgrade).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    params: WsParams,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let live = services(state)?;
    let (tenant, expires_at) = authenticate(state, headers, params.token.as_deref()).await?;
    let upgrade = upgrade.map_err(|rejection| {
        AppError::bad_request(
            "websocket_upgrade_required",
            format!("expected a WebSocket upgrade request: {rejection}"),
        )
    })?;
    let client = live.hub.connect(&tenant).map_err(|error| match error {
        ConnectError::TooManyConnections(_) => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            error.to_string(),
        ),
        ConnectError::TenantQuota(_) => {
            AppError::new(StatusCode::TOO_MANY_REQUESTS, "connection_quota", error.to_string())
        }
    })?;
    let limits = live.hub.limits().clone();
    let live = live.clone();
    Ok(upgrade
        // Clients send a few small JSON messages: a small read buffer keeps
        // an idle connection's memory low (the default is 128 KiB).
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |socket| {
            let heartbeat = Duration::from_secs(limits.heartbeat_secs);
            let max_lag = Duration::from_secs(limits.max_lag_secs);
            run(socket, client, live, expires_at, heartbeat, max_lag)
        }))
}

/// The caller's tenant and, for a token, when it expires (Unix seconds).
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<(String, Option<i64>), AppError> {
    if let Some(key) = headers.get("x-api-key") {
        let key = key.to_str().map_err(|_| AppError::unauthorized("invalid API key"))?;
        let principal = resolve(state, Credential::ApiKey(key.trim())).await?;
        principal.require(Scope::Read)?;
        return Ok((principal.tenant, None));
    }
    let header_token = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| AppError::unauthorized("malformed Authorization header"))?;
            match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
                _ => {
                    return Err(AppError::unauthorized(
                        "unsupported Authorization scheme (expected Bearer)",
                    ));
                }
            }
        }
    };
    let token = header_token.or(query_token).ok_or_else(|| {
        AppError::unauthorized(
            "authentication required: send `Authorization: Bearer <token>`, `X-API-Key` or `?token=`",
        )
    })?;
    let claims = state.jwt.verify(token, TokenKind::Access)?;
    if !claims.scopes.contains(&Scope::Read) {
        return Err(AppError::forbidden("live results need the read scope"));
    }
    Ok((claims.sub, Some(claims.exp)))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn text(bytes: Bytes) -> Option<Message> {
    Utf8Bytes::try_from(bytes).ok().map(Message::Text)
}

/// Read buffer of a connection.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Most messages written between two flushes.
const MAX_BURST: usize = 256;

/// Writes `first` and whatever else is queued right now (up to [`MAX_BURST`])
/// with a single flush: a burst of closed windows becomes a few large writes,
/// not one system call per message. `sent` is scratch space for the
/// publication times of the window messages written. False once the
/// connection is over: a close frame was sent, or the socket failed.
async fn write_burst(socket: &mut WebSocket, client: &LiveClient, first: Outgoing, sent: &mut Vec<Instant>) -> bool {
    sent.clear();
    let mut next = Some(first);
    let mut written = 0;
    while let Some(outgoing) = next.take() {
        let message = match outgoing {
            Outgoing::Window(bytes, at) => {
                sent.push(at);
                text(bytes)
            }
            Outgoing::Reply(bytes) => text(bytes),
            Outgoing::Ping => Some(Message::Ping(Bytes::new())),
            Outgoing::Close(reason) => {
                let _ = socket.flush().await;
                let frame = CloseFrame {
                    code: reason.code(),
                    reason: reason.reason().into(),
                };
                let _ = socket.send(Message::Close(Some(frame))).await;
                return false;
            }
        };
        if let Some(message) = message {
            if socket.feed(message).await.is_err() {
                return false;
            }
            written += 1;
        }
        if written < MAX_BURST {
            next = client.try_next();
        }
    }
    if socket.flush().await.is_err() {
        return false;
    }
    client.record_sent(sent);
    true
}

/// Serves one connection until the client leaves, a send fails, or the
/// watchdog closes it (expired token, lagging, missed heartbeats).
async fn run(
    mut socket: WebSocket,
    client: LiveClient,
    live: LiveServices,
    expires_at: Option<i64>,
    heartbeat: Duration,
    max_lag: Duration,
) {
    client.mark_alive(Instant::now());
    let mut sent = Vec::new();
    let session = async {
        let mut stats_ticks = tokio::time::interval(STATS_INTERVAL);
        stats_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut wants_stats = false;
        loop {
            tokio::select! {
                incoming = socket.recv() => match incoming {
                    Some(Ok(message)) => {
                        client.mark_alive(Instant::now());
                        if !handle(&client, message) {
                            break;
                        }
                        let subscribed = client.subscribes_to(Topic::Stats);
                        if subscribed && !wants_stats {
                            // A new subscriber gets the counters at once, not a tick later.
                            stats_ticks.reset_immediately();
                        }
                        wants_stats = subscribed;
                    }
                    _ => break,
                },
                outgoing = client.next() => {
                    if !write_burst(&mut socket, &client, outgoing, &mut sent).await {
                        break;
                    }
                }
                _ = stats_ticks.tick(), if wants_stats => {
                    let message = text(stats_message(
                        serde_json::to_value(live.stats_snapshot()).unwrap_or_default(),
                        unix_millis(),
                    ));
                    if let Some(message) = message
                        && socket.send(message).await.is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    // Checks often enough to notice lag and expiry within a fraction of their limits.
    let period = (heartbeat.min(max_lag) / 4).max(Duration::from_millis(50));
    let watchdog = async {
        let mut ticks = tokio::time::interval(period);
        let mut last_ping = Instant::now();
        loop {
            ticks.tick().await;
            if expires_at.is_some_and(|exp| unix_now() >= exp) {
                client.close(CloseReason::TokenExpired);
            }
            let now = Instant::now();
            if let Some(reason) = client.check(now) {
                return reason;
            }
            if now.duration_since(last_ping) >= heartbeat {
                client.ping();
                last_ping = now;
            }
        }
    };
    tokio::pin!(session, watchdog);
    tokio::select! {
        () = &mut session => {}
        reason = &mut watchdog => {
            tracing::debug!(client = client.id(), reason = reason.reason(), "closing live connection");
            // Lets the session send the close frame, unless the client stopped reading.
            let _ = tokio::time::timeout(CLOSE_GRACE, &mut session).await;
        }
    }
}

/// Handles one frame from the client; `false` when the client is leaving.
fn handle(client: &LiveClient, message: Message) -> bool {
    match message {
        Message::Text(text) => {
            let reply = match parse_client_message(text.as_str(), client.tenant()) {
                Ok(ClientCommand::Subscribe(subscription)) => match client.subscribe(subscription.clone()) {
                    Ok(_) => subscription_reply("subscribed", &subscription),
                    Err(error) => error_reply("subscription_refused", &error.to_string()),
                },
                Ok(ClientCommand::Unsubscribe(subscription)) => {
                    if client.unsubscribe(&subscription) {
                        subscription_reply("unsubscribed", &subscription)
                    } else {
                        error_reply("not_subscribed", "no such subscription on this connection")
                    }
                }
                Ok(ClientCommand::Ping) => pong_reply(),
                Err(error) => error_reply(error.code(), &error.to_string()),
            };
            client.reply(reply);
            true
        }
        Message::Binary(_) => {
            client.reply(error_reply(
                "malformed_message",
                "binary messages are not supported; send JSON text",
            ));
            true
        }
        Message::Ping(_) | Message::Pong(_) => true,
        Message::Close(_) => false,
    }
}
