//! The injectable "now": the real clock, or one pinned by `--now` for reproducible runs.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A point in time and the zone that "today" is read in.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    now: DateTime<Utc>,
    zone: Tz,
    pinned: bool,
}

impl Clock {
    /// The real clock, read once so that every placeholder in a run agrees.
    pub fn system(zone: Tz) -> Clock {
        Clock {
            now: real_now(),
            zone,
            pinned: false,
        }
    }

    /// A clock pinned at `now`.
    pub fn pinned(now: DateTime<Utc>, zone: Tz) -> Clock {
        Clock {
            now,
            zone,
            pinned: true,
        }
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The time to stamp an event with: the pinned time, or the real time now (a run that
    /// takes minutes stamps its attempts as they happen).
    pub fn tick(&self) -> DateTime<Utc> {
        if self.pinned { self.now } else { real_now() }
    }

    /// The current instant in the configured zone.
    pub fn local_now(&self) -> DateTime<Tz> {
        self.now.with_timezone(&self.zone)
    }

    /// The zone that "today" is read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Whether `--now` pinned this clock.
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }
}

/// The real time now, whatever `--now` says: the one place keyhook reads the wall clock.
/// Schedules, placeholders and attempt times go through a [`Clock`]; only what a receiver
/// checks against its own clock (Standard Webhooks timestamps, signed and verified) uses this
/// directly, since a pinned time there would make every signature stale.
pub fn real_now() -> DateTime<Utc> {
    Utc::now()
}

/// `at` less a user's `age`, or `None` when that is before any time chrono can hold.
pub fn before(at: DateTime<Utc>, age: std::time::Duration) -> Option<DateTime<Utc>> {
    chrono::TimeDelta::from_std(age)
        .ok()
        .and_then(|age| at.checked_sub_signed(age))
}

/// Why a time given on the command line was rejected; `text` as written, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstantError {
    #[error(
        "`{0}` is not a time: use ISO-8601 such as 2026-11-23T08:00:00, \
         2026-11-23T08:00:00+01:00 or 2026-11-23"
    )]
    NotATime(String),
    /// A wall-clock time a DST spring-forward skips.
    #[error("`{text}` does not exist in {zone}")]
    Skipped { text: String, zone: Tz },
    /// A time written with a zone's abbreviation (as keyhook shows times) that is not the
    /// configured zone's at that time.
    #[error(
        "`{text}`: {said} is not what {zone} is called at that time ({name}); give the time \
         without it, or with an offset such as +01:00, or set --timezone"
    )]
    OtherZone {
        text: String,
        said: String,
        zone: Tz,
        name: String,
    },
}

/// Parses a `--now` value: RFC 3339 with an offset, or a wall-clock time (or a bare date,
/// meaning midnight) read in `zone`.
pub fn parse_instant(text: &str, zone: Tz) -> Result<DateTime<Utc>, InstantError> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Some(at) = with_zone_label(text, zone) {
        return at;
    }
    let naive = parse_wall_clock(text).ok_or_else(|| InstantError::NotATime(text.to_string()))?;
    resolve_local(naive, zone)
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| InstantError::Skipped {
            text: text.to_string(),
            zone,
        })
}

/// A time as keyhook shows it, `2026-11-23 10:00:00 CET`: a wall-clock time, then the
/// zone's abbreviation (it must be the configured zone's at that time; in a DST fall-back's
/// repeated hour it says which of the two), `UTC`/`GMT`/`Z`, or an offset (`-03`, `+01:00`,
/// `+0100`). `None` when `text` is not written so.
fn with_zone_label(text: &str, zone: Tz) -> Option<Result<DateTime<Utc>, InstantError>> {
    let (wall, label) = text.rsplit_once(' ')?;
    let naive = parse_wall_clock(wall.trim())?;
    if ["UTC", "GMT", "Z"]
        .iter()
        .any(|name| label.eq_ignore_ascii_case(name))
    {
        return Some(Ok(naive.and_utc()));
    }
    if let Some(offset) = offset_of(label) {
        return Some(
            offset
                .from_local_datetime(&naive)
                .single()
                .map(|at| at.with_timezone(&Utc))
                .ok_or_else(|| InstantError::NotATime(text.to_string())),
        );
    }
    if !label.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let candidates: Vec<DateTime<Tz>> = match zone.from_local_datetime(&naive) {
        LocalResult::Single(at) => vec![at],
        LocalResult::Ambiguous(first, second) => vec![first, second],
        LocalResult::None => Vec::new(),
    };
    let named = |at: &DateTime<Tz>| at.format("%Z").to_string();
    Some(
        match candidates
            .iter()
            .find(|at| named(at).eq_ignore_ascii_case(label))
        {
            Some(at) => Ok(at.with_timezone(&Utc)),
            None if candidates.is_empty() => Err(InstantError::Skipped {
                text: text.to_string(),
                zone,
            }),
            None => Err(InstantError::OtherZone {
                text: text.to_string(),
                said: label.to_string(),
                zone,
                name: named(&candidates[0]),
            }),
        },
    )
}

/// `+01:00`, `+0100`, `-03`: an offset from UTC, as `%Z` shows a zone without a name.
fn offset_of(label: &str) -> Option<chrono::FixedOffset> {
    let sign = match label.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    // `HH`, `HHMM` or `HH:MM`, nothing else.
    let rest = &label[1..];
    let (hours, minutes) = match rest.len() {
        2 => (rest, "00"),
        4 => rest.split_at(2),
        5 if rest.as_bytes()[2] == b':' => (&rest[..2], &rest[3..]),
        _ => return None,
    };
    let digits = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse::<i32>().ok())
            .flatten()
    };
    let (hours, minutes) = (digits(hours)?, digits(minutes)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    chrono::FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (a space instead of `T` is accepted too).
pub fn parse_wall_clock(text: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
        })
}

/// Maps a wall-clock time to an instant in `zone`. A time repeated by a DST fall-back is
/// read as its first occurrence; a time skipped by a spring-forward has no instant.
pub fn resolve_local(naive: NaiveDateTime, zone: Tz) -> Option<DateTime<Tz>> {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(at) => Some(at),
        LocalResult::Ambiguous(first, _) => Some(first),
        LocalResult::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_as_keyhook_shows_it_is_read_back() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let cases = [
            ("2026-11-23 10:00:00 CET", "2026-11-23T09:00:00+00:00"),
            ("2026-07-01 10:00:00 CEST", "2026-07-01T08:00:00+00:00"),
            ("2026-11-23 10:00:00 UTC", "2026-11-23T10:00:00+00:00"),
            ("2026-11-23 10:00:00 -03", "2026-11-23T13:00:00+00:00"),
            ("2026-11-23 10:00:00 +05:30", "2026-11-23T04:30:00+00:00"),
            // The fall-back's repeated hour: the abbreviation says which.
            ("2026-10-25 02:30:00 CEST", "2026-10-25T00:30:00+00:00"),
            ("2026-10-25 02:30:00 CET", "2026-10-25T01:30:00+00:00"),
        ];
        for (input, expected) in cases {
            let at = parse_instant(input, paris).unwrap();
            assert_eq!(at.to_rfc3339(), expected, "{input}");
        }
        for (input, expected) in [
            ("2026-11-23 10:00:00 cet", "2026-11-23T09:00:00+00:00"),
            ("2026-11-23 10:00:00 utc", "2026-11-23T10:00:00+00:00"),
            ("2026-11-23 10:00:00 +0100", "2026-11-23T09:00:00+00:00"),
        ] {
            assert_eq!(parse_instant(input, paris).unwrap().to_rfc3339(), expected);
        }
        for bad in ["+01:60", "+0199", "+01:", "+:01:00:", "+25:00", "+1"] {
            let text = format!("2026-11-23 10:00:00 {bad}");
            assert!(parse_instant(&text, paris).is_err(), "{text}");
        }
        let wrong = parse_instant("2026-11-23 10:00:00 CEST", paris).unwrap_err();
        assert!(wrong.to_string().contains("(CET)"), "{wrong}");
        assert!(parse_instant("2026-11-23 10:00:00 +1x", paris).is_err());
    }

    #[test]
    fn parses_the_forms_of_now() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let cases = [
            ("2026-11-23T08:00:00Z", "2026-11-23T08:00:00+00:00"),
            ("2026-11-23T08:00:00+01:00", "2026-11-23T07:00:00+00:00"),
            ("2026-11-23T08:00:00", "2026-11-23T07:00:00+00:00"),
            ("2026-11-23T08:00", "2026-11-23T07:00:00+00:00"),
            ("2026-07-01 08:00:00", "2026-07-01T06:00:00+00:00"),
            ("2026-11-23", "2026-11-22T23:00:00+00:00"),
        ];
        for (input, expected) in cases {
            let at = parse_instant(input, paris).unwrap();
            assert_eq!(at.to_rfc3339(), expected, "{input}");
        }
    }

    #[test]
    fn rejects_garbage_and_skipped_times() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert!(parse_instant("tomorrow", paris).is_err());
        let error = parse_instant("2026-03-29T02:30:00", paris)
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not exist"), "{error}");
    }
}
