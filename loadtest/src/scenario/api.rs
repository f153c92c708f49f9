//! `pulse-loadtest api`: a mix of KV reads, KV writes and analytics queries,
//! each a series of its own (`api.kv_get`, `api.kv_put`, `api.query`), at a
//! target rate or as fast as the gateway answers.
//!
//! The run first creates its key space (`loadtest-0` … `loadtest-{N-1}`), so
//! reads find their keys; a credential without the write scope is refused then.

use std::time::Instant;

use anyhow::Context;
use hyper::{Method, StatusCode};
use serde_json::json;

use super::{Run, RunArgs, unix_millis};
use crate::http::{GatewayClient, status_kind};
use crate::pace;
use crate::record::Recorder;
use crate::report::Report;

/// Options of `pulse-loadtest api`.
#[derive(Clone, Debug, clap::Args)]
pub struct ApiArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: RunArgs,
    /// API-specific options.
    #[command(flatten)]
    pub load: ApiLoad,
}

/// What the API load is made of.
#[derive(Clone, Debug, clap::Args)]
pub struct ApiLoad {
    /// Keys the requests spread over.
    #[arg(long, default_value_t = 100)]
    pub keys: u64,
    /// Weights of the operations: `get=60,put=20,query=20` (any of them may be 0).
    #[arg(long, default_value = "get=60,put=20,query=20", value_parser = parse_mix)]
    pub mix: Mix,
    /// The metric the analytics queries ask for.
    #[arg(long, default_value = "cpu")]
    pub metric: String,
}

/// Relative weights of the API operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// `GET /api/v1/kv/{key}`.
    pub get: u32,
    /// `PUT /api/v1/kv/{key}`.
    pub put: u32,
    /// `POST /api/v1/analytics/query`.
    pub query: u32,
}

/// One API operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read a key.
    Get,
    /// Replace a key's value.
    Put,
    /// Query the retained windows.
    Query,
}

impl Operation {
    /// The series the operation is recorded in.
    pub fn series(self) -> &'static str {
        match self {
            Operation::Get => "api.kv_get",
            Operation::Put => "api.kv_put",
            Operation::Query => "api.query",
        }
    }
}

/// Parses `get=60,put=20,query=20`.
///
/// # Examples
///
/// ```
/// use pulse_loadtest::scenario::api::{Mix, Operation, parse_mix};
///
/// let mix = parse_mix("get=3,put=1").unwrap();
/// assert_eq!(mix, Mix { get: 3, put: 1, query: 0 });
/// let picked: Vec<Operation> = (0..400).map(|i| mix.pick(i)).collect();
/// assert_eq!(picked.iter().filter(|o| **o == Operation::Get).count(), 300);
/// assert!(parse_mix("get=0").is_err());
/// ```
pub fn parse_mix(text: &str) -> Result<Mix, String> {
    let mut mix = Mix {
        get: 0,
        put: 0,
        query: 0,
    };
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected name=weight, e.g. get=60"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
        match name.trim() {
            "get" => mix.get = weight,
            "put" => mix.put = weight,
            "query" => mix.query = weight,
            other => return Err(format!("{other:?} is not an operation: use get, put or query")),
        }
    }
    if mix.total() == 0 {
        return Err("the mix needs at least one operation with a weight above 0".into());
    }
    Ok(mix)
}

impl Mix {
    fn total(&self) -> u64 {
        u64::from(self.get) + u64::from(self.put) + u64::from(self.query)
    }

    /// The operation of request `index`: the weights in exact proportion over
    /// each run of `total` requests, interleaved rather than in blocks.
    pub fn pick(&self, index: u64) -> Operation {
        let total = self.total();
        // Multiplying by a number prime to `total` permutes 0..total: every
        // slot once per round, in a scattered order.
        let mut step = 7919 % total;
        while step == 0 || gcd(step, total) != 1 {
            step += 1;
        }
        let slot = (index % total) * step % total;
        if slot < u64::from(self.get) {
            Operation::Get
        } else if slot < u64::from(self.get) + u64::from(self.put) {
            Operation::Put
        } else {
            Operation::Query
        }
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "get={},put={},query={}", self.get, self.put, self.query)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn key_of(index: u64, keys: u64) -> String {
    format!("loadtest-{}", index % keys.max(1))
}

/// Creates the key space; fails when the gateway refuses to write (a read-only credential).
pub async fn prepare(client: &GatewayClient, load: &ApiLoad) -> anyhow::Result<()> {
    for index in 0..load.keys.max(1) {
        let body = json!({"key": key_of(index, load.keys), "value": {"n": index}});
        let reply = client
            .call(Method::POST, "/api/v1/kv", Some(&body))
            .await
            .context("creating the key space")?;
        if reply.status != StatusCode::CREATED && reply.status != StatusCode::CONFLICT {
            anyhow::bail!("creating the key space: POST /api/v1/kv: {}", reply.describe());
        }
    }
    Ok(())
}

/// Sends the API load on `args`' schedule, recording into `recorder`; returns how many requests were sent.
pub async fn send(client: GatewayClient, run: &RunArgs, load: &ApiLoad, recorder: &Recorder) -> u64 {
    let (mix, keys, metric) = (load.mix, load.keys, load.metric.clone());
    let recorder = recorder.clone();
    pace::drive(run.schedule(), move |index, intended| {
        let (client, recorder, metric) = (client.clone(), recorder.clone(), metric.clone());
        async move {
            let operation = mix.pick(index);
            let key = key_of(index / 7, keys);
            let reply = match operation {
                Operation::Get => client.call(Method::GET, &format!("/api/v1/kv/{key}"), None).await,
                Operation::Put => {
                    let body = json!({"value": {"n": index}});
                    client
                        .call(Method::PUT, &format!("/api/v1/kv/{key}"), Some(&body))
                        .await
                }
                Operation::Query => {
                    let body = json!({
                        "metric_name": metric,
                        "start_time": unix_millis().saturating_sub(300_000),
                        "aggregation": "avg",
                    });
                    client.call(Method::POST, "/api/v1/analytics/query", Some(&body)).await
                }
            };
            record(&recorder, operation, intended, reply);
        }
    })
    .await
}

fn record(
    recorder: &Recorder,
    operation: Operation,
    intended: Instant,
    reply: Result<crate::http::Reply, crate::http::CallError>,
) {
    let series = recorder.series(operation.series());
    match reply {
        Ok(reply) if reply.status.is_success() => series.record_ok(intended.elapsed()),
        Ok(reply) => series.record_error(&status_kind(reply.status)),
        Err(error) => series.record_error(error.kind()),
    }
}

/// Runs `pulse-loadtest api` and returns its report.
pub fn run(args: &ApiArgs) -> anyhow::Result<Report> {
    let target = args.run.checked_target()?;
    super::runtime()?.block_on(async {
        let client = super::signed_in_client(&args.run, &target).await?;
        prepare(&client, &args.load).await?;
        let mut run = Run::start(args.run.duration);
        // Each operation's series exists even if the run is too short to send one.
        for operation in [Operation::Get, Operation::Put, Operation::Query] {
            run.recorder.series(operation.series());
        }
        let sent = send(client, &args.run, &args.load, &run.recorder).await;
        run.notes.push(format!(
            "{sent} requests over {} keys, mix {}",
            args.load.keys, args.load.mix
        ));
        Ok(run.finish("api", &args.run))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_of_the_mix_has_the_weights_exactly() {
        for mix in [
            Mix {
                get: 60,
                put: 20,
                query: 20,
            },
            Mix {
                get: 1,
                put: 0,
                query: 0,
            },
            Mix {
                get: 0,
                put: 7,
                query: 3,
            },
            Mix {
                get: 7919,
                put: 1,
                query: 1,
            },
        ] {
            let total = mix.total();
            for round in 0..3 {
                let picks: Vec<Operation> = (round * total..(round + 1) * total).map(|i| mix.pick(i)).collect();
                let count = |op| picks.iter().filter(|p| **p == op).count() as u32;
                assert_eq!(
                    (count(Operation::Get), count(Operation::Put), count(Operation::Query)),
                    (mix.get, mix.put, mix.query),
                    "{mix:?}"
                );
            }
        }
    }

    #[test]
    fn bad_mixes_are_named() {
        for (bad, says) in [
            ("get", "name=weight"),
            ("read=1", "not an operation"),
            ("get=x", "whole number"),
        ] {
            let error = parse_mix(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
