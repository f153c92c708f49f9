//! `pulse-loadtest compare BEFORE AFTER`: the difference between two reports,
//! series by series — rates, errors and latency percentiles with their change
//! in percent — so a regression between two builds reads at a glance.

use std::fmt::Write as _;

use super::{LatencyReport, Report, SeriesReport};

/// The change from `before` to `after` in percent, or `n/a` from zero.
fn change(before: f64, after: f64) -> String {
    if before == 0.0 {
        return if after == 0.0 { "0%".into() } else { "n/a".into() };
    }
    format!("{:+.1}%", (after - before) / before * 100.0)
}

/// A row of figures (milliseconds and rates with three decimals).
fn row(text: &mut String, what: &str, before: f64, after: f64) {
    let _ = writeln!(
        text,
        "    {what:<14} {before:>12.3} {after:>12.3} {:>10}",
        change(before, after)
    );
}

/// A row of counts.
fn count_row(text: &mut String, what: &str, before: u64, after: u64) {
    let _ = writeln!(
        text,
        "    {what:<14} {before:>12} {after:>12} {:>10}",
        change(before as f64, after as f64)
    );
}

fn latency_rows(text: &mut String, before: &LatencyReport, after: &LatencyReport) {
    for (what, b, a) in [
        ("p50 ms", before.p50, after.p50),
        ("p90 ms", before.p90, after.p90),
        ("p99 ms", before.p99, after.p99),
        ("p99.9 ms", before.p999, after.p999),
        ("max ms", before.max, after.max),
    ] {
        row(text, what, b, a);
    }
}

fn series_rows(text: &mut String, before: &SeriesReport, after: &SeriesReport) {
    row(text, "rate /s", before.rate_per_second, after.rate_per_second);
    count_row(text, "ok", before.ok, after.ok);
    count_row(text, "errors", before.errors_total, after.errors_total);
    latency_rows(text, &before.latency_ms, &after.latency_ms);
    let kinds: std::collections::BTreeSet<&String> = before.errors.keys().chain(after.errors.keys()).collect();
    for kind in kinds {
        let count = |r: &SeriesReport| r.errors.get(kind).copied().unwrap_or(0);
        count_row(text, &format!("  {kind}"), count(before), count(after));
    }
}

/// The comparison of `before` and `after` as text.
///
/// # Examples
///
/// ```
/// use pulse_loadtest::report::{Report, compare::compare};
///
/// let before: Report = serde_json::from_str(r#"{"scenario":"api","target":"http://127.0.0.1:8080",
///   "started_at_ms":0,"duration_seconds":10.0,"target_rate":100.0,"machine":{"cores":2,"memory_bytes":0,
///   "os":"Linux","kernel":"","cpu_model":"","loadtest_version":"0.1.0"},"series":[{"name":"api.kv_get",
///   "ok":1000,"errors_total":0,"errors":{},"rate_per_second":100.0,"ok_per_second":100.0,
///   "latency_ms":{"samples":1000,"min":0.1,"mean":1.0,"stddev":0.2,"p50":1.0,"p75":1.2,"p90":1.5,
///   "p95":1.8,"p99":2.0,"p999":3.0,"p9999":4.0,"max":5.0},"percentile_curve":[],"timeline":[]}],"notes":[]}"#).unwrap();
/// let mut after = before.clone();
/// after.series[0].latency_ms.p99 = 3.0;
/// let text = compare(&before, &after);
/// assert!(text.contains("p99 ms"), "{text}");
/// assert!(text.contains("+50.0%"), "{text}");
/// ```
pub fn compare(before: &Report, after: &Report) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "before: {} against {} ({:.1} s, {} cores, {})",
        before.scenario, before.target, before.duration_seconds, before.machine.cores, before.machine.os
    );
    let _ = writeln!(
        text,
        "after:  {} against {} ({:.1} s, {} cores, {})",
        after.scenario, after.target, after.duration_seconds, after.machine.cores, after.machine.os
    );
    if before.machine.cores != after.machine.cores || before.machine.memory_bytes != after.machine.memory_bytes {
        let _ = writeln!(text, "warning: the runs were on different machines; compare with care");
    }
    let _ = writeln!(text, "    {:<14} {:>12} {:>12} {:>10}", "", "before", "after", "change");
    for series in &before.series {
        match after.series(&series.name) {
            Some(other) => {
                let _ = writeln!(text, "  {}", series.name);
                series_rows(&mut text, series, other);
            }
            None => {
                let _ = writeln!(text, "  {}: only before", series.name);
            }
        }
    }
    for series in after.series.iter().filter(|s| before.series(&s.name).is_none()) {
        let _ = writeln!(text, "  {}: only after", series.name);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_percentages_and_zero_bases_say_so() {
        assert_eq!(change(10.0, 15.0), "+50.0%");
        assert_eq!(change(10.0, 5.0), "-50.0%");
        assert_eq!(change(0.0, 0.0), "0%");
        assert_eq!(change(0.0, 3.0), "n/a");
    }
}
