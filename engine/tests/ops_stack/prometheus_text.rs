//! Reading what Prometheus and PromQL say, for `ops_stack.rs`: the samples of a
//! `/metrics` body, the metric names and labels an expression relies on, and a
//! rules file without its annotations.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line of `/metrics`: its name and labels.
#[derive(Clone, Debug)]
pub struct Series {
    /// The metric name (`pulse_http_request_duration_seconds_bucket`).
    pub name: String,
    /// Its labels, by name.
    pub labels: BTreeMap<String, String>,
}

/// The sample lines of a Prometheus text exposition.
pub fn parse_exposition(body: &str) -> Vec<Series> {
    let mut series = Vec::new();
    for line in body.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, rest) = line.split_at(line.find(['{', ' ']).expect("a sample line"));
        let mut labels = BTreeMap::new();
        if let Some(inside) = rest.strip_prefix('{').and_then(|r| r.rsplit_once('}')).map(|(l, _)| l) {
            let mut rest = inside;
            while let Some((key, value)) = rest.split_once("=\"") {
                let end = value.find('"').expect("label values here hold no quotes");
                labels.insert(key.trim_start_matches(',').to_owned(), value[..end].to_owned());
                rest = &value[end + 1..];
            }
        }
        series.push(Series {
            name: name.to_owned(),
            labels,
        });
    }
    series
}

/// Every `pulse_*` metric name in `text` (PromQL expressions, JSON or YAML).
pub fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("pulse_") {
        let preceded = text.len() - rest.len() + at;
        let boundary = text[..preceded]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let length = rest[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len() - at);
        if boundary {
            names.insert(rest[at..at + length].to_owned());
        }
        rest = &rest[at + length..];
    }
    names
}

/// The labels `expression` relies on that no scraped series of the metrics it
/// names carries: keys of its selectors (and `quantile` values) and the labels
/// of its `by (..)` / `on (..)` clauses. `job` and `instance` come from the scrape.
pub fn unknown_labels(expression: &str, scraped: &[Series]) -> Vec<String> {
    let names = metric_names(expression);
    let carried = |label: &str, value: Option<&str>, among: &BTreeSet<String>| {
        scraped
            .iter()
            .any(|s| among.contains(&s.name) && s.labels.get(label).is_some_and(|v| value.is_none_or(|want| v == want)))
    };
    let mut unknown = Vec::new();
    for name in &names {
        let Some(selector) = expression.split(&format!("{name}{{")).nth(1) else {
            continue;
        };
        let selector = &selector[..selector.find('}').expect("a closed selector")];
        for matcher in selector.split(',') {
            let (label, value) = matcher.split_once('=').expect("label=\"value\"");
            let label = label.trim().trim_end_matches(['!', '~']);
            let value = (label == "quantile").then(|| value.trim().trim_matches('"'));
            if !["job", "instance"].contains(&label) && !carried(label, value, &BTreeSet::from([name.clone()])) {
                unknown.push(format!("{name}{{{label}}}"));
            }
        }
    }
    for clause in ["by (", "on ("] {
        for grouping in expression.split(clause).skip(1) {
            for label in grouping[..grouping.find(')').expect("a closed clause")].split(',') {
                let label = label.trim();
                if !["job", "instance"].contains(&label) && !carried(label, None, &names) {
                    unknown.push(format!("{clause}{label})"));
                }
            }
        }
    }
    unknown
}

/// The rules file without its `annotations:` blocks: promtool compares
/// annotations too, and their text is for people (`promtool check rules`
/// checks their templates).
pub fn rules_without_annotations(rules: &str) -> String {
    let mut kept = Vec::new();
    let mut skipping_deeper_than = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(depth) = skipping_deeper_than {
            if line.trim().is_empty() || indent > depth {
                continue;
            }
            skipping_deeper_than = None;
        }
        if line.trim() == "annotations:" {
            skipping_deeper_than = Some(indent);
            continue;
        }
        kept.push(line);
    }
    kept.join("\n") + "\n"
}

#[test]
fn exposition_and_expressions_are_read() {
    let names =
        metric_names(r#"sum by (le) (rate(pulse_http_request_duration_seconds_bucket{job="pulse"}[5m])) / my_pulse_x"#);
    assert_eq!(
        names,
        BTreeSet::from(["pulse_http_request_duration_seconds_bucket".to_owned()])
    );
    let series = parse_exposition("# TYPE a counter\na_total{component=\"x\",route=\"/api/{key}\"} 3\nb 1\n");
    assert_eq!(series[0].name, "a_total");
    assert_eq!(series[0].labels["route"], "/api/{key}");
    assert!(series[1].labels.is_empty());
    let stripped =
        rules_without_annotations("  - alert: A\n    annotations:\n      summary: >-\n        x\n    expr: up\n");
    assert_eq!(stripped, "  - alert: A\n    expr: up\n");
}
