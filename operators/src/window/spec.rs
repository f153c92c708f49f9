//! Which windows an event belongs to: tumbling, hopping and session windows.

use std::fmt;

use pulse_core::{DurationSpec, EventTime};
use serde::Deserialize;

/// The shape of a window, as written in a pipeline file:
/// `{ tumbling = "10s" }`, `{ hopping = "1m", slide = "10s" }` or `{ session = "30s" }`.
///
/// Tumbling and hopping windows are `[start, start + size)` with `start` a
/// multiple of the size (tumbling) or of the slide (hopping), aligned to the
/// epoch. A session window per key starts at its first event and ends `gap`
/// after its last one; events less than `gap` apart fall into the same session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WindowSpecFields")]
pub enum WindowSpec {
    /// Fixed-size, non-overlapping windows.
    Tumbling {
        /// Window length.
        size: DurationSpec,
    },
    /// Fixed-size windows that start every `slide`; an event is in `size / slide` of them.
    Hopping {
        /// Window length.
        size: DurationSpec,
        /// Distance between window starts.
        slide: DurationSpec,
    },
    /// Per-key windows that close after `gap` without events.
    Session {
        /// Inactivity that ends a session.
        gap: DurationSpec,
    },
}

/// The keys a window table may carry; exactly one shape must be given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowSpecFields {
    tumbling: Option<DurationSpec>,
    hopping: Option<DurationSpec>,
    slide: Option<DurationSpec>,
    session: Option<DurationSpec>,
}

const SHAPES: &str =
    "write one of { tumbling = \"10s\" }, { hopping = \"1m\", slide = \"10s\" } or { session = \"30s\" }";

impl TryFrom<WindowSpecFields> for WindowSpec {
    type Error = String;

    fn try_from(fields: WindowSpecFields) -> Result<Self, String> {
        let spec = match fields {
            WindowSpecFields {
                tumbling: Some(size),
                hopping: None,
                slide: None,
                session: None,
            } => WindowSpec::Tumbling { size },
            WindowSpecFields {
                tumbling: None,
                hopping: Some(size),
                slide: Some(slide),
                session: None,
            } => WindowSpec::Hopping { size, slide },
            WindowSpecFields {
                tumbling: None,
                hopping: Some(_),
                slide: None,
                session: None,
            } => {
                return Err("a hopping window needs a `slide`, e.g. { hopping = \"1m\", slide = \"10s\" }".into());
            }
            WindowSpecFields {
                tumbling: None,
                hopping: None,
                slide: None,
                session: Some(gap),
            } => WindowSpec::Session { gap },
            _ => return Err(format!("a window has exactly one shape: {SHAPES}")),
        };
        spec.check()?;
        Ok(spec)
    }
}

impl WindowSpec {
    /// The length of its windows in ms, for tumbling and hopping windows (a
    /// session's length depends on its events).
    pub fn fixed_length_ms(&self) -> Option<u64> {
        match self {
            WindowSpec::Tumbling { size } | WindowSpec::Hopping { size, .. } => Some(size.as_millis()),
            WindowSpec::Session { .. } => None,
        }
    }

    /// Checks the sizes against each other; the message says what to change.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            WindowSpec::Tumbling { size } if size.as_millis() == 0 => {
                Err("the tumbling window size must be > 0".into())
            }
            WindowSpec::Hopping { size, slide } if slide.as_millis() == 0 || size.as_millis() == 0 => {
                Err("hopping window size and slide must be > 0".into())
            }
            WindowSpec::Hopping { size, slide } if !size.as_millis().is_multiple_of(slide.as_millis()) => Err(format!(
                "the hopping window size ({size}) must be a multiple of its slide ({slide})"
            )),
            WindowSpec::Session { gap } if gap.as_millis() == 0 => Err("the session gap must be > 0".into()),
            _ => Ok(()),
        }
    }

    /// Checks that window boundaries fall on multiples of the engine's time
    /// granule, so that a window closes exactly when the frontier passes its end.
    pub fn check_granule(&self, granule_ms: u64) -> Result<(), String> {
        let aligned = |d: DurationSpec| d.as_millis().is_multiple_of(granule_ms);
        match *self {
            WindowSpec::Tumbling { size } if !aligned(size) => Err(format!(
                "the window size ({size}) must be a multiple of the engine granule ({granule_ms}ms)"
            )),
            WindowSpec::Hopping { slide, .. } if !aligned(slide) => Err(format!(
                "the window slide ({slide}) must be a multiple of the engine granule ({granule_ms}ms)"
            )),
            _ => Ok(()),
        }
    }

    /// Calls `each(start, end)` for every aligned window that contains `ts`, in
    /// ascending order of start. Does nothing for session windows.
    #[inline]
    pub fn for_each_aligned(&self, ts: EventTime, mut each: impl FnMut(EventTime, EventTime)) {
        match *self {
            WindowSpec::Tumbling { size } => {
                let size = size.as_millis();
                let start = ts - ts % size;
                each(start, start + size);
            }
            WindowSpec::Hopping { size, slide } => {
                let (size, slide) = (size.as_millis(), slide.as_millis());
                let last = ts - ts % slide;
                let mut start = last.saturating_sub(size - slide);
                start -= start % slide;
                while start <= last {
                    if start + size > ts {
                        each(start, start + size);
                    }
                    start += slide;
                }
            }
            WindowSpec::Session { .. } => {}
        }
    }

    /// The end of the last window that contains `ts`: once the frontier has
    /// passed it, every window the event is in has closed. `None` for session
    /// windows, whose end depends on the events that follow.
    pub fn last_end(&self, ts: EventTime) -> Option<EventTime> {
        match *self {
            WindowSpec::Tumbling { size } => Some(ts - ts % size.as_millis() + size.as_millis()),
            WindowSpec::Hopping { size, slide } => Some(ts - ts % slide.as_millis() + size.as_millis()),
            WindowSpec::Session { .. } => None,
        }
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowSpec::Tumbling { size } => write!(f, "tumbling {size}"),
            WindowSpec::Hopping { size, slide } => write!(f, "hopping {size} every {slide}"),
            WindowSpec::Session { gap } => write!(f, "session with gap {gap}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(spec: WindowSpec, ts: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        spec.for_each_aligned(ts, |s, e| out.push((s, e)));
        out
    }

    #[test]
    fn tumbling_assigns_one_window() {
        let spec = WindowSpec::Tumbling {
            size: DurationSpec::from_secs(10),
        };
        assert_eq!(windows(spec, 12_345), vec![(10_000, 20_000)]);
        assert_eq!(windows(spec, 20_000), vec![(20_000, 30_000)]);
    }

    #[test]
    fn hopping_assigns_size_over_slide_windows() {
        let spec = WindowSpec::Hopping {
            size: DurationSpec::from_secs(30),
            slide: DurationSpec::from_secs(10),
        };
        assert_eq!(
            windows(spec, 35_000),
            vec![(10_000, 40_000), (20_000, 50_000), (30_000, 60_000)]
        );
        assert_eq!(windows(spec, 5_000), vec![(0, 30_000)]);
    }

    #[test]
    fn the_last_window_of_an_event_is_the_latest_it_is_in() {
        let tumbling = WindowSpec::Tumbling {
            size: DurationSpec::from_secs(10),
        };
        let hopping = WindowSpec::Hopping {
            size: DurationSpec::from_secs(30),
            slide: DurationSpec::from_secs(10),
        };
        for (spec, ts) in [
            (tumbling, 12_345),
            (tumbling, 20_000),
            (hopping, 35_000),
            (hopping, 5_000),
        ] {
            let latest = windows(spec, ts).iter().map(|(_, end)| *end).max();
            assert_eq!(spec.last_end(ts), latest, "{spec} at {ts}");
        }
        let session = WindowSpec::Session {
            gap: DurationSpec::from_secs(1),
        };
        assert_eq!(session.last_end(5), None);
    }

    #[test]
    fn parses_each_shape_and_explains_mistakes() {
        let parse = |text: &str| {
            toml::from_str::<Wrapper>(text)
                .map(|w| w.window)
                .map_err(|e| e.to_string())
        };
        #[derive(Deserialize)]
        struct Wrapper {
            window: WindowSpec,
        }
        assert_eq!(
            parse(r#"window = { tumbling = "10s" }"#).unwrap(),
            WindowSpec::Tumbling {
                size: DurationSpec::from_secs(10)
            }
        );
        assert!(matches!(
            parse(r#"window = { hopping = "1m", slide = "10s" }"#).unwrap(),
            WindowSpec::Hopping { .. }
        ));
        assert!(matches!(
            parse(r#"window = { session = "30s" }"#).unwrap(),
            WindowSpec::Session { .. }
        ));
        assert!(
            parse(r#"window = { hopping = "1m" }"#)
                .unwrap_err()
                .contains("needs a `slide`")
        );
        assert!(
            parse(r#"window = { tumbling = "1m", session = "1s" }"#)
                .unwrap_err()
                .contains("exactly one shape")
        );
        assert!(
            parse(r#"window = { hopping = "25s", slide = "10s" }"#)
                .unwrap_err()
                .contains("multiple of its slide")
        );
        assert!(
            parse(r#"window = { tumbling = "ten" }"#)
                .unwrap_err()
                .contains("malformed duration")
        );
    }
}
