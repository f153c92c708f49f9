//! Fan-out, grouping, isolation, limits and lag handling of the hub, without sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{ConnectError, LiveHub};
use crate::client::{CloseReason, LiveClient, Outgoing};
use crate::config::LiveLimits;
use crate::hub::SubscribeError;
use crate::protocol::{Filter, Subscription, Topic};
use crate::row::{LiveRow, LiveSource};

fn row(tenant: &str, metric: &str, start: u64) -> Arc<LiveRow> {
    let flat = json!({"window_start": start, "window_end": start + 10, "tenant": tenant, "metric": metric, "count": 1});
    Arc::new(LiveRow::from_flat(flat, &["tenant".into(), "metric".into()]).unwrap())
}

fn windows(filter: &[(&str, &str)]) -> Subscription {
    Subscription {
        topic: Topic::Windows,
        filter: Filter::new(filter.iter().copied()),
    }
}

fn source() -> LiveSource {
    LiveSource::new("demo", "cpu_10s")
}

/// Everything queued for `client`, as JSON.
fn drain(client: &LiveClient) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(item) = client.try_next() {
        match item {
            Outgoing::Window(text, _) | Outgoing::Reply(text) => out.push(serde_json::from_slice(&text).unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

fn starts(messages: &[Value]) -> Vec<u64> {
    messages.iter().filter_map(|m| m["window_start"].as_u64()).collect()
}

#[test]
fn rows_reach_matching_subscribers_of_their_tenant_only() {
    let hub = LiveHub::new(LiveLimits::default());
    let cpu = hub.connect("a").unwrap();
    let all = hub.connect("a").unwrap();
    let other = hub.connect("b").unwrap();
    cpu.subscribe(windows(&[("metric", "cpu")])).unwrap();
    all.subscribe(windows(&[])).unwrap();
    other.subscribe(windows(&[])).unwrap();
    let enqueued = hub.publish(
        &source(),
        &[row("a", "cpu", 0), row("a", "mem", 10), row("c", "cpu", 20)],
    );
    assert_eq!(enqueued, 3);
    let got = drain(&cpu);
    assert_eq!(starts(&got), vec![0]);
    assert_eq!(got[0]["type"], "window");
    assert_eq!(got[0]["operator"], "cpu_10s");
    assert_eq!(got[0]["key"]["metric"], "cpu");
    assert_eq!(starts(&drain(&all)), vec![0, 10]);
    assert!(drain(&other).is_empty(), "tenant b never sees tenant a's rows");
}

#[test]
fn overlapping_subscriptions_deliver_once_and_unsubscribe_stops_delivery() {
    let hub = LiveHub::new(LiveLimits::default());
    let client = hub.connect("a").unwrap();
    assert!(client.subscribe(windows(&[])).unwrap());
    assert!(client.subscribe(windows(&[("metric", "cpu")])).unwrap());
    assert!(
        !client.subscribe(windows(&[("metric", "cpu")])).unwrap(),
        "a repeat is a no-op"
    );
    hub.publish(&source(), &[row("a", "cpu", 0)]);
    assert_eq!(starts(&drain(&client)), vec![0]);
    assert!(client.unsubscribe(&windows(&[])));
    assert!(!client.unsubscribe(&windows(&[])));
    hub.publish(&source(), &[row("a", "cpu", 1), row("a", "mem", 2)]);
    assert_eq!(starts(&drain(&client)), vec![1]);
    assert!(client.unsubscribe(&windows(&[("metric", "cpu")])));
    hub.publish(&source(), &[row("a", "cpu", 3)]);
    assert!(drain(&client).is_empty());
    assert_eq!(hub.stats().subscription_groups, 0);
}

#[test]
fn a_full_queue_drops_the_oldest_and_reports_how_many() {
    let limits = LiveLimits {
        queue_len: 3,
        ..LiveLimits::default()
    };
    let hub = LiveHub::new(limits);
    let slow = hub.connect("a").unwrap();
    let fast = hub.connect("a").unwrap();
    slow.subscribe(windows(&[])).unwrap();
    fast.subscribe(windows(&[])).unwrap();
    let mut fast_got = Vec::new();
    for start in 0..10 {
        hub.publish(&source(), &[row("a", "cpu", start)]);
        fast_got.extend(starts(&drain(&fast)));
    }
    assert_eq!(fast_got, (0..10).collect::<Vec<_>>(), "the fast client misses nothing");
    let slow_got = drain(&slow);
    assert_eq!(slow_got[0], json!({"type": "lagged", "dropped": 7}));
    assert_eq!(starts(&slow_got), vec![7, 8, 9], "the newest are kept");
    assert_eq!(hub.stats().dropped_total, 7);
}

#[test]
fn a_client_lagging_too_long_is_closed() {
    let limits = LiveLimits {
        queue_len: 1,
        max_lag_secs: 1,
        ..LiveLimits::default()
    };
    let hub = LiveHub::new(limits);
    let client = hub.connect("a").unwrap();
    client.subscribe(windows(&[])).unwrap();
    hub.publish(&source(), &[row("a", "cpu", 0), row("a", "cpu", 1)]);
    let start = Instant::now();
    assert_eq!(client.check(start), None, "lagging, but not for long");
    assert_eq!(client.check(start + Duration::from_secs(2)), Some(CloseReason::Lagging));
    assert_eq!(client.try_next(), Some(Outgoing::Close(CloseReason::Lagging)));
}

#[test]
fn catching_up_resets_the_lag_clock_and_silence_is_a_timeout() {
    let limits = LiveLimits {
        queue_len: 1,
        max_lag_secs: 1,
        heartbeat_secs: 1,
        ..LiveLimits::default()
    };
    let hub = LiveHub::new(limits);
    let client = hub.connect("a").unwrap();
    client.subscribe(windows(&[])).unwrap();
    hub.publish(&source(), &[row("a", "cpu", 0), row("a", "cpu", 1)]);
    assert_eq!(drain(&client).len(), 2, "lagged notice and the newest window");
    let now = Instant::now();
    client.mark_alive(now);
    assert_eq!(
        client.check(now + Duration::from_secs(2)),
        None,
        "caught up: no longer lagging"
    );
    assert_eq!(
        client.check(now + Duration::from_secs(4)),
        Some(CloseReason::HeartbeatTimeout)
    );
}

#[test]
fn connection_and_subscription_limits_hold_and_free_up() {
    let limits = LiveLimits {
        max_connections: 3,
        per_tenant_connections: 2,
        max_subscriptions_per_client: 1,
        ..LiveLimits::default()
    };
    let hub = LiveHub::new(limits);
    let a1 = hub.connect("a").unwrap();
    let a2 = hub.connect("a").unwrap();
    assert_eq!(hub.connect("a").unwrap_err(), ConnectError::TenantQuota(2));
    let b1 = hub.connect("b").unwrap();
    assert_eq!(hub.connect("c").unwrap_err(), ConnectError::TooManyConnections(3));
    a1.subscribe(windows(&[])).unwrap();
    assert_eq!(
        a1.subscribe(windows(&[("metric", "cpu")])),
        Err(SubscribeError::TooMany(1))
    );
    drop(a1);
    assert_eq!(hub.stats().connections, 2);
    assert_eq!(
        hub.stats().subscription_groups,
        0,
        "a dropped client leaves no group behind"
    );
    let _a3 = hub.connect("a").unwrap();
    drop((a2, b1));
    assert_eq!(hub.stats().connections, 1);
}

#[test]
fn replies_come_before_windows_and_unread_replies_are_bounded() {
    let hub = LiveHub::new(LiveLimits::default());
    let client = hub.connect("a").unwrap();
    client.subscribe(windows(&[])).unwrap();
    hub.publish(&source(), &[row("a", "cpu", 0)]);
    client.reply(bytes::Bytes::from_static(br#"{"type":"pong"}"#));
    client.ping();
    assert_eq!(client.try_next(), Some(Outgoing::Ping));
    assert!(matches!(client.try_next(), Some(Outgoing::Reply(_))));
    assert!(matches!(client.try_next(), Some(Outgoing::Window(..))));
    for _ in 0..100 {
        client.reply(bytes::Bytes::from_static(b"{}"));
    }
    assert_eq!(
        client.try_next(),
        Some(Outgoing::Close(CloseReason::TooManyPendingReplies))
    );
}

#[tokio::test]
async fn next_wakes_up_on_publish() {
    let hub = LiveHub::new(LiveLimits::default());
    let client = hub.connect("a").unwrap();
    client.subscribe(windows(&[])).unwrap();
    let publisher = hub.clone();
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        publisher.publish(&source(), &[row("a", "cpu", 42)]);
    });
    let next = tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .unwrap();
    assert!(matches!(next, Outgoing::Window(..)));
    handle.join().unwrap();
}

#[test]
fn a_stats_subscription_receives_no_windows_and_is_reported() {
    let hub = LiveHub::new(LiveLimits::default());
    let client = hub.connect("a").unwrap();
    let stats = Subscription {
        topic: Topic::Stats,
        filter: Filter::default(),
    };
    assert!(!client.subscribes_to(Topic::Stats));
    assert!(client.subscribe(stats.clone()).unwrap());
    assert!(client.subscribes_to(Topic::Stats));
    assert!(!client.subscribes_to(Topic::Windows));
    assert_eq!(hub.publish(&source(), &[row("a", "cpu", 0)]), 0);
    assert!(drain(&client).is_empty());
    assert!(client.unsubscribe(&stats));
    assert!(!client.subscribes_to(Topic::Stats));
}
