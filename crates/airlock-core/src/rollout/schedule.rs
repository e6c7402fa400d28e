//! When the agent checks next.
//!
//! After a successful check the next one is due `interval` later; after `n` failures in a row,
//! `retry_min * 2^(n-1)` later, never more than `retry_max` (a repository that is down is not
//! hammered, and one that is back is found soon). A random share of `jitter` is added, so that
//! machines started together do not all ask at the same second. The first check after start is
//! due within `jitter`. A check that is overdue is due now.
//!
//! Maintenance windows (UTC, optional weekdays, may cross midnight) limit when scheduled and
//! application-triggered checks run: a time outside every window moves to the start of the next
//! window plus a random share of that window (at most `jitter`). No windows: any time.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, TimeDelta, Utc, Weekday};

/// Settings, from the agent's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub jitter: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub windows: Vec<Window>,
}

/// A daily (or weekday-only) UTC time range, `[Mon,Sat ]HH:MM-HH:MM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Days the window starts on; empty: every day.
    pub days: Vec<Weekday>,
    /// Minutes after midnight UTC.
    pub start: u16,
    /// Length in minutes, 1..=1440.
    pub minutes: u16,
}

/// The outcome of the previous check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastCheck {
    pub at: DateTime<Utc>,
    pub ok: bool,
}

/// Why a schedule setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("maintenance window {0:?} is not \"[Mon,Tue,...] HH:MM-HH:MM\" (UTC)")]
    WindowSyntax(String),
    #[error("maintenance window {0:?} starts and ends at the same time")]
    EmptyWindow(String),
    #[error("interval must be at least one minute")]
    IntervalTooShort,
    #[error("retry_min must be at least one second and not above retry_max")]
    BadRetry,
}

impl Schedule {
    /// Refuse settings that would make the agent spin.
    pub fn check(&self) -> Result<(), ScheduleError> {
        if self.interval < Duration::from_secs(60) {
            return Err(ScheduleError::IntervalTooShort);
        }
        if self.retry_min < Duration::from_secs(1) || self.retry_min > self.retry_max {
            return Err(ScheduleError::BadRetry);
        }
        Ok(())
    }
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Window {
    /// Parse `HH:MM-HH:MM` or `Sat,Sun HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        let syntax = || ScheduleError::WindowSyntax(s.to_string());
        let (days, range) = match s.trim().rsplit_once(' ') {
            Some((days, range)) => (days.trim(), range),
            None => ("", s.trim()),
        };
        let days = if days.is_empty() {
            Vec::new()
        } else {
            days.split(',')
                .map(|d| d.trim().parse::<Weekday>().map_err(|_| syntax()))
                .collect::<Result<_, _>>()?
        };
        let (a, b) = range.split_once('-').ok_or_else(syntax)?;
        let (start, end) = (
            parse_hhmm(a).ok_or_else(syntax)?,
            parse_hhmm(b).ok_or_else(syntax)?,
        );
        if start == end {
            return Err(ScheduleError::EmptyWindow(s.to_string()));
        }
        let minutes = if end > start {
            end - start
        } else {
            end + 1440 - start
        };
        Ok(Self {
            days,
            start,
            minutes,
        })
    }

    /// Start and end of the window opening on the date of `day`, if it opens that day.
    fn on(&self, day: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days.is_empty() && !self.days.contains(&day.weekday()) {
            return None;
        }
        let midnight = day.date_naive().and_time(NaiveTime::MIN).and_utc();
        let start = midnight + TimeDelta::minutes(i64::from(self.start));
        Some((start, start + TimeDelta::minutes(i64::from(self.minutes))))
    }
}

/// `t` is inside a window (always, when there are none).
pub fn in_window(t: DateTime<Utc>, windows: &[Window]) -> bool {
    windows.is_empty()
        || windows.iter().any(|w| {
            [t - TimeDelta::days(1), t]
                .into_iter()
                .filter_map(|d| w.on(d))
                .any(|(start, end)| start <= t && t < end)
        })
}

/// The next window opening after `t`, with its length.
fn next_opening(t: DateTime<Utc>, windows: &[Window]) -> Option<(DateTime<Utc>, TimeDelta)> {
    (0..=8)
        .map(|d| t + TimeDelta::days(d))
        .flat_map(|day| windows.iter().filter_map(move |w| w.on(day)))
        .filter(|(start, _)| *start > t)
        .map(|(start, end)| (start, end - start))
        .min_by_key(|(start, _)| *start)
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// The share `random` (in [0, 1)) of `d`.
fn share(d: TimeDelta, random: f64) -> TimeDelta {
    let r = if random.is_finite() {
        random.clamp(0.0, 1.0)
    } else {
        0.0
    };
    TimeDelta::milliseconds((d.num_milliseconds() as f64 * r) as i64)
}

/// When the next check is due. See the module docs; `random` is a uniform value in [0, 1).
pub fn next_check(
    now: DateTime<Utc>,
    last: Option<&LastCheck>,
    failures: u32,
    schedule: &Schedule,
    random: f64,
) -> DateTime<Utc> {
    let jitter = share(delta(schedule.jitter), random);
    let wait = if failures == 0 {
        delta(schedule.interval)
    } else {
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        delta(
            schedule
                .retry_min
                .checked_mul(factor)
                .unwrap_or(Duration::MAX)
                .min(schedule.retry_max),
        )
    };
    let due = match last {
        None => now.checked_add_signed(jitter),
        Some(last) => last
            .at
            .checked_add_signed(wait)
            .and_then(|t| t.checked_add_signed(jitter)),
    }
    .unwrap_or(DateTime::<Utc>::MAX_UTC)
    .max(now);
    if in_window(due, &schedule.windows) {
        return due;
    }
    match next_opening(due, &schedule.windows) {
        Some((start, len)) => start + share(len.min(delta(schedule.jitter)), random),
        None => due,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn schedule(windows: &[&str]) -> Schedule {
        Schedule {
            interval: Duration::from_secs(6 * 3600),
            jitter: Duration::from_secs(600),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            windows: windows.iter().map(|w| Window::parse(w).unwrap()).collect(),
        }
    }

    #[test]
    fn interval_plus_jitter_after_success_and_backoff_after_failures() {
        let s = schedule(&[]);
        let last = LastCheck {
            at: t("2025-01-01T00:00:00Z"),
            ok: true,
        };
        let now = t("2025-01-01T00:00:01Z");
        assert_eq!(
            next_check(now, Some(&last), 0, &s, 0.0),
            t("2025-01-01T06:00:00Z")
        );
        assert_eq!(
            next_check(now, Some(&last), 0, &s, 0.5),
            t("2025-01-01T06:05:00Z")
        );
        let failed = LastCheck { ok: false, ..last };
        let waits: Vec<i64> = (1..=12)
            .map(|n| (next_check(now, Some(&failed), n, &s, 0.0) - failed.at).num_seconds())
            .collect();
        assert_eq!(
            waits,
            [
                60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600, 3600, 3600
            ]
        );
        // Huge failure counts and bad random values neither overflow nor go back in time.
        assert_eq!(
            next_check(now, Some(&failed), u32::MAX, &s, f64::NAN),
            t("2025-01-01T01:00:00Z")
        );
        assert_eq!(
            next_check(now, Some(&failed), 1, &s, 7.0),
            t("2025-01-01T00:11:00Z")
        );
    }

    #[test]
    fn first_and_overdue_checks_are_due_now_within_jitter() {
        let s = schedule(&[]);
        let now = t("2025-03-01T12:00:00Z");
        assert_eq!(next_check(now, None, 0, &s, 0.0), now);
        assert_eq!(
            next_check(now, None, 0, &s, 0.1),
            now + TimeDelta::seconds(60)
        );
        let long_ago = LastCheck {
            at: t("2024-01-01T00:00:00Z"),
            ok: true,
        };
        assert_eq!(next_check(now, Some(&long_ago), 0, &s, 0.9), now);
    }

    #[test]
    fn maintenance_windows_hold_checks_until_they_open() {
        // 2025-01-04 is a Saturday.
        let s = schedule(&["Sat,Sun 02:00-04:00"]);
        let now = t("2025-01-01T10:00:00Z");
        assert_eq!(next_check(now, None, 0, &s, 0.0), t("2025-01-04T02:00:00Z"));
        // Inside the window: when it is due.
        let now = t("2025-01-05T03:00:00Z");
        assert_eq!(next_check(now, None, 0, &s, 0.0), now);
        // Spread over the window, at most the jitter.
        let s = schedule(&["23:30-00:30"]);
        let now = t("2025-01-01T12:00:00Z");
        assert_eq!(next_check(now, None, 0, &s, 0.5), t("2025-01-01T23:35:00Z"));
        assert!(in_window(t("2025-01-02T00:10:00Z"), &s.windows));
        assert!(!in_window(t("2025-01-02T00:30:00Z"), &s.windows));
        assert!(in_window(t("2025-01-02T00:10:00Z"), &[]));
    }

    #[test]
    fn window_syntax() {
        assert_eq!(
            Window::parse("Mon,Fri 22:00-02:00").unwrap(),
            Window {
                days: vec![Weekday::Mon, Weekday::Fri],
                start: 1320,
                minutes: 240
            }
        );
        for bad in [
            "",
            "2:00-3:00",
            "02:00",
            "24:00-01:00",
            "Funday 01:00-02:00",
            "01:00-01:00",
            "01:00-02:60",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad:?}");
        }
        let mut s = schedule(&[]);
        s.check().unwrap();
        s.interval = Duration::from_secs(1);
        assert_eq!(s.check(), Err(ScheduleError::IntervalTooShort));
    }
}
