//! The bounded hand-off between the gateway's `POST /api/v1/events` and the
//! pipeline's `http` source, which run in one process.
//!
//! The endpoint decodes a request and [`IngestQueue::offer`]s its events, each
//! either decoded or refused with a reason. The offer is all or nothing: when
//! the queue cannot hold every item of the request it takes none of them and
//! says so ([`OfferError::Full`]: the endpoint answers 429 with `Retry-After`),
//! so a client retries whole requests and nothing is half-accepted. Otherwise
//! each decoded event passes the source's admission check (its event-time
//! bounds), and what fails it or did not decode is queued as a [`DeadLetter`]
//! beside the accepted events, so it reaches the source's dead-letter output
//! and counters like the bad input of any other source. The source takes
//! items off with [`IngestQueue::take`], woken by the waker it registers.
//!
//! ```
//! use pulse_core::ingest::{Candidate, IngestItem, IngestQueue, OfferError};
//! use pulse_core::{Event, Shutdown};
//!
//! let queue = IngestQueue::new("ingest", 2, Shutdown::new(), |ts| (ts < 10).then(|| "too old".to_owned()));
//! let raw = r#"{"ts":20,"tenant":"acme","source":"s","kind":"metric","metric":"cpu","value":1}"#;
//! let event = Event::from_json(raw.as_bytes()).unwrap();
//! let offered = queue
//!     .offer("req-1", vec![(0, Candidate::Decoded { event, raw }), (1, Candidate::Refused { reason: "bad".into(), raw: "{" })])
//!     .unwrap();
//! assert_eq!((offered.accepted, offered.rejected.len()), (1, 1));
//! assert!(matches!(queue.offer("req-2", vec![(0, Candidate::Refused { reason: "x".into(), raw: "" })]), Err(OfferError::Full { .. })));
//! let mut items = Vec::new();
//! queue.take(10, &mut items);
//! assert!(matches!(&items[0], IngestItem::Event(event) if event.ts == 20));
//! assert!(matches!(&items[1], IngestItem::DeadLetter(letter) if letter.reason == "bad"));
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::dead_letter::{DeadLetter, Position};
use crate::event::Event;
use crate::shutdown::Shutdown;
use crate::time::EventTime;

/// The admission check of an event time: `None` to accept, else the reason.
type Admission = Box<dyn FnMut(EventTime) -> Option<String> + Send>;

/// Called when items arrive, to schedule the source that takes them.
type Waker = Box<dyn Fn() + Send + Sync>;

/// One element of a request, as the endpoint decoded it.
#[derive(Debug)]
pub enum Candidate<'a> {
    /// An event that decoded (and belongs to the caller's tenant).
    Decoded {
        /// The event.
        event: Event,
        /// Its text in the request, kept if it becomes a dead letter.
        raw: &'a str,
    },
    /// An element that is not an acceptable event.
    Refused {
        /// Why.
        reason: String,
        /// Its text in the request.
        raw: &'a str,
    },
}

/// What the source takes off the queue.
#[derive(Clone, Debug, PartialEq)]
pub enum IngestItem {
    /// An accepted event.
    Event(Event),
    /// A refused element, for the source's dead-letter output.
    DeadLetter(DeadLetter),
}

/// A refused element of a request: its position and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// 0-based position of the element in the request.
    pub index: usize,
    /// Why it was refused.
    pub reason: String,
}

/// What an offer did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offered {
    /// Events queued for the source.
    pub accepted: usize,
    /// Elements refused, in request order (queued as dead letters).
    pub rejected: Vec<Rejection>,
}

/// Why an offer took nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The queue cannot hold the request now: retry later.
    #[error("the ingest queue is full ({queued} of {capacity} items queued; this request has {offered})")]
    Full {
        /// Items queued now.
        queued: usize,
        /// Items the queue holds at most.
        capacity: usize,
        /// Items in the refused request.
        offered: usize,
    },
    /// The request has more elements than the queue could ever hold.
    #[error("a request of {offered} events is more than the ingest queue holds ({capacity}); send smaller batches")]
    TooLarge {
        /// Items in the request.
        offered: usize,
        /// Items the queue holds at most.
        capacity: usize,
    },
    /// The pipeline is stopping: nothing reads the queue any more.
    #[error("the pipeline is stopping; events are no longer accepted")]
    Closed,
}

/// The queue shared by the endpoint and the source: cheap to clone.
#[derive(Clone)]
pub struct IngestQueue {
    inner: Arc<Inner>,
}

struct Inner {
    component: String,
    capacity: usize,
    shutdown: Shutdown,
    state: Mutex<State>,
    waker: Mutex<Option<Waker>>,
}

struct State {
    items: VecDeque<IngestItem>,
    admit: Admission,
}

impl std::fmt::Debug for IngestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestQueue")
            .field("component", &self.inner.component)
            .field("capacity", &self.inner.capacity)
            .field("queued", &self.len())
            .finish()
    }
}

impl IngestQueue {
    /// A queue of at most `capacity` items for the source `component`, which
    /// refuses offers once `shutdown` fires and checks each event time with
    /// `admit` (`None`: accepted; else the dead-letter reason).
    pub fn new(
        component: &str,
        capacity: usize,
        shutdown: Shutdown,
        admit: impl FnMut(EventTime) -> Option<String> + Send + 'static,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                component: component.to_owned(),
                capacity: capacity.max(1),
                shutdown,
                state: Mutex::new(State {
                    items: VecDeque::new(),
                    admit: Box::new(admit),
                }),
                waker: Mutex::new(None),
            }),
        }
    }

    /// The source this queue feeds.
    pub fn component(&self) -> &str {
        &self.inner.component
    }

    /// Items the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether offers are refused because the pipeline is stopping.
    pub fn is_closed(&self) -> bool {
        self.inner.shutdown.is_triggered()
    }

    /// Queues the elements of the request `request` (its correlation id, kept
    /// in dead letters), each with its position in the request, all or none:
    /// accepted events for the source, refused elements and events outside
    /// the source's bounds as dead letters.
    pub fn offer(&self, request: &str, candidates: Vec<(usize, Candidate<'_>)>) -> Result<Offered, OfferError> {
        if self.is_closed() {
            return Err(OfferError::Closed);
        }
        let (offered, capacity) = (candidates.len(), self.inner.capacity);
        if offered > capacity {
            return Err(OfferError::TooLarge { offered, capacity });
        }
        let mut result = Offered::default();
        {
            let mut state = self.lock();
            let queued = state.items.len();
            if queued + offered > capacity {
                return Err(OfferError::Full {
                    queued,
                    capacity,
                    offered,
                });
            }
            for (index, candidate) in candidates {
                let refused = match candidate {
                    Candidate::Decoded { event, raw } => match (state.admit)(event.ts) {
                        None => {
                            state.items.push_back(IngestItem::Event(event));
                            result.accepted += 1;
                            continue;
                        }
                        Some(reason) => (reason, raw),
                    },
                    Candidate::Refused { reason, raw } => (reason, raw),
                };
                let (reason, raw) = refused;
                state.items.push_back(IngestItem::DeadLetter(DeadLetter {
                    component: self.inner.component.clone(),
                    reason: reason.clone(),
                    position: Position::Http {
                        request: request.to_owned(),
                        index: index as u64,
                    },
                    raw: raw.to_owned(),
                }));
                result.rejected.push(Rejection { index, reason });
            }
        }
        if offered > 0 {
            self.wake();
        }
        Ok(result)
    }

    /// Moves up to `max` items, oldest first, into `into`; returns how many.
    pub fn take(&self, max: usize, into: &mut Vec<IngestItem>) -> usize {
        let mut state = self.lock();
        let n = max.min(state.items.len());
        into.extend(state.items.drain(..n));
        n
    }

    /// Calls `waker` whenever items arrive (replacing any earlier waker).
    pub fn wake_with(&self, waker: impl Fn() + Send + Sync + 'static) {
        *self.inner.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(waker));
    }

    fn wake(&self) {
        if let Some(waker) = self.inner.waker.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            waker();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: EventTime) -> Event {
        let raw = format!(r#"{{"ts":{ts},"tenant":"t","source":"s","kind":"metric","metric":"m","value":1}}"#);
        Event::from_json(raw.as_bytes()).unwrap()
    }

    fn decoded(ts: EventTime) -> Candidate<'static> {
        Candidate::Decoded {
            event: event(ts),
            raw: "raw",
        }
    }

    /// `candidates` at positions 0, 1, 2, …
    fn numbered(candidates: Vec<Candidate<'static>>) -> Vec<(usize, Candidate<'static>)> {
        candidates.into_iter().enumerate().collect()
    }

    #[test]
    fn a_request_that_does_not_fit_takes_nothing_and_later_fits() {
        let queue = IngestQueue::new("in", 3, Shutdown::new(), |_| None);
        assert_eq!(
            queue
                .offer("a", numbered(vec![decoded(1), decoded(2)]))
                .unwrap()
                .accepted,
            2
        );
        let full = queue.offer("b", numbered(vec![decoded(3), decoded(4)])).unwrap_err();
        assert_eq!(
            full,
            OfferError::Full {
                queued: 2,
                capacity: 3,
                offered: 2
            }
        );
        assert_eq!(queue.len(), 2, "the refused request left nothing behind");
        let mut items = Vec::new();
        assert_eq!(queue.take(1, &mut items), 1);
        assert_eq!(
            queue
                .offer("b", numbered(vec![decoded(3), decoded(4)]))
                .unwrap()
                .accepted,
            2
        );
        queue.take(10, &mut items);
        let times: Vec<_> = items
            .iter()
            .map(|item| match item {
                IngestItem::Event(event) => event.ts,
                IngestItem::DeadLetter(_) => unreachable!(),
            })
            .collect();
        assert_eq!(times, [1, 2, 3, 4], "in the order accepted");
    }

    #[test]
    fn refused_and_inadmissible_elements_become_dead_letters_with_their_index() {
        let queue = IngestQueue::new("in", 10, Shutdown::new(), |ts| {
            (ts > 100).then(|| format!("timestamp_out_of_range: {ts}"))
        });
        let candidates = vec![
            decoded(5),
            Candidate::Refused {
                reason: "missing field `ts`".into(),
                raw: "{}",
            },
            decoded(500),
        ];
        let offered = queue.offer("req-9", numbered(candidates)).unwrap();
        assert_eq!(offered.accepted, 1);
        assert_eq!(
            offered.rejected,
            vec![
                Rejection {
                    index: 1,
                    reason: "missing field `ts`".into()
                },
                Rejection {
                    index: 2,
                    reason: "timestamp_out_of_range: 500".into()
                },
            ]
        );
        let mut items = Vec::new();
        queue.take(10, &mut items);
        let IngestItem::DeadLetter(letter) = &items[2] else {
            panic!("{items:?}")
        };
        assert_eq!(
            letter.position,
            Position::Http {
                request: "req-9".into(),
                index: 2
            }
        );
        assert_eq!((letter.component.as_str(), letter.raw.as_str()), ("in", "raw"));
    }

    #[test]
    fn too_large_and_closed_are_refusals_of_their_own() {
        let shutdown = Shutdown::new();
        let queue = IngestQueue::new("in", 1, shutdown.clone(), |_| None);
        assert!(matches!(
            queue.offer("a", numbered(vec![decoded(1), decoded(2)])),
            Err(OfferError::TooLarge {
                offered: 2,
                capacity: 1
            })
        ));
        shutdown.trigger();
        assert_eq!(queue.offer("a", numbered(vec![decoded(1)])), Err(OfferError::Closed));
    }

    #[test]
    fn arrivals_wake_the_source() {
        let queue = IngestQueue::new("in", 10, Shutdown::new(), |_| None);
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        queue.wake_with(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        queue.offer("a", numbered(vec![decoded(1)])).unwrap();
        queue.offer("b", Vec::new()).unwrap();
        assert_eq!(woken.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
