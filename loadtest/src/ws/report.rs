//! [`WsReport`]: what a `ws` run measured, summarised from every client's
//! outcome, printable as text or as one JSON object.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::WsArgs;
use super::client::ClientOutcome;
use crate::process::NofileLimit;
use hdrhistogram::Histogram;

/// Distinct error messages listed in a report; the rest are summed as "other".
const LISTED_ERRORS: usize = 5;

/// The result of one `ws` run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WsReport {
    /// The endpoint.
    pub url: String,
    /// Clients asked for.
    pub clients_requested: usize,
    /// Clients that connected and subscribed.
    pub connected: usize,
    /// Clients that could not connect or subscribe.
    pub failed_to_connect: usize,
    /// Why they could not, most frequent first.
    pub connect_errors: Vec<ErrorCount>,
    /// Seconds from the first connect to the last client connected or failed.
    pub connect_seconds: f64,
    /// Connected clients whose connection ended before the run was over.
    pub disconnected: usize,
    /// How those connections ended, most frequent first.
    pub disconnect_reasons: Vec<ErrorCount>,
    /// Seconds of warm-up after connecting, not counted.
    pub warmup_seconds: u64,
    /// Seconds of measurement.
    pub measurement_seconds: f64,
    /// Window messages received by all clients while measuring.
    pub messages_total: u64,
    /// `messages_total` per measured second.
    pub messages_per_second: f64,
    /// Delivery latency of those messages, hub publication to client receipt.
    pub latency_ms: LatencySummary,
    /// Window messages received while measuring, per connected client.
    pub per_client: PerClientSummary,
    /// Connected clients that received nothing, or fewer than half the median.
    pub starving: usize,
    /// `lagged` notices received while measuring (the client's server-side queue overflowed).
    pub lagged_messages: u64,
    /// Window messages those notices said were dropped.
    pub dropped_total: u64,
    /// Window messages without a `published_at_us` stamp (counted, not timed).
    pub unstamped_windows: u64,
    /// CPU the load generator itself used while measuring, in cores (it shares the machine with the server).
    pub load_generator_cores: f64,
    /// The server's CPU use and memory, with `--server-pid`.
    pub server: Option<ServerUsage>,
    /// The open-file limit the load generator ran with.
    pub nofile_limit: NofileLimit,
    /// Runtime worker threads of the load generator.
    pub threads: usize,
}

/// What the server process used, from `/proc`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ServerUsage {
    /// CPU while measuring, in cores.
    pub cores: f64,
    /// Resident memory at the end of the measurement, clients still connected, in MiB.
    pub rss_mb: f64,
}

/// Facts of a run beside the clients' outcomes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunFacts {
    /// The open-file limit in force.
    pub(crate) nofile_limit: NofileLimit,
    /// Runtime worker threads.
    pub(crate) threads: usize,
    /// Seconds until every client connected or failed.
    pub(crate) connect_seconds: f64,
    /// How long the measurement lasted.
    pub(crate) measured: Duration,
    /// CPU time the load generator used during it.
    pub(crate) cpu_while_measuring: Duration,
    /// What the server used, if its pid was given.
    pub(crate) server: Option<ServerUsage>,
}

/// How many clients failed or ended for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// The reason, as the client saw it.
    pub error: String,
    /// How many clients.
    pub clients: usize,
}

/// Latency quantiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Messages timed.
    pub samples: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// Minimum, median and maximum of messages received per client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PerClientSummary {
    /// The client that received least.
    pub min: u64,
    /// The median client.
    pub median: u64,
    /// The client that received most.
    pub max: u64,
}

impl LatencySummary {
    /// Quantiles of a histogram of microseconds.
    pub fn of_micros(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            samples: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.5)),
            p90: ms(histogram.value_at_quantile(0.9)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

impl WsReport {
    pub(crate) fn new(args: &WsArgs, facts: RunFacts, outcomes: &[ClientOutcome], latencies: &Histogram<u64>) -> Self {
        let connected: Vec<&ClientOutcome> = outcomes.iter().filter(|o| o.connect_error.is_none()).collect();
        let mut received: Vec<u64> = connected.iter().map(|o| o.received).collect();
        received.sort_unstable();
        let per_client = match (received.first(), received.last()) {
            (Some(&min), Some(&max)) => PerClientSummary {
                min,
                median: received[received.len() / 2],
                max,
            },
            _ => PerClientSummary::default(),
        };
        let starving = received
            .iter()
            .filter(|&&count| count == 0 || count * 2 < per_client.median)
            .count();
        let messages_total: u64 = received.iter().sum();
        let seconds = facts.measured.as_secs_f64();
        let per_second = |amount: f64| if seconds > 0.0 { amount / seconds } else { 0.0 };
        Self {
            url: args.url.clone(),
            clients_requested: args.clients,
            connected: connected.len(),
            failed_to_connect: outcomes.len() - connected.len(),
            connect_errors: tally(outcomes.iter().filter_map(|o| o.connect_error.as_deref())),
            connect_seconds: facts.connect_seconds,
            disconnected: connected.iter().filter(|o| o.ended_early.is_some()).count(),
            disconnect_reasons: tally(connected.iter().filter_map(|o| o.ended_early.as_deref())),
            warmup_seconds: args.warmup,
            measurement_seconds: seconds,
            messages_total,
            messages_per_second: if seconds > 0.0 {
                messages_total as f64 / seconds
            } else {
                0.0
            },
            latency_ms: LatencySummary::of_micros(latencies),
            per_client,
            starving,
            lagged_messages: connected.iter().map(|o| o.lagged).sum(),
            dropped_total: connected.iter().map(|o| o.dropped).sum(),
            unstamped_windows: connected.iter().map(|o| o.unstamped).sum(),
            load_generator_cores: per_second(facts.cpu_while_measuring.as_secs_f64()),
            server: facts.server,
            nofile_limit: facts.nofile_limit,
            threads: facts.threads,
        }
    }

    /// Whether every client connected and none starved (the exit status says so).
    pub fn passed(&self) -> bool {
        self.failed_to_connect == 0 && self.starving == 0 && self.connected > 0
    }
}

/// Counts equal reasons, most frequent first; beyond [`LISTED_ERRORS`] they are summed as "other".
fn tally<'a>(reasons: impl Iterator<Item = &'a str>) -> Vec<ErrorCount> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    let mut listed: Vec<ErrorCount> = counts
        .into_iter()
        .map(|(error, clients)| ErrorCount {
            error: error.to_owned(),
            clients,
        })
        .collect();
    listed.sort_by(|a, b| b.clients.cmp(&a.clients).then_with(|| a.error.cmp(&b.error)));
    if listed.len() > LISTED_ERRORS {
        let other = listed.split_off(LISTED_ERRORS).iter().map(|e| e.clients).sum();
        listed.push(ErrorCount {
            error: "other".into(),
            clients: other,
        });
    }
    listed
}

impl fmt::Display for WsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "url                  {}", self.url)?;
        writeln!(
            f,
            "clients              {} requested, {} connected, {} failed to connect ({:.1} s to connect)",
            self.clients_requested, self.connected, self.failed_to_connect, self.connect_seconds
        )?;
        for error in &self.connect_errors {
            writeln!(f, "  connect error      {} x {}", error.clients, error.error)?;
        }
        writeln!(f, "disconnected         {}", self.disconnected)?;
        for reason in &self.disconnect_reasons {
            writeln!(f, "  ended              {} x {}", reason.clients, reason.error)?;
        }
        writeln!(
            f,
            "measured             {:.1} s (after {} s warm-up)",
            self.measurement_seconds, self.warmup_seconds
        )?;
        writeln!(
            f,
            "messages             {} ({:.0}/s)",
            self.messages_total, self.messages_per_second
        )?;
        let latency = &self.latency_ms;
        writeln!(
            f,
            "latency ms           p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} timed)",
            latency.p50, latency.p90, latency.p99, latency.p999, latency.max, latency.samples
        )?;
        let per_client = &self.per_client;
        writeln!(
            f,
            "per client           min {}  median {}  max {}",
            per_client.min, per_client.median, per_client.max
        )?;
        writeln!(f, "starving             {}", self.starving)?;
        writeln!(
            f,
            "lagged               {} notices, {} messages dropped",
            self.lagged_messages, self.dropped_total
        )?;
        if self.unstamped_windows > 0 {
            writeln!(f, "unstamped windows    {}", self.unstamped_windows)?;
        }
        if let Some(server) = &self.server {
            writeln!(
                f,
                "server               {:.2} cores while measuring, {:.0} MiB resident at the end",
                server.cores, server.rss_mb
            )?;
        }
        writeln!(
            f,
            "load generator       {:.2} cores while measuring, {} threads, open-file limit {} (hard {})",
            self.load_generator_cores, self.threads, self.nofile_limit.soft, self.nofile_limit.hard
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ws: WsArgs,
    }

    fn received(count: u64) -> ClientOutcome {
        ClientOutcome {
            received: count,
            ..ClientOutcome::default()
        }
    }

    fn report(outcomes: &[ClientOutcome]) -> WsReport {
        let args = Cli::parse_from(["ws", "--clients", &outcomes.len().to_string()]).ws;
        let facts = RunFacts {
            nofile_limit: NofileLimit { soft: 1024, hard: 1024 },
            threads: 2,
            connect_seconds: 0.5,
            measured: Duration::from_secs(10),
            cpu_while_measuring: Duration::from_secs(5),
            server: None,
        };
        WsReport::new(&args, facts, outcomes, &Histogram::new(3).unwrap())
    }

    #[test]
    fn starving_clients_are_those_below_half_the_median() {
        let mut outcomes: Vec<ClientOutcome> = [100, 98, 101, 48, 0, 100].map(received).to_vec();
        outcomes.push(ClientOutcome {
            connect_error: Some("HTTP 429 connection_quota: too many".into()),
            ..ClientOutcome::default()
        });
        outcomes.push(ClientOutcome {
            ended_early: Some("closed by the server: 4008 too slow".into()),
            lagged: 2,
            dropped: 30,
            ..received(60)
        });
        let report = report(&outcomes);
        assert_eq!(
            (report.connected, report.failed_to_connect, report.disconnected),
            (7, 1, 1)
        );
        assert_eq!(
            report.per_client,
            PerClientSummary {
                min: 0,
                median: 98,
                max: 101
            }
        );
        assert_eq!(report.starving, 2, "0 and 48 are under 98 / 2");
        assert_eq!(report.messages_total, 507);
        assert!((report.messages_per_second - 50.7).abs() < 1e-9);
        assert_eq!((report.lagged_messages, report.dropped_total), (2, 30));
        assert!((report.load_generator_cores - 0.5).abs() < 1e-9);
        assert_eq!(report.connect_errors[0].clients, 1);
        assert!(!report.passed());
        let text = report.to_string();
        assert!(text.contains("1 x HTTP 429"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["per_client"]["median"], 98);
    }

    #[test]
    fn equal_clients_pass() {
        let report = report(&[received(10), received(10), received(9)]);
        assert_eq!(report.starving, 0);
        assert!(report.passed());
    }

    #[test]
    fn many_distinct_errors_are_summed_beyond_the_listed_few() {
        let errors = ["a", "b", "b", "c", "d", "e", "f", "g"];
        let tallied = tally(errors.into_iter());
        assert_eq!(tallied.len(), LISTED_ERRORS + 1);
        assert_eq!((tallied[0].error.as_str(), tallied[0].clients), ("b", 2));
        assert_eq!((tallied[5].error.as_str(), tallied[5].clients), ("other", 2));
    }
}
