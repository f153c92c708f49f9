//! Retention and series queries against hand-computed answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_core::DurationSpec;
use serde_json::{Value, json};

use super::WindowViews;
use crate::config::RetentionConfig;
use crate::query::{Aggregation, QueryError, SeriesQuery};
use crate::row::{LiveRow, LiveSource};

const KEY: [&str; 3] = ["tenant", "metric", "labels.region"];

/// A 10 s window of `values` (count, sum, min, max, avg and p95 derived from them).
fn window(tenant: &str, metric: &str, region: &str, start: u64, values: &[f64]) -> Arc<LiveRow> {
    let count = values.len();
    let sum: f64 = values.iter().sum();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let flat = json!({"window_start": start, "window_end": start + 10_000, "tenant": tenant, "metric": metric,
                      "labels.region": region, "count": count, "sum": sum, "min": min, "max": max,
                      "avg": sum / count as f64, "p95": max});
    Arc::new(LiveRow::from_flat(flat, &KEY.map(String::from)).unwrap())
}

fn query(aggregation: &str) -> SeriesQuery {
    SeriesQuery {
        metric_name: "cpu".into(),
        start_ms: 0,
        end_ms: 1_000_000,
        aggregation: aggregation.parse().unwrap(),
        group_by: vec![],
        step_ms: None,
        operator: None,
        pipeline: None,
    }
}

fn cpu() -> LiveSource {
    LiveSource::new("demo", "cpu_10s")
}

/// Tenant `a`: eu windows at 0 and 10 s, us at 0 and 20 s; tenant `b` at 0.
fn sample() -> WindowViews {
    let views = WindowViews::new(&RetentionConfig::default());
    views.record(
        &cpu(),
        &[
            window("a", "cpu", "eu", 0, &[1.0, 3.0]),
            window("a", "cpu", "us", 0, &[10.0]),
            window("a", "cpu", "eu", 10_000, &[2.0, 2.0, 5.0]),
            window("a", "cpu", "us", 20_000, &[4.0, 6.0]),
            window("a", "mem", "eu", 0, &[100.0]),
            window("b", "cpu", "eu", 0, &[1000.0]),
        ],
    );
    views
}

fn points(result: &crate::SeriesResult, series: usize) -> Vec<(u64, Value, u64)> {
    result.series[series]
        .points
        .iter()
        .map(|p| (p.timestamp, p.value.clone(), p.windows))
        .collect()
}

#[test]
fn each_aggregation_combines_windows_of_a_point() {
    let views = sample();
    let expect = [
        ("count", [json!(3), json!(3), json!(2)]),
        ("sum", [json!(14.0), json!(9.0), json!(10.0)]),
        ("min", [json!(1.0), json!(2.0), json!(4.0)]),
        ("max", [json!(10.0), json!(5.0), json!(6.0)]),
        // Weighted by count: (1+3+10)/3, (2+2+5)/3, (4+6)/2.
        ("avg", [json!(14.0 / 3.0), json!(3.0), json!(5.0)]),
        ("p95", [json!(10.0), json!(5.0), json!(6.0)]),
    ];
    for (aggregation, values) in expect {
        let result = views.query("a", &query(aggregation)).unwrap();
        assert_eq!(result.series.len(), 1, "{aggregation}");
        let got = points(&result, 0);
        let want: Vec<_> = [0, 10_000, 20_000]
            .into_iter()
            .zip(values)
            .zip([2, 1, 1])
            .map(|((t, v), n)| (t, v, n))
            .collect();
        assert_eq!(got, want, "{aggregation}");
        assert_eq!(result.operator.as_deref(), Some("cpu_10s"));
        assert_eq!(result.approximate, aggregation == "p95", "{aggregation}");
    }
}

#[test]
fn group_by_splits_series_by_key_values() {
    let views = sample();
    let mut q = query("sum");
    q.group_by = vec!["labels.region".into()];
    let result = views.query("a", &q).unwrap();
    assert_eq!(result.series.len(), 2);
    assert_eq!(
        result.series[0].group,
        json!({"labels.region": "eu"}).as_object().unwrap().clone()
    );
    assert_eq!(points(&result, 0), vec![(0, json!(4.0), 1), (10_000, json!(9.0), 1)]);
    assert_eq!(result.series[1].group["labels.region"], "us");
    assert_eq!(points(&result, 1), vec![(0, json!(10.0), 1), (20_000, json!(10.0), 1)]);
    assert!(!result.approximate);
}

#[test]
fn step_rebuckets_windows() {
    let views = sample();
    let mut q = query("count");
    q.step_ms = Some(20_000);
    let result = views.query("a", &q).unwrap();
    assert_eq!(points(&result, 0), vec![(0, json!(6), 3), (20_000, json!(2), 1)]);
    q.aggregation = Aggregation::Avg;
    let result = views.query("a", &q).unwrap();
    // (1+3+10+2+2+5)/6 over the first bucket.
    assert_eq!(points(&result, 0)[0].1, json!(23.0 / 6.0));
    q.aggregation = "p95".parse().unwrap();
    let result = views.query("a", &q).unwrap();
    assert_eq!(points(&result, 0), vec![(0, json!(10.0), 3), (20_000, json!(6.0), 1)]);
    assert!(result.approximate);
}

#[test]
fn the_range_includes_its_start_and_excludes_its_end() {
    let views = sample();
    let mut q = query("count");
    q.start_ms = 10_000;
    q.end_ms = 20_000;
    let result = views.query("a", &q).unwrap();
    assert_eq!(points(&result, 0), vec![(10_000, json!(3), 1)]);
    q.start_ms = 10_001;
    q.end_ms = 20_001;
    assert_eq!(points(&views.query("a", &q).unwrap(), 0), vec![(20_000, json!(2), 1)]);
    q.start_ms = 30_000;
    q.end_ms = 40_000;
    assert!(views.query("a", &q).unwrap().series.is_empty());
    q.end_ms = 30_000;
    assert_eq!(views.query("a", &q), Err(QueryError::EmptyRange));
}

#[test]
fn tenants_see_only_their_own_windows() {
    let views = sample();
    let result = views.query("b", &query("sum")).unwrap();
    assert_eq!(points(&result, 0), vec![(0, json!(1000.0), 1)]);
    assert!(views.query("c", &query("sum")).unwrap().series.is_empty());
    let text = serde_json::to_string(&views.query("a", &query("max")).unwrap()).unwrap();
    assert!(!text.contains("1000.0"), "{text}");
}

/// `window` stretched to `length_ms`, without the aggregates not in `keep`.
fn shaped(row: &LiveRow, length_ms: u64, keep: &[&str]) -> Arc<LiveRow> {
    let mut row = row.clone();
    row.window_end = row.window_start + length_ms;
    row.values.retain(|name, _| keep.contains(&name.as_str()));
    Arc::new(row)
}

#[test]
fn without_an_operator_the_finest_grained_one_answers_and_is_named() {
    let views = sample();
    let mut coarse = (*shaped(&window("a", "cpu", "eu", 0, &[7.0]), 60_000, &["count", "sum", "avg"])).clone();
    coarse.values.insert("p99".into(), json!(7.0));
    views.record(&LiveSource::new("demo", "a_cpu_1m"), &[Arc::new(coarse)]);
    let result = views.query("a", &query("sum")).unwrap();
    assert_eq!(
        result.operator.as_deref(),
        Some("cpu_10s"),
        "10 s windows beat 1 min ones"
    );
    assert_eq!(result.pipeline.as_deref(), Some("demo"));
    assert_eq!(points(&result, 0)[0], (0, json!(14.0), 2));
    // Only the coarse operator carries p99, so it answers a p99 query.
    let result = views.query("a", &query("p99")).unwrap();
    assert_eq!(result.operator.as_deref(), Some("a_cpu_1m"));
    assert_eq!(points(&result, 0), vec![(0, json!(7.0), 1)]);
    // Naming an operator still picks it.
    let mut q = query("sum");
    q.operator = Some("a_cpu_1m".into());
    assert_eq!(points(&views.query("a", &q).unwrap(), 0), vec![(0, json!(7.0), 1)]);
}

#[test]
fn operators_with_equally_fine_windows_tie_by_name() {
    let views = sample();
    views.record(
        &LiveSource::new("demo", "cpu_1m"),
        &[window("a", "cpu", "eu", 0, &[7.0])],
    );
    views.record(
        &LiveSource::new("demo", "a_cpu"),
        &[window("a", "cpu", "eu", 0, &[9.0])],
    );
    let result = views.query("a", &query("sum")).unwrap();
    assert_eq!(result.operator.as_deref(), Some("a_cpu"));
    assert_eq!(points(&result, 0), vec![(0, json!(9.0), 1)]);
}

#[test]
fn only_operators_with_the_group_field_are_candidates() {
    let views = sample();
    // Finer windows, but keyed without `labels.region`.
    let per_metric = window("a", "cpu", "eu", 0, &[7.0]);
    let mut per_metric = (*shaped(&per_metric, 5_000, &["count", "sum"])).clone();
    per_metric.key.remove("labels.region");
    views.record(&LiveSource::new("demo", "by_metric_5s"), &[Arc::new(per_metric)]);
    assert_eq!(
        views.query("a", &query("sum")).unwrap().operator.as_deref(),
        Some("by_metric_5s")
    );
    let mut q = query("sum");
    q.group_by = vec!["labels.region".into()];
    assert_eq!(views.query("a", &q).unwrap().operator.as_deref(), Some("cpu_10s"));
    q.group_by = vec!["labels.zone".into()];
    assert_eq!(
        views.query("a", &q),
        Err(QueryError::UnknownGroupField("labels.zone".into()))
    );
}

#[test]
fn the_same_operator_in_two_pipelines_is_ambiguous_and_lists_both() {
    let views = sample();
    views.record(
        &LiveSource::new("other", "cpu_10s"),
        &[window("a", "cpu", "eu", 0, &[7.0])],
    );
    let error = views.query("a", &query("sum")).unwrap_err();
    assert_eq!(error, QueryError::Ambiguous("demo/cpu_10s, other/cpu_10s".into()));
    assert!(error.to_string().contains("\"pipeline\""), "{error}");
    let mut q = query("sum");
    q.pipeline = Some("other".into());
    let result = views.query("a", &q).unwrap();
    assert_eq!(result.pipeline.as_deref(), Some("other"));
    assert_eq!(points(&result, 0), vec![(0, json!(7.0), 1)]);
}

#[test]
fn bad_queries_name_the_problem() {
    let views = sample();
    let mut q = query("p99");
    assert_eq!(views.query("a", &q), Err(QueryError::MissingAggregate("p99".into())));
    q = query("sum");
    q.group_by = vec!["labels.zone".into()];
    assert_eq!(
        views.query("a", &q),
        Err(QueryError::UnknownGroupField("labels.zone".into()))
    );
    q = query("sum");
    q.step_ms = Some(0);
    assert_eq!(views.query("a", &q), Err(QueryError::ZeroStep));
    for bad in ["median", "p", "p1234567", "AVG", ""] {
        assert!(bad.parse::<Aggregation>().is_err(), "{bad}");
    }
}

#[test]
fn retention_is_bounded_by_count_and_age() {
    let retention = RetentionConfig {
        max_rows_per_operator: 3,
        max_age: DurationSpec::from_secs(60),
    };
    let views = WindowViews::new(&retention);
    let t0 = Instant::now();
    for i in 0..5u64 {
        views.record_at(&cpu(), &[window("a", "cpu", "eu", i * 10_000, &[1.0])], t0);
    }
    let result = views.query_at("a", &query("count"), t0).unwrap();
    let kept: Vec<u64> = result.series[0].points.iter().map(|p| p.timestamp).collect();
    assert_eq!(kept, vec![20_000, 30_000, 40_000], "the oldest go first");
    views.record_at(
        &cpu(),
        &[window("a", "cpu", "eu", 50_000, &[1.0])],
        t0 + Duration::from_secs(30),
    );
    let later = t0 + Duration::from_secs(61);
    let result = views.query_at("a", &query("count"), later).unwrap();
    assert_eq!(
        points(&result, 0),
        vec![(50_000, json!(1), 1)],
        "rows older than max_age are gone"
    );
    let stats = views.stats();
    assert_eq!(
        (stats[0].rows, stats[0].recorded_total, stats[0].evicted_total),
        (1, 6, 5)
    );
}

#[test]
fn history_fills_in_before_the_oldest_retained_window_and_never_twice() {
    let from_history = |tenant: &str, start: u64| {
        (
            "cpu_10s".to_owned(),
            (*window(tenant, "cpu", "eu", start, &[7.0])).clone(),
        )
    };
    let mut q = query("count");
    q.group_by = vec!["labels.region".into()];

    // Memory retains a's windows from 0 on: history rows at 0 and 10 s are
    // there already (memory wins), the one at -… is not possible here, so
    // the answer is memory's alone.
    let views = sample();
    assert!(views.covers_since(0));
    let history = vec![from_history("a", 0), from_history("a", 10_000), from_history("b", 0)];
    let plain = views.query("a", &q).unwrap();
    assert_eq!(
        views.query_with_history("a", &q, &history).unwrap(),
        plain,
        "memory wins"
    );

    // Nothing retained yet: history answers, for the caller's tenant only.
    let empty = WindowViews::new(&RetentionConfig::default());
    assert!(!empty.covers_since(0));
    let answer = empty.query_with_history("a", &q, &history).unwrap();
    let points: Vec<(u64, u64)> = answer.series[0]
        .points
        .iter()
        .map(|p| (p.timestamp, p.value.as_u64().unwrap()))
        .collect();
    assert_eq!(points, [(0, 1), (10_000, 1)], "{answer:?}");
    assert_eq!(
        (answer.pipeline.as_deref(), answer.operator.as_deref()),
        (Some("history"), Some("cpu_10s"))
    );

    // Memory holds a window at 20 s only: history fills in before it.
    let recent = WindowViews::new(&RetentionConfig::default());
    recent.record(&cpu(), &[window("a", "cpu", "eu", 20_000, &[1.0, 2.0])]);
    assert!(!recent.covers_since(0) && recent.covers_since(20_000));
    let history = vec![
        from_history("a", 0),
        from_history("a", 10_000),
        from_history("a", 20_000),
    ];
    let answer = recent.query_with_history("a", &q, &history).unwrap();
    let points: Vec<(u64, u64, u64)> = answer.series[0]
        .points
        .iter()
        .map(|p| (p.timestamp, p.value.as_u64().unwrap(), p.windows))
        .collect();
    assert_eq!(points, [(0, 1, 1), (10_000, 1, 1), (20_000, 2, 1)], "{answer:?}");
    assert_eq!(answer.pipeline.as_deref(), Some("demo"), "the view's pipeline");
}
