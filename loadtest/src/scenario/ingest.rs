//! `pulse-loadtest events --via http`: the sensors profile posted in batches
//! to the gateway's `POST /api/v1/events`, which the pipeline's `http` source
//! reads, on the open-loop schedule of the run.
//!
//! With `--rate R` and `--batch B`, batch `k` is due at `start + k·B/R` and
//! holds the `B` events due up to then: event `i` of it is stamped `B−1−i`
//! event intervals before the batch's due time, as an agent that sends what
//! it gathered since its last request would. Series `events.ingest` times
//! each request from its due time to the answer; a 202 that refused some of
//! its events counts as the error `events_rejected`, a queue that is full as
//! `http_429`. The window results are timed over `/ws` as for Kafka.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use pulse_connectors::generator::{GeneratorSettings, SensorsConfig, Synthetic};

use super::unix_millis;
use crate::http::{CallError, GatewayClient, Reply, status_kind};
use crate::pace::{self, Schedule};
use crate::record::{Recorder, Series};

/// The series of ingest requests.
pub const INGEST: &str = "events.ingest";

/// The ingest endpoint.
pub const PATH: &str = "/api/v1/events";

/// What the posting task needs.
#[derive(Clone, Debug)]
pub struct PostJob {
    /// Tenant of every event (the credential's, or the endpoint refuses them).
    pub tenant: String,
    /// Hosts of the sensors profile.
    pub hosts: u32,
    /// Events per request.
    pub batch: u64,
    /// Events per second (`None`: as fast as `concurrency` clients go).
    pub rate: Option<f64>,
    /// How long to post.
    pub duration: Duration,
    /// At most this many events.
    pub count: Option<u64>,
    /// Requests in flight at most.
    pub concurrency: usize,
}

/// What was posted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Posted {
    /// Requests sent.
    pub requests: u64,
    /// Events in them.
    pub events: u64,
    /// Events the endpoint accepted.
    pub accepted: u64,
}

/// The schedule of batches for `job`: `rate / batch` requests a second, and
/// enough requests for `count` events.
pub fn batch_schedule(job: &PostJob) -> Schedule {
    let batch = job.batch.max(1);
    Schedule {
        rate: job.rate.map(|rate| rate / batch as f64),
        duration: job.duration,
        count: job.count.map(|count| count.div_ceil(batch)),
        concurrency: job.concurrency,
    }
}

/// The event times of batch `size` due at `due_ms`: the last at `due_ms`,
/// each earlier one an event interval (`1000 / rate` ms) before the next.
///
/// # Examples
///
/// ```
/// use pulse_loadtest::scenario::ingest::stamps;
///
/// assert_eq!(stamps(10_000, 4, Some(1000.0)), [9_997, 9_998, 9_999, 10_000]);
/// assert_eq!(stamps(10_000, 3, None), [10_000, 10_000, 10_000]);
/// ```
pub fn stamps(due_ms: u64, size: u64, rate: Option<f64>) -> Vec<u64> {
    let interval_ms = rate.map_or(0.0, |rate| 1000.0 / rate);
    (0..size)
        .map(|i| due_ms.saturating_sub(((size - 1 - i) as f64 * interval_ms) as u64))
        .collect()
}

/// Fails, with the gateway's reason, unless the target accepts events: an
/// empty batch is answered 202 only where a pipeline's `http` source runs.
pub async fn ensure_ingest(client: &GatewayClient) -> anyhow::Result<()> {
    let reply = client
        .send(
            Method::POST,
            PATH,
            Some(("application/json", Bytes::from_static(b"[]"))),
        )
        .await
        .map_err(|error| anyhow::anyhow!("POST {PATH}: {error}"))?;
    if reply.status != StatusCode::ACCEPTED {
        anyhow::bail!(
            "the target does not accept events (--via http needs a pipeline with an `http` source, \
             e.g. loadtest/pipeline-http.toml): POST {PATH}: {}",
            reply.describe()
        );
    }
    Ok(())
}

/// Posts the sensors profile on `job`'s schedule, recording each answer into
/// [`INGEST`]; returns what was posted.
pub async fn post_events(client: GatewayClient, job: PostJob, recorder: Recorder) -> Posted {
    let series = recorder.series(INGEST);
    let sensors = SensorsConfig {
        tenants: 1,
        tenant_names: vec![job.tenant.clone()],
        hosts_per_tenant: job.hosts.max(1),
        ..SensorsConfig::default()
    };
    let (start, start_ms) = (Instant::now(), unix_millis());
    // Batches are built in schedule order, so each series is sampled in order.
    let synthetic = Arc::new(Mutex::new(Synthetic::new(GeneratorSettings {
        sensors,
        rate: 0,
        events: None,
        start: start_ms,
    })));
    let posted = Arc::new(Mutex::new(Posted::default()));
    let (batch, rate, limit) = (job.batch.max(1), job.rate, job.count.unwrap_or(u64::MAX));
    let totals = Arc::clone(&posted);
    pace::drive(batch_schedule(&job), move |index, intended| {
        let first = index * batch;
        let size = batch.min(limit.saturating_sub(first));
        let due_ms = start_ms + intended.saturating_duration_since(start).as_millis() as u64;
        let body = {
            let mut synthetic = synthetic.lock().unwrap_or_else(|p| p.into_inner());
            let events: Vec<String> = stamps(due_ms, size, rate)
                .into_iter()
                .zip(first..)
                .map(|(ts, n)| {
                    let mut event = synthetic.event(n);
                    event.ts = ts;
                    event.to_json()
                })
                .collect();
            Bytes::from(format!("[{}]", events.join(",")))
        };
        let (client, series, totals) = (client.clone(), series.clone(), Arc::clone(&totals));
        async move {
            let reply = client.send(Method::POST, PATH, Some(("application/json", body))).await;
            let accepted = record(&series, intended, reply);
            let mut totals = totals.lock().unwrap_or_else(|p| p.into_inner());
            totals.requests += 1;
            totals.events += size;
            totals.accepted += accepted;
        }
    })
    .await;
    *posted.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records one answer; returns how many events it accepted.
fn record(series: &Series, intended: Instant, reply: Result<Reply, CallError>) -> u64 {
    match reply {
        Ok(reply) if reply.status == StatusCode::ACCEPTED => {
            let body = reply.json();
            if body["rejected"].as_u64().unwrap_or(0) > 0 {
                series.record_error("events_rejected");
            } else {
                series.record_ok(intended.elapsed());
            }
            body["accepted"].as_u64().unwrap_or(0)
        }
        Ok(reply) => {
            series.record_error(&status_kind(reply.status));
            0
        }
        Err(error) => {
            series.record_error(error.kind());
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_divide_the_rate_and_cover_the_count() {
        let job = PostJob {
            tenant: "acme".into(),
            hosts: 1,
            batch: 50,
            rate: Some(2000.0),
            duration: Duration::from_secs(3),
            count: Some(120),
            concurrency: 8,
        };
        let schedule = batch_schedule(&job);
        assert_eq!(schedule.rate, Some(40.0));
        assert_eq!(schedule.count, Some(3), "120 events in batches of 50 need 3 requests");
        assert_eq!(
            stamps(1_000, 3, Some(2000.0)),
            [999, 1_000, 1_000],
            "half a millisecond apart, in whole ms"
        );
    }
}
