//! One WebSocket client's side of the hub: its bounded queue, what the
//! connection task sends next ([`Outgoing`]), and why it gets closed
//! ([`CloseReason`]).
//!
//! Window messages go into a queue of `queue_len`; when it is full the oldest
//! is dropped and counted, and the next thing the client receives is
//! `{"type":"lagged","dropped":N}`. A client that keeps losing messages for
//! longer than `max_lag_secs` is closed. Replies to its own requests go into a
//! separate small queue so that they are never dropped in favour of windows.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::hub::{LiveHub, SubscribeError};
use crate::protocol::{Subscription, Topic, lagged_reply};

/// Most unsent replies a client may have; a client that sends requests without reading is closed.
const MAX_PENDING_REPLIES: usize = 64;

/// Heartbeats a connection may miss before it counts as dead.
const MISSED_HEARTBEATS: u32 = 3;

/// Why the server closes a connection; rendered as a WebSocket close frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client lost messages for longer than allowed.
    Lagging,
    /// The access token expired during the connection.
    TokenExpired,
    /// Nothing was heard from the client for several heartbeats.
    HeartbeatTimeout,
    /// The client sent requests without reading the replies.
    TooManyPendingReplies,
}

impl CloseReason {
    /// The close code: 4401 for an expired token, 4008 for a too-slow client,
    /// 4000 for a dead connection, 1008 for a policy violation.
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::Lagging => 4008,
            CloseReason::TokenExpired => 4401,
            CloseReason::HeartbeatTimeout => 4000,
            CloseReason::TooManyPendingReplies => 1008,
        }
    }

    /// The close reason text (short: close frames carry at most 123 bytes).
    pub fn reason(&self) -> &'static str {
        match self {
            CloseReason::Lagging => "too slow: dropped messages for longer than max_lag_secs",
            CloseReason::TokenExpired => "token expired",
            CloseReason::HeartbeatTimeout => "heartbeat timeout",
            CloseReason::TooManyPendingReplies => "too many unread replies",
        }
    }
}

/// What the connection task should write next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// A window message, published at the given instant (for the delivery histogram).
    Window(Bytes, Instant),
    /// A reply (`subscribed`, `error`, `pong`, `lagged`).
    Reply(Bytes),
    /// A WebSocket ping frame (heartbeat).
    Ping,
    /// Close the connection with this reason.
    Close(CloseReason),
}

pub(crate) struct QueueState {
    windows: VecDeque<(Bytes, Instant)>,
    replies: VecDeque<Bytes>,
    ping: bool,
    dropped_unreported: u64,
    lagging_since: Option<Instant>,
    close: Option<CloseReason>,
    last_seen: Instant,
}

/// The queue the hub fills and the connection task drains.
pub(crate) struct ClientQueue {
    pub(crate) id: u64,
    capacity: usize,
    max_lag: Duration,
    heartbeat: Duration,
    state: Mutex<QueueState>,
    notify: Notify,
}

impl ClientQueue {
    pub(crate) fn new(id: u64, capacity: usize, max_lag: Duration, heartbeat: Duration) -> Self {
        Self {
            id,
            capacity,
            max_lag,
            heartbeat,
            state: Mutex::new(QueueState {
                windows: VecDeque::with_capacity(capacity.min(64)),
                replies: VecDeque::new(),
                ping: false,
                dropped_unreported: 0,
                lagging_since: None,
                close: None,
                last_seen: Instant::now(),
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding this lock cannot leave the queue inconsistent: keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Enqueues the window messages of one publication under one lock and
    /// with one wake-up; returns how many older ones were dropped to make room.
    pub(crate) fn push_windows(&self, texts: Vec<Bytes>, at: Instant) -> u64 {
        let mut state = self.lock();
        if state.close.is_some() {
            return 0;
        }
        let mut dropped = 0;
        for text in texts {
            if state.windows.len() >= self.capacity {
                state.windows.pop_front();
                state.dropped_unreported += 1;
                dropped += 1;
                let since = *state.lagging_since.get_or_insert(at);
                if at.duration_since(since) > self.max_lag {
                    state.close = Some(CloseReason::Lagging);
                }
            }
            state.windows.push_back((text, at));
        }
        drop(state);
        self.notify.notify_one();
        dropped
    }

    fn push_reply(&self, text: Bytes) {
        let mut state = self.lock();
        if state.replies.len() >= MAX_PENDING_REPLIES {
            state.close.get_or_insert(CloseReason::TooManyPendingReplies);
        } else {
            state.replies.push_back(text);
        }
        drop(state);
        self.notify.notify_one();
    }

    fn try_next(&self) -> Option<Outgoing> {
        let mut state = self.lock();
        if let Some(reason) = &state.close {
            return Some(Outgoing::Close(reason.clone()));
        }
        if std::mem::take(&mut state.ping) {
            return Some(Outgoing::Ping);
        }
        if let Some(reply) = state.replies.pop_front() {
            return Some(Outgoing::Reply(reply));
        }
        if state.dropped_unreported > 0 {
            let dropped = std::mem::take(&mut state.dropped_unreported);
            return Some(Outgoing::Reply(lagged_reply(dropped)));
        }
        let (text, at) = state.windows.pop_front()?;
        if state.windows.is_empty() {
            // Caught up: the lag clock starts again at the next drop.
            state.lagging_since = None;
        }
        Some(Outgoing::Window(text, at))
    }
}

/// A connected client: subscribe, unsubscribe, and drain what to send.
/// Dropping it disconnects the client from the hub.
pub struct LiveClient {
    pub(crate) queue: Arc<ClientQueue>,
    pub(crate) hub: LiveHub,
    pub(crate) tenant: Arc<str>,
}

impl LiveClient {
    /// The hub's id of this client.
    pub fn id(&self) -> u64 {
        self.queue.id
    }

    /// The tenant every subscription of this client is scoped to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Adds a subscription; `Ok(false)` when the client already had it.
    pub fn subscribe(&self, subscription: Subscription) -> Result<bool, SubscribeError> {
        self.hub.subscribe(self.queue.id, subscription)
    }

    /// Removes a subscription; `false` when the client did not have it.
    pub fn unsubscribe(&self, subscription: &Subscription) -> bool {
        self.hub.unsubscribe(self.queue.id, subscription)
    }

    /// Whether the client holds a subscription to `topic` (the connection
    /// task asks this of [`Topic::Stats`], whose messages it sends itself).
    pub fn subscribes_to(&self, topic: Topic) -> bool {
        self.hub.subscribes_to(self.queue.id, topic)
    }

    /// Queues a reply to the client (closing it if it has too many unread).
    pub fn reply(&self, text: Bytes) {
        self.queue.push_reply(text);
    }

    /// Queues a heartbeat ping (at most one is pending at a time).
    pub fn ping(&self) {
        self.queue.lock().ping = true;
        self.queue.notify.notify_one();
    }

    /// Notes that something arrived from the client (any frame, pongs included).
    pub fn mark_alive(&self, now: Instant) {
        self.queue.lock().last_seen = now;
    }

    /// Asks the connection to close; [`LiveClient::next`] then yields [`Outgoing::Close`].
    pub fn close(&self, reason: CloseReason) {
        self.queue.lock().close.get_or_insert(reason);
        self.queue.notify.notify_one();
    }

    /// Closes the client if it has lagged too long or gone silent, and says why.
    pub fn check(&self, now: Instant) -> Option<CloseReason> {
        let mut state = self.queue.lock();
        if state.close.is_none() {
            let lagging = state
                .lagging_since
                .is_some_and(|since| now.saturating_duration_since(since) > self.queue.max_lag);
            let silent = now.saturating_duration_since(state.last_seen) > self.queue.heartbeat * MISSED_HEARTBEATS;
            if lagging {
                state.close = Some(CloseReason::Lagging);
            } else if silent {
                state.close = Some(CloseReason::HeartbeatTimeout);
            }
        }
        let reason = state.close.clone();
        drop(state);
        if reason.is_some() {
            self.queue.notify.notify_one();
        }
        reason
    }

    /// The next thing to send, if any, without waiting.
    pub fn try_next(&self) -> Option<Outgoing> {
        self.queue.try_next()
    }

    /// Waits for the next thing to send. Cancel-safe: nothing is taken from the
    /// queue unless it is returned.
    pub async fn next(&self) -> Outgoing {
        loop {
            if let Some(outgoing) = self.queue.try_next() {
                return outgoing;
            }
            // `notify_one` stores a permit when nobody waits, so no wake-up is lost.
            self.queue.notify.notified().await;
        }
    }

    /// Counts window messages written to the socket (and flushed) together,
    /// with how long each took since publication.
    pub fn record_sent(&self, published_at: &[Instant]) {
        if published_at.is_empty() {
            return;
        }
        let now = Instant::now();
        metrics::counter!("pulse_ws_messages_sent_total").increment(published_at.len() as u64);
        let delivery = metrics::histogram!("pulse_ws_delivery_seconds");
        for at in published_at {
            delivery.record(now.saturating_duration_since(*at).as_secs_f64());
        }
        self.hub.count_sent(published_at.len() as u64);
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        self.hub.disconnect(self.queue.id);
    }
}

impl std::fmt::Debug for LiveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveClient")
            .field("id", &self.queue.id)
            .field("tenant", &self.tenant)
            .finish()
    }
}
