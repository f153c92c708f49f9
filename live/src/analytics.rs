//! Anomalies and forecasts on the live side: the records the `anomaly` and
//! `forecast` operators publish (WebSocket topics `anomalies` and
//! `forecasts`) and the views the query API reads
//! (`GET /api/v1/analytics/anomalies/{metric}`, `POST /api/v1/analytics/forecast`).
//!
//! [`AnalyticsViews`] keeps, per tenant, the newest anomalies (rows flagged
//! `is_anomaly`, at most `max_anomalies_per_tenant`, oldest dropped first) and
//! the latest forecast of every key. Recording only takes a short lock; it
//! never waits for a reader.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::row::{LiveSource, RowError};

/// What an analytics record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalyticsKind {
    /// A scored point of the `anomaly` operator.
    Anomaly,
    /// One step of a forecast of the `forecast` operator.
    Forecast,
    /// A scored row of the `onnx` operator (published, not kept in a view).
    Prediction,
}

/// One row of an anomaly or forecast operator: its key and its other fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsRecord {
    /// Anomaly or forecast.
    pub kind: AnalyticsKind,
    /// Key fields (`tenant`, `source`, `metric`, ...), each a string or null.
    pub key: Map<String, Value>,
    /// The other fields (`ts`, `score`, … or `issued_at`, `yhat`, …).
    pub fields: Map<String, Value>,
}

impl AnalyticsRecord {
    /// Splits a flat row (as operators serialise rows) into key and fields by the key names.
    pub fn from_flat(kind: AnalyticsKind, row: Value, key_fields: &[String]) -> Result<Self, RowError> {
        let Value::Object(mut fields) = row else {
            return Err(RowError::NotAnObject);
        };
        let mut key = Map::new();
        for name in key_fields {
            key.insert(name.clone(), fields.remove(name).unwrap_or(Value::Null));
        }
        Ok(Self { kind, key, fields })
    }

    /// The key field `name` as text.
    pub fn key_str(&self, name: &str) -> Option<&str> {
        self.key.get(name).and_then(Value::as_str)
    }

    /// The tenant (its `tenant` key field).
    pub fn tenant(&self) -> Option<&str> {
        self.key_str("tenant")
    }

    fn u64_field(&self, name: &str) -> Option<u64> {
        self.fields.get(name).and_then(Value::as_u64)
    }

    fn f64_field(&self, name: &str) -> Option<f64> {
        self.fields.get(name).and_then(Value::as_f64)
    }

    /// The message a subscriber receives: `{"type":"anomaly"|"forecast",
    /// "pipeline","operator","key":{..},<fields>,"published_at_us"}`.
    pub fn to_message(&self, source: &LiveSource, published_at_us: u64) -> bytes::Bytes {
        let mut message = Map::new();
        let kind = match self.kind {
            AnalyticsKind::Anomaly => "anomaly",
            AnalyticsKind::Forecast => "forecast",
            AnalyticsKind::Prediction => "prediction",
        };
        message.insert("type".into(), kind.into());
        message.insert("pipeline".into(), source.pipeline.clone().into());
        message.insert("operator".into(), source.operator.clone().into());
        message.insert("key".into(), Value::Object(self.key.clone()));
        message.extend(self.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        message.insert("published_at_us".into(), published_at_us.into());
        serde_json::to_vec(&Value::Object(message))
            .map(bytes::Bytes::from)
            .unwrap_or_default()
    }

    /// The record as the API answers it: the operator, the key and the fields.
    fn to_json(&self, source: &LiveSource) -> Value {
        let mut object = Map::new();
        object.insert("operator".into(), source.operator.clone().into());
        object.insert("key".into(), Value::Object(self.key.clone()));
        object.extend(self.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        Value::Object(object)
    }
}

/// What `GET /api/v1/analytics/anomalies/{metric}` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyQuery {
    /// The key field `metric` must equal this.
    pub metric: String,
    /// Only anomalies at or after this (epoch ms).
    pub start: Option<u64>,
    /// Only anomalies before this (epoch ms).
    pub end: Option<u64>,
    /// Only anomalies scoring at least this.
    pub min_score: Option<f64>,
    /// The key field `source` must equal this.
    pub source: Option<String>,
    /// 1-based page.
    pub page: usize,
    /// Anomalies per page.
    pub page_size: usize,
}

/// One page of anomalies, newest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnomalyPage {
    /// Anomalies matching the query (over all pages).
    pub total: usize,
    /// This page's anomalies: `operator`, `key`, then the row's fields.
    pub anomalies: Vec<Value>,
}

/// The latest forecast of one key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyForecast {
    /// The operator that made it.
    pub operator: String,
    /// The key fields.
    pub key: Map<String, Value>,
    /// When it was issued (epoch ms).
    pub issued_at: u64,
    /// Its steps within the horizon asked for: `ts`, `yhat`, `lower`, `upper`.
    pub points: Vec<ForecastStep>,
}

/// One step of a forecast, with the interval asked for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForecastStep {
    /// The time forecast (epoch ms).
    pub ts: u64,
    /// The forecast.
    pub yhat: f64,
    /// Lower bound of the interval.
    pub lower: f64,
    /// Upper bound of the interval.
    pub upper: f64,
}

/// The retained anomalies and latest forecasts; cheap to clone (clones share them).
#[derive(Clone)]
pub struct AnalyticsViews {
    inner: Arc<Mutex<ViewsState>>,
    max_anomalies_per_tenant: usize,
}

#[derive(Default)]
struct ViewsState {
    anomalies: HashMap<String, VecDeque<(LiveSource, Arc<AnalyticsRecord>)>>,
    /// Per tenant, per (operator, key as JSON): the latest forecast's steps.
    forecasts: HashMap<String, BTreeMap<(LiveSource, String), LatestForecast>>,
}

struct LatestForecast {
    issued_at: u64,
    steps: Vec<Arc<AnalyticsRecord>>,
}

impl AnalyticsViews {
    /// Views keeping at most `max_anomalies_per_tenant` anomalies per tenant.
    pub fn new(max_anomalies_per_tenant: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ViewsState::default())),
            max_anomalies_per_tenant: max_anomalies_per_tenant.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ViewsState> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps the anomalies (`is_anomaly`) and the newest forecasts among `records` of `source`.
    pub fn record(&self, source: &LiveSource, records: &[Arc<AnalyticsRecord>]) {
        let mut state = self.lock();
        for record in records {
            let Some(tenant) = record.tenant() else { continue };
            match record.kind {
                AnalyticsKind::Anomaly => {
                    if record.fields.get("is_anomaly") != Some(&Value::Bool(true)) {
                        continue;
                    }
                    let kept = state.anomalies.entry(tenant.to_owned()).or_default();
                    if kept.len() == self.max_anomalies_per_tenant {
                        kept.pop_front();
                    }
                    kept.push_back((source.clone(), Arc::clone(record)));
                }
                AnalyticsKind::Prediction => continue,
                AnalyticsKind::Forecast => {
                    let Some(issued_at) = record.u64_field("issued_at") else {
                        continue;
                    };
                    let key = Value::Object(record.key.clone()).to_string();
                    let latest = state
                        .forecasts
                        .entry(tenant.to_owned())
                        .or_default()
                        .entry((source.clone(), key))
                        .or_insert(LatestForecast {
                            issued_at,
                            steps: Vec::new(),
                        });
                    if issued_at > latest.issued_at {
                        *latest = LatestForecast {
                            issued_at,
                            steps: Vec::new(),
                        };
                    }
                    if issued_at == latest.issued_at {
                        latest.steps.push(Arc::clone(record));
                    }
                }
            }
        }
    }

    /// The tenant's anomalies matching `query`, newest first, one page of them.
    pub fn anomalies(&self, tenant: &str, query: &AnomalyQuery) -> AnomalyPage {
        let state = self.lock();
        let Some(kept) = state.anomalies.get(tenant) else {
            return AnomalyPage {
                total: 0,
                anomalies: Vec::new(),
            };
        };
        let mut matching: Vec<&(LiveSource, Arc<AnalyticsRecord>)> = kept
            .iter()
            .filter(|(_, record)| {
                let ts = record.u64_field("ts").unwrap_or(0);
                record.key_str("metric") == Some(query.metric.as_str())
                    && query
                        .source
                        .as_deref()
                        .is_none_or(|s| record.key_str("source") == Some(s))
                    && query.start.is_none_or(|start| ts >= start)
                    && query.end.is_none_or(|end| ts < end)
                    && query
                        .min_score
                        .is_none_or(|min| record.f64_field("score").is_some_and(|score| score >= min))
            })
            .collect();
        // Newest first: by event time, then by arrival (later first).
        matching.reverse();
        matching.sort_by_key(|(_, record)| std::cmp::Reverse(record.u64_field("ts").unwrap_or(0)));
        let total = matching.len();
        let skip = query.page.saturating_sub(1).saturating_mul(query.page_size);
        let anomalies = matching
            .into_iter()
            .skip(skip)
            .take(query.page_size)
            .map(|(source, record)| record.to_json(source))
            .collect();
        AnomalyPage { total, anomalies }
    }

    /// The latest forecast of every key of the tenant whose `metric` is
    /// `metric`, its steps up to `horizon_ms` after it was issued, with the 80 %
    /// or 95 % interval (`interval`).
    pub fn forecasts(&self, tenant: &str, metric: &str, horizon_ms: Option<u64>, interval: u8) -> Vec<KeyForecast> {
        let state = self.lock();
        let Some(latest) = state.forecasts.get(tenant) else {
            return Vec::new();
        };
        let (lower, upper) = if interval == 80 {
            ("lower80", "upper80")
        } else {
            ("lower95", "upper95")
        };
        latest
            .iter()
            .filter(|(_, forecast)| {
                forecast
                    .steps
                    .first()
                    .is_some_and(|step| step.key_str("metric") == Some(metric))
            })
            .map(|((source, _), forecast)| {
                let mut points: Vec<ForecastStep> = forecast
                    .steps
                    .iter()
                    .filter_map(|step| {
                        Some(ForecastStep {
                            ts: step.u64_field("ts")?,
                            yhat: step.f64_field("yhat")?,
                            lower: step.f64_field(lower)?,
                            upper: step.f64_field(upper)?,
                        })
                    })
                    .filter(|step| horizon_ms.is_none_or(|h| step.ts <= forecast.issued_at.saturating_add(h)))
                    .collect();
                points.sort_by_key(|step| step.ts);
                KeyForecast {
                    operator: source.operator.clone(),
                    key: forecast.steps[0].key.clone(),
                    issued_at: forecast.issued_at,
                    points,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anomaly(source: &str, ts: u64, score: f64, is_anomaly: bool) -> Arc<AnalyticsRecord> {
        let row = json!({"tenant": "acme", "source": source, "metric": "cpu", "ts": ts, "value": 1.0,
                         "score": score, "is_anomaly": is_anomaly});
        let key = ["tenant".to_owned(), "source".to_owned(), "metric".to_owned()];
        Arc::new(AnalyticsRecord::from_flat(AnalyticsKind::Anomaly, row, &key).unwrap())
    }

    fn query() -> AnomalyQuery {
        AnomalyQuery {
            metric: "cpu".into(),
            start: None,
            end: None,
            min_score: None,
            source: None,
            page: 1,
            page_size: 10,
        }
    }

    #[test]
    fn anomalies_are_kept_bounded_and_answered_newest_first() {
        let views = AnalyticsViews::new(3);
        let source = LiveSource::new("demo", "cpu_anomalies");
        let records = [
            anomaly("h1", 1, 0.6, true),
            anomaly("h1", 2, 0.1, false),
            anomaly("h2", 3, 0.9, true),
            anomaly("h1", 4, 0.7, true),
            anomaly("h2", 5, 0.55, true),
        ];
        views.record(&source, &records);
        let page = views.anomalies("acme", &query());
        // The oldest anomaly fell out; the non-anomaly was never kept.
        assert_eq!(page.total, 3);
        let times: Vec<u64> = page.anomalies.iter().map(|a| a["ts"].as_u64().unwrap()).collect();
        assert_eq!(times, [5, 4, 3]);
        assert_eq!(page.anomalies[0]["key"]["source"], "h2");
        let filtered = views.anomalies(
            "acme",
            &AnomalyQuery {
                source: Some("h2".into()),
                min_score: Some(0.6),
                ..query()
            },
        );
        assert_eq!(filtered.total, 1);
        let second_page = views.anomalies(
            "acme",
            &AnomalyQuery {
                page: 2,
                page_size: 2,
                ..query()
            },
        );
        assert_eq!((second_page.total, second_page.anomalies.len()), (3, 1));
        assert_eq!(views.anomalies("globex", &query()).total, 0);
    }

    #[test]
    fn the_latest_forecast_of_each_key_replaces_the_previous_one() {
        let views = AnalyticsViews::new(10);
        let source = LiveSource::new("demo", "cpu_forecast");
        let key = ["tenant".to_owned(), "metric".to_owned()];
        let step = |issued_at: u64, ts: u64| {
            let row = json!({"tenant": "acme", "metric": "cpu", "issued_at": issued_at, "ts": ts, "steps": 1,
                             "yhat": 5.0, "lower80": 4.0, "upper80": 6.0, "lower95": 3.0, "upper95": 7.0});
            Arc::new(AnalyticsRecord::from_flat(AnalyticsKind::Forecast, row, &key).unwrap())
        };
        views.record(&source, &[step(100, 110), step(100, 120)]);
        views.record(&source, &[step(200, 220), step(200, 210), step(100, 130)]);
        let forecasts = views.forecasts("acme", "cpu", None, 95);
        assert_eq!(forecasts.len(), 1);
        assert_eq!(forecasts[0].issued_at, 200);
        let times: Vec<u64> = forecasts[0].points.iter().map(|p| p.ts).collect();
        assert_eq!(times, [210, 220]);
        assert_eq!((forecasts[0].points[0].lower, forecasts[0].points[0].upper), (3.0, 7.0));
        let short = views.forecasts("acme", "cpu", Some(10), 80);
        assert_eq!(short[0].points.len(), 1);
        assert_eq!(short[0].points[0].lower, 4.0);
        assert!(views.forecasts("acme", "mem", None, 95).is_empty());
    }
}
