//! Sinks of a pipeline, planned: each sink's writer opened up front and its
//! task started on the sink runtime ([`pulse_sinks::runtime`]); on each
//! worker, its input streams joined and delivered to it.
//!
//! Files, stdout and Kafka topics write through one ordered writer per
//! process (a file's output is the same for any number of workers, and a
//! topic gets each process's windows in time order). Dead letters nothing reads go to the engine's
//! dead-letter file (generator and file sources) or back to Kafka (Kafka
//! sources); records a sink's destination refuses go to the dead-letter file.
//!
//! In a cluster the inputs of files, stdout and the graph are routed to
//! global worker 0 ([`crate::cluster::gather`]) and only process 0 writes
//! them; the other processes keep a stand-in of each (the same dataflow on
//! every worker) that writes nothing. Every other sink, Kafka topics
//! included, writes from every process what that process's workers hold
//! (all rows of one key come from the one worker that owns the key, so they
//! are still written in time order).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use pulse_connectors::LeadLimit;
use pulse_core::{Backpressure, DeadLetter, Delivered, EventTime, HealthBoard, HealthReporter, Shutdown};
use pulse_sinks::clickhouse::{ClickHouseSettings, ClickHouseWriter};
use pulse_sinks::graph::GraphWriter;
use pulse_sinks::parquet::ParquetSink;
use pulse_sinks::redis::{RedisSettings, RedisWriter};
use pulse_sinks::runtime::DeadLetterOutlet;
use pulse_sinks::{
    BatchWriter, DeadLetterTopics, DeliverExt, Delivery, JsonlFile, KafkaSink, LineSink, LineWriter, SinkContext,
    SinkHandle, SinkOptions, SinkRecord, Stdout, start_sink,
};
use timely::dataflow::operators::{Concatenate, Probe};
use timely::dataflow::{Scope, Stream};

use crate::cluster::gather::{GatheredInputs, gather};
use crate::config::validate::{self, StreamType};
use crate::config::{PipelineConfig, SinkConfig, SourceConfig};
use crate::plan::{Built, PlanError};

/// Where this process's sinks write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkPlacement {
    /// Ordered sinks' records are routed to global worker 0 (a cluster).
    pub gather: bool,
    /// This process writes the ordered sinks (process 0, or no cluster).
    pub writes_gathered: bool,
}

impl SinkPlacement {
    /// One process: every sink written here.
    pub const ONE_PROCESS: SinkPlacement = SinkPlacement {
        gather: false,
        writes_gathered: true,
    };
}

/// One running writer of a sink: the inputs it writes and its task (a Kafka
/// sink has one per topic, every other sink one).
struct SinkWriter {
    inputs: Vec<String>,
    handle: SinkHandle,
    /// In a cluster: the row schemas of `inputs`, whose records go to worker 0 first.
    gathered: Option<GatheredInputs>,
}

/// Every sink of a pipeline (but `websocket` ones, published in memory), running.
pub(crate) struct SinkPlans {
    sinks: BTreeMap<String, Vec<SinkWriter>>,
    /// Dead-letter streams no sink reads; they go to the engine's dead-letter file.
    unread_dead_letters: Vec<String>,
    /// The engine's dead-letter file, when some dead-letter stream needs it.
    default_dead_letters: Option<SinkHandle>,
    /// Kafka sources whose dead letters no sink reads: they go back to Kafka.
    dead_letter_topics: BTreeMap<String, SinkHandle>,
    /// Each source's back-pressure: set while a sink downstream of it has a
    /// full buffer; the source pauses then.
    pub(crate) pressure: BTreeMap<String, Backpressure>,
    /// Where the sinks' tasks run; shut down with the plan, after the workers
    /// have ended (and so after every sink has written everything).
    runtime: Option<tokio::runtime::Runtime>,
    /// The default dead-letter file's inputs' schemas, in a cluster.
    gathered_dead_letters: Option<GatheredInputs>,
}

impl Drop for SinkPlans {
    fn drop(&mut self) {
        // Without waiting: the plan may be dropped on a thread that runs async
        // code (where a blocking drop panics), and every sink is done anyway.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl SinkPlans {
    /// Opens every sink's writer and starts its task; each reports its health
    /// to `health` and what it has written to the [`Delivered`] of every Kafka
    /// source upstream of it (`delivered`, by source), which commits by it.
    pub(crate) fn open(
        config: &PipelineConfig,
        health: &HealthBoard,
        delivered: &BTreeMap<String, Delivered>,
        shutdown: &Shutdown,
        placement: SinkPlacement,
    ) -> Result<Self, PlanError> {
        let shapes = validate::streams(config);
        let gathered = |inputs: &[String]| {
            placement.gather.then(|| {
                GatheredInputs::new(
                    inputs
                        .iter()
                        .map(|input| match shapes.get(input) {
                            Some(StreamType::Rows(schema)) => Some(Arc::clone(schema)),
                            _ => None,
                        })
                        .collect(),
                )
            })
        };
        // Ordered writers elsewhere than process 0 are stand-ins.
        let here = |writer: Writer| match placement.writes_gathered {
            true => writer,
            false => Writer::Elsewhere,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pulse-sink")
            .enable_all()
            .build()
            .map_err(PlanError::Runtime)?;
        let pressure: BTreeMap<String, Backpressure> = config
            .sources
            .keys()
            .map(|source| (source.clone(), Backpressure::new()))
            .collect();
        let outlet = sink_dead_letter_outlet(&config.engine.dead_letter_path);
        let start = |name: &str, inputs: &[String], health: HealthReporter, writer: Writer, options: SinkOptions| {
            let mut sources = BTreeSet::new();
            for input in inputs {
                upstream_sources(config, input, &mut sources);
            }
            // A stand-in delivers nothing: process 0 reports for it.
            let stand_in = matches!(writer, Writer::Elsewhere);
            let trackers = sources
                .iter()
                .filter(|_| !stand_in)
                .filter_map(|source| delivered.get(source));
            let pressure = Backpressure::joined(sources.iter().filter_map(|source| pressure.get(source)));
            let context = SinkContext {
                name: name.to_owned(),
                health,
                delivery: trackers.map(|source| Arc::new(source.register())).collect(),
                shutdown: shutdown.clone(),
                dead_letters: Arc::clone(&outlet),
                pressure,
            };
            writer.start(runtime.handle(), options, context)
        };
        let mut sinks = BTreeMap::new();
        for (name, sink) in &config.sinks {
            let failed = |error| PlanError::Sink {
                sink: name.clone(),
                error,
            };
            let one = |writer: Writer, delivery_mode: Delivery| {
                vec![SinkWriter {
                    inputs: sink.inputs().to_vec(),
                    gathered: gathered(sink.inputs()),
                    handle: start(
                        name,
                        sink.inputs(),
                        health.reporter(name),
                        writer,
                        SinkOptions::new(delivery_mode),
                    ),
                }]
            };
            // A writer per input (it knows which table or key space its rows go
            // to), named `sink:input` when there are several.
            let per_input = |writers: Vec<Writer>, options: SinkOptions| {
                let inputs = sink.inputs();
                inputs
                    .iter()
                    .zip(writers)
                    .map(|(input, writer)| {
                        let part = match inputs.len() {
                            1 => name.clone(),
                            _ => format!("{name}:{input}"),
                        };
                        SinkWriter {
                            inputs: vec![input.clone()],
                            gathered: None,
                            handle: start(
                                &part,
                                std::slice::from_ref(input),
                                health.reporter(&part),
                                writer,
                                options.clone(),
                            ),
                        }
                    })
                    .collect::<Vec<_>>()
            };
            let writers = match sink {
                // Published in memory (see `build`), not written.
                SinkConfig::Websocket { .. } => continue,
                SinkConfig::Stdout { format, .. } => one(
                    here(Writer::Lines(Box::new(Stdout::new(name, *format)))),
                    Delivery::Ordered,
                ),
                SinkConfig::File { .. } if !placement.writes_gathered => one(Writer::Elsewhere, Delivery::Ordered),
                SinkConfig::File {
                    path,
                    append,
                    max_bytes,
                    ..
                } => one(
                    Writer::Lines(Box::new(
                        JsonlFile::create(path, *append)
                            .map_err(failed)?
                            .with_max_bytes(*max_bytes),
                    )),
                    Delivery::Ordered,
                ),
                SinkConfig::Kafka {
                    brokers,
                    key_fields,
                    retry,
                    breaker,
                    ..
                } => {
                    let mut writers = Vec::new();
                    let topics = sink.kafka_topics();
                    for (&topic, inputs) in &topics {
                        // Each producer reports its own health: one topic's outage is not another's.
                        let part = match topics.len() {
                            1 => name.clone(),
                            _ => format!("{name}:{topic}"),
                        };
                        let producer = Writer::Kafka(
                            KafkaSink::connect(name, brokers, topic, key_fields.clone())
                                .map_err(|error| failed(std::io::Error::other(error)))?,
                        );
                        let inputs: Vec<String> = inputs.iter().map(|input| (*input).to_owned()).collect();
                        writers.push(SinkWriter {
                            // Written from every process, not gathered.
                            gathered: None,
                            // Ordered: the topic gets each process's windows in time order.
                            handle: start(
                                &part,
                                &inputs,
                                health.reporter(&part),
                                producer,
                                SinkOptions {
                                    retry: retry.policy(),
                                    breaker: breaker.policy(),
                                    ..SinkOptions::new(Delivery::Ordered)
                                },
                            ),
                            inputs,
                        });
                    }
                    writers
                }
                SinkConfig::Clickhouse(clickhouse) => {
                    let settings = ClickHouseSettings {
                        url: clickhouse.url.clone(),
                        database: clickhouse.database.clone(),
                        user: clickhouse.user.clone(),
                        password: clickhouse.password.clone(),
                        create_tables: clickhouse.create_tables,
                        max_string_bytes: clickhouse.max_string_bytes,
                    };
                    let writers = clickhouse.inputs.iter().map(|input| {
                        let table = clickhouse
                            .table_of(config, input)
                            .expect("validation gives every input a table");
                        Writer::ClickHouse(ClickHouseWriter::new(settings.clone(), table, input))
                    });
                    per_input(writers.collect(), clickhouse.batching.options())
                }
                SinkConfig::Redis(redis) => {
                    let settings = RedisSettings {
                        url: redis.url.clone(),
                        key_prefix: redis.key_prefix.clone(),
                        ttl: Some(redis.ttl.to_std()).filter(|ttl| !ttl.is_zero()),
                        series_length: redis.series_length,
                        publish: redis.publish,
                    };
                    let writers: Result<Vec<_>, PlanError> = redis
                        .inputs
                        .iter()
                        .map(|input| {
                            let writer = RedisWriter::new(settings.clone(), input)
                                .map_err(|error| failed(std::io::Error::other(error)))?;
                            Ok(Writer::Redis(writer))
                        })
                        .collect();
                    per_input(writers?, redis.batching.options())
                }
                SinkConfig::Parquet(parquet) => {
                    let writers = parquet
                        .inputs
                        .iter()
                        .map(|input| Writer::Parquet(ParquetSink::new(&parquet.path, input, parquet.options())));
                    per_input(writers.collect(), parquet.batching.options())
                }
                // One ordered writer for all inputs: topology changes of every
                // source reach the graph in event-time order, from process 0 in a cluster.
                SinkConfig::Graph(graph) => {
                    let writer =
                        GraphWriter::new(graph.settings()).map_err(|error| failed(std::io::Error::other(error)))?;
                    vec![SinkWriter {
                        inputs: graph.inputs.clone(),
                        gathered: gathered(&graph.inputs),
                        handle: start(
                            name,
                            &graph.inputs,
                            health.reporter(name),
                            here(Writer::Graph(writer)),
                            graph.options(),
                        ),
                    }]
                }
            };
            sinks.insert(name.clone(), writers);
        }
        let read: Vec<&String> = config.sinks.values().flat_map(|s| s.inputs()).collect();
        let mut unread_dead_letters = Vec::new();
        let mut dead_letter_topics = BTreeMap::new();
        for (name, source) in &config.sources {
            let stream = format!("{name}.dead_letter");
            if read.contains(&&stream) {
                continue;
            }
            match source {
                SourceConfig::Kafka {
                    brokers,
                    dead_letter_topic,
                    ..
                } => {
                    let topics =
                        DeadLetterTopics::connect(brokers, dead_letter_topic).map_err(|error| PlanError::Sink {
                            sink: stream.clone(),
                            error: std::io::Error::other(error),
                        })?;
                    let sink_name = format!("{name}.dlq");
                    let handle = start(
                        &sink_name,
                        std::slice::from_ref(&stream),
                        health.reporter(&sink_name),
                        Writer::DeadLetterTopics(topics),
                        SinkOptions::new(Delivery::Parallel),
                    );
                    dead_letter_topics.insert(name.clone(), handle);
                }
                SourceConfig::Generator { .. } | SourceConfig::File { .. } | SourceConfig::Http { .. } => {
                    unread_dead_letters.push(stream)
                }
            }
        }
        for (name, operator) in &config.operators {
            let stream = format!("{name}.dead_letter");
            if operator.operator().refuses_input() && !read.contains(&&stream) {
                unread_dead_letters.push(stream);
            }
        }
        let default_dead_letters = (!unread_dead_letters.is_empty()).then(|| {
            let file = LazyFile {
                path: config.engine.dead_letter_path.clone(),
                file: None,
            };
            start(
                "dead_letter",
                &unread_dead_letters,
                health.reporter("dead_letter"),
                here(Writer::Lines(Box::new(file))),
                SinkOptions::new(Delivery::Ordered),
            )
        });
        let gathered_dead_letters = gathered(&unread_dead_letters);
        Ok(Self {
            sinks,
            unread_dead_letters,
            default_dead_letters,
            dead_letter_topics,
            pressure,
            runtime: Some(runtime),
            gathered_dead_letters,
        })
    }

    /// Delivers each sink's inputs, of this worker's `streams`, to the sink.
    /// In a cluster, what is gathered to process 0 passes `lead`'s probe, so
    /// a slow process 0 holds the sources back (see [`LeadLimit`]).
    pub(crate) fn deliver<'scope>(
        &self,
        scope: Scope<'scope, EventTime>,
        streams: &BTreeMap<String, Built<'scope>>,
        lead: Option<&LeadLimit>,
    ) {
        let probed = |records: Stream<'scope, EventTime, Vec<SinkRecord>>| match lead {
            Some(lead) => records.probe_with(lead.probe()),
            None => records,
        };
        for writers in self.sinks.values() {
            for writer in writers {
                let records: Vec<_> = writer
                    .inputs
                    .iter()
                    .map(|input| streams[input].clone().records())
                    .collect();
                match &writer.gathered {
                    Some(inputs) => {
                        probed(gather(scope, records, inputs, writer.handle.name())).deliver(&writer.handle)
                    }
                    None => scope.concatenate(records).deliver(&writer.handle),
                }
            }
        }
        if let Some(handle) = &self.default_dead_letters {
            let records: Vec<_> = self
                .unread_dead_letters
                .iter()
                .map(|stream| streams[stream].clone().records())
                .collect();
            match &self.gathered_dead_letters {
                Some(inputs) => probed(gather(scope, records, inputs, "dead_letter")).deliver(handle),
                None => scope.concatenate(records).deliver(handle),
            }
        }
        for (source, handle) in &self.dead_letter_topics {
            streams[&format!("{source}.dead_letter")]
                .clone()
                .records()
                .deliver(handle);
        }
    }
}

/// Adds to `sources` the sources whose events reach stream `input`, through
/// any operators (validation has ruled out cycles).
fn upstream_sources(config: &PipelineConfig, input: &str, sources: &mut BTreeSet<String>) {
    let source = input
        .strip_suffix(".late")
        .or_else(|| input.strip_suffix(".dead_letter"))
        .unwrap_or(input);
    if config.sources.contains_key(source) {
        sources.insert(source.to_owned());
    } else if let Some(operator) = config.operators.get(input) {
        for input in operator.inputs() {
            upstream_sources(config, input, sources);
        }
    }
}

/// A JSONL file created only when the first line arrives.
struct LazyFile {
    path: PathBuf,
    file: Option<JsonlFile>,
}

impl LineSink for LazyFile {
    fn write_batch(&mut self, lines: &[String]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            tracing::warn!(path = %self.path.display(), "writing dead letters (undecodable input, timestamps out of range, late events nothing reads)");
            self.file = Some(JsonlFile::create(&self.path, true)?);
        }
        self.file.as_mut().map_or(Ok(()), |f| f.write_batch(lines))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), LineSink::flush)
    }
}

/// The writer of a sink, of whichever kind (the runtime is generic over writers).
enum Writer {
    Lines(Box<dyn LineSink + Send>),
    Kafka(KafkaSink),
    DeadLetterTopics(DeadLetterTopics),
    ClickHouse(ClickHouseWriter),
    Redis(RedisWriter),
    Parquet(ParquetSink),
    Graph(GraphWriter),
    /// The stand-in of an ordered sink outside process 0, which writes it.
    Elsewhere,
}

/// Writes nothing: every record of its sink goes to process 0, which writes
/// it; this one only sees its workers' progress go by.
struct Elsewhere;

impl BatchWriter for Elsewhere {
    async fn write(
        &mut self,
        batch: &[pulse_sinks::SinkRecord],
    ) -> Result<pulse_sinks::runtime::Written, pulse_sinks::runtime::WriteError> {
        debug_assert!(batch.is_empty(), "records of a gathered sink reached a stand-in");
        Ok(pulse_sinks::runtime::Written::default())
    }
}

impl Writer {
    fn start(self, runtime: &tokio::runtime::Handle, options: SinkOptions, context: SinkContext) -> SinkHandle {
        fn go<W: BatchWriter>(
            runtime: &tokio::runtime::Handle,
            writer: W,
            options: SinkOptions,
            context: SinkContext,
        ) -> SinkHandle {
            start_sink(runtime, writer, options, context)
        }
        match self {
            Writer::Lines(lines) => go(runtime, LineWriter::new(lines), options, context),
            Writer::Kafka(kafka) => go(runtime, kafka, options, context),
            Writer::DeadLetterTopics(topics) => go(runtime, topics, options, context),
            Writer::ClickHouse(clickhouse) => go(runtime, clickhouse, options, context),
            Writer::Redis(redis) => go(runtime, redis, options, context),
            Writer::Parquet(parquet) => go(runtime, parquet, options, context),
            Writer::Graph(graph) => go(runtime, graph, options, context),
            Writer::Elsewhere => go(runtime, Elsewhere, options, context),
        }
    }
}

/// Records a sink's destination refused for good go to the engine's
/// dead-letter file (appended, as JSON lines).
fn sink_dead_letter_outlet(path: &std::path::Path) -> DeadLetterOutlet {
    let file = Mutex::new(LazyFile {
        path: path.to_owned(),
        file: None,
    });
    Arc::new(move |letters: Vec<DeadLetter>| {
        let lines: Vec<String> = letters
            .iter()
            .map(|letter| serde_json::to_string(letter).unwrap_or_default())
            .collect();
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = file.write_batch(&lines).and_then(|()| file.flush()) {
            tracing::error!(%error, letters = lines.len(), "cannot write sinks' dead letters");
            metrics::counter!("pulse_sink_errors_total", "component" => "dead_letter").increment(1);
        }
    })
}
