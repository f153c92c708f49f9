//! `type = "forecast"`: per-key forecasts with 80 % and 95 % prediction
//! intervals, issued on an event-time schedule, over a source's metric events
//! or another operator's rows (e.g. a window's `avg`).
//!
//! At every multiple of `every` each key issues one forecast from the points
//! before it: one row per step ahead up to `horizon` — the key columns, then
//! `issued_at`, `ts` (the time forecast), `steps`, `yhat`, `lower80`,
//! `upper80`, `lower95`, `upper95` (see [`ForecastOperator::row_schema`]). A
//! key still warming up issues nothing. Points the forecaster refuses (not a
//! finite number, not after the key's previous point) go to
//! `NAME.dead_letter`. The model is `pulse_operators::forecast`'s; the
//! dataflow part is [`ForecastExt`].

use std::sync::Arc;

use pulse_core::row::{Column, ColumnType, Row, RowSchema, SchemaError, Value};
use pulse_core::{DurationSpec, Projection};
use pulse_operators::forecast::{ForecastConfig, ForecastExt, ForecastSchedule, ForecastStreamConfig};
use serde::Deserialize;
use timely::dataflow::operators::vec::Map;

use super::series::{self, PointReader, SeriesSettings};
use super::{BuildContext, InputShape, InputStream, Operator, OperatorStreams};
use crate::config::EngineConfig;
use crate::config::validate::{Problem, problem};

/// The settings of a forecast operator, as written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastOperator {
    /// Streams to read: sources (metric events) or operators (rows).
    pub inputs: Vec<String>,
    /// For rows: the numeric column to forecast (e.g. `avg`).
    #[serde(default)]
    pub value: Option<String>,
    /// For rows: the event-time column (default `window_end`, else `ts`).
    #[serde(default)]
    pub time: Option<String>,
    /// The key: event fields (default `tenant`, `source`, `metric`) or key
    /// columns of rows (default all of them).
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// The spacing of a key's points (a window's size, a sensor's period).
    pub step: DurationSpec,
    /// The seasonal period (default 1d).
    #[serde(default = "default_period")]
    pub period: DurationSpec,
    /// Models over `period × long_period_factor` join once they have seen two such periods; 0 or 1: none (default 7).
    #[serde(default = "default_long_period_factor")]
    pub long_period_factor: u32,
    /// How far ahead each forecast reaches (default 1h).
    #[serde(default = "default_horizon")]
    pub horizon: DurationSpec,
    /// A silence longer than this restarts a key's model (default 7d).
    #[serde(default = "default_max_gap")]
    pub max_gap: DurationSpec,
    /// Forecasts are issued at every multiple of this (event time; default: `step`).
    #[serde(default)]
    pub every: Option<DurationSpec>,
    /// A key without points for this long (event time) stops forecasting and is dropped; "0s" keeps every key (default 1h).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: DurationSpec,
}

fn default_period() -> DurationSpec {
    ForecastConfig::default().period
}

fn default_long_period_factor() -> u32 {
    ForecastConfig::default().long_period_factor
}

fn default_horizon() -> DurationSpec {
    ForecastConfig::default().horizon
}

fn default_max_gap() -> DurationSpec {
    ForecastConfig::default().max_gap
}

fn default_idle_timeout() -> DurationSpec {
    DurationSpec::from_secs(3600)
}

impl ForecastOperator {
    fn settings(&self) -> SeriesSettings<'_> {
        SeriesSettings {
            value: self.value.as_deref(),
            time: self.time.as_deref(),
            key: self.key.as_deref(),
        }
    }

    /// The forecaster's configuration.
    pub fn forecast_config(&self) -> ForecastConfig {
        ForecastConfig {
            period: self.period,
            long_period_factor: self.long_period_factor,
            horizon: self.horizon,
            max_gap: self.max_gap,
        }
    }

    fn every(&self) -> DurationSpec {
        self.every.unwrap_or(self.step)
    }

    /// The columns of its rows, for a key of `key_names`.
    ///
    /// # Examples
    /// ```
    /// use pulse::operators::forecast::ForecastOperator;
    ///
    /// let schema = ForecastOperator::row_schema(&["tenant".into()]).unwrap();
    /// let names: Vec<&str> = schema.columns().iter().map(|c| c.name.as_str()).collect();
    /// assert_eq!(names, ["tenant", "issued_at", "ts", "steps", "yhat", "lower80", "upper80", "lower95", "upper95"]);
    /// ```
    pub fn row_schema(key_names: &[String]) -> Result<RowSchema, SchemaError> {
        let key = key_names
            .iter()
            .map(|name| Column::new(name, ColumnType::Key).nullable());
        let columns = [
            Column::new("issued_at", ColumnType::Time),
            Column::new("ts", ColumnType::Time),
            Column::new("steps", ColumnType::Int),
            Column::new("yhat", ColumnType::Float),
            Column::new("lower80", ColumnType::Float),
            Column::new("upper80", ColumnType::Float),
            Column::new("lower95", ColumnType::Float),
            Column::new("upper95", ColumnType::Float),
        ];
        RowSchema::new(key.chain(columns).collect())
    }
}

impl Operator for ForecastOperator {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn check(
        &self,
        name: &str,
        engine: &EngineConfig,
        inputs: &[InputShape<'_>],
        problems: &mut Vec<Problem>,
    ) -> Option<RowSchema> {
        if let Err(error) = self.forecast_config().shape(self.step) {
            let at = if self.step.as_millis() == 0 {
                "step"
            } else if error.to_string().contains("horizon") {
                "horizon"
            } else {
                "period"
            };
            problems.push(problem(
                &["operators", name, at],
                error.to_string(),
                "make `period` and `horizon` multiples of `step`, within the bounds named".to_owned(),
            ));
        }
        let granule = engine.granule.as_millis().max(1);
        let every = self.every().as_millis();
        if every == 0 || !every.is_multiple_of(granule) {
            problems.push(problem(
                &["operators", name, if self.every.is_some() { "every" } else { "step" }],
                format!(
                    "forecasts are issued every {}, which is not a positive multiple of the granule {}",
                    self.every(),
                    engine.granule
                ),
                "issue them every multiple of the granule, e.g. every = \"1m\"".to_owned(),
            ));
        }
        let series = series::resolve(name, &self.settings(), inputs, problems)?;
        series::output_schema(
            name,
            Self::row_schema(&series.key_names),
            "issued_at, ts, yhat, …",
            problems,
        )
    }

    fn projection(&self) -> Projection {
        series::projection(self.key.as_deref())
    }

    fn refuses_input(&self) -> bool {
        true
    }

    fn build<'scope>(&self, context: BuildContext<'_, 'scope>) -> OperatorStreams<'scope> {
        let events = matches!(context.inputs.first(), Some(InputStream::Events(_)));
        let reader = PointReader::new(&self.settings(), events);
        let schema: Arc<RowSchema> = context.output;
        let key_names: Vec<String> = schema.keys().map(|c| c.name.clone()).collect();
        let config = ForecastStreamConfig {
            forecast: self.forecast_config(),
            step_ms: self.step.as_millis(),
            schedule: ForecastSchedule::Every(self.every().as_millis()),
            idle_timeout_ms: self.idle_timeout.as_millis(),
        };
        let (forecasts, refused) =
            series::points(context.scope, context.inputs, &reader).forecast(context.name, &config, context.shutdown);
        let rows = forecasts.flat_map(move |forecast| {
            let schema = Arc::clone(&schema);
            let key: Vec<Value> = forecast.key.iter().map(|part| Value::from(part.as_deref())).collect();
            forecast.points.into_iter().map(move |point| {
                let mut values = key.clone();
                values.extend([
                    Value::Time(forecast.issued_at),
                    Value::Time(point.ts.max(0) as u64),
                    Value::Int(point.steps as i64),
                    Value::Float(point.yhat),
                    Value::Float(point.lower80),
                    Value::Float(point.upper80),
                    Value::Float(point.lower95),
                    Value::Float(point.upper95),
                ]);
                Row::new(Arc::clone(&schema), values)
            })
        });
        OperatorStreams {
            rows,
            dead_letters: Some(series::dead_letters(context.name, &key_names, refused)),
        }
    }
}
