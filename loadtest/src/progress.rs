//! The live progress line on stderr while a run goes: elapsed time against the
//! duration, and per series the last second's rate and p99. Hidden when stderr
//! is not a terminal (scripts and CI read the report instead).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::record::Recorder;

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(500);

/// A running progress line; [`LiveProgress::finish`] clears it.
pub struct LiveProgress {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

/// The line's text: `name rate/s p99 ms` for each series that had a second.
pub fn status_line(recorder: &Recorder) -> String {
    recorder
        .all()
        .iter()
        .filter_map(|series| {
            let last = series.last_second()?;
            Some(format!(
                "{} {}/s p99 {:.1} ms{}",
                series.name(),
                last.ok + last.errors,
                last.p99_ms,
                if last.errors > 0 {
                    format!(" ({} err)", last.errors)
                } else {
                    String::new()
                }
            ))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

impl LiveProgress {
    /// Starts drawing the progress of `recorder` over a run of `duration` (on the current tokio runtime).
    pub fn start(recorder: Recorder, duration: Duration) -> Self {
        let bar = ProgressBar::with_draw_target(Some(duration.as_millis() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:24}] {msg}")
                .expect("a constant template")
                .progress_chars("=> "),
        );
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            loop {
                every.tick().await;
                shown.set_position(recorder.started().elapsed().as_millis() as u64);
                shown.set_message(status_line(&recorder));
            }
        });
        Self { bar, ticker }
    }

    /// Stops and clears the line.
    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
