//! The report's SVG charts, drawn with plotters' SVG backend alone:
//! `latency_over_time.svg` (p50 and p99 per second of each series),
//! `latency_percentiles.svg` (the percentile curve, the tail stretched out as
//! HdrHistogram plots do) and `throughput.svg` (successes and errors per second).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::{Report, ReportError, SeriesReport};

/// Chart size in pixels.
const SIZE: (u32, u32) = (900, 480);

/// The percentile curve's x axis ends at 99.999 % (x = 5 nines).
const NINES: f64 = 5.0;

/// The file names of the charts, in the order they are drawn.
pub const CHART_FILES: [&str; 3] = ["latency_over_time.svg", "latency_percentiles.svg", "throughput.svg"];

/// One line of a chart.
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

/// Draws every chart of `report` into `dir`; returns the files written.
pub fn draw_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let timed: Vec<&SeriesReport> = report.series.iter().filter(|s| s.latency_ms.samples > 0).collect();
    let over_time: Vec<Line> = timed
        .iter()
        .flat_map(|series| {
            let at = |pick: fn(&crate::record::SecondSummary) -> f64| {
                series
                    .timeline
                    .iter()
                    .filter(|second| second.ok > 0)
                    .map(|second| (second.second as f64, pick(second)))
                    .collect()
            };
            [
                Line {
                    label: format!("{} p99", series.name),
                    points: at(|s| s.p99_ms),
                    dashed: false,
                },
                Line {
                    label: format!("{} p50", series.name),
                    points: at(|s| s.p50_ms),
                    dashed: true,
                },
            ]
        })
        .collect();
    let curves: Vec<Line> = timed
        .iter()
        .map(|series| Line {
            label: series.name.clone(),
            points: series
                .percentile_curve
                .iter()
                .map(|point| (nines(point.quantile), point.ms))
                .collect(),
            dashed: false,
        })
        .collect();
    let throughput: Vec<Line> = report
        .series
        .iter()
        .flat_map(|series| {
            let mut lines = vec![Line {
                label: format!("{} ok/s", series.name),
                points: series.timeline.iter().map(|s| (s.second as f64, s.ok as f64)).collect(),
                dashed: false,
            }];
            if series.errors_total > 0 {
                lines.push(Line {
                    label: format!("{} errors/s", series.name),
                    points: series
                        .timeline
                        .iter()
                        .map(|s| (s.second as f64, s.errors as f64))
                        .collect(),
                    dashed: true,
                });
            }
            lines
        })
        .collect();
    let title = |what: &str| format!("{what} — pulse-loadtest {}", report.scenario);
    let charts = [
        (title("latency over time"), "seconds", "latency (ms)", over_time, false),
        (
            title("latency by percentile"),
            "percentile",
            "latency (ms)",
            curves,
            true,
        ),
        (
            title("throughput"),
            "seconds",
            "operations per second",
            throughput,
            false,
        ),
    ];
    let mut written = Vec::new();
    for ((caption, x_desc, y_desc, lines, percentile_axis), file) in charts.into_iter().zip(CHART_FILES) {
        let path = dir.join(file);
        let svg = draw(&caption, x_desc, y_desc, &lines, percentile_axis).map_err(|reason| ReportError::Chart {
            path: path.clone(),
            reason,
        })?;
        std::fs::write(&path, svg).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// How many nines `quantile` has: 0.9 → 1, 0.99 → 2, capped at [`NINES`].
fn nines(quantile: f64) -> f64 {
    if quantile >= 1.0 {
        NINES
    } else {
        (-(1.0 - quantile).log10()).clamp(0.0, NINES)
    }
}

/// The percentile an x of the percentile axis stands for, as a label.
fn percentile_label(x: &f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-x));
    let text = format!("{percent:.3}");
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

fn draw(caption: &str, x_desc: &str, y_desc: &str, lines: &[Line], percentile_axis: bool) -> Result<String, String> {
    let all = || lines.iter().flat_map(|line| line.points.iter());
    let x_max = if percentile_axis {
        // A little room after the last tick, so that its label is not cut.
        NINES + 0.2
    } else {
        all().map(|p| p.0).fold(1.0, f64::max)
    };
    let y_max = all().map(|p| p.1).filter(|y| y.is_finite()).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_desc).y_desc(y_desc);
        if percentile_axis {
            mesh.x_labels(7).x_label_formatter(&percentile_label);
        }
        mesh.draw().map_err(|e| e.to_string())?;
        for (index, line) in lines.iter().enumerate() {
            // Dashed lines share the colour of the solid line drawn before them.
            let colour = Palette99::pick(if line.dashed { index.saturating_sub(1) } else { index }).to_rgba();
            let style = ShapeStyle {
                color: colour,
                filled: false,
                stroke_width: if line.dashed { 1 } else { 2 },
            };
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), style))
                .map_err(|e| e.to_string())?
                .label(line.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        if !lines.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_axis_counts_nines() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines(1.0), NINES);
        assert_eq!(percentile_label(&0.0), "0%");
        assert_eq!(percentile_label(&1.0), "90%");
        assert_eq!(percentile_label(&3.0), "99.9%");
    }
}
