//! When periodic snapshots are due: `kubernetes.operator.periodic.savepoint.interval` and
//! `…periodic.checkpoint.interval` hold either a Flink duration (`10 min`, `1h`, `30000`) or a
//! Quartz cron expression (`0 0 3 * * ?`), as in the Apache operator.
//!
//! Cron expressions follow Quartz (the Apache operator evaluates them with log4j's
//! `CronExpression`, a copy of Quartz's): 6 or 7 fields `sec min hour day-of-month month
//! day-of-week [year]`, weekdays `1`–`7` = `SUN`–`SAT`, `?` in exactly one of the two day
//! fields, `*`, ranges, lists, steps (`0/15`, `*/15`, `10-50/10`), names (`JAN`, `MON`), `L`,
//! `W`, `LW`, `#`. They are evaluated in UTC, so no daylight-saving jump ever skips or repeats
//! a time. Quartz's `L-n` (n days before the month's end) is not supported.
//!
//! Everything here is pure: the next fire time is computed from the last trigger time and
//! `now`, both given by the caller.

use std::fmt;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::units;

/// A parsed schedule.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every so long after the last trigger. A zero interval never fires (as in the Apache
    /// operator).
    Interval(Duration),
    /// At the times a Quartz cron expression names, in UTC.
    Cron(Box<CronSchedule>),
}

/// A Quartz cron expression.
#[derive(Clone)]
pub struct CronSchedule {
    text: String,
    cron: Cron,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.text)
    }
}

/// A schedule that is neither a duration nor a cron expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is neither a duration (e.g. `10 min`) nor a Quartz cron expression (e.g. `0 0 3 * * ?`): {reason}"
)]
pub struct ScheduleError {
    /// The text as written.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

impl Schedule {
    /// Parses `text`; `Ok(None)` when it is blank (no periodic snapshots).
    pub fn parse(text: &str) -> Result<Option<Schedule>, ScheduleError> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        // A duration is one number and a unit; a cron expression has at least six fields.
        if t.split_whitespace().count() <= 2 {
            return units::parse_duration(t)
                .map(|d| Some(Schedule::Interval(d)))
                .map_err(|e| ScheduleError {
                    value: t.to_string(),
                    reason: e.reason(),
                });
        }
        CronSchedule::parse(t).map(|c| Some(Schedule::Cron(Box::new(c))))
    }

    /// Whether a snapshot is due at `now_ms` when the last one was triggered at
    /// `last_trigger_ms` (epoch milliseconds): the interval has passed, or the cron
    /// expression named a time after the last trigger that is now past.
    pub fn is_due(&self, last_trigger_ms: i64, now_ms: i64) -> bool {
        self.next_after(last_trigger_ms)
            .is_some_and(|next| next <= now_ms)
    }

    /// The first fire time after `last_trigger_ms`, epoch milliseconds; `None` when the
    /// schedule never fires again (a zero interval, a cron expression whose years are past).
    pub fn next_after(&self, last_trigger_ms: i64) -> Option<i64> {
        match self {
            Schedule::Interval(d) if d.is_zero() => None,
            Schedule::Interval(d) => {
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                Some(last_trigger_ms.saturating_add(ms))
            }
            Schedule::Cron(c) => c.next_after(last_trigger_ms),
        }
    }
}

impl CronSchedule {
    /// Parses a Quartz cron expression.
    pub fn parse(text: &str) -> Result<CronSchedule, ScheduleError> {
        let err = |reason: String| ScheduleError {
            value: text.to_string(),
            reason,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        if !(6..=7).contains(&fields.len()) {
            return Err(err(format!(
                "a Quartz cron expression has 6 or 7 fields (seconds minutes hours \
                 day-of-month month day-of-week [year]), this one has {}",
                fields.len()
            )));
        }
        // Quartz evaluates day-of-month OR day-of-week, never both: exactly one is `?`.
        match (fields[3] == "?", fields[5] == "?") {
            (true, true) => {
                return Err(err(
                    "`?` may stand in day-of-month or day-of-week, not in both".into(),
                ));
            }
            (false, false) => {
                return Err(err("put `?` in day-of-month or in day-of-week (e.g. \
                     `0 0 3 * * ?` or `0 0 3 ? * MON`): Quartz does not combine both"
                    .into()));
            }
            _ => {}
        }
        for (i, field) in fields.iter().enumerate() {
            if field.contains('?') && *field != "?" {
                return Err(err(format!("`?` must stand alone, not in {field:?}")));
            }
            if field.contains('?') && i != 3 && i != 5 {
                return Err(err(
                    "`?` is only allowed in day-of-month and day-of-week".into()
                ));
            }
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            // Quartz numbers weekdays 1 (SUN) to 7 (SAT) and writes steps as `0/15`
            .alternative_weekdays(true)
            .sloppy_ranges(true)
            .build()
            .parse(text)
            .map_err(|e| err(e.to_string()))?;
        Ok(CronSchedule {
            text: text.to_string(),
            cron,
        })
    }

    /// The first time strictly after `after_ms` the expression names, epoch milliseconds (UTC).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let at = jiff::Timestamp::from_millisecond(after_ms).ok()?;
        let zoned = at.to_zoned(jiff::tz::TimeZone::UTC);
        let next = self.cron.find_next_occurrence(&zoned, false).ok()?;
        Some(next.timestamp().as_millisecond())
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch milliseconds of a UTC time written as RFC 3339.
    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn next(expr: &str, after: &str) -> String {
        let s = CronSchedule::parse(expr).unwrap();
        let n = s.next_after(ms(after)).unwrap();
        jiff::Timestamp::from_millisecond(n).unwrap().to_string()
    }

    fn refused(expr: &str) -> String {
        CronSchedule::parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn durations_and_cron_expressions_are_told_apart() {
        assert!(matches!(
            Schedule::parse("10 min").unwrap(),
            Some(Schedule::Interval(d)) if d == Duration::from_secs(600)
        ));
        assert!(matches!(
            Schedule::parse("30000").unwrap(),
            Some(Schedule::Interval(d)) if d == Duration::from_secs(30)
        ));
        assert!(matches!(
            Schedule::parse("0 0 3 * * ?").unwrap(),
            Some(Schedule::Cron(_))
        ));
        assert!(Schedule::parse("  ").unwrap().is_none());
        let e = Schedule::parse("hourly").unwrap_err().to_string();
        assert!(e.contains("neither a duration"), "{e}");
        let e = Schedule::parse("0 0 3 * *").unwrap_err().to_string();
        assert!(e.contains("6 or 7 fields"), "{e}");
    }

    #[test]
    fn a_daily_cron_fires_at_its_hour_in_utc() {
        assert_eq!(
            next("0 0 3 * * ?", "2024-03-10T01:00:00Z"),
            "2024-03-10T03:00:00Z"
        );
        assert_eq!(
            next("0 0 3 * * ?", "2024-03-10T03:00:00Z"),
            "2024-03-11T03:00:00Z",
            "strictly after the last trigger"
        );
        // The US and EU clock changes (2024-03-10, 2024-03-31, 2024-10-27) change nothing in
        // UTC: every day has its 02:30.
        for day in ["2024-03-10", "2024-03-31", "2024-10-27"] {
            assert_eq!(
                next("0 30 2 * * ?", &format!("{day}T00:00:00Z")),
                format!("{day}T02:30:00Z")
            );
        }
    }

    #[test]
    fn question_mark_ranges_steps_and_lists() {
        // every 15 s, Quartz and POSIX step spellings
        assert_eq!(
            next("0/15 * * * * ?", "2024-01-01T00:00:07Z"),
            "2024-01-01T00:00:15Z"
        );
        assert_eq!(
            next("*/15 * * * * ?", "2024-01-01T00:00:45Z"),
            "2024-01-01T00:01:00Z"
        );
        // minutes 10, 20, …, 50 of hours 9 to 17
        assert_eq!(
            next("0 10-50/10 9-17 * * ?", "2024-01-01T17:50:00Z"),
            "2024-01-02T09:10:00Z"
        );
        // a list of hours
        assert_eq!(
            next("0 0 6,18 * * ?", "2024-01-01T07:00:00Z"),
            "2024-01-01T18:00:00Z"
        );
        // months by name, day-of-month fixed
        assert_eq!(
            next("0 0 0 1 JAN,JUL ?", "2024-02-01T00:00:00Z"),
            "2024-07-01T00:00:00Z"
        );
    }

    #[test]
    fn day_of_week_uses_quartz_numbers_and_names() {
        // 2024-01-01 is a Monday. Quartz: 1 = SUN, 2 = MON, 7 = SAT.
        assert_eq!(
            next("0 0 3 ? * MON", "2024-01-01T04:00:00Z"),
            "2024-01-08T03:00:00Z"
        );
        assert_eq!(
            next("0 0 3 ? * 2", "2024-01-01T04:00:00Z"),
            "2024-01-08T03:00:00Z"
        );
        assert_eq!(
            next("0 0 12 ? * 1", "2024-01-01T00:00:00Z"),
            "2024-01-07T12:00:00Z"
        );
        assert_eq!(
            next("0 0 12 ? * 7", "2024-01-01T00:00:00Z"),
            "2024-01-06T12:00:00Z"
        );
        assert_eq!(
            next("0 0 12 ? * MON-FRI", "2024-01-05T13:00:00Z"),
            "2024-01-08T12:00:00Z",
            "Friday afternoon → Monday"
        );
        // the third Friday, the last Friday
        assert_eq!(
            next("0 0 12 ? * 6#3", "2024-01-01T00:00:00Z"),
            "2024-01-19T12:00:00Z"
        );
        assert_eq!(
            next("0 0 12 ? * 6L", "2024-01-01T00:00:00Z"),
            "2024-01-26T12:00:00Z"
        );
    }

    #[test]
    fn last_day_and_nearest_weekday_of_the_month() {
        assert_eq!(
            next("0 15 10 L * ?", "2024-02-01T00:00:00Z"),
            "2024-02-29T10:15:00Z",
            "leap year"
        );
        // 2024-06-15 is a Saturday: the nearest weekday is Friday the 14th
        assert_eq!(
            next("0 0 12 15W * ?", "2024-06-01T00:00:00Z"),
            "2024-06-14T12:00:00Z"
        );
        assert_eq!(
            next("0 0 12 LW * ?", "2024-03-01T00:00:00Z"),
            "2024-03-29T12:00:00Z"
        );
    }

    #[test]
    fn an_optional_year_field_limits_the_years() {
        assert_eq!(
            next("0 0 12 1 1 ? 2030", "2024-01-01T00:00:00Z"),
            "2030-01-01T12:00:00Z"
        );
        let past = CronSchedule::parse("0 0 12 1 1 ? 2020").unwrap();
        assert_eq!(past.next_after(ms("2024-01-01T00:00:00Z")), None);
    }

    #[test]
    fn expressions_quartz_refuses_are_refused_with_the_reason() {
        assert!(refused("0 0 3 * * *").contains("put `?`"));
        assert!(refused("0 0 12 15 * MON").contains("put `?`"));
        assert!(refused("0 0 3 ? * ?").contains("not in both"));
        assert!(refused("? 0 3 * * ?").contains("only allowed"));
        assert!(refused("0 0 25 * * ?").contains("neither"));
        assert!(refused("60 0 12 * * ?").contains("neither"));
        assert!(refused("0 0 12 ? * 8").contains("neither"));
        assert!(refused("0 0 3 * * ? 2030 x").contains("6 or 7 fields"));
    }

    #[test]
    fn due_when_the_next_time_after_the_last_trigger_has_passed() {
        let daily = Schedule::parse("0 0 3 * * ?").unwrap().unwrap();
        let last = ms("2024-01-01T03:00:05Z");
        assert!(!daily.is_due(last, ms("2024-01-02T02:59:59Z")));
        assert!(daily.is_due(last, ms("2024-01-02T03:00:00Z")));
        // a missed time (operator down) fires once when it comes back
        assert!(daily.is_due(last, ms("2024-01-05T12:00:00Z")));

        let every = Schedule::parse("10s").unwrap().unwrap();
        assert!(!every.is_due(1_000, 10_999));
        assert!(every.is_due(1_000, 11_000));
        let never = Schedule::parse("0").unwrap().unwrap();
        assert!(!never.is_due(0, i64::MAX));
    }
}
