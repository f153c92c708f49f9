//! Window state without the dataflow around it: insert events, close windows.
//!
//! [`WindowState`] is what the window operator keeps per worker. It is plain
//! data so that it can be tested against a brute-force reference directly.
//! State lives only as long as its window is open: closing a window removes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use hashbrown::HashTable;
use pulse_core::{Event, EventTime};

use crate::aggregate::{Accumulator, Aggregate};
use crate::window::key::{KeySpec, KeyValues};
use crate::window::row::{WindowRow, WindowSchema};
use crate::window::spec::WindowSpec;

/// Open windows of one operator on one worker.
#[derive(Debug)]
pub struct WindowState {
    spec: WindowSpec,
    key: KeySpec,
    schema: Arc<WindowSchema>,
    with_sketch: bool,
    /// Tumbling and hopping windows by end.
    aligned: BTreeMap<EventTime, HashTable<Entry<Accumulator>>>,
    /// Session windows by key, each key's sessions sorted by start.
    sessions: HashTable<Entry<Vec<Session>>>,
    /// No session ends before this.
    earliest_session_end: EventTime,
    /// No open session starts before this.
    earliest_session_start: EventTime,
    open_sessions: usize,
}

/// The partial aggregate of one (window, key) from one worker, exchanged by key
/// so that the worker owning the key can merge the partials into the row.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowPartial {
    /// Exclusive window end, epoch ms.
    pub end: EventTime,
    /// Hash of the key, for routing.
    pub hash: u64,
    /// The key.
    pub key: KeyValues,
    /// What this worker saw of the window.
    pub acc: Accumulator,
}

#[derive(Debug)]
struct Entry<S> {
    hash: u64,
    key: KeyValues,
    state: S,
}

#[derive(Debug)]
struct Session {
    start: EventTime,
    last: EventTime,
    acc: Accumulator,
}

impl WindowState {
    /// Empty state for windows of shape `spec` grouped by `key`, computing `aggregates`.
    pub fn new(spec: WindowSpec, key: KeySpec, aggregates: Vec<Aggregate>) -> Self {
        let with_sketch = aggregates.iter().any(|a| matches!(a, Aggregate::Quantile(_)));
        let schema = Arc::new(WindowSchema::new(
            key.fields().iter().map(|f| f.to_string()).collect(),
            aggregates,
        ));
        Self {
            spec,
            key,
            schema,
            with_sketch,
            aligned: BTreeMap::new(),
            sessions: HashTable::new(),
            earliest_session_end: EventTime::MAX,
            earliest_session_start: EventTime::MAX,
            open_sessions: 0,
        }
    }

    /// Adds `event` to every window it belongs to, and calls `touched(end)` with
    /// the end of each of those windows (after merging, for sessions).
    #[inline]
    pub fn insert(&mut self, event: &Event, mut touched: impl FnMut(EventTime)) {
        let hash = self.key.hash_event(event);
        let value = event.value();
        let ts = event.ts;
        if let WindowSpec::Session { gap } = self.spec {
            let end = self.insert_session(hash, event, gap.as_millis());
            touched(end);
            return;
        }
        let (key, aligned, with_sketch) = (&self.key, &mut self.aligned, self.with_sketch);
        self.spec.for_each_aligned(ts, |_start, end| {
            let table = aligned.entry(end).or_default();
            let entry = match table.find_mut(hash, |e| key.matches(event, &e.key)) {
                Some(entry) => entry,
                None => {
                    let fresh = Entry {
                        hash,
                        key: key.extract(event),
                        state: Accumulator::new(with_sketch),
                    };
                    table.insert_unique(hash, fresh, |e| e.hash).into_mut()
                }
            };
            entry.state.add(value);
            touched(end);
        });
    }

    /// Merges a partial aggregate of an aligned window (from
    /// [`WindowState::close_partials`] on some worker) into this state.
    pub fn merge(&mut self, partial: WindowPartial) {
        let table = self.aligned.entry(partial.end).or_default();
        let key = &partial.key;
        match table.find_mut(partial.hash, |e| e.key == *key) {
            Some(entry) => entry.state.merge(&partial.acc),
            None => {
                let entry = Entry {
                    hash: partial.hash,
                    key: partial.key,
                    state: partial.acc,
                };
                table.insert_unique(entry.hash, entry, |e| e.hash);
            }
        }
    }

    /// Like [`WindowState::close`] for aligned windows, but returns the
    /// accumulators themselves, to be merged elsewhere.
    pub fn close_partials(&mut self, frontier: EventTime) -> Vec<WindowPartial> {
        self.split_closed(frontier)
            .into_iter()
            .flat_map(|(end, table)| {
                table.into_iter().map(move |e| WindowPartial {
                    end,
                    hash: e.hash,
                    key: e.key,
                    acc: e.state,
                })
            })
            .collect()
    }

    fn split_closed(&mut self, frontier: EventTime) -> BTreeMap<EventTime, HashTable<Entry<Accumulator>>> {
        let still_open = match frontier.checked_add(1) {
            Some(next) => self.aligned.split_off(&next),
            None => BTreeMap::new(),
        };
        std::mem::replace(&mut self.aligned, still_open)
    }

    /// Whether this state holds session windows (which are not pre-aggregated).
    pub fn is_session(&self) -> bool {
        matches!(self.spec, WindowSpec::Session { .. })
    }

    fn insert_session(&mut self, hash: u64, event: &Event, gap: u64) -> EventTime {
        let (ts, value) = (event.ts, event.value());
        let key = &self.key;
        let entry = match self.sessions.find_mut(hash, |e| key.matches(event, &e.key)) {
            Some(entry) => entry,
            None => {
                let fresh = Entry {
                    hash,
                    key: key.extract(event),
                    state: Vec::new(),
                };
                self.sessions.insert_unique(hash, fresh, |e| e.hash).into_mut()
            }
        };
        let sessions = &mut entry.state;
        // Sessions this event touches: those with start - gap < ts < last + gap.
        let first = sessions.partition_point(|s| s.last + gap <= ts);
        let mut touching = first..first;
        while touching.end < sessions.len() && sessions[touching.end].start < ts + gap {
            touching.end += 1;
        }
        let before = sessions.len();
        let mut merged = Session {
            start: ts,
            last: ts,
            acc: Accumulator::new(self.with_sketch),
        };
        for session in sessions.drain(touching.clone()) {
            merged.start = merged.start.min(session.start);
            merged.last = merged.last.max(session.last);
            merged.acc.merge(&session.acc);
        }
        merged.acc.add(value);
        let (end, merged_start) = (merged.last + gap, merged.start);
        sessions.insert(touching.start, merged);
        self.open_sessions = self.open_sessions + sessions.len() - before;
        self.earliest_session_end = self.earliest_session_end.min(end);
        self.earliest_session_start = self.earliest_session_start.min(merged_start);
        end
    }

    /// The start of the earliest open session ([`EventTime::MAX`] when none
    /// is open): every event before it that this state saw is in a closed session.
    pub fn earliest_session_start(&self) -> EventTime {
        self.earliest_session_start
    }

    /// Removes every window that ends at or before `frontier` and returns its
    /// rows, ordered by window end.
    pub fn close(&mut self, frontier: EventTime) -> Vec<WindowRow> {
        let mut rows = Vec::new();
        for (end, table) in self.split_closed(frontier) {
            let start = self.start_of(end);
            rows.extend(table.into_iter().map(|e| self.row(start, end, e.key, &e.state)));
        }
        if frontier >= self.earliest_session_end {
            rows.extend(self.close_sessions(frontier));
        }
        rows
    }

    fn close_sessions(&mut self, frontier: EventTime) -> Vec<WindowRow> {
        let WindowSpec::Session { gap } = self.spec else {
            return Vec::new();
        };
        let gap = gap.as_millis();
        let mut closed = Vec::new();
        let (mut earliest_end, mut earliest_start) = (EventTime::MAX, EventTime::MAX);
        self.sessions.retain(|entry| {
            entry.state.retain(|s| {
                if s.last + gap <= frontier {
                    closed.push((s.last + gap, s.start, entry.key.clone(), s.acc.clone()));
                    false
                } else {
                    earliest_end = earliest_end.min(s.last + gap);
                    earliest_start = earliest_start.min(s.start);
                    true
                }
            });
            !entry.state.is_empty()
        });
        self.earliest_session_end = earliest_end;
        self.earliest_session_start = earliest_start;
        self.open_sessions -= closed.len();
        closed.sort_by_key(|(end, start, _, _)| (*end, *start));
        closed
            .into_iter()
            .map(|(end, start, key, acc)| self.row(start, end, key, &acc))
            .collect()
    }

    /// Drops every open window without emitting it; returns how many there were.
    pub fn discard(&mut self) -> usize {
        let open = self.open_windows();
        self.aligned.clear();
        self.sessions.clear();
        self.open_sessions = 0;
        self.earliest_session_end = EventTime::MAX;
        self.earliest_session_start = EventTime::MAX;
        open
    }

    /// Number of open (window, key) pairs: the size of the state.
    pub fn open_windows(&self) -> usize {
        self.aligned.values().map(HashTable::len).sum::<usize>() + self.open_sessions
    }

    fn start_of(&self, end: EventTime) -> EventTime {
        match self.spec {
            WindowSpec::Tumbling { size } | WindowSpec::Hopping { size, .. } => end - size.as_millis(),
            WindowSpec::Session { .. } => unreachable!("session windows are not aligned"),
        }
    }

    fn row(&self, start: EventTime, end: EventTime, key: KeyValues, acc: &Accumulator) -> WindowRow {
        WindowRow {
            schema: Arc::clone(&self.schema),
            window_start: start,
            window_end: end,
            key,
            values: self.schema.aggregates.iter().map(|a| acc.finish(*a)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: EventTime, host: &str) -> Event {
        let json =
            format!(r#"{{"ts":{ts},"tenant":"acme","source":"{host}","kind":"metric","metric":"cpu","value":1}}"#);
        Event::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn the_earliest_open_session_start_follows_inserts_merges_and_closes() {
        let spec = WindowSpec::Session {
            gap: "1s".parse().unwrap(),
        };
        let key = KeySpec::new(vec!["source".parse().unwrap()]);
        let mut state = WindowState::new(spec, key, vec!["count".parse().unwrap()]);
        assert_eq!(state.earliest_session_start(), EventTime::MAX);
        state.insert(&event(5_000, "a"), |_| {});
        state.insert(&event(7_000, "b"), |_| {});
        state.insert(&event(4_500, "a"), |_| {}); // merges into a's session, which now starts earlier
        assert_eq!(state.earliest_session_start(), 4_500);
        assert_eq!(state.close(6_000).len(), 1, "a's session ends at 6,000");
        assert_eq!(state.earliest_session_start(), 7_000);
        assert_eq!(state.close(8_000).len(), 1);
        assert_eq!(state.earliest_session_start(), EventTime::MAX);
    }
}
