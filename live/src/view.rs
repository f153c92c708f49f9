//! [`WindowViews`]: the closed windows of each operator, kept in memory for the
//! query API and bounded by count and by age.
//!
//! Each operator's rows sit in their own queue behind their own short lock:
//! recording a batch appends and evicts, a query copies out the `Arc`s of the
//! rows it selects and aggregates them after letting go. Neither waits on I/O,
//! so the dataflow never waits on a reader for longer than one scan of one
//! operator's rows. Age is measured from when a row was recorded (wall clock),
//! not from its event time, so replays of old data stay queryable.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::RetentionConfig;
use crate::query::{self, QueryError, SeriesQuery, SeriesResult};
use crate::row::{LiveRow, LiveSource};

/// What an operator's rows will carry, declared when the pipeline starts, so
/// that a query can choose it before any of its windows has closed. Only
/// operators of fixed-length windows declare one (a session's length only its
/// rows tell).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewShape {
    /// The length of its windows in ms.
    pub window_ms: u64,
    /// Its key fields (`tenant`, `metric`, ...).
    pub key_fields: Vec<String>,
    /// Its value columns (`count`, `avg`, `p95`, ...).
    pub values: Vec<String>,
}

/// The retained windows of every operator; cheap to clone (clones share).
#[derive(Clone)]
pub struct WindowViews {
    inner: Arc<ViewsInner>,
}

struct ViewsInner {
    max_rows: usize,
    max_age: Duration,
    operators: RwLock<BTreeMap<LiveSource, Arc<Mutex<OperatorView>>>>,
}

#[derive(Default)]
struct OperatorView {
    shape: Option<ViewShape>,
    rows: VecDeque<(Instant, Arc<LiveRow>)>,
    recorded_total: u64,
    evicted_total: u64,
}

/// The source a history row of `operator` is attributed to (see
/// [`WindowViews::query_with_history`]).
fn history_source(views: &[LiveSource], operator: &str) -> LiveSource {
    let pipeline = views
        .iter()
        .find(|source| source.operator == operator)
        .or_else(|| {
            views
                .first()
                .filter(|first| views.iter().all(|s| s.pipeline == first.pipeline))
        })
        .map_or("history", |source| source.pipeline.as_str());
    LiveSource::new(pipeline, operator)
}

impl OperatorView {
    /// The earliest window start among the rows retained.
    fn oldest_start(&self) -> Option<u64> {
        self.rows.iter().map(|(_, row)| row.window_start).min()
    }

    fn evict(&mut self, now: Instant, max_rows: usize, max_age: Duration) {
        while let Some((at, _)) = self.rows.front() {
            if self.rows.len() > max_rows || now.saturating_duration_since(*at) > max_age {
                self.rows.pop_front();
                self.evicted_total += 1;
            } else {
                break;
            }
        }
    }
}

/// Counters of one operator's view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViewStats {
    /// The pipeline.
    pub pipeline: String,
    /// The operator.
    pub operator: String,
    /// Rows retained now.
    pub rows: usize,
    /// Rows recorded since start.
    pub recorded_total: u64,
    /// Rows evicted by count or age.
    pub evicted_total: u64,
}

fn lock(view: &Mutex<OperatorView>) -> MutexGuard<'_, OperatorView> {
    // Eviction and appends leave the queue valid at every step: a poisoned lock is still usable.
    view.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl WindowViews {
    /// Empty views retaining what `retention` allows (validate it first).
    pub fn new(retention: &RetentionConfig) -> Self {
        Self {
            inner: Arc::new(ViewsInner {
                max_rows: retention.max_rows_per_operator,
                max_age: retention.max_age.to_std(),
                operators: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    fn view(&self, source: &LiveSource) -> Arc<Mutex<OperatorView>> {
        let operators = self.inner.operators.read().unwrap_or_else(|p| p.into_inner());
        if let Some(view) = operators.get(source) {
            return view.clone();
        }
        drop(operators);
        let mut operators = self.inner.operators.write().unwrap_or_else(|p| p.into_inner());
        operators.entry(source.clone()).or_default().clone()
    }

    /// Declares what the rows of `source` will carry (before any is recorded).
    ///
    /// # Examples
    /// ```
    /// use pulse_live::{LiveSource, RetentionConfig, SeriesQuery, ViewShape, WindowViews};
    ///
    ///
    /// let views = WindowViews::new(&RetentionConfig::default());
    /// let shape = |window_ms, values: &[&str]| ViewShape {
    ///     window_ms,
    ///     key_fields: vec!["tenant".into(), "metric".into()],
    ///     values: values.iter().map(|v| v.to_string()).collect(),
    /// };
    /// views.declare(&LiveSource::new("demo", "by_metric_5s"), shape(5_000, &["count", "avg"]));
    /// views.declare(&LiveSource::new("demo", "per_host_30s"), shape(30_000, &["count", "p99"]));
    /// // No window has closed yet, and a p99 query already knows which operator answers it.
    /// let query = SeriesQuery {
    ///     metric_name: "cpu".into(),
    ///     start_ms: 0,
    ///     end_ms: 60_000,
    ///     aggregation: "p99".parse().unwrap(),
    ///     group_by: vec![],
    ///     step_ms: None,
    ///     operator: None,
    ///     pipeline: None,
    /// };
    /// let result = views.query("acme", &query).unwrap();
    /// assert_eq!(result.operator.as_deref(), Some("per_host_30s"));
    /// assert!(result.series.is_empty());
    /// ```
    pub fn declare(&self, source: &LiveSource, shape: ViewShape) {
        lock(&self.view(source)).shape = Some(shape);
    }

    /// Retains closed windows of `source`, recorded now.
    pub fn record(&self, source: &LiveSource, rows: &[Arc<LiveRow>]) {
        self.record_at(source, rows, Instant::now());
    }

    /// Retains closed windows of `source`, recorded at `now`.
    pub fn record_at(&self, source: &LiveSource, rows: &[Arc<LiveRow>], now: Instant) {
        let view = self.view(source);
        let mut view = lock(&view);
        view.rows.extend(rows.iter().map(|row| (now, row.clone())));
        view.recorded_total += rows.len() as u64;
        view.evict(now, self.inner.max_rows, self.inner.max_age);
    }

    /// Answers `query` from the windows of `tenant` retained now.
    pub fn query(&self, tenant: &str, query: &SeriesQuery) -> Result<SeriesResult, QueryError> {
        self.query_at(tenant, query, Instant::now())
    }

    /// Answers `query` from the windows of `tenant` retained at `now`.
    pub fn query_at(&self, tenant: &str, query: &SeriesQuery, now: Instant) -> Result<SeriesResult, QueryError> {
        self.query_with_history_at(tenant, query, &[], now)
    }

    /// Whether the windows retained now answer every query from `start_ms`
    /// on: some operator has rows, and each one that has rows holds them
    /// from `start_ms` or earlier (nothing of the range was evicted or came
    /// before the run). Otherwise history (a database) has to fill in.
    pub fn covers_since(&self, start_ms: u64) -> bool {
        let now = Instant::now();
        let operators = self.inner.operators.read().unwrap_or_else(|p| p.into_inner());
        let mut any = false;
        for view in operators.values() {
            let mut view = lock(view);
            view.evict(now, self.inner.max_rows, self.inner.max_age);
            match view.oldest_start() {
                Some(oldest) if oldest <= start_ms => any = true,
                Some(_) => return false,
                None => {}
            }
        }
        any
    }

    /// Answers `query` from the windows of `tenant` retained now and, for
    /// each operator, from `history` (window rows read back from a database,
    /// with the name of the operator that made them) before the oldest window
    /// it retains, so a range older than the retention is answered whole and
    /// no window counts twice. A history row of an operator without retained
    /// rows belongs to the pipeline of a view of that name (else the only
    /// pipeline's, else `history`).
    pub fn query_with_history(
        &self,
        tenant: &str,
        query: &SeriesQuery,
        history: &[(String, LiveRow)],
    ) -> Result<SeriesResult, QueryError> {
        self.query_with_history_at(tenant, query, history, Instant::now())
    }

    fn query_with_history_at(
        &self,
        tenant: &str,
        query: &SeriesQuery,
        history: &[(String, LiveRow)],
        now: Instant,
    ) -> Result<SeriesResult, QueryError> {
        query.validate()?;
        let views: Vec<(LiveSource, Arc<Mutex<OperatorView>>)> = {
            let operators = self.inner.operators.read().unwrap_or_else(|p| p.into_inner());
            operators.iter().map(|(s, v)| (s.clone(), v.clone())).collect()
        };
        let mut selected = Vec::new();
        let mut declared = Vec::new();
        let mut oldest: BTreeMap<LiveSource, u64> = BTreeMap::new();
        let pipelines: Vec<LiveSource> = views.iter().map(|(source, _)| source.clone()).collect();
        for (source, view) in views {
            let mut view = lock(&view);
            view.evict(now, self.inner.max_rows, self.inner.max_age);
            if let Some(shape) = &view.shape {
                declared.push((source.clone(), shape.clone()));
            }
            if let Some(start) = view.oldest_start() {
                oldest.insert(source.clone(), start);
            }
            selected.extend(
                view.rows
                    .iter()
                    .filter(|(_, row)| row.tenant() == Some(tenant) && query.selects(&source, row))
                    .map(|(_, row)| (source.clone(), row.clone())),
            );
        }
        for (operator, row) in history {
            let source = history_source(&pipelines, operator);
            let before_retained = oldest.get(&source).is_none_or(|start| row.window_start < *start);
            if before_retained && row.tenant() == Some(tenant) && query.selects(&source, row) {
                selected.push((source, Arc::new(row.clone())));
            }
        }
        query::compute(query, &declared, &selected)
    }

    /// The windows of `tenant` retained now, each with its operator (per
    /// operator in the order recorded): what a model is trained on.
    pub fn tenant_rows(&self, tenant: &str) -> Vec<(LiveSource, Arc<LiveRow>)> {
        let now = Instant::now();
        let views: Vec<(LiveSource, Arc<Mutex<OperatorView>>)> = {
            let operators = self.inner.operators.read().unwrap_or_else(|p| p.into_inner());
            operators.iter().map(|(s, v)| (s.clone(), v.clone())).collect()
        };
        let mut rows = Vec::new();
        for (source, view) in views {
            let mut view = lock(&view);
            view.evict(now, self.inner.max_rows, self.inner.max_age);
            rows.extend(
                view.rows
                    .iter()
                    .filter(|(_, row)| row.tenant() == Some(tenant))
                    .map(|(_, row)| (source.clone(), row.clone())),
            );
        }
        rows
    }

    /// Counters per operator.
    pub fn stats(&self) -> Vec<ViewStats> {
        let operators = self.inner.operators.read().unwrap_or_else(|p| p.into_inner());
        operators
            .iter()
            .map(|(source, view)| {
                let view = lock(view);
                ViewStats {
                    pipeline: source.pipeline.clone(),
                    operator: source.operator.clone(),
                    rows: view.rows.len(),
                    recorded_total: view.recorded_total,
                    evicted_total: view.evicted_total,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
