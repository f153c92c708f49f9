//! The redis sink against the running Redis (127.0.0.1:6379): the latest row
//! per series in a hash, the newest rows in a trimmed sorted set, an index of
//! the series, one notification per row on the tenant's channel, every key
//! expiring; a replay leaves the same keys. Each test uses a key prefix of
//! its own.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::kafka::unique;
use common::{TempDir, load_pipeline, read_jsonl, run_pipeline};
use redis::Commands;
use serde_json::Value;

/// The Redis URL, or `None` (loudly) when nothing answers; a failure under `CI=true`.
fn redis_url() -> Option<String> {
    let url = std::env::var("PULSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let address = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379");
    let reachable = address
        .parse::<SocketAddr>()
        .is_ok_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
    match (reachable, std::env::var("CI").as_deref()) {
        (true, _) => Some(url),
        (false, Ok("true")) => panic!("no Redis at {url}: CI requires one (scripts/test.sh starts it)"),
        (false, _) => {
            let warning = format!("\n*** SKIPPED: no Redis at {url}; run ./scripts/test.sh to start one ***\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
            None
        }
    }
}

/// 40 s of a metric per tenant and region, one event a second.
fn events() -> String {
    let mut lines = Vec::new();
    for second in 0..40u64 {
        for (tenant, region) in [("acme", "eu"), ("acme", "us"), ("globex", "eu")] {
            lines.push(format!(
                r#"{{"ts":{},"tenant":"{tenant}","source":"h","kind":"metric","metric":"cpu","value":{second},"labels":{{"region":"{region}"}}}}"#,
                1_700_000_000_000 + second * 1000
            ));
        }
    }
    lines.join("\n") + "\n"
}

fn pipeline(input: &std::path::Path, url: &str, prefix: &str) -> String {
    format!(
        r#"
[sources.events]
type = "file"
path = "{input}"

[operators.cpu_5s]
type = "window"
inputs = ["events"]
window = {{ tumbling = "5s" }}
key = ["tenant", "metric", "labels.region"]
aggregates = ["count", "avg", "max"]

[sinks.rows]
type = "file"
inputs = ["cpu_5s"]
path = "${{OUT}}/rows.jsonl"

[sinks.latest]
type = "redis"
inputs = ["cpu_5s"]
url = "{url}"
key_prefix = "{prefix}"
series_length = 3
ttl = "10m"
"#,
        input = input.display()
    )
}

/// Every key under `prefix` with what it holds, as text, for comparing two states.
fn snapshot(connection: &mut redis::Connection, prefix: &str) -> BTreeMap<String, String> {
    let keys: Vec<String> = connection.keys(format!("{prefix}*")).unwrap();
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(connection).unwrap();
            let value = match kind.as_str() {
                "hash" => format!("{:?}", connection.hgetall::<_, BTreeMap<String, String>>(&key).unwrap()),
                "zset" => format!(
                    "{:?}",
                    connection
                        .zrange_withscores::<_, Vec<(String, f64)>>(&key, 0, -1)
                        .unwrap()
                ),
                "set" => {
                    let mut members: Vec<String> = connection.smembers(&key).unwrap();
                    members.sort();
                    format!("{members:?}")
                }
                other => panic!("{key} is a {other}"),
            };
            (key, value)
        })
        .collect()
}

#[test]
fn latest_rows_series_index_and_notifications_land_under_the_tenants_prefix() {
    let Some(url) = redis_url() else { return };
    let dir = TempDir::new("redis-sink");
    let input = dir.join("events.jsonl");
    std::fs::write(&input, events()).unwrap();
    let prefix = format!("{}:", unique("pulse-test"));
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, pipeline(&input, &url, &prefix)).unwrap();

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut listener = client.get_connection().unwrap();
    let mut pubsub = listener.as_pubsub();
    pubsub.psubscribe(format!("{prefix}*:rows")).unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    run_pipeline(&load_pipeline(&path, &[("OUT", &dir.display())]), 2);
    let rows = read_jsonl(&dir.join("rows.jsonl"));
    assert!(rows.len() >= 3 * 8, "{} rows", rows.len());

    let mut notified = Vec::new();
    while notified.len() < rows.len() {
        let message = pubsub.get_message().expect("a notification per row");
        let payload: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        notified.push((message.get_channel_name().to_owned(), payload));
    }
    for (channel, payload) in &notified {
        let tenant = payload["row"]["tenant"].as_str().unwrap();
        assert_eq!(channel, &format!("{prefix}{tenant}:rows"));
        assert_eq!(payload["operator"], "cpu_5s");
    }

    let mut connection = client.get_connection().unwrap();
    for (tenant, region) in [("acme", "eu"), ("acme", "us"), ("globex", "eu")] {
        let series = format!("metric=cpu,labels.region={region}");
        let mine: Vec<&Value> = rows
            .iter()
            .filter(|row| row["tenant"] == tenant && row["labels.region"] == region)
            .collect();
        let newest = mine.iter().max_by_key(|row| row["window_start"].as_u64()).unwrap();
        let latest: BTreeMap<String, String> = connection
            .hgetall(format!("{prefix}{tenant}:latest:cpu_5s:{series}"))
            .unwrap();
        assert_eq!(latest["_ts"], newest["window_start"].to_string());
        assert_eq!(latest["count"], newest["count"].to_string());
        assert_eq!(latest["max"], newest["max"].to_string());
        assert_eq!(latest["tenant"], tenant);

        let key = format!("{prefix}{tenant}:series:cpu_5s:{series}");
        let points: Vec<(String, f64)> = connection.zrange_withscores(&key, 0, -1).unwrap();
        assert_eq!(points.len(), 3, "trimmed to series_length");
        let mut expected: Vec<u64> = mine.iter().map(|row| row["window_start"].as_u64().unwrap()).collect();
        expected.sort_unstable();
        let kept: Vec<u64> = points.iter().map(|(_, score)| *score as u64).collect();
        assert_eq!(kept, expected[expected.len() - 3..], "the newest three");
        let ttl: i64 = connection.pttl(&key).unwrap();
        assert!(ttl > 0 && ttl <= 600_000, "expires: {ttl}");

        let index: Vec<String> = connection.smembers(format!("{prefix}{tenant}:index:cpu_5s")).unwrap();
        assert!(index.contains(&series), "{index:?}");
    }

    // A replay leaves every key as it was.
    let before = snapshot(&mut connection, &prefix);
    run_pipeline(&load_pipeline(&path, &[("OUT", &dir.display())]), 1);
    assert_eq!(snapshot(&mut connection, &prefix), before);
    let keys: Vec<String> = connection.keys(format!("{prefix}*")).unwrap();
    let _: () = connection.del(keys).unwrap();
}

#[test]
fn a_row_whose_key_holds_another_type_is_a_dead_letter_and_the_rest_is_written() {
    let Some(url) = redis_url() else { return };
    let dir = TempDir::new("redis-refused");
    let input = dir.join("events.jsonl");
    std::fs::write(&input, events()).unwrap();
    let prefix = format!("{}:", unique("pulse-test"));
    let path = dir.join("pipeline.toml");
    let text = pipeline(&input, &url, &prefix).replace(
        "[sources.events]",
        "[engine]\ndead_letter_path = \"${OUT}/dead.jsonl\"\n\n[sources.events]",
    );
    std::fs::write(&path, text).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    // Another program's string where acme/us's series would go.
    let taken = format!("{prefix}acme:series:cpu_5s:metric=cpu,labels.region=us");
    let _: () = connection.set(&taken, "not a sorted set").unwrap();
    let mut listener = client.get_connection().unwrap();
    let mut pubsub = listener.as_pubsub();
    pubsub.psubscribe(format!("{prefix}*:rows")).unwrap();
    pubsub.set_read_timeout(Some(Duration::from_millis(500))).unwrap();

    run_pipeline(&load_pipeline(&path, &[("OUT", &dir.display())]), 2);
    let rows = read_jsonl(&dir.join("rows.jsonl"));
    let refused: Vec<&Value> = rows
        .iter()
        .filter(|row| row["tenant"] == "acme" && row["labels.region"] == "us")
        .collect();
    assert!(!refused.is_empty());

    // Every acme/us row is a dead letter with Redis's reason; nothing of them was written.
    let letters: Vec<Value> = read_jsonl(&dir.join("dead.jsonl"))
        .into_iter()
        .filter(|letter| letter["position"]["type"] == "sink")
        .collect();
    assert_eq!(letters.len(), refused.len(), "{letters:#?}");
    for letter in &letters {
        assert_eq!(letter["component"], "latest");
        let reason = letter["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("redis refused the row: ") && reason.contains("WRONGTYPE") && reason.contains(&taken),
            "{reason}"
        );
        let raw: Value = serde_json::from_str(letter["raw"].as_str().unwrap()).unwrap();
        assert_eq!(
            (raw["tenant"].as_str(), raw["labels.region"].as_str()),
            (Some("acme"), Some("us"))
        );
    }
    let kind: String = redis::cmd("TYPE").arg(&taken).query(&mut connection).unwrap();
    assert_eq!(kind, "string", "the other program's key is untouched");
    let latest_us: BTreeMap<String, String> = connection
        .hgetall(format!("{prefix}acme:latest:cpu_5s:metric=cpu,labels.region=us"))
        .unwrap();
    assert!(latest_us.is_empty(), "a refused row is not half written: {latest_us:?}");

    // The other series are written and announced, as without the conflict.
    for (tenant, region) in [("acme", "eu"), ("globex", "eu")] {
        let count: usize = connection
            .zcard(format!(
                "{prefix}{tenant}:series:cpu_5s:metric=cpu,labels.region={region}"
            ))
            .unwrap();
        assert_eq!(count, 3, "{tenant}/{region}");
    }
    let mut notified = 0;
    while let Ok(message) = pubsub.get_message() {
        let payload: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        assert_ne!(
            (
                payload["row"]["tenant"].as_str(),
                payload["row"]["labels.region"].as_str()
            ),
            (Some("acme"), Some("us")),
            "a refused row is not announced"
        );
        notified += 1;
    }
    assert_eq!(notified, rows.len() - refused.len());
    let keys: Vec<String> = connection.keys(format!("{prefix}*")).unwrap();
    let _: () = connection.del(keys).unwrap();
}
