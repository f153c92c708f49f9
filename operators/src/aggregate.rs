//! Aggregate functions over the values of a window, and their mergeable state.
//!
//! Every aggregate is computed from one [`Accumulator`] per (window, key):
//! count, a compensated (Neumaier) sum, min, max, Welford's running mean and
//! squared deviations, and — only when a quantile is asked for — a
//! [`QuantileSketch`]. Accumulators merge exactly (counts, min, max, sketch) or
//! within floating-point rounding (sum, mean, M2 by Chan's formula), so partial
//! aggregates from different workers combine into the same result.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sketch::QuantileSketch;

/// One aggregate function, as written in a pipeline file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// Number of events in the window.
    Count,
    /// Sum of the values.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Arithmetic mean of the values.
    Avg,
    /// Sample standard deviation (n − 1 in the denominator); null below 2 values.
    Stddev,
    /// A quantile in per-mille (`p50` = 500, `p999` = 999), from the sketch.
    Quantile(u16),
}

/// Why an aggregate name did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown aggregate {0:?}; use one of count, sum, min, max, avg, stddev, or a quantile p1..p99 / p999 (e.g. \"p95\")"
)]
pub struct UnknownAggregate(String);

impl Aggregate {
    /// Whether the aggregate reads the numeric `value` of metric events
    /// (everything but `count`).
    pub fn needs_value(self) -> bool {
        self != Aggregate::Count
    }

    /// The name used for the output column, e.g. `p95`.
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregate::Count => f.write_str("count"),
            Aggregate::Sum => f.write_str("sum"),
            Aggregate::Min => f.write_str("min"),
            Aggregate::Max => f.write_str("max"),
            Aggregate::Avg => f.write_str("avg"),
            Aggregate::Stddev => f.write_str("stddev"),
            Aggregate::Quantile(per_mille) if per_mille % 10 == 0 => write!(f, "p{}", per_mille / 10),
            Aggregate::Quantile(per_mille) => write!(f, "p{per_mille}"),
        }
    }
}

impl FromStr for Aggregate {
    type Err = UnknownAggregate;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownAggregate(name.to_owned());
        Ok(match name {
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "avg" | "mean" => Aggregate::Avg,
            "stddev" => Aggregate::Stddev,
            _ => {
                let digits = name.strip_prefix('p').ok_or_else(unknown)?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(unknown());
                }
                let number: u16 = digits.parse().map_err(|_| unknown())?;
                match digits.len() {
                    1 | 2 if (1..=99).contains(&number) => Aggregate::Quantile(number * 10),
                    3 if digits.starts_with("99") => Aggregate::Quantile(number),
                    _ => return Err(unknown()),
                }
            }
        })
    }
}

impl Serialize for Aggregate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Aggregate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The result of one aggregate for one (window, key).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AggregateValue {
    /// An exact count.
    Count(u64),
    /// A float; `None` when undefined (no values, or not finite), written as `null`.
    Float(Option<f64>),
}

impl AggregateValue {
    /// The value as a float, if it has one.
    pub fn as_f64(self) -> Option<f64> {
        match self {
            AggregateValue::Count(n) => Some(n as f64),
            AggregateValue::Float(x) => x,
        }
    }
}

/// Mergeable state from which every [`Aggregate`] is computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    events: u64,
    values: u64,
    sum: f64,
    compensation: f64,
    min: f64,
    max: f64,
    mean: f64,
    m2: f64,
    sketch: Option<Box<QuantileSketch>>,
}

impl Accumulator {
    /// Empty state; `with_sketch` when a quantile is asked for.
    pub fn new(with_sketch: bool) -> Self {
        Self {
            events: 0,
            values: 0,
            sum: 0.0,
            compensation: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
            m2: 0.0,
            sketch: with_sketch.then(Box::default),
        }
    }

    /// Counts one event and, for metric events, its value.
    #[inline]
    pub fn add(&mut self, value: Option<f64>) {
        self.events += 1;
        let Some(x) = value else { return };
        self.values += 1;
        // Neumaier's compensated sum: exact to within one rounding in practice,
        // and nearly independent of the order values arrive in.
        let t = self.sum + x;
        self.compensation += if self.sum.abs() >= x.abs() {
            (self.sum - t) + x
        } else {
            (x - t) + self.sum
        };
        self.sum = t;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        let delta = x - self.mean;
        self.mean += delta / self.values as f64;
        self.m2 += delta * (x - self.mean);
        if let Some(sketch) = &mut self.sketch {
            sketch.insert(x);
        }
    }

    /// Folds `other` into `self`, as if every value of `other` had been added here.
    pub fn merge(&mut self, other: &Accumulator) {
        if self.values == 0 && other.values > 0 {
            // Nothing to combine with: take the other side as it is (Chan's
            // formula would compute ∞·0 = NaN for means beyond ~1e154).
            let (events, sketch) = (self.events, self.sketch.take());
            *self = Accumulator {
                events: events + other.events,
                sketch,
                ..other.clone()
            };
            if let (Some(mine), Some(theirs)) = (&mut self.sketch, &other.sketch) {
                mine.merge(theirs);
            }
            return;
        }
        if other.values > 0 {
            let n = (self.values + other.values) as f64;
            let delta = other.mean - self.mean;
            self.m2 += other.m2 + delta * delta * self.values as f64 * other.values as f64 / n;
            self.mean += delta * other.values as f64 / n;
            let t = self.sum + other.sum;
            let rounding = if self.sum.abs() >= other.sum.abs() {
                (self.sum - t) + other.sum
            } else {
                (other.sum - t) + self.sum
            };
            self.compensation += rounding + other.compensation;
            self.sum = t;
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
            self.values += other.values;
        }
        self.events += other.events;
        if let (Some(mine), Some(theirs)) = (&mut self.sketch, &other.sketch) {
            mine.merge(theirs);
        }
    }

    fn sum(&self) -> f64 {
        let compensated = self.sum + self.compensation;
        // Past overflow the compensation is NaN (∞ − ∞); the plain sum is right.
        if compensated.is_finite() { compensated } else { self.sum }
    }

    /// The value of `aggregate` over everything counted so far.
    pub fn finish(&self, aggregate: Aggregate) -> AggregateValue {
        let float = |x: f64| AggregateValue::Float((self.values > 0 && x.is_finite()).then_some(x));
        match aggregate {
            Aggregate::Count => AggregateValue::Count(self.events),
            Aggregate::Sum if self.values == 0 => AggregateValue::Float(Some(0.0)),
            Aggregate::Sum => float(self.sum()),
            Aggregate::Min => float(self.min),
            Aggregate::Max => float(self.max),
            Aggregate::Avg => float(self.sum() / self.values as f64),
            Aggregate::Stddev if self.values < 2 => AggregateValue::Float(None),
            // M2 is only ever ≥ 0 in exact arithmetic; overflow makes it ±∞ or NaN,
            // and then the spread is unknown, not zero.
            Aggregate::Stddev if !self.m2.is_finite() => AggregateValue::Float(None),
            Aggregate::Stddev => float((self.m2.max(0.0) / (self.values - 1) as f64).sqrt()),
            Aggregate::Quantile(per_mille) => AggregateValue::Float(
                self.sketch
                    .as_ref()
                    .and_then(|s| s.quantile(f64::from(per_mille) / 1000.0)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for name in [
            "count", "sum", "min", "max", "avg", "stddev", "p50", "p95", "p99", "p999", "p1",
        ] {
            assert_eq!(name.parse::<Aggregate>().unwrap().to_string(), name);
        }
        assert_eq!("p95".parse::<Aggregate>().unwrap(), Aggregate::Quantile(950));
        for bad in ["p100", "p0", "median", "p", "p9a", "P95", "p1000"] {
            assert!(bad.parse::<Aggregate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn finishes_simple_aggregates() {
        let mut acc = Accumulator::new(true);
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            acc.add(Some(x));
        }
        acc.add(None);
        assert_eq!(acc.finish(Aggregate::Count), AggregateValue::Count(9));
        assert_eq!(acc.finish(Aggregate::Sum), AggregateValue::Float(Some(40.0)));
        assert_eq!(acc.finish(Aggregate::Avg), AggregateValue::Float(Some(5.0)));
        assert_eq!(acc.finish(Aggregate::Min), AggregateValue::Float(Some(2.0)));
        assert_eq!(acc.finish(Aggregate::Max), AggregateValue::Float(Some(9.0)));
        let sd = acc.finish(Aggregate::Stddev).as_f64().unwrap();
        assert!((sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn empty_and_single_value_windows() {
        let mut acc = Accumulator::new(false);
        acc.add(None);
        assert_eq!(acc.finish(Aggregate::Avg), AggregateValue::Float(None));
        assert_eq!(acc.finish(Aggregate::Sum), AggregateValue::Float(Some(0.0)));
        acc.add(Some(3.5));
        assert_eq!(acc.finish(Aggregate::Stddev), AggregateValue::Float(None));
        assert_eq!(acc.finish(Aggregate::Min), AggregateValue::Float(Some(3.5)));
    }
}
