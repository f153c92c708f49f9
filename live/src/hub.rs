//! [`LiveHub`]: the fan-out from closed windows to WebSocket clients.
//!
//! Subscriptions are grouped by (tenant, subscription = topic + filter); a row
//! goes only to groups of its own tenant (its `tenant` key field), is
//! serialised at most once however many groups and clients match, and is
//! enqueued at most once per client even when several of its subscriptions
//! match. [`LiveHub::publish`] only takes short locks and enqueues: it never
//! waits for a client, so a slow client cannot slow the dataflow or others.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use crate::client::{ClientQueue, LiveClient};
use crate::config::LiveLimits;
use crate::protocol::{Subscription, Topic};
use crate::row::{LiveRow, LiveSource, Publishable};

/// Why a client may not connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The hub holds `max_connections` already.
    #[error("too many live connections (the limit is {0})")]
    TooManyConnections(usize),
    /// The tenant holds `per_tenant_connections` already.
    #[error("this tenant has too many live connections (the limit is {0})")]
    TenantQuota(usize),
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The client holds `max_subscriptions_per_client` already.
    #[error("too many subscriptions on this connection (the limit is {0})")]
    TooMany(usize),
    /// The client is no longer connected.
    #[error("the connection is closed")]
    Disconnected,
}

/// Counters of the hub, for `/api/v1/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HubStats {
    /// Open connections.
    pub connections: usize,
    /// Distinct (tenant, topic, filter) groups.
    pub subscription_groups: usize,
    /// Rows published to the hub.
    pub rows_published_total: u64,
    /// Window messages enqueued to clients.
    pub messages_enqueued_total: u64,
    /// Window messages written to sockets.
    pub messages_sent_total: u64,
    /// Window messages dropped from full client queues.
    pub dropped_total: u64,
}

/// The fan-out hub; cheap to clone (all clones share one hub).
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    limits: LiveLimits,
    state: Mutex<HubState>,
    published: AtomicU64,
    enqueued: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct HubState {
    next_id: u64,
    clients: HashMap<u64, ClientEntry>,
    tenants: HashMap<Arc<str>, TenantGroups>,
}

struct ClientEntry {
    tenant: Arc<str>,
    queue: Arc<ClientQueue>,
    subscriptions: BTreeSet<Subscription>,
}

#[derive(Default)]
struct TenantGroups {
    connections: usize,
    groups: HashMap<Subscription, Vec<Arc<ClientQueue>>>,
}

impl LiveHub {
    /// A hub with these limits (validate them first: see [`LiveLimits::validate`]).
    pub fn new(limits: LiveLimits) -> Self {
        Self {
            inner: Arc::new(HubInner {
                limits,
                state: Mutex::new(HubState::default()),
                published: AtomicU64::new(0),
                enqueued: AtomicU64::new(0),
                sent: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &LiveLimits {
        &self.inner.limits
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // Every update below keeps the maps consistent at each step: a poisoned lock is still usable.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a client of `tenant`, within the connection limits.
    pub fn connect(&self, tenant: &str) -> Result<LiveClient, ConnectError> {
        let limits = &self.inner.limits;
        let mut state = self.lock();
        if state.clients.len() >= limits.max_connections {
            return Err(ConnectError::TooManyConnections(limits.max_connections));
        }
        let tenant: Arc<str> = match state.tenants.get_key_value(tenant) {
            Some((_, groups)) if groups.connections >= limits.per_tenant_connections => {
                return Err(ConnectError::TenantQuota(limits.per_tenant_connections));
            }
            Some((name, _)) => name.clone(),
            None => Arc::from(tenant),
        };
        state.next_id += 1;
        let id = state.next_id;
        let queue = Arc::new(ClientQueue::new(
            id,
            limits.queue_len,
            Duration::from_secs(limits.max_lag_secs),
            Duration::from_secs(limits.heartbeat_secs),
        ));
        state.tenants.entry(tenant.clone()).or_default().connections += 1;
        state.clients.insert(
            id,
            ClientEntry {
                tenant: tenant.clone(),
                queue: queue.clone(),
                subscriptions: BTreeSet::new(),
            },
        );
        metrics::gauge!("pulse_ws_connections").set(state.clients.len() as f64);
        Ok(LiveClient {
            queue,
            hub: self.clone(),
            tenant,
        })
    }

    pub(crate) fn disconnect(&self, id: u64) {
        let mut state = self.lock();
        let Some(entry) = state.clients.remove(&id) else { return };
        let tenant = &entry.tenant;
        if let Some(groups) = state.tenants.get_mut(tenant) {
            groups.connections = groups.connections.saturating_sub(1);
            for subscription in &entry.subscriptions {
                remove_member(&mut groups.groups, subscription, id);
            }
            if groups.connections == 0 {
                state.tenants.remove(tenant);
            }
        }
        metrics::gauge!("pulse_ws_connections").set(state.clients.len() as f64);
    }

    pub(crate) fn subscribe(&self, id: u64, subscription: Subscription) -> Result<bool, SubscribeError> {
        let max = self.inner.limits.max_subscriptions_per_client;
        let mut guard = self.lock();
        let state = &mut *guard;
        let entry = state.clients.get_mut(&id).ok_or(SubscribeError::Disconnected)?;
        if entry.subscriptions.contains(&subscription) {
            return Ok(false);
        }
        if entry.subscriptions.len() >= max {
            return Err(SubscribeError::TooMany(max));
        }
        entry.subscriptions.insert(subscription.clone());
        // Subscriptions to published rows join the groups rows are published
        // to; the connection sends `stats` itself (see `subscribes_to`).
        if subscription.topic != Topic::Stats {
            let queue = entry.queue.clone();
            let groups = state.tenants.entry(entry.tenant.clone()).or_default();
            groups.groups.entry(subscription).or_default().push(queue);
        }
        Ok(true)
    }

    pub(crate) fn subscribes_to(&self, id: u64, topic: Topic) -> bool {
        self.lock()
            .clients
            .get(&id)
            .is_some_and(|entry| entry.subscriptions.iter().any(|s| s.topic == topic))
    }

    pub(crate) fn unsubscribe(&self, id: u64, subscription: &Subscription) -> bool {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(entry) = state.clients.get_mut(&id) else {
            return false;
        };
        if !entry.subscriptions.remove(subscription) {
            return false;
        }
        if let Some(groups) = state.tenants.get_mut(&entry.tenant) {
            remove_member(&mut groups.groups, subscription, id);
        }
        true
    }

    pub(crate) fn count_sent(&self, messages: u64) {
        self.inner.sent.fetch_add(messages, Ordering::Relaxed);
    }

    /// Hands closed windows of `source` to every matching subscriber; returns
    /// how many messages were enqueued. Never waits for a client: the hub's
    /// lock is held only to collect who gets what (each row serialised once
    /// per publication), and each client's queue is then filled under its own
    /// lock, once, with one wake-up.
    pub fn publish(&self, source: &LiveSource, rows: &[Arc<LiveRow>]) -> usize {
        self.publish_to(Topic::Windows, source, rows)
    }

    /// Hands records of `source` to the subscribers of `topic` (`anomalies`,
    /// `forecasts`, or `windows` as [`publish`](Self::publish) does), the same way.
    pub fn publish_to<R: Publishable>(&self, topic: Topic, source: &LiveSource, rows: &[Arc<R>]) -> usize {
        /// What one client receives from this publication.
        struct Delivery {
            queue: Arc<ClientQueue>,
            texts: Vec<Bytes>,
            /// The last row added, so a client in several matching groups gets a row once.
            last_row: usize,
        }
        let now = Instant::now();
        let published_at_us = unix_micros();
        let mut deliveries: HashMap<u64, Delivery> = HashMap::new();
        let state = self.lock();
        for (index, row) in rows.iter().enumerate() {
            let Some(groups) = row.tenant().and_then(|tenant| state.tenants.get(tenant)) else {
                continue;
            };
            let mut message = None;
            for (subscription, members) in &groups.groups {
                if subscription.topic != topic || !subscription.filter.matches(source, row.as_ref()) {
                    continue;
                }
                let text = message.get_or_insert_with(|| row.to_message(source, published_at_us));
                for queue in members {
                    let delivery = deliveries.entry(queue.id).or_insert_with(|| Delivery {
                        queue: Arc::clone(queue),
                        texts: Vec::new(),
                        last_row: usize::MAX,
                    });
                    if delivery.last_row != index {
                        delivery.last_row = index;
                        delivery.texts.push(text.clone());
                    }
                }
            }
        }
        drop(state);
        let mut enqueued = 0;
        let mut dropped = 0;
        for delivery in deliveries.into_values() {
            enqueued += delivery.texts.len();
            dropped += delivery.queue.push_windows(delivery.texts, now);
        }
        self.inner.published.fetch_add(rows.len() as u64, Ordering::Relaxed);
        self.inner.enqueued.fetch_add(enqueued as u64, Ordering::Relaxed);
        if dropped > 0 {
            self.inner.dropped.fetch_add(dropped, Ordering::Relaxed);
            metrics::counter!("pulse_ws_dropped_total").increment(dropped);
        }
        enqueued
    }

    /// The hub's counters.
    pub fn stats(&self) -> HubStats {
        let state = self.lock();
        HubStats {
            connections: state.clients.len(),
            subscription_groups: state.tenants.values().map(|t| t.groups.len()).sum(),
            rows_published_total: self.inner.published.load(Ordering::Relaxed),
            messages_enqueued_total: self.inner.enqueued.load(Ordering::Relaxed),
            messages_sent_total: self.inner.sent.load(Ordering::Relaxed),
            dropped_total: self.inner.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn remove_member(groups: &mut HashMap<Subscription, Vec<Arc<ClientQueue>>>, subscription: &Subscription, id: u64) {
    if let Some(members) = groups.get_mut(subscription) {
        members.retain(|queue| queue.id != id);
        if members.is_empty() {
            groups.remove(subscription);
        }
    }
}

#[cfg(test)]
mod tests;
