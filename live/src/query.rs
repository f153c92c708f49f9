//! Series queries over retained windows: which rows, which aggregate, how to
//! group and re-bucket them, and how aggregates of several windows combine.
//!
//! Semantics (what `POST /api/v1/analytics/query` documents):
//! - a window is in range when `start_ms <= window_start < end_ms`;
//! - rows are those whose `metric` key field equals `metric_name`, of the
//!   caller's tenant and of one operator: the named `operator` (and
//!   `pipeline`), or else the default one (see [`choose_operator`]) — never
//!   several, since mixing e.g. 10 s and 1 min windows would double count;
//!   the result names the operator that answered;
//! - without `step` every window start is a point; with `step` windows are put
//!   in the bucket `floor(window_start / step) * step`;
//! - within a point, `count` and `sum` add up, `min`/`max` take the extreme,
//!   `avg` is weighted by each window's `count` (a plain mean when the operator
//!   has no `count`), and a quantile (`p95`, ...) takes the largest window value
//!   — an upper bound, exact only for single-window points, so the result says
//!   `"approximate": true` when it merged any.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::row::{LiveRow, LiveSource};
use crate::view::ViewShape;

/// Most `group_by` fields of one query.
pub const MAX_GROUP_BY: usize = 16;

/// How the windows of one point combine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// Total of the windows' `count`.
    Count,
    /// Total of the windows' `sum`.
    Sum,
    /// Smallest `min`.
    Min,
    /// Largest `max`.
    Max,
    /// Count-weighted mean of `avg`.
    Avg,
    /// Largest value of a quantile column such as `p95` (an upper bound).
    Quantile(String),
}

impl Aggregation {
    /// The window column it reads.
    pub fn column(&self) -> &str {
        match self {
            Aggregation::Count => "count",
            Aggregation::Sum => "sum",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Avg => "avg",
            Aggregation::Quantile(name) => name,
        }
    }
}

impl FromStr for Aggregation {
    type Err = QueryError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(match name {
            "count" => Aggregation::Count,
            "sum" => Aggregation::Sum,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "avg" => Aggregation::Avg,
            _ if name.len() > 1
                && name.len() <= 5
                && name.starts_with('p')
                && name[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                Aggregation::Quantile(name.to_owned())
            }
            _ => return Err(QueryError::UnknownAggregation(name.to_owned())),
        })
    }
}

/// A series query, already parsed (times in epoch ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesQuery {
    /// The `metric` key field to select.
    pub metric_name: String,
    /// Inclusive lower bound on `window_start`.
    pub start_ms: u64,
    /// Exclusive upper bound on `window_start`.
    pub end_ms: u64,
    /// How windows combine.
    pub aggregation: Aggregation,
    /// Key fields to split series by.
    pub group_by: Vec<String>,
    /// Bucket width in ms, if re-bucketing.
    pub step_ms: Option<u64>,
    /// The window operator to read, when several carry the metric.
    pub operator: Option<String>,
    /// The pipeline, when operators of several pipelines share a name.
    pub pipeline: Option<String>,
}

/// Why a query cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `end` is not after `start`.
    #[error("end_time must be after start_time")]
    EmptyRange,
    /// A zero step.
    #[error("step must be positive")]
    ZeroStep,
    /// An aggregation this API does not know.
    #[error("unknown aggregation {0:?}; use avg, min, max, sum, count or a quantile such as p50, p95, p99")]
    UnknownAggregation(String),
    /// Too many group fields.
    #[error("group_by may name at most {MAX_GROUP_BY} fields")]
    TooManyGroupFields,
    /// Operators that no rule can choose between (equally fine windows, the
    /// same operator name in several pipelines), listed as `pipeline/operator`.
    #[error(
        "several operators could answer ({0}): their windows are equally long and their names equal; name one with \"pipeline\" (and \"operator\")"
    )]
    Ambiguous(String),
    /// The selected windows do not carry the aggregate.
    #[error("the windows of this metric carry no {0:?} aggregate; add it to the operator's aggregates")]
    MissingAggregate(String),
    /// A group field no selected window has.
    #[error("no window of this metric has the key field {0:?} to group by")]
    UnknownGroupField(String),
}

/// The answer: one series per group, points in time order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesResult {
    /// The metric queried.
    pub metric_name: String,
    /// The aggregation applied.
    pub aggregation: String,
    /// The pipeline the windows came from (null when nothing matched).
    pub pipeline: Option<String>,
    /// The operator the windows came from (null when nothing matched).
    pub operator: Option<String>,
    /// The bucket width, if re-bucketed.
    pub step_ms: Option<u64>,
    /// Whether some point merged quantiles of several windows (an upper bound, not exact).
    pub approximate: bool,
    /// One series per distinct `group_by` value combination.
    pub series: Vec<Series>,
}

/// The points of one group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Series {
    /// The group's key values (empty without `group_by`).
    pub group: Map<String, Value>,
    /// Points in time order.
    pub points: Vec<Point>,
}

/// One point of a series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// The window start (or bucket start), epoch ms.
    pub timestamp: u64,
    /// The combined value; null when no window had a defined one.
    pub value: Value,
    /// How many windows it combines.
    pub windows: u64,
}

impl SeriesQuery {
    /// Checks what does not need the data.
    pub fn validate(&self) -> Result<(), QueryError> {
        if self.end_ms <= self.start_ms {
            return Err(QueryError::EmptyRange);
        }
        if self.step_ms == Some(0) {
            return Err(QueryError::ZeroStep);
        }
        if self.group_by.len() > MAX_GROUP_BY {
            return Err(QueryError::TooManyGroupFields);
        }
        Ok(())
    }

    /// Whether a row of `source` is one this query reads (tenant aside).
    pub(crate) fn selects(&self, source: &LiveSource, row: &LiveRow) -> bool {
        self.operator.as_ref().is_none_or(|o| *o == source.operator)
            && self.pipeline.as_ref().is_none_or(|p| *p == source.pipeline)
            && row.key_str("metric") == Some(self.metric_name.as_str())
            && (self.start_ms..self.end_ms).contains(&row.window_start)
    }
}

#[derive(Default)]
struct Accumulator {
    windows: u64,
    count: u64,
    total: f64,
    weight: f64,
    defined: u64,
    extreme: Option<f64>,
    all_weighted: bool,
}

impl Accumulator {
    fn add(&mut self, aggregation: &Aggregation, row: &LiveRow) {
        if self.windows == 0 {
            self.all_weighted = true;
        }
        self.windows += 1;
        let value = row.value_f64(aggregation.column());
        match aggregation {
            Aggregation::Count => self.count += row.values.get("count").and_then(Value::as_u64).unwrap_or(0),
            Aggregation::Sum => {
                if let Some(v) = value {
                    self.total += v;
                    self.defined += 1;
                }
            }
            Aggregation::Min => self.extreme = extreme(self.extreme, value, f64::min),
            Aggregation::Max | Aggregation::Quantile(_) => self.extreme = extreme(self.extreme, value, f64::max),
            Aggregation::Avg => {
                let Some(avg) = value else { return };
                self.defined += 1;
                match row.value_f64("count") {
                    Some(count) => {
                        self.total += avg * count;
                        self.weight += count;
                    }
                    None => {
                        self.all_weighted = false;
                        self.total += avg;
                        self.weight += 1.0;
                    }
                }
            }
        }
    }

    fn value(&self, aggregation: &Aggregation) -> Value {
        let float = |v: Option<f64>| {
            v.and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number)
        };
        match aggregation {
            Aggregation::Count => Value::from(self.count),
            Aggregation::Sum => float((self.defined > 0).then_some(self.total)),
            Aggregation::Min | Aggregation::Max | Aggregation::Quantile(_) => float(self.extreme),
            Aggregation::Avg => float((self.weight > 0.0).then(|| self.total / self.weight)),
        }
    }
}

fn extreme(current: Option<f64>, value: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (current, value) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// A group's key values and its points by timestamp.
type GroupPoints = (Map<String, Value>, BTreeMap<u64, Accumulator>);

/// What the selected rows of one operator offer a query.
struct OperatorOffer {
    /// The longest window among its rows, in ms: how coarse its windows are.
    longest_window_ms: u64,
    /// Whether some row carries the requested aggregate.
    carries_aggregate: bool,
    /// Per `group_by` field, whether some row has it as a key field.
    has_group_field: Vec<bool>,
}

impl OperatorOffer {
    fn answers(&self) -> bool {
        self.carries_aggregate && self.has_group_field.iter().all(|has| *has)
    }
}

/// The operator whose rows answer `query` when it named none (or named an
/// operator that several pipelines have), from the operators that have rows
/// for it and those `declared` with a `metric` key field (so an operator is a
/// candidate before its first window closes): among those that carry the
/// requested aggregate and every
/// `group_by` field, the finest-grained one (shortest windows; for hopping
/// windows their length, not their slide), ties broken by operator name.
/// Operators that still tie (the same name and window length in several
/// pipelines) are [`QueryError::Ambiguous`]. `None` when no row matched.
pub fn choose_operator<'a>(
    query: &SeriesQuery,
    declared: &'a [(LiveSource, ViewShape)],
    rows: impl IntoIterator<Item = (&'a LiveSource, &'a LiveRow)>,
) -> Result<Option<&'a LiveSource>, QueryError> {
    let mut offers: BTreeMap<&LiveSource, OperatorOffer> = BTreeMap::new();
    for (source, shape) in declared {
        let named = query.operator.as_ref().is_none_or(|o| *o == source.operator)
            && query.pipeline.as_ref().is_none_or(|p| *p == source.pipeline);
        if !named || !shape.key_fields.iter().any(|field| field == "metric") {
            continue;
        }
        offers.insert(
            source,
            OperatorOffer {
                longest_window_ms: shape.window_ms,
                carries_aggregate: shape.values.iter().any(|v| v == query.aggregation.column()),
                has_group_field: query
                    .group_by
                    .iter()
                    .map(|field| shape.key_fields.contains(field))
                    .collect(),
            },
        );
    }
    for (source, row) in rows {
        let offer = offers.entry(source).or_insert_with(|| OperatorOffer {
            longest_window_ms: 0,
            carries_aggregate: false,
            has_group_field: vec![false; query.group_by.len()],
        });
        offer.longest_window_ms = offer
            .longest_window_ms
            .max(row.window_end.saturating_sub(row.window_start));
        offer.carries_aggregate |= row.values.contains_key(query.aggregation.column());
        for (has, field) in offer.has_group_field.iter_mut().zip(&query.group_by) {
            *has |= row.key.contains_key(field);
        }
    }
    if offers.len() <= 1 {
        // A single operator answers, or explains what it lacks.
        return Ok(offers.into_keys().next());
    }
    let mut able: Vec<(&LiveSource, &OperatorOffer)> = offers
        .iter()
        .filter(|(_, offer)| offer.answers())
        .map(|(source, offer)| (*source, offer))
        .collect();
    if able.is_empty() {
        // Say what the operators that carry the aggregate lack, or that none does.
        let Some(offer) = offers.values().find(|offer| offer.carries_aggregate) else {
            return Err(QueryError::MissingAggregate(query.aggregation.column().to_owned()));
        };
        let missing = offer.has_group_field.iter().position(|has| !has).unwrap_or_default();
        return Err(QueryError::UnknownGroupField(query.group_by[missing].clone()));
    }
    able.sort_by(|(a, a_offer), (b, b_offer)| {
        (a_offer.longest_window_ms, &a.operator, &a.pipeline).cmp(&(
            b_offer.longest_window_ms,
            &b.operator,
            &b.pipeline,
        ))
    });
    let (best, best_offer) = able[0];
    let tied: Vec<String> = able
        .iter()
        .filter(|(source, offer)| {
            offer.longest_window_ms == best_offer.longest_window_ms && source.operator == best.operator
        })
        .map(|(source, _)| format!("{}/{}", source.pipeline, source.operator))
        .collect();
    if tied.len() > 1 {
        return Err(QueryError::Ambiguous(tied.join(", ")));
    }
    Ok(Some(best))
}

/// Computes the series of `query` from the rows it selected, of the operator
/// [`choose_operator`] picks.
pub(crate) fn compute(
    query: &SeriesQuery,
    declared: &[(LiveSource, ViewShape)],
    rows: &[(LiveSource, Arc<LiveRow>)],
) -> Result<SeriesResult, QueryError> {
    let chosen = choose_operator(query, declared, rows.iter().map(|(source, row)| (source, row.as_ref())))?.cloned();
    let rows: Vec<&(LiveSource, Arc<LiveRow>)> = rows
        .iter()
        .filter(|(source, _)| Some(source) == chosen.as_ref())
        .collect();
    let column = query.aggregation.column();
    if !rows.is_empty() && !rows.iter().any(|(_, row)| row.values.contains_key(column)) {
        return Err(QueryError::MissingAggregate(column.to_owned()));
    }
    for field in &query.group_by {
        if !rows.is_empty() && !rows.iter().any(|(_, row)| row.key.contains_key(field)) {
            return Err(QueryError::UnknownGroupField(field.clone()));
        }
    }
    // Group keys are ordered by their JSON text, so the output order is stable.
    let mut groups: BTreeMap<Vec<String>, GroupPoints> = BTreeMap::new();
    for (_, row) in rows {
        let mut group = Map::new();
        let mut order = Vec::with_capacity(query.group_by.len());
        for field in &query.group_by {
            let value = row.key.get(field).cloned().unwrap_or(Value::Null);
            order.push(value.to_string());
            group.insert(field.clone(), value);
        }
        let timestamp = match query.step_ms {
            Some(step) => row.window_start - row.window_start % step,
            None => row.window_start,
        };
        let (_, points) = groups.entry(order).or_insert_with(|| (group, BTreeMap::new()));
        points.entry(timestamp).or_default().add(&query.aggregation, row);
    }
    let mut approximate = false;
    let series = groups
        .into_values()
        .map(|(group, points)| Series {
            group,
            points: points
                .into_iter()
                .map(|(timestamp, acc)| {
                    approximate |= matches!(query.aggregation, Aggregation::Quantile(_)) && acc.windows > 1;
                    approximate |=
                        matches!(query.aggregation, Aggregation::Avg) && !acc.all_weighted && acc.windows > 1;
                    Point {
                        timestamp,
                        value: acc.value(&query.aggregation),
                        windows: acc.windows,
                    }
                })
                .collect(),
        })
        .collect();
    Ok(SeriesResult {
        metric_name: query.metric_name.clone(),
        aggregation: column.to_owned(),
        pipeline: chosen.as_ref().map(|s| s.pipeline.clone()),
        operator: chosen.map(|s| s.operator),
        step_ms: query.step_ms,
        approximate,
        series,
    })
}
