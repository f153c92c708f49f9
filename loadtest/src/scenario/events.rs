//! `pulse-loadtest events`: the sensors profile produced to Kafka (or, with
//! `--via http`, posted to the gateway's `POST /api/v1/events`: see
//! [`super::ingest`]) at a target rate, each event stamped with its intended
//! send time as its event time, and the window results timed as they arrive
//! over the gateway's `/ws`.
//!
//! Series: `events.produce` (intended send time to the broker's
//! acknowledgement) or `events.ingest` (intended send time of a batch to the
//! gateway's answer), `events.window_e2e` and `ws.delivery` (see
//! [`super::windows`]). The events carry the signed-in tenant, so the
//! subscribers see their windows; the pipeline under test must read the topic
//! (by default `{tenant}.events.normalized`, created if missing), or have an
//! `http` source, into windows and a `websocket` sink.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::Method;
use pulse_connectors::generator::{GeneratorSettings, SensorsConfig, Synthetic};
use pulse_connectors::kafka::{self, Record};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::watch;

use super::ingest::{self, INGEST, PostJob};
use super::windows::{self, WINDOW_E2E};
use super::{Run, RunArgs, unix_millis};
use crate::http::GatewayClient;
use crate::pace;
use crate::record::{Recorder, Series};
use crate::report::Report;
use crate::target::{ensure_loopback, parse_duration};

/// The series of produce latency.
pub const PRODUCE: &str = "events.produce";

/// Options of `pulse-loadtest events`.
#[derive(Clone, Debug, clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: RunArgs,
    /// Event-specific options.
    #[command(flatten)]
    pub load: EventsLoad,
}

/// Where events are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// Produced to a Kafka topic, which the pipeline reads.
    Kafka,
    /// Posted to the gateway's `POST /api/v1/events`, which the pipeline's `http` source reads.
    Http,
}

/// Where the events go and how their results are watched.
#[derive(Clone, Debug, clap::Args)]
pub struct EventsLoad {
    /// Where the events go: `kafka` (to --topic) or `http` (batches to the
    /// target's POST /api/v1/events).
    #[arg(long, value_enum, default_value = "kafka")]
    pub via: Via,
    /// Events per request with --via http.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Kafka brokers, `host:port[,host:port…]`.
    #[arg(long, env = "PULSE_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// The topic (default `{tenant}.events.normalized`; created with one partition if missing).
    #[arg(long)]
    pub topic: Option<String>,
    /// Tenant of the events (default: the signed-in tenant, whose windows the subscribers see).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Hosts of the sensors profile (each reports five metrics).
    #[arg(long, default_value_t = 20)]
    pub hosts: u32,
    /// `/ws` subscribers timing the window results.
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// After the last event, wait at most this long for the last windows to arrive.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub drain: Duration,
}

/// Records each acknowledgement (or failure) against its intended send time.
struct DeliveryRecorder {
    series: Series,
}

impl ClientContext for DeliveryRecorder {}

impl ProducerContext for DeliveryRecorder {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, intended: Box<Instant>) {
        match result {
            Ok(_) => self.series.record_ok(intended.elapsed()),
            Err((error, _)) => self.series.record_error(&kafka_error_kind(error)),
        }
    }
}

/// A bounded error kind for a Kafka error, such as `kafka_msg_timed_out`.
fn kafka_error_kind(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("kafka_{}", snake_case(&format!("{code:?}"))),
        None => "kafka_error".into(),
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Fails with the broker named when nothing answers at the first of `brokers`.
pub fn ensure_broker(brokers: &str, allow_remote: bool) -> anyhow::Result<()> {
    let first = brokers.split(',').next().unwrap_or_default().trim();
    ensure_loopback("--brokers", first, allow_remote)?;
    let address = first
        .to_socket_addrs()
        .with_context(|| format!("--brokers {first}"))?
        .next()
        .with_context(|| format!("--brokers {first} resolves to nothing"))?;
    TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .with_context(|| format!("no Kafka broker at {first} (--brokers / PULSE_KAFKA_BROKERS)"))?;
    Ok(())
}

/// The tenant of the signed-in credential (`GET /api/v1/auth/me`).
pub async fn signed_in_tenant(client: &GatewayClient) -> anyhow::Result<String> {
    let reply = client.call(Method::GET, "/api/v1/auth/me", None).await?;
    reply.json()["tenant_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("GET /api/v1/auth/me names no tenant_id: {}", reply.describe()))
}

/// What the producer thread needs.
pub struct ProduceJob {
    /// Brokers.
    pub brokers: String,
    /// Topic.
    pub topic: String,
    /// Tenant of every event.
    pub tenant: String,
    /// Hosts of the sensors profile.
    pub hosts: u32,
    /// Events per second (`None`: as fast as the producer takes them).
    pub rate: Option<f64>,
    /// How long to produce.
    pub duration: Duration,
    /// At most this many events.
    pub count: Option<u64>,
}

/// Produces on the calling thread (it sleeps between events), recording each
/// acknowledgement into [`PRODUCE`]; returns how many events were sent.
pub fn produce(job: &ProduceJob, recorder: &Recorder) -> anyhow::Result<u64> {
    let series = recorder.series(PRODUCE);
    let producer: ThreadedProducer<DeliveryRecorder> = kafka::client_config(&job.brokers)
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(DeliveryRecorder { series: series.clone() })
        .context("creating the Kafka producer")?;
    let sensors = SensorsConfig {
        tenants: 1,
        tenant_names: vec![job.tenant.clone()],
        hosts_per_tenant: job.hosts.max(1),
        ..SensorsConfig::default()
    };
    let (start, start_ms) = (Instant::now(), unix_millis());
    let mut synthetic = Synthetic::new(GeneratorSettings {
        sensors,
        rate: 0,
        events: None,
        start: start_ms,
    });
    let deadline = start + job.duration;
    let mut sent = 0u64;
    while job.count.is_none_or(|count| sent < count) && !pace::interrupted() {
        let intended = match job.rate {
            Some(rate) => start + Duration::from_secs_f64(sent as f64 / rate),
            None => Instant::now(),
        };
        if intended >= deadline {
            break;
        }
        if let Some(ahead) = intended.checked_duration_since(Instant::now()) {
            std::thread::sleep(ahead);
        }
        // The event time is the intended send time: end-to-end latency then
        // counts every delay after it, the load generator's own included.
        let mut event = synthetic.event(sent);
        event.ts = start_ms + (intended - start).as_millis() as u64;
        let record = Record::of_event(&event);
        let mut message = BaseRecord::with_opaque_to(&job.topic, Box::new(intended)).payload(&record.payload);
        if let Some(key) = &record.key {
            message = message.key(key);
        }
        loop {
            match producer.send(message) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => {
                    series.record_error(&kafka_error_kind(&error));
                    break;
                }
            }
        }
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(30))
        .context("waiting for the broker to acknowledge every event")?;
    Ok(sent)
}

/// Runs `pulse-loadtest events` and returns its report.
pub fn run(args: &EventsArgs) -> anyhow::Result<Report> {
    let target = args.run.checked_target()?;
    if args.load.via == Via::Kafka {
        ensure_broker(&args.load.brokers, args.run.allow_remote)?;
    }
    super::runtime()?.block_on(async {
        let client = super::signed_in_client(&args.run, &target).await?;
        let mut run = Run::start(args.run.duration);
        let (stop_listening, producing) = start_events(args, &target, &client, &mut run).await?;
        let sent = producing.await.context("the sending task panicked")??;
        drain(&run.recorder, args.load.drain).await;
        let _ = stop_listening.send(true);
        run.notes.push(sent);
        Ok(run.finish("events", &args.run))
    })
}

/// What the sending task reports when it is done: a note for the report.
pub type Sending = tokio::task::JoinHandle<anyhow::Result<String>>;

/// Subscribes the listeners and starts sending (a producer thread, or
/// posting tasks with `--via http`); returns the listeners' stop switch and
/// the sending task's handle. Used by `events` and `mixed`.
pub async fn start_events(
    args: &EventsArgs,
    target: &crate::target::Target,
    client: &GatewayClient,
    run: &mut Run,
) -> anyhow::Result<(watch::Sender<bool>, Sending)> {
    let tenant = match &args.load.tenant {
        Some(tenant) => tenant.clone(),
        None => signed_in_tenant(client).await?,
    };
    let topic = args
        .load
        .topic
        .clone()
        .unwrap_or_else(|| format!("{tenant}.events.normalized"));
    if args.load.via == Via::Http {
        ingest::ensure_ingest(client).await?;
    } else {
        let brokers = args.load.brokers.clone();
        let created = topic.clone();
        tokio::task::spawn_blocking(move || kafka::create_topics(&brokers, &[created], 1))
            .await
            .context("creating the topic")?
            .with_context(|| format!("creating topic {topic}"))?;
    }
    let credential = client.credential().cloned().context("signed in without a credential")?;
    let (stop_listening, stopped) = watch::channel(false);
    let since_ms = unix_millis();
    run.recorder.series(match args.load.via {
        Via::Kafka => PRODUCE,
        Via::Http => INGEST,
    });
    run.recorder.series(WINDOW_E2E);
    for _ in 0..args.load.subscribers.max(1) {
        let socket = windows::subscribe(&target.ws_url, &credential, args.run.timeout).await?;
        tokio::spawn(windows::listen(socket, since_ms, run.recorder.clone(), stopped.clone()));
    }
    let destination = match args.load.via {
        Via::Kafka => format!("to Kafka topic {topic}"),
        Via::Http => format!("to POST {} in batches of {}", ingest::PATH, args.load.batch.max(1)),
    };
    run.notes.push(format!(
        "sensors profile of tenant {tenant} ({} hosts x 5 metrics) {destination}; event time = intended send time; \
         window latency = receipt over /ws minus window_end",
        args.load.hosts
    ));
    if args.load.via == Via::Http {
        let job = PostJob {
            tenant,
            hosts: args.load.hosts,
            batch: args.load.batch,
            rate: args.run.rate,
            duration: args.run.duration,
            count: args.run.count,
            concurrency: args.run.concurrency,
        };
        let (client, recorder) = (client.clone(), run.recorder.clone());
        let posting = tokio::spawn(async move {
            let posted = ingest::post_events(client, job, recorder).await;
            Ok(format!(
                "{} events posted in {} requests, {} accepted",
                posted.events, posted.requests, posted.accepted
            ))
        });
        return Ok((stop_listening, posting));
    }
    let job = ProduceJob {
        brokers: args.load.brokers.clone(),
        topic,
        tenant,
        hosts: args.load.hosts,
        rate: args.run.rate,
        duration: args.run.duration,
        count: args.run.count,
    };
    let recorder = run.recorder.clone();
    let producing =
        tokio::task::spawn_blocking(move || produce(&job, &recorder).map(|sent| format!("{sent} events produced")));
    Ok((stop_listening, producing))
}

/// Waits for window results to stop arriving: until none came for 3 s, or `limit` passed.
pub async fn drain(recorder: &Recorder, limit: Duration) {
    const QUIET: Duration = Duration::from_secs(3);
    let e2e = recorder.series(WINDOW_E2E);
    let deadline = Instant::now() + limit;
    let (mut seen, mut changed) = (e2e.snapshot().ok, Instant::now());
    while Instant::now() < deadline && changed.elapsed() < QUIET && !pace::interrupted() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = e2e.snapshot().ok;
        if now != seen {
            (seen, changed) = (now, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_get_bounded_snake_case_kinds() {
        let error = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(kafka_error_kind(&error), "kafka_message_timed_out");
        assert_eq!(kafka_error_kind(&KafkaError::Canceled), "kafka_error");
    }

    #[test]
    fn a_missing_broker_is_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = ensure_broker(&format!("127.0.0.1:{port}"), false).unwrap_err();
        assert!(format!("{error:#}").contains("no Kafka broker"), "{error:#}");
        let refused = ensure_broker("192.0.2.1:9092", false).unwrap_err();
        assert!(format!("{refused:#}").contains("--allow-remote"), "{refused:#}");
    }
}
