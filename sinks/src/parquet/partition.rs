//! Hour partitions: which `dt=YYYY-MM-DD/hour=HH` directory a row's time
//! belongs to (UTC), and the names files get inside it.

use std::fmt;
use std::path::{Path, PathBuf};

use pulse_core::EventTime;

const HOUR_MS: u64 = 3_600_000;

/// One hour of UTC time: the unit rows are grouped into files by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HourPartition {
    /// Hours since the Unix epoch.
    hours: u64,
}

impl HourPartition {
    /// The hour that `time` (epoch ms) falls in.
    pub fn of(time: EventTime) -> Self {
        Self { hours: time / HOUR_MS }
    }

    /// The first millisecond of the hour.
    pub fn start(self) -> EventTime {
        self.hours * HOUR_MS
    }

    /// The first millisecond after the hour.
    pub fn end(self) -> EventTime {
        (self.hours + 1) * HOUR_MS
    }

    /// The directory of this hour under `root` (`<dir>/<operator>`):
    /// `root/dt=YYYY-MM-DD/hour=HH`.
    pub fn directory(self, root: &Path) -> PathBuf {
        let (year, month, day) = civil_date(self.hours / 24);
        root.join(format!("dt={year:04}-{month:02}-{day:02}"))
            .join(format!("hour={:02}", self.hours % 24))
    }
}

impl fmt::Display for HourPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_date(self.hours / 24);
        write!(f, "{year:04}-{month:02}-{day:02}T{:02}", self.hours % 24)
    }
}

/// The name of a file holding rows whose partition times run from `first` to
/// `last` (epoch ms), the `sequence`-th file of its hour: the same rows give
/// the same name, so writing them again replaces the file.
pub fn file_name(first: EventTime, last: EventTime, sequence: u32) -> String {
    format!("part-{first}-{last}-{sequence:04}.parquet")
}

/// (year, month, day) of the `days`-th day after 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_map_to_utc_date_and_hour_directories() {
        let root = Path::new("lake/by_metric");
        // 2024-11-23T06:47:58.123Z
        let partition = HourPartition::of(1_732_344_478_123);
        assert_eq!(partition.directory(root), root.join("dt=2024-11-23").join("hour=06"));
        assert_eq!(partition.to_string(), "2024-11-23T06");
        assert_eq!(
            (partition.start(), partition.end()),
            (1_732_341_600_000, 1_732_345_200_000)
        );
        assert_eq!(
            HourPartition::of(0).directory(root),
            root.join("dt=1970-01-01").join("hour=00")
        );
        // The last hour of a leap day, and the first of the next day.
        let leap = 951_868_800_000 - 1; // 2000-02-29T23:59:59.999Z
        assert_eq!(HourPartition::of(leap).to_string(), "2000-02-29T23");
        assert_eq!(HourPartition::of(leap + 1).to_string(), "2000-03-01T00");
    }

    #[test]
    fn civil_dates_agree_with_a_day_by_day_count() {
        let month_days = |year: u64, month: u64| match month {
            2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let (mut year, mut month, mut day) = (1970, 1, 1);
        for days in 0..200_000 {
            assert_eq!(civil_date(days), (year, month, day), "day {days}");
            day += 1;
            if day > month_days(year, month) {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
    }
}
