//! The timely side of a sink: hands records and progress to the sink's task
//! and stays alive until the task has acknowledged everything.

use std::collections::VecDeque;
use std::sync::PoisonError;
use std::time::Duration;

use pulse_core::EventTime;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use tokio::sync::mpsc::error::TrySendError;

use super::{SinkHandle, SinkRecord, ToSink};

/// The key of [`LocalWorkers`] in timely's worker configuration.
pub const LOCAL_WORKERS: &str = "pulse.local_workers";

/// The workers of this process, when it is one of a cluster: set in the
/// timely worker configuration under [`LOCAL_WORKERS`] (without it, every
/// worker is local).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalWorkers {
    /// The global index of this process's first worker.
    pub first: usize,
    /// How many workers this process runs.
    pub count: usize,
}

/// How soon an operator whose sink's buffer was full tries again.
const FULL_BUFFER_RETRY: Duration = Duration::from_millis(2);

/// Delivers a stream of records to a running sink.
pub trait DeliverExt {
    /// Hands every record and the stream's progress to `sink`'s task (see
    /// [the runtime](super)). Never blocks: what the task's buffer has no
    /// room for waits in the operator while sources pause.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use pulse_core::{Backpressure, Delivered, Event, HealthBoard, Shutdown};
    /// use pulse_sinks::runtime::{
    ///     BatchWriter, DeliverExt, Delivery, SinkContext, SinkOptions, SinkRecord, WriteError, Written, start_sink,
    /// };
    /// use timely::dataflow::operators::ToStream;
    ///
    /// /// Keeps what it is given.
    /// struct Collect(Arc<Mutex<Vec<String>>>);
    ///
    /// impl BatchWriter for Collect {
    ///     async fn write(&mut self, batch: &[SinkRecord]) -> Result<Written, WriteError> {
    ///         self.0.lock().unwrap().extend(batch.iter().map(SinkRecord::to_json_line));
    ///         Ok(Written::default())
    ///     }
    /// }
    ///
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let delivered = Delivered::new(Shutdown::new());
    /// let context = SinkContext {
    ///     name: "collect".into(),
    ///     health: HealthBoard::new().reporter("collect"),
    ///     delivery: vec![Arc::new(delivered.register())],
    ///     shutdown: Shutdown::new(),
    ///     dead_letters: Arc::new(|_| {}),
    ///     pressure: Backpressure::new(),
    /// };
    /// let written = Arc::new(Mutex::new(Vec::new()));
    /// let sink = start_sink(runtime.handle(), Collect(Arc::clone(&written)), SinkOptions::new(Delivery::Ordered), context);
    /// let events: Vec<SinkRecord> = (0..3)
    ///     .map(|i| {
    ///         let line = format!(r#"{{"ts":{i},"tenant":"acme","source":"s","kind":"metric","metric":"cpu","value":1}}"#);
    ///         SinkRecord::Event(Event::from_json(line.as_bytes()).unwrap())
    ///     })
    ///     .collect();
    /// timely::example(move |scope| {
    ///     events.to_stream(scope).deliver(&sink);
    /// });
    /// // The dataflow ends only once the sink has written and acknowledged everything.
    /// assert_eq!(written.lock().unwrap().len(), 3);
    /// assert_eq!(delivered.frontier(), Some(u64::MAX));
    /// ```
    fn deliver(self, sink: &SinkHandle);
}

impl DeliverExt for Stream<'_, EventTime, Vec<SinkRecord>> {
    fn deliver(self, sink: &SinkHandle) {
        let scope = self.scope();
        // A sink's task hears from the workers of its own process: in a
        // cluster, their indices within it (timely's are global).
        let (first, local) = scope
            .worker()
            .config()
            .get::<LocalWorkers>(LOCAL_WORKERS)
            .map_or((0, scope.peers()), |local| (local.first, local.count));
        let (worker, peers) = (scope.index() - first, local);
        let mut builder = OperatorBuilder::new(format!("{}.deliver", sink.name), scope);
        let mut input = builder.new_input(self, Pipeline);
        let address = builder.operator_info().address;
        let activator = scope.activator_for(std::rc::Rc::clone(&address));
        sink.shared
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(scope.worker().sync_activator_for(address.to_vec()));
        let labels = [("component", sink.name.clone())];
        let received = metrics::counter!("pulse_component_received_events_total", &labels);
        let errors = metrics::counter!("pulse_sink_errors_total", &labels);
        let buffer_fill = metrics::gauge!("pulse_sink_buffer_fill_ratio", &labels);
        let sink = sink.clone();
        let mut valve = sink.pressure.valve();
        let max_chunk = sink.max_chunk;
        builder.build_reschedule(move |_capabilities| {
            let mut outbox: VecDeque<ToSink> = VecDeque::new();
            let mut reported: Option<EventTime> = None;
            let mut lost = false;
            move |frontiers| {
                input.for_each(|capability, data| {
                    let Some(&time) = capability.least() else { return };
                    received.increment(data.len() as u64);
                    let mut records = std::mem::take(data);
                    while records.len() > max_chunk {
                        let rest = records.split_off(max_chunk);
                        outbox.push_back(ToSink::Records {
                            worker,
                            peers,
                            time,
                            records,
                        });
                        records = rest;
                    }
                    outbox.push_back(ToSink::Records {
                        worker,
                        peers,
                        time,
                        records,
                    });
                });
                let frontier = frontiers[0].frontier().first().copied().unwrap_or(EventTime::MAX);
                if reported.is_none_or(|before| before < frontier) {
                    let progress = ToSink::Progress {
                        worker,
                        peers,
                        frontier,
                    };
                    // Progress waiting behind nothing newer is replaced, not queued:
                    // it cannot fill the outbox however long the task is away.
                    match outbox.back_mut() {
                        Some(last @ ToSink::Progress { .. }) => *last = progress,
                        _ => outbox.push_back(progress),
                    }
                    reported = Some(frontier);
                }
                while let Some(message) = outbox.pop_front() {
                    match sink.sender.try_send(message) {
                        Ok(()) => {}
                        Err(TrySendError::Full(message)) => {
                            outbox.push_front(message);
                            break;
                        }
                        Err(TrySendError::Closed(_)) => {
                            // The task is gone (it only ends once everything is written, or
                            // by a bug): what is left cannot be written.
                            if !lost {
                                errors.increment(1);
                                tracing::error!(sink = %sink.name, "sink write failed: its task has ended");
                                lost = true;
                            }
                            outbox.clear();
                        }
                    }
                }
                // Records waiting pause the sources; a progress report alone does not.
                let holding_records = outbox.iter().any(|message| matches!(message, ToSink::Records { .. }));
                valve.set_blocked(holding_records);
                let free = sink.sender.capacity() as f64 / sink.sender.max_capacity() as f64;
                buffer_fill.set(1.0 - free);
                if !outbox.is_empty() {
                    activator.activate_after(FULL_BUFFER_RETRY);
                }
                // Incomplete until the task has written everything: the
                // worker (and a bounded run) does not end before its output.
                !(sink.is_finished() || lost)
            }
        });
    }
}
